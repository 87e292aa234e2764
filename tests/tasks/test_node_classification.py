"""tasks/node_classification.py: graph inputs (full-batch, sampled and sharded), losses,
exact evaluation over ranks, export, flags and the errors on bad input."""

import os
import pickle
import re
import types

import numpy as np
import pytest
import scipy.sparse as sp
from absl import flags as absl_flags

from datasets import graph_formats
from slim_compat import tf
from tasks import node_classification as nc
from training import task as task_lib

PLANTED = "nodes=300,classes=3,p_in=0.05,p_out=0.005,features=6,val=50,test=100"


def make_params(**overrides):
    values = dict(
        dataset_name="planted_partition",
        dataset_dir=None,
        dataset_split_name="train",
        graph_files=None,
        graph_planted_partition=PLANTED,
        graph_directed=False,
        model_name="gcn",
        graph_batching=None,
        graph_fanouts="5,3",
        graph_hidden_units=None,
        graph_int_features="auto",
        dropout_keep_prob=None,
        weight_decay=5e-4,
        label_smoothing=0.0,
    )
    values.update(overrides)
    return types.SimpleNamespace(**values)


def elements(task, params, *args, count=1, **kwargs):
    """(InputData, its first `count` elements as numpy) of task.build_inputs(params, ...)."""
    with tf.Graph().as_default():
        data = task.build_inputs(params, *args, **kwargs)
        next_element = tf.data.make_one_shot_iterator(data.dataset).get_next()
        with tf.Session() as session:
            return data, [session.run(next_element) for _ in range(count)]


def test_registered_and_flags_defined_once():
    assert task_lib.get_task("node_classification").name == "node_classification"
    values = absl_flags.FlagValues()
    holder = types.SimpleNamespace(FLAGS=values)
    nc.NodeClassificationTask.define_flags(holder)
    nc.NodeClassificationTask.define_flags(holder)  # a second task sharing them: no error
    values(["prog", "--graph_fanouts=10,5", "--graph_batching=sampled"])
    assert values.graph_fanouts == "10,5" and values.graph_batching == "sampled"
    assert values.graph_hidden_units is None and values.graph_int_features == "auto"


def test_every_task_flag_is_in_readme_with_its_default():
    values = absl_flags.FlagValues()
    nc.NodeClassificationTask.define_flags(types.SimpleNamespace(FLAGS=values))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "README.md")) as f:
        text = f.read()
    names = [name for name in values if name.startswith("graph_")]
    assert len(names) == 8
    for name in names:
        row = re.search(rf"^\| `--{name}` \| ([^|]*) \|", text, re.M)
        assert row, f"--{name} is missing from README's flag tables"
        default = values[name].default
        assert row.group(1).strip() == ("" if default is None else f"`{default}`"), name


# -- full batch --------------------------------------------------------------------------


def test_full_batch_is_one_element_of_the_whole_graph_per_step():
    task = nc.NodeClassificationTask()
    params = make_params()
    graph = task.graph(params)
    data, (first, second) = elements(task, params, "train", True, 1, 2, 32, seed=0, count=2)
    assert data.batches_per_epoch == 1 and data.num_examples == graph.train_mask.sum()
    assert f"{graph.num_nodes} nodes" in data.description and "2 rank(s)" in data.description
    # Labels and weights of the train targets only; the graph whole.
    np.testing.assert_array_equal(first["targets"], np.flatnonzero(graph.train_mask))
    np.testing.assert_array_equal(first["labels"], graph.labels[graph.train_mask])
    assert first["weights"].tolist() == [1.0] * int(graph.train_mask.sum())
    assert first["target_adjacency"].dense_shape.tolist() == [60, graph.num_nodes]
    # Every rank gets the whole graph: nothing sharded.
    assert first["features"].shape == (graph.num_nodes, 6)
    assert first["adjacency"].dense_shape.tolist() == [graph.num_nodes] * 2
    np.testing.assert_array_equal(first["adjacency"].values, second["adjacency"].values)


def _eval_sums(task, params, size, weights_seed=0):
    """Per-rank eval statistics summed over `size` ranks, plus the logits and labels."""
    with tf.Graph().as_default():
        tf.set_random_seed(weights_seed)
        totals, logits = None, None
        for rank in range(size):
            data = task.build_inputs(params, None, False, rank, size, 100, seed=0)
            features = tf.data.make_one_shot_iterator(data.dataset).get_next()
            with tf.variable_scope("model", reuse=tf.AUTO_REUSE):
                outputs = task.build_model(features, params, False, tf.float32)
            stats = task.eval_statistics(features, outputs)
            totals = stats if totals is None else {k: totals[k] + stats[k] for k in stats}
            logits = outputs["logits"]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return session.run([totals, logits])


@pytest.mark.parametrize("model_name", ["gcn", "graphsage_mean"])
def test_full_graph_evaluation_is_exact_on_any_number_of_ranks(model_name):
    task = nc.NodeClassificationTask()
    params = make_params(model_name=model_name)
    graph = task.graph(params)
    one, logits = _eval_sums(task, params, 1)
    two, _ = _eval_sums(task, params, 2)
    three, _ = _eval_sums(task, params, 3)
    for key in one:
        assert one[key] == pytest.approx(two[key]) == pytest.approx(three[key]), key
    correct = logits.argmax(axis=1) == graph.labels
    metrics = task.metrics_from_sums(two)
    assert metrics["count"] == graph.val_mask.sum() == 50
    assert metrics["accuracy"] == pytest.approx(correct[graph.val_mask].mean())
    assert metrics["val_accuracy"] == metrics["accuracy"]
    assert metrics["test_accuracy"] == pytest.approx(correct[graph.test_mask].mean())
    assert metrics["train_accuracy"] == pytest.approx(correct[graph.train_mask].mean())


def test_eval_split_test_and_a_graph_without_val():
    task = nc.NodeClassificationTask()
    data = task.build_inputs(make_params(), "test", False, 0, 1, 100, seed=0)
    assert data.num_examples == 100
    karate = make_params(dataset_name="karate_club")
    data = task.build_inputs(karate, None, False, 0, 1, 100, seed=0)
    assert data.num_examples == 32  # no val mask: the held-out split is test


# -- sampled ----------------------------------------------------------------------------


def _sampled(task, params, rank, size, batch, steps, start_step=0):
    return elements(
        task, params, "train", True, rank, size, batch, seed=7, start_step=start_step, count=steps
    )


def test_sampled_batches_shard_targets_over_ranks_with_equal_steps():
    task = nc.NodeClassificationTask()
    params = make_params(model_name="graphsage_mean")
    graph = task.graph(params)
    targets = np.flatnonzero(graph.train_mask)  # 60: 2 global batches of 2 x 16, padded
    data_one, one = _sampled(task, params, 0, 1, 32, 4)
    data_r0, r0 = _sampled(task, params, 0, 2, 16, 4)
    data_r1, r1 = _sampled(task, params, 1, 2, 16, 4)
    assert data_one.batches_per_epoch == data_r0.batches_per_epoch == data_r1.batches_per_epoch == 2
    epoch_nodes = []
    for step in range(2):
        a, b = r0[step], r1[step]
        nodes_a = a["nodes"]
        nodes_b = b["nodes"]
        assert not set(nodes_a[a["weights"] > 0]) & set(nodes_b[b["weights"] > 0])
        np.testing.assert_array_equal(np.concatenate([nodes_a, nodes_b]), one[step]["nodes"])
        np.testing.assert_array_equal(a["labels"], graph.labels[nodes_a])
        assert a["block_1_num_dst"] == 16 and a["block_1"].dense_shape[0] == 16
        epoch_nodes += list(nodes_a[a["weights"] > 0]) + list(nodes_b[b["weights"] > 0])
        # Averaged over the 2 ranks, the loss is the global batch's mean.
        real = one[step]["weights"].sum()
        assert a["loss_denominator"] == b["loss_denominator"] == pytest.approx(real / 2)
        assert one[step]["loss_denominator"] == pytest.approx(real)
    assert sorted(epoch_nodes) == sorted(targets)  # every target once per epoch


def test_sampled_loss_and_gradients_on_two_ranks_equal_one_process():
    """Same weights, same samples (seeded by (seed, epoch, step)), no dropout: the mean of
    the 2 ranks' gradients is the 1-process gradient, the padded last batch included."""
    task = nc.NodeClassificationTask()
    params = make_params(model_name="graphsage_mean", dropout_keep_prob=1.0)
    for step in range(2):  # step 1 is the padded one
        with tf.Graph().as_default():
            grads = {}
            for name, rank, size, batch in (("one", 0, 1, 32), ("r0", 0, 2, 16), ("r1", 1, 2, 16)):
                data = task.build_inputs(params, "train", True, rank, size, batch, 7, step)
                features = tf.data.make_one_shot_iterator(data.dataset).get_next()
                with tf.variable_scope("model", reuse=tf.AUTO_REUSE):
                    outputs = task.build_model(features, params, True, tf.float32)
                losses = task.build_losses(features, outputs, params)
                grads[name] = tf.gradients(losses.total, tf.trainable_variables())
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                values = session.run(grads)
        for one, r0, r1 in zip(values["one"], values["r0"], values["r1"]):
            np.testing.assert_allclose((r0 + r1) / 2, one, rtol=1e-4, atol=1e-6)


def test_sampled_resume_continues_the_stream():
    task = nc.NodeClassificationTask()
    params = make_params(model_name="graphsage_mean")
    _, stream = _sampled(task, params, 1, 2, 16, 5)
    _, resumed = _sampled(task, params, 1, 2, 16, 2, start_step=3)
    for a, b in zip(stream[3:], resumed):
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["block_1"].values, b["block_1"].values)


# -- losses and metrics ------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["gcn", "mlp", "graphsage_mean", "gcn_embedding"])
def test_training_logits_are_the_whole_graph_logits_of_the_targets(model_name):
    """The last layer computes the train targets' rows only: the same values as the
    whole-graph model at those rows."""
    task = nc.NodeClassificationTask()
    params = make_params(model_name=model_name, graph_batching="full")
    graph = task.graph(params)
    with tf.Graph().as_default():
        train = task.build_inputs(params, "train", True, 0, 1, 32, seed=0)
        held_out = task.build_inputs(params, None, False, 0, 1, 32, seed=0)
        train_features = tf.data.make_one_shot_iterator(train.dataset).get_next()
        eval_features = tf.data.make_one_shot_iterator(held_out.dataset).get_next()
        with tf.variable_scope("m"):
            rows = task.build_model(train_features, params, False, tf.float32)["logits"]
        with tf.variable_scope("m", reuse=True):
            every = task.build_model(eval_features, params, False, tf.float32)["logits"]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            a, b = session.run([rows, every])
    np.testing.assert_allclose(a, b[graph.train_mask], rtol=1e-4, atol=1e-6)


def test_full_batch_loss_is_the_train_mask_mean_plus_first_layer_decay():
    task = nc.NodeClassificationTask()
    params = make_params()
    graph = task.graph(params)
    with tf.Graph().as_default():
        data = task.build_inputs(params, "train", True, 0, 1, 32, seed=0)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        outputs = task.build_model(features, params, False, tf.float32)
        losses = task.build_losses(features, outputs, params)
        smoothed = task.build_losses(features, outputs, make_params(label_smoothing=0.1))
        kernel = [v for v in tf.trainable_variables() if "layer_1" in v.name][0]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            logits, total, parts, w0, smooth = session.run(
                [outputs["logits"], losses.total, losses.parts, kernel, smoothed.parts]
            )
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert logits.shape == (graph.train_mask.sum(), 3)  # the targets' rows only
    expected = -log_probs[np.arange(len(logits)), graph.labels[graph.train_mask]].mean()
    assert parts["cross_entropy"] == pytest.approx(expected, rel=1e-5)
    assert parts["regularization"] == pytest.approx(5e-4 * (w0**2).sum() / 2, rel=1e-5)
    assert total == pytest.approx(expected + parts["regularization"], rel=1e-5)
    # Label smoothing 0.1 over 3 classes: targets 0.1/3 everywhere plus 0.9 on the label.
    target = np.full(log_probs.shape, 0.1 / 3)
    target[np.arange(len(logits)), graph.labels[graph.train_mask]] += 0.9
    expected_smooth = -(target * log_probs).sum(axis=1).mean()
    assert smooth["cross_entropy"] == pytest.approx(expected_smooth, rel=1e-5)


def test_metrics_of_an_empty_split_are_an_error():
    task = nc.NodeClassificationTask()
    sums = {"count": 0.0, "correct": 0.0, "loss_sum": 0.0}
    sums.update({f"{n}_{k}": 0.0 for n in nc.EVAL_MASKS for k in ("count", "correct")})
    with pytest.raises(ValueError, match="no nodes"):
        task.metrics_from_sums(sums)


# -- data sources ------------------------------------------------------------------------


def _write_planetoid(directory, name="tiny"):
    """Eight ind.<name>.* files in the real layout (Python-2-style pickles, one-hot labels)."""
    rng = np.random.default_rng(0)
    classes, width, num_allx, num_train = 3, 8, 520, 6
    test_index = np.arange(num_allx, num_allx + 20)[::-1]
    objects = {
        "x": sp.csr_matrix(rng.integers(0, 2, (num_train, width)).astype(np.float32)),
        "allx": sp.csr_matrix(rng.integers(0, 2, (num_allx, width)).astype(np.float32)),
        "tx": sp.csr_matrix(rng.integers(0, 2, (20, width)).astype(np.float32)),
    }
    ally = np.eye(classes)[np.arange(num_allx) % classes]
    objects.update(y=ally[:num_train], ally=ally, ty=np.eye(classes)[np.arange(20) % classes])
    n = num_allx + 20
    objects["graph"] = {i: [(i + 1) % n, (i + 7) % n] for i in range(n)}
    for part, value in objects.items():
        with open(os.path.join(directory, f"ind.{name}.{part}"), "wb") as f:
            pickle.dump(value, f, protocol=2)
    with open(os.path.join(directory, f"ind.{name}.test.index"), "w") as f:
        f.write("\n".join(map(str, test_index)) + "\n")
    return n


def test_planetoid_files_through_the_task(tmp_path):
    n = _write_planetoid(str(tmp_path), "cora")
    task = nc.NodeClassificationTask()
    params = make_params(dataset_name="cora", dataset_dir=str(tmp_path))
    graph = task.graph(params)
    assert graph.num_nodes == n and sp.issparse(graph.features)
    assert graph.train_mask.sum() == 6 and graph.test_mask.sum() == 20
    # Kipf's preprocess_features: every row sums to 1 (or stays 0), unless switched off.
    sums = np.asarray(graph.features.sum(axis=1)).ravel()
    assert np.all(np.isclose(sums, 1) | (sums == 0)) and (sums == 1).sum() > n / 2
    raw = nc.NodeClassificationTask().graph(
        make_params(dataset_name="cora", dataset_dir=str(tmp_path), graph_normalize_features=False)
    )
    assert raw.features.max() == 1 and np.asarray(raw.features.sum(axis=1)).max() > 1
    _, (element,) = elements(task, params, "train", True, 0, 1, 32, 0)
    assert isinstance(element["features"], tf.compat.v1.SparseTensorValue)
    totals, _ = _eval_sums(task, params, 2)
    assert totals["count"] == graph.val_mask.sum() and totals["test_count"] == 20
    # Sampled batches of bag-of-words rows stay sparse too.
    sage = make_params(dataset_name="cora", dataset_dir=str(tmp_path), model_name="graphsage_mean")
    _, (element,) = elements(nc.NodeClassificationTask(), sage, "train", True, 0, 1, 4, 0)
    features = element["features"]
    assert isinstance(features, tf.compat.v1.SparseTensorValue)
    assert features.dense_shape[0] == element["block_0"].dense_shape[1]


def test_planetoid_errors_name_the_directory_or_file(tmp_path):
    task = nc.NodeClassificationTask()
    with pytest.raises(ValueError, match="needs --dataset_dir"):
        task.graph(make_params(dataset_name="pubmed"))
    with pytest.raises(FileNotFoundError, match="ind.citeseer.x"):
        task.graph(make_params(dataset_name="citeseer", dataset_dir=str(tmp_path)))


def test_csv_and_npz_graphs(tmp_path):
    graph = graph_formats.planted_partition(
        40,
        2,
        p_in=0.3,
        p_out=0.02,
        feature_noise=1.0,
        seed=0,
        num_features=3,
        train_per_class=3,
        num_val=8,
        num_test=10,
    )
    np.savetxt(tmp_path / "edges.csv", graph.edges, fmt="%d", delimiter=",", header="src,dst")
    np.savetxt(tmp_path / "features.csv", graph.features, delimiter=",")
    np.savetxt(tmp_path / "labels.csv", graph.labels, fmt="%d")
    masks = np.stack([graph.train_mask, graph.val_mask, graph.test_mask], axis=1).astype(int)
    np.savetxt(
        tmp_path / "masks.csv",
        masks,
        fmt="%d",
        delimiter=",",
        header="train_mask,val_mask,test_mask",
        comments="",
    )
    task = nc.NodeClassificationTask()
    from_csv = task.graph(make_params(dataset_name="csv", dataset_dir=str(tmp_path)))
    np.testing.assert_array_equal(from_csv.edges, graph.edges)
    np.testing.assert_array_equal(from_csv.val_mask, graph.val_mask)
    # Self loops and repeated rows are cleaned and said so in the input's description.
    with open(tmp_path / "edges.csv", "a") as f:
        f.write("3,3\n0,1\n0,1\n")
    data, _ = elements(
        nc.NodeClassificationTask(),
        make_params(dataset_name="csv", dataset_dir=str(tmp_path)),
        "train",
        True,
        0,
        1,
        8,
        0,
    )
    assert "1 self loops removed" in data.description
    assert "duplicate edges merged" in data.description
    graph_formats.save_graph_npz(graph, str(tmp_path / "other.npz"))
    from_npz = nc.NodeClassificationTask().graph(
        make_params(dataset_name="npz", dataset_dir=str(tmp_path), graph_files="edges=other.npz")
    )
    np.testing.assert_array_equal(from_npz.labels, graph.labels)
    # Out-of-range ids and missing labels are refused, naming the problem.
    with open(tmp_path / "bad.csv", "w") as f:
        f.write("0,1\n1,99\n")
    with pytest.raises(ValueError, match=r"edge 1 \(1, 99\).*num_nodes=40"):
        nc.NodeClassificationTask().graph(
            make_params(dataset_name="csv", dataset_dir=str(tmp_path), graph_files="edges=bad.csv")
        )
    os.remove(tmp_path / "labels.csv")
    os.remove(tmp_path / "masks.csv")
    with pytest.raises(ValueError, match="0 class"):
        nc.NodeClassificationTask().graph(
            make_params(dataset_name="csv", dataset_dir=str(tmp_path))
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(dataset_name="reddit"), "Unknown graph dataset.*cora, citeseer, pubmed"),
        (dict(model_name="gat"), "Unknown graph model 'gat'"),
        (dict(graph_batching="sampled"), "gcn trains with --graph_batching in"),
        (dict(model_name="graphsage_mean", graph_fanouts="25,x"), "--graph_fanouts"),
        (dict(model_name="graphsage_mean", graph_fanouts="25,0"), "--graph_fanouts"),
        (dict(graph_planted_partition="nodes=10,colour=3"), "bad item 'colour=3'"),
        (dict(graph_planted_partition="nodes=ten"), "nodes='ten' is not a int"),
        (dict(dataset_name="csv"), "needs --dataset_dir"),
        (
            dict(model_name="gcn_embedding", graph_int_features="columns"),
            "columns needs dense integer features",
        ),
    ],
)
def test_bad_input_is_a_clear_error(overrides, message):
    task = nc.NodeClassificationTask()
    with pytest.raises(ValueError, match=message):
        elements(task, make_params(**overrides), "train", True, 0, 1, 16, 0)


def test_bad_split_names():
    task = nc.NodeClassificationTask()
    with pytest.raises(ValueError, match="Unknown split 'dev'.*train, val"):
        task.build_inputs(make_params(), "dev", False, 0, 1, 16, 0)
    with pytest.raises(ValueError, match="split 'val' .* has no nodes"):
        task.build_inputs(make_params(dataset_name="karate_club"), "val", False, 0, 1, 16, 0)


def test_integer_features_for_the_embedding_model():
    graph = graph_formats.karate_club()  # sparse identity features: node ids
    ids, num_ids = nc.integer_features(graph, "auto")
    assert ids.shape == (34, 1) and num_ids == 34
    columns = types.SimpleNamespace(
        features=np.array([[0, 2], [1, 0], [3, 1]], np.float32), num_nodes=3, name="g"
    )
    ids, num_ids = nc.integer_features(columns, "columns")
    # Column 1 is offset past column 0's 4 ids into one shared table.
    np.testing.assert_array_equal(ids, [[0, 6], [1, 4], [3, 5]])
    assert num_ids == 7


# -- export ------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["gcn", "graphsage_mean", "gcn_embedding"])
def test_export_signature_runs_on_its_example(model_name):
    task = nc.NodeClassificationTask()
    params = make_params(model_name=model_name, dataset_name="karate_club")
    with tf.Graph().as_default():
        signature = task.export_signature(params)
        example = task.export_example(signature, 9, seed=0)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            out = session.run(
                signature.outputs, {signature.inputs[k]: v for k, v in example.items()}
            )
    assert out["logits"].shape == (9, 2)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["predictions"], out["logits"].argmax(axis=1))
    if model_name == "graphsage_mean":  # D^-1 A: rows average (sum to 1 or 0)
        rows = np.bincount(example["adjacency_indices"][:, 0], example["adjacency_values"], 9)
        assert np.all(np.isclose(rows, 1) | np.isclose(rows, 0))


@pytest.mark.parametrize("model_name", ["gcn", "graphsage_mean", "gcn_embedding"])
def test_bf16_under_the_master_weight_getter(model_name):
    """Weights stored fp32, computed in bf16, fp32 logits close to the fp32 model's."""
    from training import precision

    task = nc.NodeClassificationTask()
    params = make_params(model_name=model_name)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        data = task.build_inputs(params, None, False, 0, 1, 100, seed=0)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        getter = precision.master_weights_getter(tf.bfloat16)
        with tf.variable_scope("model", custom_getter=getter):
            low = task.build_model(features, params, False, tf.bfloat16)["logits"]
        with tf.variable_scope("model", reuse=True):
            full = task.build_model(features, params, False, tf.float32)["logits"]
        assert all(v.dtype.base_dtype == tf.float32 for v in tf.global_variables())
        assert low.dtype == tf.float32
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            a, b = session.run([low, full])
    np.testing.assert_allclose(a, b, atol=0.1 * np.abs(b).max())
