"""Graphs for the graph family (GCN, GraphSAGE): the `Graph` data class, checks, adjacency, sampling.

Everything here is numpy / scipy.sparse; a task turns it into tensors.

    graph = graphs.Graph.from_edges(edges, num_nodes=n, features=x, labels=y, train_mask=m, ...)
    adj = graphs.normalized_adjacency(graph)            # CSR, D^-1/2 (A + I) D^-1/2
    indices, values, dense_shape = graphs.sparse_tensor_parts(adj)   # for a tf.SparseTensor

Edge input is cleaned once, in `Graph.from_edges`, and what was done is counted in
`graph.stats`:

* a node id outside [0, num_nodes) is an error naming the edge (its row) and num_nodes;
* self loops are removed (and counted) before anything adds the identity, so a node never
  gets weight 2 on its own feature;
* input rows that repeat an earlier (src, dst) are merged (counted);
* undirected input (the default) is symmetrised: every (u, v) also gets (v, u); with
  `directed=True` the rows are read as arcs and an arc without its reverse is an error
  (GCN's normalisation and GraphSAGE's aggregation here assume a symmetric adjacency);
* isolated nodes are allowed and counted: with the self loop of normalized_adjacency
  their degree is 1 and their row is their own features.

`graph.edges` then holds each undirected edge once per direction, sorted by (src, dst).

GraphSAGE-style mini-batches (Hamilton et al., 2017): `target_batches` yields the target
nodes of a mask, shuffled by (seed, epoch) and sharded by rank, and `sample_neighbors`
samples their multi-hop neighbourhoods into per-layer `Block`s; seeded with the same
(seed, epoch, step) on every rank, it gives each node the neighbours one process would.
"""

import dataclasses

import numpy as np
import scipy.sparse as sp

REMAINDER_POLICIES = ("pad", "drop")
MASK_NAMES = ("train_mask", "val_mask", "test_mask")


@dataclasses.dataclass
class Graph:
    """A node-classification graph.

    Attributes:
        num_nodes: N.
        features: [N, F] float32, dense numpy or scipy.sparse CSR.
        labels: [N] int64 class ids, -1 where unknown.
        train_mask: [N] bool.
        val_mask: [N] bool.
        test_mask: [N] bool; the three masks are disjoint and cover labelled nodes only.
        edges: [E, 2] int64, each undirected edge once per direction, no self loops, no
            duplicates, sorted by (src, dst). Build with `from_edges` to get it cleaned.
        name: what the graph is ('cora', 'karate_club', ...).
        class_names: optional names of the classes, index = class id.
        stats: what `from_edges` did to the input (see the module docstring).
    """

    num_nodes: int
    features: object
    labels: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray
    edges: np.ndarray
    name: str = "graph"
    class_names: tuple = ()
    stats: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n = int(self.num_nodes)
        if n <= 0:
            raise ValueError(f"graph {self.name!r}: num_nodes must be positive, got {n}")
        self.num_nodes = n
        self.features = _check_features(self.features, n, self.name)
        self.labels = _check_labels(self.labels, n, self.name)
        for mask_name in MASK_NAMES:
            setattr(self, mask_name, _check_mask(getattr(self, mask_name), mask_name, n, self.name))
        _check_masks_disjoint(self)
        for mask_name in MASK_NAMES:
            unlabelled = np.flatnonzero(getattr(self, mask_name) & (self.labels < 0))
            if unlabelled.size:
                raise ValueError(
                    f"graph {self.name!r}: {mask_name} holds {unlabelled.size} node(s) without "
                    f"a label (label -1), first node {unlabelled[0]}; masks must cover "
                    "labelled nodes only"
                )
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        _check_node_ids(self.edges, n, self.name)

    @classmethod
    def from_edges(
        cls,
        edges,
        num_nodes,
        features=None,
        labels=None,
        train_mask=None,
        val_mask=None,
        test_mask=None,
        directed=False,
        name="graph",
        class_names=(),
    ):
        """Builds a Graph from raw edge rows, cleaning them as the module docstring says.

        Args:
            edges: [E, 2] integer node ids (any array-like); E may be 0.
            num_nodes: N; node ids must lie in [0, N).
            features: [N, F] dense or scipy.sparse; None gives identity features (sparse
                [N, N]), the usual choice for a graph without node attributes.
            labels: [N] integer class ids, -1 unknown; None: all unknown.
            train_mask: [N] bool (or 0/1); None: all False. Same for val_mask, test_mask.
            directed: False reads each row as an undirected edge and symmetrises; True reads
                rows as arcs and raises ValueError if an arc lacks its reverse.
            name: the graph's name, used in error messages.
            class_names: optional class names.

        Returns:
            A Graph whose `stats` count self_loops_removed, duplicate_edges_merged,
            reverse_edges_added and isolated_nodes.

        Raises:
            ValueError: bad shapes, out-of-range ids, asymmetric arcs with directed=True,
                overlapping masks, wrong-length labels or masks.
        """
        n = int(num_nodes)
        raw = np.asarray(edges)
        if raw.size == 0:
            raw = np.zeros((0, 2), dtype=np.int64)
        if raw.ndim != 2 or raw.shape[1] != 2:
            raise ValueError(
                f"graph {name!r}: edges must have shape [E, 2] (src, dst), got {raw.shape}"
            )
        if not np.issubdtype(raw.dtype, np.integer):
            if not np.all(np.equal(np.mod(raw, 1), 0)):
                raise ValueError(f"graph {name!r}: edges must be integer node ids")
        raw = raw.astype(np.int64)
        _check_node_ids(raw, n, name)
        loops = raw[:, 0] == raw[:, 1]
        no_loops = raw[~loops]
        unique_rows = np.unique(no_loops, axis=0)
        stats = {
            "input_edges": int(raw.shape[0]),
            "self_loops_removed": int(loops.sum()),
            "duplicate_edges_merged": int(no_loops.shape[0] - unique_rows.shape[0]),
        }
        keys = unique_rows[:, 0] * n + unique_rows[:, 1]
        reverse_keys = unique_rows[:, 1] * n + unique_rows[:, 0]
        missing = ~np.isin(reverse_keys, keys)
        if directed and missing.any():
            row = unique_rows[np.flatnonzero(missing)[0]]
            raise ValueError(
                f"graph {name!r}: directed=True but {int(missing.sum())} arc(s) have no "
                f"reverse, e.g. {int(row[0])} -> {int(row[1])}; give both directions or use "
                "directed=False to symmetrise"
            )
        stats["reverse_edges_added"] = int(missing.sum())
        both = np.concatenate([unique_rows, unique_rows[missing][:, ::-1]], axis=0)
        order = np.lexsort((both[:, 1], both[:, 0]))
        both = both[order]
        degree = np.bincount(both[:, 0], minlength=n)
        stats["isolated_nodes"] = int((degree == 0).sum())
        if features is None:
            features = sp.identity(n, dtype=np.float32, format="csr")
        if labels is None:
            labels = np.full(n, -1, dtype=np.int64)
        return cls(
            num_nodes=n,
            features=features,
            labels=labels,
            train_mask=np.zeros(n, bool) if train_mask is None else train_mask,
            val_mask=np.zeros(n, bool) if val_mask is None else val_mask,
            test_mask=np.zeros(n, bool) if test_mask is None else test_mask,
            edges=both,
            name=name,
            class_names=tuple(class_names),
            stats=stats,
        )

    @property
    def num_edges(self):
        """Undirected edges (each stored twice in `edges`)."""
        return int(self.edges.shape[0]) // 2

    @property
    def num_features(self):
        return int(self.features.shape[1])

    @property
    def num_classes(self):
        """len(class_names) if given, else the largest label + 1."""
        if self.class_names:
            return len(self.class_names)
        return int(self.labels.max()) + 1 if self.labels.size else 0


def _check_features(features, n, name):
    if sp.issparse(features):
        features = sp.csr_matrix(features, dtype=np.float32)
    else:
        features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != n:
        raise ValueError(
            f"graph {name!r}: features must have shape [num_nodes={n}, F], got {features.shape}"
        )
    return features


def _check_labels(labels, n, name):
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(
            f"graph {name!r}: labels must have shape [num_nodes={n}], got {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"graph {name!r}: labels must be integer class ids, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < -1:
        raise ValueError(
            f"graph {name!r}: labels must be class ids >= 0 or -1 (unknown), "
            f"got {int(labels.min())}"
        )
    return labels


def _check_mask(mask, mask_name, n, name):
    mask = np.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(
            f"graph {name!r}: {mask_name} must have shape [num_nodes={n}], got {mask.shape}"
        )
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"graph {name!r}: {mask_name} must be boolean (or 0/1)")
        mask = mask.astype(bool)
    return mask


def _check_masks_disjoint(graph):
    for i, first in enumerate(MASK_NAMES):
        for second in MASK_NAMES[i + 1 :]:
            both = np.flatnonzero(getattr(graph, first) & getattr(graph, second))
            if both.size:
                raise ValueError(
                    f"graph {graph.name!r}: {first} and {second} overlap in {both.size} "
                    f"node(s), first node {both[0]}; the splits must be disjoint"
                )


def _check_node_ids(edges, n, name):
    bad = np.flatnonzero((edges < 0).any(axis=1) | (edges >= n).any(axis=1))
    if bad.size:
        src, dst = edges[bad[0]]
        raise ValueError(
            f"graph {name!r}: edge {bad[0]} ({int(src)}, {int(dst)}) has a node id outside "
            f"[0, num_nodes={n}) ({bad.size} such edge(s))"
        )


def adjacency(graph):
    """The [N, N] float32 CSR adjacency A (no self loops, symmetric, sorted indices)."""
    n = graph.num_nodes
    values = np.ones(graph.edges.shape[0], dtype=np.float32)
    matrix = sp.csr_matrix((values, (graph.edges[:, 0], graph.edges[:, 1])), shape=(n, n))
    matrix.sort_indices()
    return matrix


def normalized_adjacency(graph, self_loops=True):
    """Kipf & Welling's renormalised adjacency D^-1/2 (A + I) D^-1/2 as float32 CSR.

    Args:
        graph: a Graph.
        self_loops: add I before normalising (the GCN renormalisation trick). Without it,
            an isolated node has degree 0 and its row and column stay 0.

    Returns:
        scipy.sparse.csr_matrix [N, N], float32, sorted indices.
    """
    matrix = adjacency(graph)
    if self_loops:
        matrix = matrix + sp.identity(graph.num_nodes, dtype=np.float32, format="csr")
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0).astype(np.float32)
    scale = sp.diags(inv_sqrt)
    normalized = sp.csr_matrix(scale @ matrix @ scale, dtype=np.float32)
    normalized.sort_indices()
    return normalized


def sparse_tensor_parts(matrix):
    """(indices [nnz, 2] int64, values [nnz] float32, dense_shape [2] int64) of a sparse matrix.

    Indices are in row-major order, as tf.SparseTensor ops expect:
    `tf.SparseTensor(*sparse_tensor_parts(adj))` or a tf.compat.v1.SparseTensorValue.
    """
    coo = sp.csr_matrix(matrix)
    coo.sum_duplicates()
    coo.sort_indices()
    coo = coo.tocoo()
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    return indices, coo.data.astype(np.float32), np.asarray(coo.shape, dtype=np.int64)


def edge_homophily(graph):
    """The fraction of edges whose two ends have the same label (labelled ends only)."""
    src, dst = graph.labels[graph.edges[:, 0]], graph.labels[graph.edges[:, 1]]
    known = (src >= 0) & (dst >= 0)
    if not known.any():
        raise ValueError(f"graph {graph.name!r}: no edge joins two labelled nodes")
    return float(np.mean(src[known] == dst[known]))


# -- GraphSAGE-style sampling ---------------------------------------------------------------


@dataclasses.dataclass
class Block:
    """One layer of a sampled computation graph: messages from src nodes to dst nodes.

    Attributes:
        dst_nodes: [n_dst] int64 global ids of the nodes this layer computes.
        src_nodes: [n_src] int64 global ids of its inputs; `src_nodes[:n_dst] == dst_nodes`
            (a node's own previous-layer state is row i of the input), then the sampled
            neighbours not already there, in order of first appearance.
        edge_src: [n_edges] int64 rows of src_nodes (the sampled neighbours).
        edge_dst: [n_edges] int64 rows of dst_nodes (whom each neighbour is sampled for).
    """

    dst_nodes: np.ndarray
    src_nodes: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray

    @property
    def num_dst(self):
        return int(self.dst_nodes.shape[0])

    @property
    def num_src(self):
        return int(self.src_nodes.shape[0])

    def mean_matrix(self):
        """[n_dst, n_src] float32 CSR averaging each dst node's sampled neighbours.

        A dst node without sampled neighbours (isolated) gets a zero row.
        """
        counts = np.bincount(self.edge_dst, minlength=self.num_dst).astype(np.float32)
        values = 1.0 / counts[self.edge_dst]
        matrix = sp.csr_matrix(
            (values.astype(np.float32), (self.edge_dst, self.edge_src)),
            shape=(self.num_dst, self.num_src),
        )
        matrix.sort_indices()
        return matrix


def sample_neighbors(adjacency_csr, nodes, fanouts=(25, 10), rng=None):
    """Samples the multi-hop neighbourhood of target nodes, GraphSAGE style.

    Hop k (k = 0 .. len(fanouts) - 1) samples, for each node reached so far, up to
    `fanouts[k]` distinct neighbours uniformly without replacement (all of them when the
    degree is smaller; none for an isolated node): fanouts=(25, 10) is GraphSAGE's S1 = 25
    at the targets, S2 = 10 one hop further.

    Args:
        adjacency_csr: [N, N] scipy.sparse CSR adjacency (e.g. `adjacency(graph)`).
        nodes: [B] int64 target node ids (repeats allowed, e.g. padding).
        fanouts: positive neighbour counts per hop, from the targets outwards.
        rng: a seed (an int or a tuple of ints such as (seed, epoch, step)) or a numpy
            Generator. With a seed, a node's sample depends only on the seed, the hop and
            the node, not on the rest of the batch: ranks sampling their parts of a global
            batch with the same seed get the neighbours one process gets for the whole
            batch. A Generator gives each call a fresh key from its stream.

    Returns:
        A list of len(fanouts) Blocks in the order a model applies them: blocks[0] reads
        the input features of blocks[0].src_nodes; blocks[-1].dst_nodes == nodes.
    """
    adjacency_csr = sp.csr_matrix(adjacency_csr)
    n = adjacency_csr.shape[0]
    if isinstance(rng, np.random.Generator):
        key = int(rng.integers(0, 2**63))
    else:
        key = int(np.random.SeedSequence(rng).generate_state(1, np.uint64)[0])
    fanouts = tuple(int(f) for f in fanouts)
    if not fanouts or min(fanouts) <= 0:
        raise ValueError(f"fanouts must be positive neighbour counts per hop, got {fanouts}")
    dst = np.asarray(nodes, dtype=np.int64).ravel()
    if dst.size and (dst.min() < 0 or dst.max() >= n):
        bad = dst[(dst < 0) | (dst >= n)][0]
        raise ValueError(f"target node {int(bad)} is outside [0, num_nodes={n})")
    blocks = []
    for hop, fanout in enumerate(fanouts):
        block = _sample_one_hop(adjacency_csr, dst, fanout, _mix(np.uint64(key) ^ np.uint64(hop)))
        blocks.append(block)
        dst = block.src_nodes
    return blocks[::-1]


def _mix(x):
    """splitmix64's finaliser: a well-spread uint64 hash of uint64 values (wrapping)."""
    # Arrays (ndmin=1): numpy wraps uint64 array arithmetic silently, but warns on scalars.
    x = np.array(x, dtype=np.uint64, ndmin=1) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _sample_one_hop(adjacency_csr, dst, fanout, hop_key):
    indptr, indices = adjacency_csr.indptr, adjacency_csr.indices
    starts = indptr[dst].astype(np.int64)
    degrees = (indptr[dst + 1] - indptr[dst]).astype(np.int64)
    total = int(degrees.sum())
    segment = np.repeat(np.arange(dst.size, dtype=np.int64), degrees)
    offsets = np.cumsum(degrees) - degrees
    position = starts[segment] + np.arange(total, dtype=np.int64) - offsets[segment]
    # A pseudo-random key per (node, neighbour), hashed from the hop's key and the two ids
    # so that it does not depend on the batch; a node's `fanout` smallest keys are a
    # uniform sample without replacement of its neighbours, drawn for all nodes at once.
    neighbour_ids = indices[position].astype(np.uint64)
    keys = _mix(_mix(hop_key ^ dst[segment].astype(np.uint64)) ^ neighbour_ids)
    order = np.lexsort((keys, segment))
    rank_in_segment = np.arange(total, dtype=np.int64) - offsets[segment[order]]
    chosen = order[rank_in_segment < fanout]
    chosen.sort()  # keep neighbours in CSR order within each dst node
    edge_dst = segment[chosen]
    neighbours = indices[position[chosen]].astype(np.int64)
    # src = dst nodes first (repeats kept, so row i is dst i), then the new neighbours in
    # order of first appearance; a neighbour maps to the first row holding its id.
    all_ids = np.concatenate([dst, neighbours])
    unique, first, inverse = np.unique(all_ids, return_index=True, return_inverse=True)
    row_of_unique = first.copy()
    new = np.flatnonzero(first >= dst.size)
    new = new[np.argsort(first[new], kind="stable")]
    row_of_unique[new] = dst.size + np.arange(new.size, dtype=np.int64)
    new_nodes = unique[new]
    edge_src = row_of_unique[inverse[dst.size :]].astype(np.int64)
    src = np.concatenate([dst, new_nodes.astype(np.int64)])
    return Block(dst_nodes=dst, src_nodes=src, edge_src=edge_src, edge_dst=edge_dst)


@dataclasses.dataclass
class TargetBatch:
    """One rank's mini-batch of target nodes.

    Attributes:
        nodes: [batch_size] int64 node ids.
        weights: [batch_size] float32, 1 for a real target, 0 for padding.
    """

    nodes: np.ndarray
    weights: np.ndarray


def num_target_batches(num_targets, batch_size, size=1, remainder="pad"):
    """How many batches `target_batches` yields per epoch on every rank."""
    if remainder not in REMAINDER_POLICIES:
        raise ValueError(f"remainder must be one of {REMAINDER_POLICIES}, got {remainder!r}")
    global_batch = batch_size * size
    if remainder == "drop":
        return num_targets // global_batch
    return -(-num_targets // global_batch)


def target_batches(mask, batch_size, seed, epoch, rank=0, size=1, remainder="pad"):
    """Yields this rank's mini-batches of the mask's nodes for one epoch.

    The mask's nodes are shuffled by (seed, epoch), the same on every rank, and cut into
    global batches of size * batch_size; rank r takes rows [r * batch_size, (r + 1) *
    batch_size) of each. So the ranks' targets are disjoint, every rank yields the same
    number of batches (no rank waits in an allreduce), and the ranks' batches i, joined in
    rank order, are the batch i of one process with batch_size * size.

    The last, partial global batch: remainder='drop' leaves it out (those nodes wait for
    another epoch's shuffle); remainder='pad' (the default) fills it up to size *
    batch_size with nodes from the start of the epoch's order, with weight 0, so every
    target counts once. A loss summed as sum(weights * loss) over the global batch and
    divided by the global sum of weights (allreduced) is then the same on any rank count.

    Args:
        mask: [N] bool mask (or the array of target node ids).
        batch_size: targets per rank and batch.
        seed: the shuffle seed.
        epoch: the epoch number; each epoch has its own order.
        rank: this process's rank (Horovod's hvd.rank()).
        size: the number of ranks (hvd.size()).
        remainder: 'pad' or 'drop'.

    Yields:
        TargetBatch with nodes and weights of shape [batch_size].
    """
    if remainder not in REMAINDER_POLICIES:
        raise ValueError(f"remainder must be one of {REMAINDER_POLICIES}, got {remainder!r}")
    if batch_size <= 0 or size <= 0 or not 0 <= rank < size:
        raise ValueError(
            f"need batch_size > 0 and 0 <= rank < size, got batch_size={batch_size}, "
            f"rank={rank}, size={size}"
        )
    mask = np.asarray(mask)
    targets = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.int64).ravel()
    if targets.size == 0:
        raise ValueError("target_batches: the mask selects no nodes")
    order = targets[np.random.default_rng([seed, epoch]).permutation(targets.size)]
    global_batch = batch_size * size
    num_batches = num_target_batches(order.size, batch_size, size, remainder)
    weights = np.ones(order.size, dtype=np.float32)
    padding = num_batches * global_batch - order.size
    if padding > 0:
        order = np.concatenate([order, np.resize(order, padding)])
        weights = np.concatenate([weights, np.zeros(padding, dtype=np.float32)])
    for i in range(num_batches):
        # Horovod: rank r's disjoint slice of the global batch i.
        start = i * global_batch + rank * batch_size
        yield TargetBatch(
            nodes=order[start : start + batch_size].copy(),
            weights=weights[start : start + batch_size].copy(),
        )
