"""datasets/planetoid.py on tiny files written in the real ind.<name>.* pickle layout
(Python 2 pickles naming the 2016 numpy / scipy modules: tests/datasets/planetoid_files.py)."""

import collections
import os
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from datasets import planetoid
from tests.datasets import planetoid_files

NUM_CLASSES, NUM_FEATURES = 3, 5
NUM_ALLX, NUM_TRAIN, NUM_VAL = 10, 3, 4
# Citeseer-like: the test ids run 10..15 but 11 and 14 have no test row (isolated nodes),
# and test.index is not sorted (the file order is the order of the tx / ty rows).
TEST_INDEX = [13, 10, 15, 12]
NUM_NODES = 16


def one_hot(ids):
    out = np.zeros((len(ids), NUM_CLASSES))
    out[np.arange(len(ids)), ids] = 1
    return out


@pytest.fixture
def write_planetoid(tmp_path):
    """Writes ind.tiny.* and returns (data_dir, the written objects)."""

    def write(name="tiny", skip=None, python2=True):
        rng = np.random.default_rng(0)
        allx = sp.csr_matrix(rng.integers(0, 2, (NUM_ALLX, NUM_FEATURES)).astype(np.float32))
        ally_ids = rng.integers(0, NUM_CLASSES, NUM_ALLX)
        ally = one_hot(ally_ids)
        ally[8] = 0  # an unlabelled node outside the splits (Planetoid's allx has such rows)
        tx = sp.csr_matrix(rng.integers(1, 3, (len(TEST_INDEX), NUM_FEATURES)).astype(np.float32))
        ty = one_hot(rng.integers(0, NUM_CLASSES, len(TEST_INDEX)))
        graph = collections.defaultdict(list)
        for u, v in [(0, 1), (1, 2), (2, 13), (13, 10), (10, 15), (3, 12), (4, 5), (6, 7)]:
            graph[u].append(v)
            graph[v].append(u)  # Planetoid lists each edge from both ends
        graph[4].append(5)  # a duplicate, as in Cora
        graph[9].append(9)  # a self loop, as in Citeseer
        objects = {
            "x": allx[:NUM_TRAIN],
            "y": ally[:NUM_TRAIN],
            "tx": tx,
            "ty": ty,
            "allx": allx,
            "ally": ally,
            "graph": graph,
        }
        if python2:
            planetoid_files.write_planetoid(str(tmp_path), name, objects, TEST_INDEX, skip)
            return str(tmp_path), objects
        for part, value in objects.items():  # as a user re-saving them with Python 3 would
            if part != skip:
                with open(tmp_path / f"ind.{name}.{part}", "wb") as f:
                    pickle.dump(value, f, protocol=2)
        (tmp_path / f"ind.{name}.test.index").write_text("".join(f"{i}\n" for i in TEST_INDEX))
        return str(tmp_path), objects

    return write


def kipf_reference(objects):
    """Features and one-hot labels as Kipf & Welling's load_data builds them (Citeseer path)."""
    test_reorder = np.asarray(TEST_INDEX)
    test_range = np.sort(test_reorder)
    full = range(test_range.min(), test_range.max() + 1)
    tx = sp.lil_matrix((len(full), NUM_FEATURES))
    tx[test_range - test_range.min(), :] = objects["tx"]
    ty = np.zeros((len(full), NUM_CLASSES))
    ty[test_range - test_range.min(), :] = objects["ty"]
    features = sp.vstack((objects["allx"], tx)).tolil()
    features[test_reorder, :] = features[test_range, :]
    labels = np.vstack((objects["ally"], ty))
    labels[test_reorder, :] = labels[test_range, :]
    return features.toarray(), labels


def test_the_files_are_python2_pickles_of_the_2016_modules(write_planetoid):
    data_dir, _ = write_planetoid()
    with open(os.path.join(data_dir, "ind.tiny.allx"), "rb") as f:
        raw = f.read()
    assert b"cscipy.sparse.csr\ncsr_matrix\n" in raw and b"numpy.core.multiarray" in raw
    assert b"_codecs" not in raw and b"X\x06\x00\x00\x00_shape" not in raw  # no py3 str


@pytest.mark.parametrize("python2", [True, False])
def test_reader_matches_kipf_and_fills_the_citeseer_gap(write_planetoid, python2):
    data_dir, objects = write_planetoid(python2=python2)
    graph = planetoid.load_planetoid(data_dir, "tiny", num_val=NUM_VAL)
    features, one_hot_labels = kipf_reference(objects)
    assert graph.num_nodes == NUM_NODES
    assert sp.issparse(graph.features)
    np.testing.assert_array_equal(graph.features.toarray(), features)
    labelled = one_hot_labels.sum(axis=1) == 1
    np.testing.assert_array_equal(graph.labels[labelled], one_hot_labels[labelled].argmax(1))
    assert np.all(graph.labels[~labelled] == -1)  # 8 (all-zero ally row) and the gap 11, 14
    np.testing.assert_array_equal(np.flatnonzero(~labelled), [8, 11, 14])
    # The test row k belongs to node TEST_INDEX[k].
    np.testing.assert_array_equal(graph.features[13].toarray(), objects["tx"][0].toarray())
    assert graph.features[11].nnz == 0 and graph.features[14].nnz == 0
    assert graph.stats["padded_test_nodes"] == 2
    # The standard split: train = range(len(y)), val = the next num_val, test = test.index.
    np.testing.assert_array_equal(np.flatnonzero(graph.train_mask), range(NUM_TRAIN))
    np.testing.assert_array_equal(
        np.flatnonzero(graph.val_mask), range(NUM_TRAIN, NUM_TRAIN + NUM_VAL)
    )
    np.testing.assert_array_equal(np.flatnonzero(graph.test_mask), sorted(TEST_INDEX))
    # Edges: 8 undirected, the duplicate merged, the self loop dropped, 8/9/11/14 isolated.
    assert graph.num_edges == 8
    assert graph.stats["duplicate_edges_merged"] == 1
    assert graph.stats["self_loops_removed"] == 1
    assert graph.stats["isolated_nodes"] == 4
    assert {(2, 13), (13, 2), (3, 12)} <= {tuple(e) for e in graph.edges}


def test_default_split_needs_500_validation_nodes(write_planetoid):
    data_dir, _ = write_planetoid()
    with pytest.raises(ValueError, match=r"ind\.tiny\.allx has 10 rows.*3 training \+ 500"):
        planetoid.load_planetoid(data_dir, "tiny")


def test_missing_file_is_named(write_planetoid):
    data_dir, _ = write_planetoid(skip="ty")
    with pytest.raises(FileNotFoundError, match=r"ind\.tiny\.ty is missing"):
        planetoid.load_planetoid(data_dir, "tiny", num_val=NUM_VAL)


def test_corrupt_pickle_is_named(write_planetoid):
    data_dir, _ = write_planetoid()
    with open(os.path.join(data_dir, "ind.tiny.graph"), "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(ValueError, match=r"ind\.tiny\.graph is not a readable pickle"):
        planetoid.load_planetoid(data_dir, "tiny", num_val=NUM_VAL)


def test_test_index_disagreeing_with_tx_names_both(write_planetoid):
    data_dir, _ = write_planetoid()
    with open(os.path.join(data_dir, "ind.tiny.test.index"), "a") as f:
        f.write("20\n")
    with pytest.raises(ValueError, match=r"ind\.tiny\.tx has 4 rows.*test\.index lists 5"):
        planetoid.load_planetoid(data_dir, "tiny", num_val=NUM_VAL)


def test_graph_referring_to_an_unknown_node_is_an_error(write_planetoid):
    data_dir, objects = write_planetoid()
    objects["graph"][0].append(40)
    with open(os.path.join(data_dir, "ind.tiny.graph"), "wb") as f:
        pickle.dump(objects["graph"], f, protocol=2)
    with pytest.raises(ValueError, match=r"\(0, 40\).*num_nodes=16"):
        planetoid.load_planetoid(data_dir, "tiny", num_val=NUM_VAL)


def test_a_pickle_naming_any_other_global_is_refused(write_planetoid):
    data_dir, _ = write_planetoid()

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(os.path.join(data_dir, "ind.tiny.ally"), "wb") as f:
        pickle.dump(Exploit(), f, protocol=2)
    with pytest.raises(ValueError, match=r"ind\.tiny\.ally is not a readable pickle.*refusing"):
        planetoid.load_planetoid(data_dir, "tiny", num_val=NUM_VAL)
