"""Graphs from generic files and from networkx; Zachary's karate club; planted partitions.

A generic graph is up to four files, CSV or npz (each chosen by its extension):

    edges      CSV rows `src,dst` (further columns, e.g. weights, are ignored), or npz key
               `edges` [E, 2]
    features   CSV rows of F numbers, or npz key `features`
    labels     CSV, one class per row: an id (-1 unknown) or a class name (sorted names
               become ids 0..C-1, an empty cell is unknown), or npz `labels`
    masks      CSV with a header naming columns train_mask, val_mask, test_mask (0/1;
               any subset), or npz keys of those names

CSV files as real exports come: a header line is optional (a first row that is not all
numbers; mask files need one), lines starting with # or % are comments, and cells are
separated by commas, tabs or spaces (what the first line uses). Nodes are the rows of the
features file (else of the labels file), 0-based: edge ids must lie in 0..N-1, and ids
running 1..N are refused as 1-based. Files whose nodes have names instead (string ids,
1-based numbers, any order) give the features / labels / masks file a first column named
id, node or node_id: the features file's ids (else the labels file's) define the nodes
in their row order, edges name nodes by those ids, and labels and masks rows are matched
by id (nodes they do not list: unknown / False); `graph.stats["node_ids"]` keeps the
names.

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


NODE_ID_COLUMNS = ("id", "node", "node_id")
COMMENT_PREFIXES = ("#", "%")


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_table(path):
    """(header or None, [(line number, cells)]) of a CSV / TSV / whitespace-separated file.

    Blank lines and comments (#, %) are skipped; the delimiter is the first line's (comma,
    else tab, else runs of spaces); a first row that is not all numbers is the header.
    """
    with open(path, newline="") as f:
        lines = [
            (number, line)
            for number, line in enumerate(f, start=1)
            if line.strip() and not line.lstrip().startswith(COMMENT_PREFIXES)
        ]
    if not lines:
        return None, []
    first = lines[0][1]
    if "," in first or "\t" in first:
        reader = csv.reader([line for _, line in lines], delimiter="," if "," in first else "\t")
        cells = list(reader)
    else:
        cells = [line.split() for _, line in lines]
    rows = [(number, [c.strip() for c in row]) for (number, _), row in zip(lines, cells)]
    header = None
    if not all(_is_number(c) for c in rows[0][1]):
        header, rows = rows[0][1], rows[1:]
    return header, rows


def _numbers(rows, path, width=None):
    """[len(rows), width] float64 of table rows (an error names the file and line)."""
    widths = {len(cells) for _, cells in rows}
    if len(widths) > 1:
        raise ValueError(f"graph file {path}: rows have different numbers of columns {widths}")
    width = widths.pop() if widths else (width or 0)
    values = []
    for number, cells in rows:
        try:
            values.append([float(c) for c in cells])
        except ValueError as error:
            raise ValueError(f"graph file {path}, line {number}: {error}") from error
    return np.asarray(values, dtype=np.float64).reshape(len(values), width)


def _split_id_column(header, rows):
    """(ids or None, header without it, rows without it): a first column named id/node."""
    if header and header[0].strip().lower() in NODE_ID_COLUMNS:
        ids = [cells[0] if cells else "" for _, cells in rows]
        return ids, header[1:], [(n, cells[1:]) for n, cells in rows]
    return None, header, rows


def _integers(values, path, what):
    if values.size and not np.all(np.mod(values, 1) == 0):
        raise ValueError(f"graph file {path}: {what} must be integers")
    return values.astype(np.int64)


def _id_key(cell):
    """A node id as text; integer-valued numbers written as '7' or '7.0' are one id."""
    cell = cell.strip()
    try:
        number = float(cell)
    except ValueError:
        return cell
    return str(int(number)) if number.is_integer() else cell


def read_edges(path, node_index=None):
    """[E, 2] int64 edge rows from a CSV (`src,dst`, more columns ignored) or an npz (`edges`).

    node_index: {node id text: row} when the nodes are named by an id column; edge cells
    are then looked up in it (and an unknown id is an error), else they must be integers.
    """
    if _extension(path) == ".npz":
        edges = _read_npz_key(path, "edges")
    elif node_index is not None:
        header, rows = _read_table(path)
        if header is not None and all(_id_key(c) in node_index for c in header[:2]):
            rows = [(0, header)] + rows  # named nodes: the first row was data, not a header
        pairs = []
        for number, cells in rows:
            if len(cells) < 2:
                raise ValueError(f"graph file {path}, line {number}: expected src,dst")
            pair = []
            for cell in cells[:2]:
                if _id_key(cell) not in node_index:
                    raise ValueError(
                        f"graph file {path}, line {number}: node {cell!r} is not in the id "
                        "column of the features / labels file"
                    )
                pair.append(node_index[_id_key(cell)])
            pairs.append(pair)
        return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    else:
        header, rows = _read_table(path)
        edges = _numbers(rows, path, len(header) if header else 2)
        if edges.ndim == 2 and edges.shape[1] > 2:
            edges = edges[:, :2]  # weights, timestamps: not used by these models
    edges = np.asarray(edges)
    if edges.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"graph file {path}: edges must be [E, 2] (src, dst), got {edges.shape}")
    return _integers(edges, path, "edge node ids")


def _feature_table(path):
    """(node ids or None, [N, F] float32) of a features file."""
    if _extension(path) == ".npz":
        return None, _features_from_npz(path)
    header, rows = _read_table(path)
    ids, header, rows = _split_id_column(header, rows)
    return ids, _numbers(rows, path, len(header) if header else 0).astype(np.float32)


def read_features(path):
    """[N, F] float32 node features from CSV rows or an npz (`features`)."""
    return _feature_table(path)[1]


def _features_from_npz(path):
    with np.load(path, allow_pickle=False) as data:
        if "features_indptr" in data.files:  # CSR written by save_graph_npz
            return sp.csr_matrix(
                (data["features_data"], data["features_indices"], data["features_indptr"]),
                shape=tuple(data["features_shape"]),
                dtype=np.float32,
            )
    return np.asarray(_read_npz_key(path, "features"), dtype=np.float32)


def _label_table(path):
    """(node ids or None, [N] int64 class ids with -1 unknown, class names or ())."""
    if _extension(path) == ".npz":
        labels = np.asarray(_read_npz_key(path, "labels"))
        return None, _integers(labels.ravel(), path, "labels"), ()
    header, rows = _read_table(path)
    ids, header, rows = _split_id_column(header, rows)
    if any(len(cells) != 1 for _, cells in rows):
        raise ValueError(f"graph file {path}: expected one label per row")
    cells = [cells[0] for _, cells in rows]
    if all(_is_number(c) for c in cells):
        return ids, _integers(np.asarray(cells, dtype=np.float64), path, "labels"), ()
    # Class names (e.g. Cora's 'Neural_Networks'); an empty cell is an unknown label.
    names = tuple(sorted({c for c in cells if c}))
    class_id = {name: i for i, name in enumerate(names)}
    return ids, np.asarray([class_id.get(c, -1) for c in cells], dtype=np.int64), names


def read_labels(path):
    """[N] int64 class ids (-1 unknown) from a one-column CSV or an npz (`labels`)."""
    return _label_table(path)[1]


def _mask_table(path):
    """(node ids or None, {mask name: [N] bool}) for any of MASK_NAMES."""
    masks, ids = {}, None
    if _extension(path) == ".npz":
        with np.load(path, allow_pickle=False) as data:
            masks = {k: data[k] for k in graphs.MASK_NAMES if k in data.files}
    else:
        header, rows = _read_table(path)
        if header is None:
            raise ValueError(
                f"graph file {path}: a mask CSV needs a header naming its columns "
                f"(any of {graphs.MASK_NAMES})"
            )
        ids, header, rows = _split_id_column(header, rows)
        values = _numbers(rows, path, len(header))
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
    return ids, masks


def read_masks(path):
    """{mask name: [N] bool} from a CSV with a header or an npz, for any of MASK_NAMES."""
    return _mask_table(path)[1]


def _by_node(ids, values, node_index, fill, path):
    """values of rows named by ids, placed at their nodes' rows (others: fill)."""
    out = np.full(len(node_index), fill, dtype=values.dtype)
    for row, node in enumerate(ids):
        if _id_key(node) not in node_index:
            raise ValueError(
                f"graph file {path}: node {node!r} is not in the id column of the features "
                "/ labels file"
            )
        out[node_index[_id_key(node)]] = values[row]
    return out


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
        graphs.Graph (with stats["node_ids"] when the files name their nodes).

    Raises:
        FileNotFoundError / ValueError naming the missing or malformed file.
    """
    edges, features, labels, masks = (
        None if p is None else os.fspath(p) for p in (edges, features, labels, masks)
    )
    name = name or os.path.splitext(os.path.basename(edges))[0]
    if edges.lower().endswith(".npz") and os.path.isfile(edges):
        features = features or (edges if _npz_has(edges, "features") else None)
        labels = labels or (edges if _npz_has(edges, "labels") else None)
        if masks is None and any(_npz_has(edges, k) for k in graphs.MASK_NAMES):
            masks = edges
    feature_ids, feature_rows = _feature_table(features) if features else (None, None)
    label_ids, label_ids_of_rows, class_names = _label_table(labels) if labels else (None, None, ())
    mask_ids, split = _mask_table(masks) if masks else (None, {})
    # Named nodes: the features file's ids, else the labels file's, in their row order.
    node_ids = feature_ids if feature_ids is not None else label_ids
    node_index = None
    if node_ids is not None:
        node_index = {}
        source = features if feature_ids is not None else labels
        for row, node in enumerate(node_ids):
            if _id_key(node) in node_index:
                raise ValueError(f"graph file {source}: node id {node!r} is listed twice")
            node_index[_id_key(node)] = row
        if label_ids is not None and feature_ids is not None:
            label_ids_of_rows = _by_node(label_ids, label_ids_of_rows, node_index, -1, labels)
        if mask_ids is not None:
            split = {k: _by_node(mask_ids, m, node_index, False, masks) for k, m in split.items()}
    edge_rows = read_edges(edges, node_index)
    if num_nodes is None:
        if node_index is not None:
            num_nodes = len(node_index)
        elif feature_rows is not None:
            num_nodes = feature_rows.shape[0]
        elif label_ids_of_rows is not None:
            num_nodes = label_ids_of_rows.shape[0]
        elif edge_rows.size:
            num_nodes = int(edge_rows.max()) + 1
        else:
            raise ValueError(f"graph file {edges} has no edges; give num_nodes or features")
    if node_index is None and edge_rows.size and edge_rows.min() >= 1:
        if edge_rows.max() == num_nodes:
            raise ValueError(
                f"graph file {edges}: node ids run 1..{num_nodes}, 1-based; ids must be "
                f"0..{num_nodes - 1} (row i of the features / labels file is node i), or give "
                f"the features / labels file a first column 'id' naming each row's node"
            )
    graph = graphs.Graph.from_edges(
        edge_rows,
        num_nodes=num_nodes,
        features=feature_rows,
        labels=label_ids_of_rows,
        directed=directed,
        name=name,
        class_names=class_names,
        **split,
    )
    if node_ids is not None:
        graph.stats["node_ids"] = list(node_ids)
    return graph


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
