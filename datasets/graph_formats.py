"""Graphs from generic files and from networkx; Zachary's karate club; planted partitions.

A generic graph is up to four files, CSV or npz (each chosen by its extension):

    edges      CSV rows `src,dst` (an optional header line), or npz key `edges` [E, 2]
    features   CSV rows of F numbers (an optional header line), or npz key `features`
    labels     CSV, one class id per row (-1 unknown; an optional header), or npz `labels`
    masks      CSV with a header naming columns train_mask, val_mask, test_mask (0/1;
               any subset), or npz keys of those names

An npz may hold several of them: `load_graph("g.npz")` reads features, labels and masks
from the edges file when it has them (`save_graph_npz` writes such a file).

    graph = graph_formats.load_graph("edges.csv", features="x.csv", labels="y.csv",
                                     masks="split.csv")
    graph = graph_formats.karate_club()
    graph = graph_formats.planted_partition(10000, 5, p_in=0.002, p_out=0.0002,
                                            feature_noise=2.0, seed=0)
"""

import csv
import dataclasses
import os

import numpy as np
import scipy.sparse as sp

from datasets import graphs

KARATE_CLUB_FACTIONS = ("Mr. Hi", "Officer")
KARATE_CLUB_TRAIN_NODES = (0, 33)  # the two leaders, one per faction


# -- generic files --------------------------------------------------------------------------


def _extension(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".npz"):
        raise ValueError(f"graph file {path}: expected a .csv or .npz file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"graph file {path} is missing")
    return ext


def _read_npz_key(path, key):
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data.files:
                raise ValueError(f"graph file {path} has no array {key!r} (it has {data.files})")
            return data[key]
    except (OSError, ValueError) as error:
        if "has no array" in str(error):
            raise
        raise ValueError(f"graph file {path} is not a readable npz: {error}") from error


def _read_csv_rows(path):
    """The rows of a CSV of numbers, the first skipped if it is a header."""
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    header = None
    if rows:
        try:
            [float(cell) for cell in rows[0]]
        except ValueError:
            header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    values = []
    for line, row in enumerate(rows, start=2 if header else 1):
        try:
            values.append([float(cell) for cell in row])
        except ValueError as error:
            raise ValueError(f"graph file {path}, data row {line}: {error}") from error
    widths = {len(row) for row in values}
    if len(widths) > 1:
        raise ValueError(f"graph file {path}: rows have different numbers of columns {widths}")
    width = widths.pop() if widths else (len(header) if header else 0)
    return header, np.asarray(values, dtype=np.float64).reshape(len(values), width)


def _integers(values, path, what):
    if values.size and not np.all(np.mod(values, 1) == 0):
        raise ValueError(f"graph file {path}: {what} must be integers")
    return values.astype(np.int64)


def read_edges(path):
    """[E, 2] int64 edge rows from a CSV (`src,dst`) or an npz (`edges`)."""
    if _extension(path) == ".npz":
        edges = _read_npz_key(path, "edges")
    else:
        _, edges = _read_csv_rows(path)
    edges = np.asarray(edges)
    if edges.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"graph file {path}: edges must be [E, 2] (src, dst), got {edges.shape}")
    return _integers(edges, path, "edge node ids")


def read_features(path):
    """[N, F] float32 node features from CSV rows or an npz (`features`)."""
    if _extension(path) == ".npz":
        return _features_from_npz(path)
    _, values = _read_csv_rows(path)
    return values.astype(np.float32)


def _features_from_npz(path):
    with np.load(path, allow_pickle=False) as data:
        if "features_indptr" in data.files:  # CSR written by save_graph_npz
            return sp.csr_matrix(
                (data["features_data"], data["features_indices"], data["features_indptr"]),
                shape=tuple(data["features_shape"]),
                dtype=np.float32,
            )
    return np.asarray(_read_npz_key(path, "features"), dtype=np.float32)


def read_labels(path):
    """[N] int64 class ids (-1 unknown) from a one-column CSV or an npz (`labels`)."""
    if _extension(path) == ".npz":
        labels = np.asarray(_read_npz_key(path, "labels"))
    else:
        _, values = _read_csv_rows(path)
        if values.shape[1] != 1:
            raise ValueError(f"graph file {path}: expected one label per row")
        labels = values[:, 0]
    return _integers(labels.ravel(), path, "labels")


def read_masks(path):
    """{mask name: [N] bool} from a CSV with a header or an npz, for any of MASK_NAMES."""
    masks = {}
    if _extension(path) == ".npz":
        with np.load(path, allow_pickle=False) as data:
            masks = {k: data[k] for k in graphs.MASK_NAMES if k in data.files}
    else:
        header, values = _read_csv_rows(path)
        if header is None:
            raise ValueError(
                f"graph file {path}: a mask CSV needs a header naming its columns "
                f"(any of {graphs.MASK_NAMES})"
            )
        for column, name in enumerate(header):
            if name not in graphs.MASK_NAMES:
                raise ValueError(
                    f"graph file {path}: unknown mask column {name!r}; "
                    f"expected any of {graphs.MASK_NAMES}"
                )
            masks[name] = values[:, column]
    if not masks:
        raise ValueError(f"graph file {path} holds none of the masks {graphs.MASK_NAMES}")
    for name, mask in masks.items():
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"graph file {path}: {name} must be 0/1")
        masks[name] = np.asarray(mask).astype(bool)
    return masks


def _npz_has(path, key):
    with np.load(path, allow_pickle=False) as data:
        return key in data.files or (key == "features" and "features_indptr" in data.files)


def load_graph(
    edges, features=None, labels=None, masks=None, num_nodes=None, directed=False, name=None
):
    """Reads a graph from generic files (see the module docstring) into a Graph.

    Args:
        edges: the edge file (.csv or .npz). An npz edge file also supplies features,
            labels and masks that are not given as their own files.
        features: the feature file, or None (the npz's, else identity features).
        labels: the label file, or None (the npz's, else all unknown).
        masks: the mask file, or None (the npz's, else no splits).
        num_nodes: N; None takes the rows of features, else of labels, else the largest
            edge id + 1.
        directed: as in graphs.Graph.from_edges.
        name: the graph's name; default the edge file's base name.

    Returns:
        graphs.Graph.

    Raises:
        FileNotFoundError / ValueError naming the missing or malformed file.
    """
    edges, features, labels, masks = (
        None if p is None else os.fspath(p) for p in (edges, features, labels, masks)
    )
    name = name or os.path.splitext(os.path.basename(edges))[0]
    edge_rows = read_edges(edges)
    if edges.lower().endswith(".npz"):
        features = features or (edges if _npz_has(edges, "features") else None)
        labels = labels or (edges if _npz_has(edges, "labels") else None)
        if masks is None and any(_npz_has(edges, k) for k in graphs.MASK_NAMES):
            masks = edges
    feature_rows = read_features(features) if features else None
    label_ids = read_labels(labels) if labels else None
    split = read_masks(masks) if masks else {}
    if num_nodes is None:
        if feature_rows is not None:
            num_nodes = feature_rows.shape[0]
        elif label_ids is not None:
            num_nodes = label_ids.shape[0]
        elif edge_rows.size:
            num_nodes = int(edge_rows.max()) + 1
        else:
            raise ValueError(f"graph file {edges} has no edges; give num_nodes or features")
    return graphs.Graph.from_edges(
        edge_rows,
        num_nodes=num_nodes,
        features=feature_rows,
        labels=label_ids,
        directed=directed,
        name=name,
        **split,
    )


def save_graph_npz(graph, path):
    """Writes a Graph to one npz that load_graph(path) reads back (edges once per direction)."""
    arrays = {"edges": graph.edges, "labels": graph.labels}
    arrays.update({k: getattr(graph, k) for k in graphs.MASK_NAMES})
    if sp.issparse(graph.features):
        csr = sp.csr_matrix(graph.features)
        arrays.update(
            features_data=csr.data,
            features_indices=csr.indices,
            features_indptr=csr.indptr,
            features_shape=np.asarray(csr.shape),
        )
    else:
        arrays["features"] = graph.features
    np.savez(path, **arrays)


# -- networkx -------------------------------------------------------------------------------


def from_networkx(g, label_attr=None, feature_attr=None, directed=False, name=None):
    """A Graph from a networkx graph.

    Nodes are numbered in `g.nodes()` order (node_ids[i] is g's node i: stats['node_ids']).
    A DiGraph's arcs are symmetrised unless directed=True (then it must be symmetric).

    Args:
        g: a networkx Graph / DiGraph (multi-edges are merged and counted).
        label_attr: a node attribute holding the class; its distinct values, sorted, are
            the class names (ids 0..C-1); nodes without it get -1. None: no labels.
        feature_attr: a node attribute holding a feature vector per node; None gives
            identity features.
        directed: as in graphs.Graph.from_edges.
        name: the graph's name; default g.name or 'networkx'.

    Returns:
        graphs.Graph with no split (set the masks yourself).
    """
    nodes = list(g.nodes())
    index = {node: i for i, node in enumerate(nodes)}
    edges = np.asarray([(index[u], index[v]) for u, v in g.edges()], dtype=np.int64)
    name = name or g.name or "networkx"
    labels, class_names = None, ()
    if label_attr is not None:
        values = [g.nodes[node].get(label_attr) for node in nodes]
        if all(v is None for v in values):
            raise ValueError(f"graph {name!r}: no node has the label attribute {label_attr!r}")
        class_names = tuple(sorted({v for v in values if v is not None}))
        class_id = {c: i for i, c in enumerate(class_names)}
        labels = np.asarray([class_id.get(v, -1) for v in values], dtype=np.int64)
    features = None
    if feature_attr is not None:
        missing = [node for node in nodes if feature_attr not in g.nodes[node]]
        if missing:
            raise ValueError(
                f"graph {name!r}: node {missing[0]!r} has no feature attribute {feature_attr!r}"
            )
        features = np.asarray([g.nodes[node][feature_attr] for node in nodes], dtype=np.float32)
    graph = graphs.Graph.from_edges(
        edges,
        num_nodes=len(nodes),
        features=features,
        labels=labels,
        directed=directed,
        name=name,
        class_names=class_names,
    )
    graph.stats["node_ids"] = nodes
    return graph


def karate_club():
    """Zachary's karate club (networkx's copy): 34 nodes, 78 edges, 2 factions.

    Labels are the 'club' attribute (0 = 'Mr. Hi', 1 = 'Officer'); the train mask is the
    two leaders, node 0 (Mr. Hi) and node 33 (the officer), the test mask the other 32;
    features are the identity (as in Kipf & Welling's karate demo).
    """
    import networkx as nx

    graph = from_networkx(nx.karate_club_graph(), label_attr="club", name="karate_club")
    train = np.zeros(graph.num_nodes, bool)
    train[list(KARATE_CLUB_TRAIN_NODES)] = True
    return dataclasses.replace(graph, train_mask=train, test_mask=~train)


# -- planted partition ----------------------------------------------------------------------


def _sample_pairs(rng, count, draw, accept):
    """`count` node pairs (u != v) drawn by draw(k) -> (u, v) and kept where accept(u, v)."""
    chunks, have = [], 0
    while have < count:
        need = count - have
        u, v = draw(int(need * 1.3) + 16)
        keep = (u != v) & accept(u, v)
        pairs = np.stack([u[keep], v[keep]], axis=1)[:need]
        chunks.append(pairs)
        have += pairs.shape[0]
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)


def planted_partition(
    num_nodes,
    num_classes,
    p_in,
    p_out,
    feature_noise,
    seed,
    num_features=16,
    train_per_class=20,
    num_val=500,
    num_test=1000,
):
    """A planted-partition (stochastic block) graph where the edges, not the features, tell.

    Each node gets a class (balanced, shuffled); each pair of nodes is an edge with
    probability p_in inside a class and p_out across. The edge counts are drawn from their
    binomials and the pairs uniformly (vectorised numpy, so 100k+ nodes take seconds;
    the few repeated pairs are merged, see stats). Features are the class's unit-norm mean
    vector plus N(0, feature_noise^2) noise per dimension: with noise >> 1 a node's
    features alone say little, while averaging over its neighbours (homophily about
    p_in (N/C) / (p_in (N/C) + p_out (N - N/C))) recovers the class.

    Args:
        num_nodes: N.
        num_classes: C >= 2.
        p_in: edge probability within a class.
        p_out: edge probability between classes.
        feature_noise: the noise standard deviation (the class means have norm 1).
        seed: the random seed; the same arguments give the same graph.
        num_features: F.
        train_per_class: labelled training nodes per class (Planetoid's 20).
        num_val: validation nodes (capped by what is left).
        num_test: test nodes (capped by what is left).

    Returns:
        graphs.Graph named 'planted_partition' with dense float32 features.
    """
    if num_classes < 2 or num_nodes < num_classes:
        raise ValueError(
            f"planted_partition needs num_classes >= 2 and num_nodes >= num_classes, got "
            f"num_nodes={num_nodes}, num_classes={num_classes}"
        )
    if not (0 <= p_in <= 1 and 0 <= p_out <= 1):
        raise ValueError(f"p_in and p_out must be probabilities, got {p_in}, {p_out}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_nodes) % num_classes).astype(np.int64)
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    sizes = np.asarray([m.size for m in members], dtype=np.int64)
    edge_chunks = []
    for c, nodes in enumerate(members):
        count = rng.binomial(int(sizes[c] * (sizes[c] - 1) // 2), p_in)
        if count:
            edge_chunks.append(
                _sample_pairs(
                    rng,
                    count,
                    lambda k, nodes=nodes: (rng.choice(nodes, k), rng.choice(nodes, k)),
                    lambda u, v: np.ones(u.shape, bool),
                )
            )
    cross_pairs = int((num_nodes**2 - int((sizes**2).sum())) // 2)
    count = rng.binomial(cross_pairs, p_out)
    if count:
        edge_chunks.append(
            _sample_pairs(
                rng,
                count,
                lambda k: (rng.integers(0, num_nodes, k), rng.integers(0, num_nodes, k)),
                lambda u, v: labels[u] != labels[v],
            )
        )
    edges = np.concatenate(edge_chunks) if edge_chunks else np.zeros((0, 2), np.int64)
    # Undirected pairs: order each as (min, max) so a pair drawn twice is merged once.
    edges = np.sort(edges, axis=1)
    means = rng.normal(size=(num_classes, num_features))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    features = means[labels] + feature_noise * rng.normal(size=(num_nodes, num_features))
    order = rng.permutation(num_nodes)
    train = np.zeros(num_nodes, bool)
    for c in range(num_classes):
        train[order[labels[order] == c][:train_per_class]] = True
    rest = order[~train[order]]
    val = np.zeros(num_nodes, bool)
    val[rest[:num_val]] = True
    test = np.zeros(num_nodes, bool)
    test[rest[num_val : num_val + num_test]] = True
    return graphs.Graph.from_edges(
        edges,
        num_nodes=num_nodes,
        features=features.astype(np.float32),
        labels=labels,
        train_mask=train,
        val_mask=val,
        test_mask=test,
        name="planted_partition",
        class_names=tuple(f"class_{c}" for c in range(num_classes)),
    )
