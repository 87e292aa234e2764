"""Node classification: GCN full-batch, GraphSAGE on neighbour-sampled mini-batches.

The graph comes from --dataset_name (GRAPH_DATASETS below): the Planetoid files (cora,
citeseer, pubmed) in --dataset_dir, a generic CSV / npz graph, Zachary's karate club or
a generated planted partition. --model_name picks the model in
graph_models/models_factory.py.

Two ways to train (--graph_batching; default: the model's):

* full: the transductive setting of Kipf & Welling. The input is ONE element, the whole
  graph (features, normalised adjacency, the split's target nodes with their labels),
  repeated: one step is one epoch (`batches_per_epoch=1`). Every rank gets the whole
  graph (there is nothing to shard), so Horovod's averaged gradient is the one-process
  gradient. The loss reads the targets' logits only, so the model's last layer computes
  just those rows (A_hat[targets] for GCN).
* sampled: GraphSAGE's mini-batches of target nodes of the split, shuffled by (seed,
  epoch) and sharded by rank with datasets.graphs.target_batches (disjoint targets, the
  same number of steps on every rank), their neighbourhoods sampled with
  sample_neighbors seeded by (seed, epoch, step) on every rank, so rank r samples for its
  targets exactly what one process samples for them. The loss of a rank is its sum of
  target losses over (real targets of the global batch / ranks): averaged over ranks it
  is the mean over the global batch, padding (weight 0) included or not.

Evaluation is exact and full-graph for both: the model runs on the whole graph (GraphSAGE
averages over all neighbours), and rank r scores the nodes with id % size == r of the
train, val and test masks, so each node counts once in the sums over ranks. Metrics:
accuracy and loss on --eval_split_name (default val), and train / val / test accuracy
(`val_accuracy` is the early-stopping metric of the GCN recipe).
"""

import functools
import os

import numpy as np
import scipy.sparse as sp

from datasets import graph_formats, graphs, planetoid
from graph_models import models_factory
from slim_compat import tf
from training import task as task_lib

BATCHINGS = ("full", "sampled")
INT_FEATURES = ("auto", "node_id", "columns")
# The eval split names accepted, by mask.
SPLIT_MASKS = {
    "train": "train_mask",
    "val": "val_mask",
    "validation": "val_mask",
    "test": "test_mask",
}
EVAL_MASKS = ("train", "val", "test")
# --graph_planted_partition: keyword -> (planted_partition argument, type, default).
PLANTED_PARTITION_ARGS = {
    "nodes": ("num_nodes", int, 2000),
    "classes": ("num_classes", int, 5),
    "p_in": ("p_in", float, 0.01),
    "p_out": ("p_out", float, 0.0005),
    "noise": ("feature_noise", float, 3.0),
    "features": ("num_features", int, 16),
    "train_per_class": ("train_per_class", int, 20),
    "val": ("num_val", int, 500),
    "test": ("num_test", int, 1000),
    "seed": ("seed", int, 0),
}
GENERIC_FILES = ("edges", "features", "labels", "masks")


def parse_planted_partition(spec):
    """'nodes=2000,classes=5,...' -> planted_partition keyword arguments (defaults filled)."""
    kwargs = {arg: default for arg, _, default in PLANTED_PARTITION_ARGS.values()}
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in PLANTED_PARTITION_ARGS:
            raise ValueError(
                f"--graph_planted_partition: bad item {item!r}; expected key=value with key "
                f"one of {', '.join(PLANTED_PARTITION_ARGS)}"
            )
        arg, kind, _ = PLANTED_PARTITION_ARGS[key.strip()]
        try:
            kwargs[arg] = kind(value)
        except ValueError as error:
            raise ValueError(
                f"--graph_planted_partition: {key}={value!r} is not a {kind.__name__}"
            ) from error
    return kwargs


def parse_fanouts(spec):
    """'25,10' -> (25, 10): neighbours sampled per hop, from the targets outwards."""
    try:
        fanouts = tuple(int(part) for part in str(spec).split(","))
    except ValueError:
        fanouts = ()
    if not fanouts or min(fanouts) <= 0:
        raise ValueError(
            f"--graph_fanouts must be positive integers separated by commas (one per layer, "
            f"e.g. 25,10), got {spec!r}"
        )
    return fanouts


def _generic_files(params, extension):
    """{edges, features, labels, masks} paths of a csv / npz graph in --dataset_dir."""
    if not params.dataset_dir:
        raise ValueError(f"--dataset_name={params.dataset_name} needs --dataset_dir")
    given = {}
    for item in filter(None, (params.graph_files or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in GENERIC_FILES:
            raise ValueError(
                f"--graph_files: bad item {item!r}; expected name=file with name one of "
                f"{', '.join(GENERIC_FILES)}"
            )
        given[key] = value
    files = {}
    for key in GENERIC_FILES:
        name = given.get(key, f"{key}{extension}" if extension == ".csv" else None)
        if key == "edges" and extension == ".npz":
            name = given.get(key, "graph.npz")
        if name is None:
            continue
        path = name if os.path.isabs(name) else os.path.join(params.dataset_dir, name)
        if key == "edges" or key in given or os.path.isfile(path):
            files[key] = path
    return files


def _load_planetoid(params):
    if not params.dataset_dir:
        raise ValueError(
            f"--dataset_name={params.dataset_name} needs --dataset_dir, the directory of "
            f"ind.{params.dataset_name}.{{x,tx,allx,y,ty,ally,graph,test.index}}"
        )
    return planetoid.load_planetoid(params.dataset_dir, params.dataset_name)


def _load_generic(params, extension):
    files = _generic_files(params, extension)
    return graph_formats.load_graph(
        files["edges"],
        features=files.get("features"),
        labels=files.get("labels"),
        masks=files.get("masks"),
        directed=params.graph_directed,
        name=params.dataset_name,
    )


#: THE map of the graph datasets: --dataset_name -> loader(params) -> graphs.Graph.
GRAPH_DATASETS = {
    "cora": _load_planetoid,
    "citeseer": _load_planetoid,
    "pubmed": _load_planetoid,
    "csv": functools.partial(_load_generic, extension=".csv"),
    "npz": functools.partial(_load_generic, extension=".npz"),
    "karate_club": lambda params: graph_formats.karate_club(),
    "planted_partition": lambda params: graph_formats.planted_partition(
        **parse_planted_partition(params.graph_planted_partition)
    ),
}


def row_normalize(features):
    """Each row divided by its sum (Kipf's preprocess_features); all-zero rows stay zero."""
    sums = abs(features).sum(axis=1) if sp.issparse(features) else np.abs(features).sum(axis=1)
    sums = np.asarray(sums, dtype=np.float64).ravel()
    with np.errstate(divide="ignore"):
        inverse = np.where(sums > 0, 1.0 / sums, 0.0)
    if sp.issparse(features):
        return sp.csr_matrix(sp.diags(inverse) @ features, dtype=np.float32)
    return (features * inverse[:, None]).astype(np.float32)


def describe_cleaning(graph):
    """What Graph.from_edges did to the input edges, for the log ('' when nothing)."""
    names = {
        "self_loops_removed": "self loops removed",
        "duplicate_edges_merged": "duplicate edges merged",
        "reverse_edges_added": "reverse edges added",
        "isolated_nodes": "isolated nodes",
    }
    done = [f"{graph.stats[k]} {text}" for k, text in names.items() if graph.stats.get(k)]
    return f" ({', '.join(done)})" if done else ""


def load_graph(params):
    """The graphs.Graph of --dataset_name (checked: labels of 2+ classes).

    Features are row-normalised when --graph_normalize_features says so (default: for the
    Planetoid datasets, as Kipf & Welling's code does).
    """
    name = params.dataset_name
    if name not in GRAPH_DATASETS:
        raise ValueError(
            f"Unknown graph dataset --dataset_name={name!r}; expected one of: "
            f"{', '.join(GRAPH_DATASETS)}"
        )
    graph = GRAPH_DATASETS[name](params)
    normalize = getattr(params, "graph_normalize_features", None)
    if normalize is None:
        normalize = name in planetoid.NAMES
    if normalize:
        graph.features = row_normalize(graph.features)
    if graph.num_classes < 2:
        raise ValueError(
            f"graph {graph.name!r} has {graph.num_classes} class(es) among its labels; node "
            "classification needs labels of at least 2 classes"
        )
    return graph


def integer_features(graph, mode):
    """([N, K] int64 ids, num_ids) for gcn_embedding: node ids or the feature columns.

    'columns' reads dense integer-valued features as K categorical columns, each offset
    into one shared table (Hetu's int features); 'node_id' gives every node its own row
    (a learned node embedding); 'auto' takes columns when the features are dense integers
    >= 0, else node ids.
    """
    if mode not in INT_FEATURES:
        raise ValueError(f"--graph_int_features must be one of {INT_FEATURES}, got {mode!r}")
    features = graph.features
    integral = (
        not sp.issparse(features)
        and features.size
        and np.all(features >= 0)
        and np.all(np.mod(features, 1) == 0)
    )
    if mode == "columns" and not integral:
        raise ValueError(
            f"--graph_int_features=columns needs dense integer features >= 0; graph "
            f"{graph.name!r} has {'sparse' if sp.issparse(features) else 'non-integer'} ones"
        )
    if mode == "node_id" or not integral:
        return np.arange(graph.num_nodes, dtype=np.int64)[:, None], graph.num_nodes
    ids = features.astype(np.int64)
    sizes = ids.max(axis=0) + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return ids + offsets, int(sizes.sum())


def _sparse_value(matrix):
    return tf.compat.v1.SparseTensorValue(*graphs.sparse_tensor_parts(matrix))


def _sparse_spec(num_cols=None):
    return tf.SparseTensorSpec([None, num_cols], tf.float32)


def _flat_specs(signature):
    """The dense component specs of a signature dict, by sorted key (sparse: 3 each)."""
    specs = []
    for key in sorted(signature):
        spec = signature[key]
        if isinstance(spec, tf.SparseTensorSpec):
            specs += [
                tf.TensorSpec([None, 2], tf.int64),
                tf.TensorSpec([None], spec.dtype),
                tf.TensorSpec([2], tf.int64),
            ]
        else:
            specs.append(spec)
    return specs


def _flatten(element, signature):
    flat = []
    for key in sorted(signature):
        value = element[key]
        if isinstance(signature[key], tf.SparseTensorSpec):
            flat += [value.indices, value.values, value.dense_shape]
        else:
            flat.append(np.asarray(value, signature[key].dtype.as_numpy_dtype))
    return flat


def _unflatten(flat, signature):
    """The dict of tensors (static shapes set) from _flatten's components."""
    element, position = {}, 0
    for key in sorted(signature):
        spec = signature[key]
        if isinstance(spec, tf.SparseTensorSpec):
            indices, values, shape = flat[position : position + 3]
            indices.set_shape([None, 2])
            values.set_shape([None])
            shape.set_shape([2])
            sparse = tf.SparseTensor(indices, values, shape)
            sparse.set_shape(spec.shape)
            element[key] = sparse
            position += 3
        else:
            flat[position].set_shape(spec.shape)
            element[key] = flat[position]
            position += 1
    return element


def mean_adjacency(graph):
    """D^-1 A of the whole graph (CSR): GraphSAGE's mean over all neighbours."""
    adjacency = graphs.adjacency(graph)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inverse = np.where(degree > 0, 1.0 / degree, 0.0).astype(np.float32)
    matrix = sp.csr_matrix(sp.diags(inverse) @ adjacency, dtype=np.float32)
    matrix.sort_indices()
    return matrix


class NodeClassificationTask(task_lib.Task):
    """Semi-supervised node classification (Planetoid-style splits) with graph models."""

    name = "node_classification"
    family = "graph"
    # gcn_embedding's table: most rows are looked up every full-graph step.
    sparse_as_dense = True
    throughput_labels = {"examples": ("nodes_per_sec", "target nodes/s")}

    def __init__(self):
        self._graph = None
        self._graph_key = None
        self._derived = {}
        self._export_graph_input = None

    # -- flags ------------------------------------------------------------------------------

    @classmethod
    def define_flags(cls, flags_module):
        from absl import flags as define

        # flags_module: absl.flags or tfzoo's flags.py (both hold FLAGS).
        flags = getattr(flags_module, "FLAGS", flags_module)
        if "graph_batching" not in flags:
            define.DEFINE_enum(
                "graph_batching",
                None,
                list(BATCHINGS),
                "node_classification: full = the whole graph each step (one step per "
                "epoch); sampled = mini-batches of --batch_size target nodes per rank with "
                "sampled neighbourhoods (--graph_fanouts). Default: the model's (gcn: full, "
                "graphsage_mean: sampled).",
                flag_values=flags,
            )
        if "graph_fanouts" not in flags:
            define.DEFINE_string(
                "graph_fanouts",
                "25,10",
                "node_classification, GraphSAGE: neighbours sampled per hop, from the "
                "targets outwards, one per layer (GraphSAGE's S1,S2 = 25,10).",
                flag_values=flags,
            )
        if "graph_hidden_units" not in flags:
            define.DEFINE_integer(
                "graph_hidden_units",
                None,
                "node_classification: hidden width of the graph model; default: the "
                "model's (gcn 16, gcn_embedding 128, graphsage_mean 256, mlp 16).",
                flag_values=flags,
            )
        if "graph_directed" not in flags:
            define.DEFINE_boolean(
                "graph_directed",
                False,
                "node_classification, csv / npz graphs: read edge rows as arcs and refuse "
                "an arc without its reverse (default: undirected rows, symmetrised).",
                flag_values=flags,
            )
        if "graph_files" not in flags:
            define.DEFINE_string(
                "graph_files",
                None,
                "node_classification, csv / npz graphs: name=file pairs (edges, features, "
                "labels, masks), relative to --dataset_dir unless absolute; default: "
                "edges.csv, features.csv, labels.csv, masks.csv (those present) or graph.npz.",
                flag_values=flags,
            )
        if "graph_planted_partition" not in flags:
            define.DEFINE_string(
                "graph_planted_partition",
                None,
                "node_classification, --dataset_name=planted_partition: key=value items of "
                f"{', '.join(PLANTED_PARTITION_ARGS)} (defaults "
                + ", ".join(f"{k}={v[2]}" for k, v in PLANTED_PARTITION_ARGS.items())
                + ").",
                flag_values=flags,
            )
        if "graph_normalize_features" not in flags:
            define.DEFINE_boolean(
                "graph_normalize_features",
                None,
                "node_classification: divide each node's features by the sum of their absolute values (Kipf's "
                "preprocess_features); default: on for cora, citeseer, pubmed, off otherwise.",
                flag_values=flags,
            )
        if "graph_int_features" not in flags:
            define.DEFINE_enum(
                "graph_int_features",
                "auto",
                list(INT_FEATURES),
                "node_classification, gcn_embedding: the integer features embedded: "
                "columns = dense integer feature columns, node_id = one row per node, auto "
                "= columns when the features are integers >= 0, else node_id.",
                flag_values=flags,
            )

    def check_params(self, params, dist):
        """Refuses bad names and values before anything is built (or a graph is read)."""
        if params.dataset_name not in GRAPH_DATASETS:
            raise ValueError(
                f"Unknown graph dataset --dataset_name={params.dataset_name!r}; expected one "
                f"of: {', '.join(GRAPH_DATASETS)}"
            )
        self.batching(params)  # the model name and its batching
        if self.batching(params) == "sampled" or self.model_entry(params).graph_input == "blocks":
            parse_fanouts(params.graph_fanouts)
        if params.dataset_name == "planted_partition":
            parse_planted_partition(params.graph_planted_partition)
        keep = getattr(params, "dropout_keep_prob", None)
        if keep is not None and not 0 < keep <= 1:
            raise ValueError(f"--dropout_keep_prob must be in (0, 1], got {keep}")

    # -- the graph and the model's settings ------------------------------------------------

    def graph(self, params):
        """The graph of --dataset_name, loaded once per task."""
        key = (
            params.dataset_name,
            params.dataset_dir,
            getattr(params, "graph_files", None),
            getattr(params, "graph_planted_partition", None),
            getattr(params, "graph_directed", False),
            getattr(params, "graph_normalize_features", None),
        )
        if self._graph is None or key != self._graph_key:
            self._graph, self._graph_key, self._derived = load_graph(params), key, {}
        return self._graph

    def _cached(self, name, fn):
        if name not in self._derived:
            self._derived[name] = fn()
        return self._derived[name]

    def model_entry(self, params):
        return models_factory.get_model(params.model_name)

    def batching(self, params):
        """--graph_batching, checked against what the model supports."""
        entry = self.model_entry(params)
        batching = getattr(params, "graph_batching", None) or entry.batchings[0]
        if batching not in entry.batchings:
            raise ValueError(
                f"--model_name={params.model_name} trains with --graph_batching in "
                f"{entry.batchings}, got {batching!r}"
            )
        return batching

    def num_layers(self, params):
        return len(parse_fanouts(getattr(params, "graph_fanouts", "25,10")))

    def _features(self, params, graph):
        """The model's input features: float [N, F] (dense or CSR) or int ids [N, K]."""
        if self.model_entry(params).feature_kind == "ids":
            return self._cached(
                "ids",
                lambda: integer_features(graph, getattr(params, "graph_int_features", "auto")),
            )[0]
        return graph.features

    def _num_ids(self, params, graph):
        mode = getattr(params, "graph_int_features", "auto")
        return self._cached("ids", lambda: integer_features(graph, mode))[1]

    def _graph_operator(self, params, graph):
        """The model's whole-graph matrix: A_hat (GCN), D^-1 A (GraphSAGE) or None."""
        kind = self.model_entry(params).graph_input
        if kind == "adjacency":
            return self._cached("a_hat", lambda: graphs.normalized_adjacency(graph))
        if kind == "blocks":
            return self._cached("mean", lambda: mean_adjacency(graph))
        return None

    # -- inputs -----------------------------------------------------------------------------

    def _split_mask(self, graph, split):
        if split not in SPLIT_MASKS:
            raise ValueError(
                f"Unknown split {split!r} of a graph; expected one of: {', '.join(SPLIT_MASKS)}"
            )
        mask = getattr(graph, SPLIT_MASKS[split])
        if not mask.any():
            raise ValueError(
                f"graph {graph.name!r}: split {split!r} ({SPLIT_MASKS[split]}) has no nodes"
            )
        return mask

    def _full_graph_element(self, params, graph, weights):
        """The features dict of the whole graph with the given per-node weight vectors."""
        features = self._features(params, graph)
        element = {"labels": np.maximum(graph.labels, 0)}
        if sp.issparse(features):
            element["features"] = _sparse_value(features)
        else:
            element["features"] = features
        operator = self._graph_operator(params, graph)
        if operator is not None:
            element["adjacency"] = _sparse_value(operator)
        element.update(weights)
        return element

    def _full_graph_signature(self, params, graph, weight_names):
        features = self._features(params, graph)
        signature = {"labels": tf.TensorSpec([None], tf.int64)}
        if sp.issparse(features):
            signature["features"] = _sparse_spec(features.shape[1])
        else:
            dtype = tf.int64 if features.dtype == np.int64 else tf.float32
            signature["features"] = tf.TensorSpec([None, features.shape[1]], dtype)
        if self._graph_operator(params, graph) is not None:
            signature["adjacency"] = _sparse_spec()
        for name in weight_names:
            signature[name] = tf.TensorSpec([None], tf.float32)
        return signature

    def _full_graph_training_element(self, params, graph, mask):
        """The whole graph, with labels and weights of the split's target nodes only.

        The loss reads the logits of the targets alone, so the model computes only those
        rows of its last layer: "targets" are their ids and, for the GCN models,
        "target_adjacency" the rows A_hat[targets] [T, N] its last propagation uses.
        """
        targets = np.flatnonzero(mask)
        element = self._full_graph_element(params, graph, {})
        element["labels"] = element["labels"][targets]
        element["weights"] = np.ones(targets.size, np.float32)
        element["targets"] = targets.astype(np.int64)
        signature = self._full_graph_signature(params, graph, ["weights"])
        signature["targets"] = tf.TensorSpec([None], tf.int64)
        if self.model_entry(params).graph_input == "adjacency":
            operator = self._graph_operator(params, graph)
            element["target_adjacency"] = _sparse_value(operator[targets])
            signature["target_adjacency"] = _sparse_spec(graph.num_nodes)
        return element, signature

    def _one_element_dataset(self, element, signature):
        # One element through a generator (not tf.constant): the graph stays out of the
        # GraphDef (its 2 GB limit, the size of graph.pbtxt), and cache() keeps the one
        # copy so repeat() hands out the same tensors without copying.
        return tf.data.Dataset.from_generator(lambda: iter([element]), output_signature=signature)

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        graph = self.graph(params)
        if is_training:
            mask = self._split_mask(graph, split or "train")
            if self.batching(params) == "full":
                element, signature = self._full_graph_training_element(params, graph, mask)
                dataset = self._one_element_dataset(element, signature).cache().repeat()
                return task_lib.InputData(
                    dataset,
                    int(mask.sum()),
                    f"{graph.name}: the whole graph ({graph.num_nodes} nodes, "
                    f"{graph.num_edges} edges, {int(mask.sum())} {split or 'train'} targets) "
                    f"every step on each of {size} rank(s){describe_cleaning(graph)}",
                    batches_per_epoch=1,
                )
            return self._sampled_inputs(
                params, graph, mask, rank, size, batch_size, seed, start_step
            )
        return self._eval_inputs(params, graph, split, rank, size)

    def _eval_inputs(self, params, graph, split, rank, size):
        # The held-out split: val, or test for a graph without one (the karate club).
        split = split or ("val" if graph.val_mask.any() else "test")
        chosen = self._split_mask(graph, split)
        # Horovod: every rank runs the whole graph but scores only the nodes with
        # id % size == rank, so each node counts once in the sums over ranks.
        share = (np.arange(graph.num_nodes) % size) == rank
        weights = {
            f"{name}_mask": (getattr(graph, SPLIT_MASKS[name]) & share) for name in EVAL_MASKS
        }
        weights["eval_mask"] = chosen & share
        weights = {k: v.astype(np.float32) for k, v in weights.items()}
        element = self._full_graph_element(params, graph, weights)
        signature = self._full_graph_signature(params, graph, list(weights))
        return task_lib.InputData(
            self._one_element_dataset(element, signature),
            int(chosen.sum()),
            f"{graph.name}: the whole graph, rank {rank} scores nodes with id % {size} == "
            f"{rank} of the {split} split ({int(weights['eval_mask'].sum())} of "
            f"{int(chosen.sum())})",
            batches_per_epoch=1,
        )

    def _sampled_inputs(self, params, graph, mask, rank, size, batch_size, seed, start_step):
        fanouts = parse_fanouts(params.graph_fanouts)
        adjacency = self._cached("adjacency", lambda: graphs.adjacency(graph))
        features = self._features(params, graph)
        labels = np.maximum(graph.labels, 0)
        num_targets = int(mask.sum())
        batches = graphs.num_target_batches(num_targets, batch_size, size)
        global_batch = batch_size * size

        epoch_batches = {}

        def batches_of_epoch(epoch):
            # This rank's batches of one epoch; the map's parallel calls share them.
            if epoch not in epoch_batches:
                epoch_batches.clear()
                epoch_batches[epoch] = list(
                    graphs.target_batches(mask, batch_size, seed, epoch, rank, size)
                )
            return epoch_batches[epoch]

        def sample(step):
            epoch, i = divmod(int(step), batches)
            batch = batches_of_epoch(epoch)[i]
            # Seeded by (seed, epoch, i) on every rank: rank r samples for its targets what
            # one process samples for them.
            blocks = graphs.sample_neighbors(adjacency, batch.nodes, fanouts, rng=(seed, epoch, i))
            real = min(global_batch, num_targets - i * global_batch)
            element = {
                "nodes": batch.nodes,
                "labels": labels[batch.nodes],
                "weights": batch.weights,
                # Horovod: averaged over ranks, sum(w * loss) / (real / size) is the
                # global batch's mean loss on any number of ranks.
                "loss_denominator": np.float32(real / size),
            }
            rows = features[blocks[0].src_nodes]
            element["features"] = _sparse_value(rows) if sp.issparse(rows) else rows
            for k, block in enumerate(blocks):
                element[f"block_{k}"] = _sparse_value(block.mean_matrix())
                element[f"block_{k}_num_dst"] = np.int64(block.num_dst)
            return _flatten(element, signature)

        signature = {
            "nodes": tf.TensorSpec([None], tf.int64),
            "labels": tf.TensorSpec([None], tf.int64),
            "weights": tf.TensorSpec([None], tf.float32),
            "loss_denominator": tf.TensorSpec([], tf.float32),
        }
        if sp.issparse(features):
            signature["features"] = _sparse_spec(features.shape[1])
        else:
            signature["features"] = tf.TensorSpec([None, features.shape[1]], tf.float32)
        for k in range(len(fanouts)):
            signature[f"block_{k}"] = _sparse_spec()
            signature[f"block_{k}_num_dst"] = tf.TensorSpec([], tf.int64)
        flat_dtypes = [spec.dtype for spec in _flat_specs(signature)]

        def sample_in_graph(step):
            flat = tf.numpy_function(sample, [step], flat_dtypes, stateful=False)
            return _unflatten(flat, signature)

        # Steps are sampled on the host, two at a time (numpy's sorts release the GIL),
        # in order, so the stream is the same as one at a time.
        dataset = tf.data.Dataset.range(int(start_step), np.iinfo(np.int64).max).map(
            sample_in_graph, num_parallel_calls=2, deterministic=True
        )
        return task_lib.InputData(
            dataset.prefetch(2),
            num_targets,
            f"{graph.name}: {batches} batches per epoch of {batch_size} target nodes on each "
            f"of {size} rank(s) (disjoint, padded), fanouts {','.join(map(str, fanouts))}"
            f"{describe_cleaning(graph)}",
            batches_per_epoch=batches,
        )

    # -- model and losses -------------------------------------------------------------------

    def hyperparameters(self, params, graph):
        """The keyword arguments of the model function from the flags."""
        entry = self.model_entry(params)
        keep = getattr(params, "dropout_keep_prob", None)
        kwargs = {
            "hidden_units": getattr(params, "graph_hidden_units", None) or entry.hidden_units,
            "weight_decay": params.weight_decay,
        }
        if keep is not None:
            kwargs["dropout_rate"] = 1.0 - keep
        if entry.feature_kind == "ids":
            kwargs["num_ids"] = self._num_ids(params, graph)
        return kwargs

    def model_inputs(self, features, params):
        """The model's `inputs` dict from a features dict (training, eval or export)."""
        entry = self.model_entry(params)
        inputs = {"features": features["features"]}
        if entry.graph_input == "adjacency":
            inputs["adjacency"] = features["adjacency"]
            if "target_adjacency" in features:
                inputs["output_adjacency"] = features["target_adjacency"]
        elif entry.graph_input == "blocks":
            if "adjacency" in features:  # the whole graph: D^-1 A for every layer
                nodes = tf.cast(features["adjacency"].dense_shape[0], tf.int32)
                inputs["blocks"] = [(features["adjacency"], nodes)] * self.num_layers(params)
            else:
                inputs["blocks"] = [
                    (features[f"block_{k}"], tf.cast(features[f"block_{k}_num_dst"], tf.int32))
                    for k in range(self.num_layers(params))
                ]
        return inputs

    def build_model(self, features, params, is_training, compute_dtype):
        graph = self.graph(params)
        entry = self.model_entry(params)
        inputs = self.model_inputs(features, params)
        logits, end_points = entry.fn(
            inputs,
            graph.num_classes,
            is_training=is_training,
            compute_dtype=compute_dtype,
            **self.hyperparameters(params, graph),
        )
        if "targets" in features and "output_adjacency" not in inputs:
            # A model without output rows computed every node: keep the targets' logits.
            logits = tf.gather(logits, features["targets"])
        return {
            "logits": logits,
            "regularization_loss": end_points["regularization_loss"],
            "predictions": tf.argmax(logits, axis=1),
        }

    def _cross_entropy(self, features, outputs, smoothing=0.0):
        num_classes = int(outputs["logits"].shape[-1])
        onehot = tf.one_hot(features["labels"], num_classes)
        if smoothing:
            onehot = onehot * (1.0 - smoothing) + smoothing / num_classes
        return tf.nn.softmax_cross_entropy_with_logits_v2(
            labels=tf.stop_gradient(onehot), logits=outputs["logits"]
        )

    def build_losses(self, features, outputs, params):
        weights = features["weights"]
        losses = self._cross_entropy(
            features, outputs, getattr(params, "label_smoothing", 0.0) or 0.0
        )
        if "loss_denominator" in features:
            denominator = features["loss_denominator"]
        else:
            denominator = tf.reduce_sum(weights)
        cross_entropy = tf.reduce_sum(weights * losses) / tf.maximum(denominator, 1e-12)
        regularization = tf.cast(outputs["regularization_loss"], tf.float32)
        return task_lib.Losses(
            cross_entropy + regularization,
            {"cross_entropy": cross_entropy, "regularization": regularization},
        )

    def _correct(self, features, outputs):
        return tf.cast(tf.equal(outputs["predictions"], features["labels"]), tf.float32)

    def train_metrics(self, features, outputs):
        weights = features["weights"]
        correct = tf.reduce_sum(weights * self._correct(features, outputs))
        return {"accuracy": correct / tf.maximum(tf.reduce_sum(weights), 1.0)}

    def eval_statistics(self, features, outputs):
        correct = self._correct(features, outputs)
        losses = self._cross_entropy(features, outputs)
        stats = {
            "count": tf.reduce_sum(features["eval_mask"]),
            "correct": tf.reduce_sum(features["eval_mask"] * correct),
            "loss_sum": tf.reduce_sum(features["eval_mask"] * losses),
        }
        for name in EVAL_MASKS:
            mask = features[f"{name}_mask"]
            stats[f"{name}_count"] = tf.reduce_sum(mask)
            stats[f"{name}_correct"] = tf.reduce_sum(mask * correct)
        return stats

    def metrics_from_sums(self, sums):
        count = float(sums["count"])
        if count <= 0:
            raise ValueError("the evaluated split has no nodes: accuracy is undefined")
        metrics = {
            "accuracy": float(sums["correct"]) / count,
            "loss": float(sums["loss_sum"]) / count,
        }
        for name in EVAL_MASKS:
            n = float(sums[f"{name}_count"])
            if n > 0:
                metrics[f"{name}_accuracy"] = float(sums[f"{name}_correct"]) / n
        metrics["count"] = int(round(count))
        return metrics

    def batch_counts(self, features):
        return {"examples": tf.reduce_sum(tf.cast(features["weights"] > 0, tf.int64))}

    # -- export -----------------------------------------------------------------------------

    def export_signature(self, params):
        graph = self.graph(params)
        entry = self.model_entry(params)
        features = self._features(params, graph)
        if entry.feature_kind == "ids":
            x = tf.placeholder(tf.int64, [None, features.shape[1]], name="features")
        else:
            x = tf.placeholder(tf.float32, [None, graph.num_features], name="features")
        inputs = {"features": x}
        model_features = {"features": x}
        if entry.graph_input is not None:
            inputs["adjacency_indices"] = tf.placeholder(tf.int64, [None, 2], "adjacency_indices")
            inputs["adjacency_values"] = tf.placeholder(tf.float32, [None], "adjacency_values")
            inputs["adjacency_shape"] = tf.placeholder(tf.int64, [2], "adjacency_shape")
            model_features["adjacency"] = tf.SparseTensor(
                inputs["adjacency_indices"], inputs["adjacency_values"], inputs["adjacency_shape"]
            )
        outputs = self.build_model(model_features, params, False, tf.float32)
        self._export_graph_input = entry.graph_input
        logits = outputs["logits"]
        return task_lib.ExportSignature(
            inputs,
            {
                "logits": logits,
                "probabilities": tf.nn.softmax(logits),
                "predictions": outputs["predictions"],
            },
        )

    def export_example(self, signature, batch_size, seed):
        """A random graph of batch_size nodes with the model's normalised adjacency."""
        rng = np.random.default_rng(seed)
        n = max(int(batch_size), 2)
        example = {}
        x = signature.inputs["features"]
        width = int(x.shape[1])
        if x.dtype.is_integer:
            example["features"] = np.zeros((n, width), np.int64)
        else:
            example["features"] = rng.standard_normal((n, width)).astype(np.float32)
        if "adjacency_indices" in signature.inputs:
            edges = rng.integers(0, n, size=(3 * n, 2))
            small = graphs.Graph.from_edges(edges, num_nodes=n)
            if self._export_graph_input == "blocks":
                matrix = mean_adjacency(small)
            else:
                matrix = graphs.normalized_adjacency(small)
            indices, values, shape = graphs.sparse_tensor_parts(matrix)
            example.update(
                adjacency_indices=indices, adjacency_values=values, adjacency_shape=shape
            )
        return example


task_lib.register_task(NodeClassificationTask.name, NodeClassificationTask)
