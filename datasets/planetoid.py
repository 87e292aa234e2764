"""The Planetoid citation graphs (Cora, Citeseer, Pubmed) from the files users have.

Yang, Cohen & Salakhutdinov, "Revisiting Semi-Supervised Learning with Graph Embeddings"
(ICML 2016), in the layout of kimiyoung/planetoid and Kipf & Welling's GCN: eight files
per dataset in one directory, nothing is downloaded:

    ind.<name>.x, .tx, .allx   scipy.sparse feature rows: labelled training nodes, test
                               nodes (in test.index order), all non-test nodes
    ind.<name>.y, .ty, .ally   the matching one-hot labels (numpy)
    ind.<name>.graph           dict {node: [neighbour, ...]}
    ind.<name>.test.index      one test node id per line

The pickles were written by Python 2 with the numpy and scipy of 2016: their globals name
modules that later versions moved (`scipy.sparse.csr`, `numpy.core.multiarray`) and their
byte strings are Python 2 `str` (read with encoding='latin1'). A restricted unpickler maps
those names to today's classes and refuses any other global, so a file cannot run code.

Node i < len(allx) has the row i of allx / ally, and test node test.index[k] has the row k
of tx / ty. The standard split (Kipf & Welling): train = range(len(y)) (20 per class),
val = the next 500 nodes, test = the test.index nodes. Citeseer's test.index skips 15
ids (isolated nodes without a test row); like Kipf's code, those nodes get zero features,
but here label -1 (unknown) rather than a zero one-hot row, and they are in no split.

    graph = planetoid.load_planetoid("data/planetoid", "cora")
"""

import builtins
import codecs
import collections
import copyreg
import os
import pickle

import numpy as np
import scipy.sparse as sp

from datasets import graphs

NAMES = ("cora", "citeseer", "pubmed")
FILE_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")
NUM_NODES = {"cora": 2708, "citeseer": 3327, "pubmed": 19717}
NUM_CLASSES = {"cora": 7, "citeseer": 6, "pubmed": 3}
NUM_FEATURES = {"cora": 1433, "citeseer": 3703, "pubmed": 500}
NUM_VAL = 500


def planetoid_path(data_dir, name, part):
    """The path of ind.<name>.<part> in data_dir."""
    return os.path.join(data_dir, f"ind.{name}.{part}")


def _allowed_globals():
    """(module, name) -> object for every global a Planetoid pickle may name, old or new."""
    reconstruct = np.zeros(1).__reduce__()[0]  # numpy's ndarray rebuilder, wherever it lives
    scalar = np.float64(0).__reduce__()[0]
    allowed = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[module, "_reconstruct"] = reconstruct
        allowed[module, "scalar"] = scalar
    allowed["numpy", "ndarray"] = np.ndarray
    allowed["numpy", "dtype"] = np.dtype
    for kind in ("csr", "csc", "coo", "lil"):
        for module in (f"scipy.sparse.{kind}", f"scipy.sparse._{kind}", "scipy.sparse"):
            allowed[module, f"{kind}_matrix"] = getattr(sp, f"{kind}_matrix")
    allowed["collections", "defaultdict"] = collections.defaultdict
    for module in ("__builtin__", "builtins"):
        for name in ("list", "dict", "set", "tuple", "int", "float", "object"):
            allowed[module, name] = getattr(builtins, name)
    for module in ("copy_reg", "copyreg"):
        allowed[module, "_reconstructor"] = copyreg._reconstructor
    allowed["_codecs", "encode"] = codecs.encode  # bytes in a Python 3 protocol-2 pickle
    return allowed


class _PlanetoidUnpickler(pickle.Unpickler):
    ALLOWED = _allowed_globals()

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing the global {module}.{name} (a Planetoid file holds numpy arrays, "
                "scipy.sparse matrices and a dict of lists)"
            )
        return self.ALLOWED[module, name]


def _read_pickle(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Planetoid file {path} is missing")
    try:
        with open(path, "rb") as f:
            return _PlanetoidUnpickler(f, encoding="latin1").load()  # Python 2 pickles
    except Exception as error:  # pickle raises many types on corrupt input
        raise ValueError(f"Planetoid file {path} is not a readable pickle: {error}") from error


def _read_test_index(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Planetoid file {path} is missing")
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    try:
        index = np.asarray([int(line) for line in lines], dtype=np.int64)
    except ValueError as error:
        raise ValueError(
            f"Planetoid file {path} must hold one node id per line: {error}"
        ) from error
    if index.size == 0:
        raise ValueError(f"Planetoid file {path} holds no test node ids")
    return index


def _as_matrix(value, path, kind):
    if kind == "features":
        if not (sp.issparse(value) or isinstance(value, np.ndarray)) or np.ndim(value) != 2:
            raise ValueError(f"Planetoid file {path} must hold a 2-D feature matrix")
        return sp.csr_matrix(value, dtype=np.float32)
    value = np.asarray(value)
    if value.ndim != 2:
        raise ValueError(
            f"Planetoid file {path} must hold one-hot labels [rows, classes], "
            f"got shape {value.shape}"
        )
    return value


def _class_ids(one_hot):
    """argmax of each one-hot row; -1 for an all-zero row (an unlabelled node)."""
    ids = np.argmax(one_hot, axis=1).astype(np.int64)
    ids[one_hot.sum(axis=1) == 0] = -1
    return ids


def load_planetoid(data_dir, name, num_val=NUM_VAL):
    """Reads ind.<name>.* from data_dir into a Graph with the standard split.

    Args:
        data_dir: the directory holding the eight files.
        name: 'cora', 'citeseer' or 'pubmed' (any name works if its files are there; these
            three are the published ones).
        num_val: validation nodes after the training ones (the standard split's 500).

    Returns:
        graphs.Graph with sparse CSR features, stats from Graph.from_edges plus
        'padded_test_nodes' (ids in the test range without a row, Citeseer's 15) and
        'unlabelled_split_nodes' (split nodes with an all-zero label row, left out).

    Raises:
        FileNotFoundError: a file is missing (named).
        ValueError: a file is corrupt or its rows disagree with another's (both named).
    """
    paths = {part: planetoid_path(data_dir, name, part) for part in FILE_PARTS}
    paths["test.index"] = planetoid_path(data_dir, name, "test.index")
    objects = {part: _read_pickle(paths[part]) for part in FILE_PARTS}
    test_index = _read_test_index(paths["test.index"])
    x, tx, allx = (_as_matrix(objects[p], paths[p], "features") for p in ("x", "tx", "allx"))
    y, ty, ally = (_as_matrix(objects[p], paths[p], "labels") for p in ("y", "ty", "ally"))
    matrices = {"x": x, "y": y, "tx": tx, "ty": ty, "allx": allx, "ally": ally}
    for rows_part, labels_part in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        rows, labels = matrices[rows_part], matrices[labels_part]
        if rows.shape[0] != labels.shape[0]:
            raise ValueError(
                f"Planetoid files {paths[rows_part]} ({rows.shape[0]} rows) and "
                f"{paths[labels_part]} ({labels.shape[0]} rows) disagree"
            )
    if tx.shape[0] != test_index.size:
        raise ValueError(
            f"Planetoid file {paths['tx']} has {tx.shape[0]} rows but "
            f"{paths['test.index']} lists {test_index.size} test nodes"
        )
    if len({x.shape[1], tx.shape[1], allx.shape[1]}) != 1:
        raise ValueError(
            f"Planetoid feature files {paths['x']}, {paths['tx']}, {paths['allx']} have "
            f"different widths {x.shape[1]}, {tx.shape[1]}, {allx.shape[1]}"
        )
    if len({y.shape[1], ty.shape[1], ally.shape[1]}) != 1:
        raise ValueError(
            f"Planetoid label files {paths['y']}, {paths['ty']}, {paths['ally']} have "
            f"different class counts {y.shape[1]}, {ty.shape[1]}, {ally.shape[1]}"
        )
    num_allx = allx.shape[0]
    if test_index.min() < num_allx or np.unique(test_index).size != test_index.size:
        raise ValueError(
            f"Planetoid file {paths['test.index']} must list distinct node ids >= "
            f"{num_allx} (the rows of {paths['allx']}), got min {int(test_index.min())}"
        )
    if y.shape[0] + num_val > num_allx:
        raise ValueError(
            f"Planetoid file {paths['allx']} has {num_allx} rows, fewer than the "
            f"{y.shape[0]} training + {num_val} validation nodes of the split"
        )
    num_nodes = int(test_index.max()) + 1
    # Nodes between len(allx) and the last test id without a test row (Citeseer's isolated
    # nodes) keep zero features and label -1.
    padded = num_nodes - num_allx - test_index.size
    features = sp.vstack([allx, sp.csr_matrix((num_nodes - num_allx, allx.shape[1]))]).tolil()
    features[test_index, :] = tx
    labels = np.full(num_nodes, -1, dtype=np.int64)
    labels[:num_allx] = _class_ids(ally)
    labels[test_index] = _class_ids(ty)
    train_mask = np.zeros(num_nodes, bool)
    train_mask[: y.shape[0]] = True
    val_mask = np.zeros(num_nodes, bool)
    val_mask[y.shape[0] : y.shape[0] + num_val] = True
    test_mask = np.zeros(num_nodes, bool)
    test_mask[test_index] = True
    # A split node whose one-hot row is all zero has no label to learn or score: left out
    # of its split (and counted) rather than scored as class 0.
    unlabelled = labels < 0
    unlabelled_in_splits = int(((train_mask | val_mask | test_mask) & unlabelled).sum())
    for mask in (train_mask, val_mask, test_mask):
        mask &= ~unlabelled
    adjacency_lists = objects["graph"]
    if not isinstance(adjacency_lists, dict):
        raise ValueError(
            f"Planetoid file {paths['graph']} must hold a dict of adjacency lists, "
            f"got {type(adjacency_lists).__name__}"
        )
    edges = [(int(node), int(other)) for node, nbrs in adjacency_lists.items() for other in nbrs]
    try:
        graph = graphs.Graph.from_edges(
            np.asarray(edges, dtype=np.int64).reshape(-1, 2),
            num_nodes=num_nodes,
            features=features.tocsr(),
            labels=labels,
            train_mask=train_mask,
            val_mask=val_mask,
            test_mask=test_mask,
            name=name,
        )
    except ValueError as error:
        raise ValueError(f"Planetoid files in {data_dir}: {error}") from error
    graph.stats["padded_test_nodes"] = int(padded)
    graph.stats["unlabelled_split_nodes"] = unlabelled_in_splits
    return graph
