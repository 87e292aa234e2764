"""datasets/graph_formats.py: generic files, networkx graphs, karate club, planted partitions."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from datasets import graph_formats, graphs

EDGES = np.array([[0, 1], [1, 2], [2, 0], [3, 4]])
FEATURES = np.arange(15, dtype=np.float32).reshape(5, 3) / 4
LABELS = np.array([0, 1, -1, 1, 0])
MASKS = {
    "train_mask": np.array([1, 1, 0, 0, 0], bool),
    "val_mask": np.array([0, 0, 0, 1, 0], bool),
    "test_mask": np.array([0, 0, 0, 0, 1], bool),
}


def write_csv(path, rows, header=None):
    lines = ([",".join(header)] if header else []) + [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def assert_same_graph(a, b):
    assert a.num_nodes == b.num_nodes
    np.testing.assert_array_equal(a.edges, b.edges)
    fa = a.features.toarray() if sp.issparse(a.features) else a.features
    fb = b.features.toarray() if sp.issparse(b.features) else b.features
    np.testing.assert_allclose(fa, fb)
    np.testing.assert_array_equal(a.labels, b.labels)
    for name in graphs.MASK_NAMES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.fixture
def csv_graph(tmp_path):
    return dict(
        edges=write_csv(tmp_path / "edges.csv", EDGES, header=["src", "dst"]),
        features=write_csv(tmp_path / "x.csv", FEATURES),
        labels=write_csv(tmp_path / "y.csv", LABELS[:, None], header=["label"]),
        masks=write_csv(
            tmp_path / "split.csv",
            np.stack([MASKS[k].astype(int) for k in graphs.MASK_NAMES], axis=1),
            header=list(graphs.MASK_NAMES),
        ),
    )


def test_csv_files_read_into_the_graph_they_describe(csv_graph):
    g = graph_formats.load_graph(**csv_graph)
    expected = graphs.Graph.from_edges(
        EDGES, 5, features=FEATURES, labels=LABELS, name="edges", **MASKS
    )
    assert_same_graph(g, expected)
    assert g.name == "edges" and g.num_edges == 4


@pytest.mark.parametrize("sparse", [False, True])
def test_npz_round_trip(tmp_path, sparse):
    features = sp.csr_matrix(FEATURES) if sparse else FEATURES
    g = graphs.Graph.from_edges(EDGES, 5, features=features, labels=LABELS, **MASKS)
    graph_formats.save_graph_npz(g, tmp_path / "g.npz")
    back = graph_formats.load_graph(tmp_path / "g.npz")  # a pathlib path works too
    assert_same_graph(back, g)
    assert sp.issparse(back.features) == sparse


def test_npz_edges_only_and_headerless_csv(tmp_path):
    np.savez(tmp_path / "e.npz", edges=EDGES)
    g = graph_formats.load_graph(str(tmp_path / "e.npz"), num_nodes=6)
    assert g.num_nodes == 6 and g.stats["isolated_nodes"] == 1
    assert np.all(g.labels == -1) and not g.train_mask.any()
    plain = graph_formats.load_graph(write_csv(tmp_path / "e.csv", EDGES))
    assert plain.num_nodes == 5  # the largest id + 1
    np.testing.assert_array_equal(plain.edges, g.edges)


@pytest.mark.parametrize(
    "edit, error, message",
    [
        ("missing", FileNotFoundError, r"graph file .*nope\.csv is missing"),
        ("extension", ValueError, r"graph file .*edges\.txt: expected a \.csv or \.npz"),
        ("float_ids", ValueError, r"edges\.csv: edge node ids must be integers"),
        ("ragged", ValueError, r"edges\.csv: rows have different numbers of columns"),
        ("bad_mask_column", ValueError, r"split\.csv: unknown mask column 'train'"),
        ("npz_key", ValueError, r"x\.npz has no array 'features'"),
        ("labels_short", ValueError, r"labels must have shape \[num_nodes=5\]"),
    ],
)
def test_bad_files_are_named(tmp_path, csv_graph, edit, error, message):
    if edit == "missing":
        csv_graph["edges"] = str(tmp_path / "nope.csv")
    elif edit == "extension":
        csv_graph["edges"] = write_csv(tmp_path / "edges.txt", EDGES)
    elif edit == "float_ids":
        write_csv(tmp_path / "edges.csv", [[0, 1.5]])
    elif edit == "ragged":
        (tmp_path / "edges.csv").write_text("0,1\n1,2,3\n")
    elif edit == "bad_mask_column":
        write_csv(tmp_path / "split.csv", [[1]] * 5, header=["train"])
    elif edit == "npz_key":
        np.savez(tmp_path / "x.npz", feats=FEATURES)
        csv_graph["features"] = str(tmp_path / "x.npz")
    elif edit == "labels_short":
        write_csv(tmp_path / "y.csv", LABELS[:4, None])
    with pytest.raises(error, match=message):
        graph_formats.load_graph(**csv_graph)


def test_from_networkx_numbers_nodes_in_order_and_symmetrises_digraphs():
    g = nx.DiGraph()
    g.add_nodes_from([("c", {"kind": "b", "vec": [1, 0]}), ("a", {"kind": "a", "vec": [0, 1]})])
    g.add_node("z", vec=[1, 1])
    g.add_edges_from([("c", "a"), ("a", "z")])
    graph = graph_formats.from_networkx(g, label_attr="kind", feature_attr="vec")
    assert graph.stats["node_ids"] == ["c", "a", "z"]
    assert graph.class_names == ("a", "b")
    np.testing.assert_array_equal(graph.labels, [1, 0, -1])
    np.testing.assert_array_equal(graph.features, [[1, 0], [0, 1], [1, 1]])
    assert {tuple(e) for e in graph.edges} == {(0, 1), (1, 0), (1, 2), (2, 1)}
    with pytest.raises(ValueError, match="directed=True"):
        graph_formats.from_networkx(g, directed=True)
    with pytest.raises(ValueError, match="no node has the label attribute 'club'"):
        graph_formats.from_networkx(g, label_attr="club")


def test_karate_club_facts():
    g = graph_formats.karate_club()
    assert (g.num_nodes, g.num_edges, g.num_classes) == (34, 78, 2)
    assert g.class_names == ("Mr. Hi", "Officer")
    assert np.bincount(g.labels).tolist() == [17, 17]
    assert g.labels[0] == 0 and g.labels[33] == 1  # the two leaders
    np.testing.assert_array_equal(np.flatnonzero(g.train_mask), [0, 33])
    assert g.test_mask.sum() == 32 and not (g.train_mask & g.test_mask).any()
    assert g.stats["isolated_nodes"] == 0
    assert sp.issparse(g.features) and g.features.shape == (34, 34)


def test_planted_partition_sizes_split_and_seed():
    g = graph_formats.planted_partition(2000, 4, 0.01, 0.001, 3.0, seed=5, num_features=8)
    assert g.num_nodes == 2000 and g.features.shape == (2000, 8)
    assert np.bincount(g.labels).tolist() == [500] * 4
    assert np.bincount(g.labels[g.train_mask]).tolist() == [20] * 4
    assert (g.val_mask.sum(), g.test_mask.sum()) == (500, 1000)
    again = graph_formats.planted_partition(2000, 4, 0.01, 0.001, 3.0, seed=5, num_features=8)
    assert_same_graph(g, again)
    other = graph_formats.planted_partition(2000, 4, 0.01, 0.001, 3.0, seed=6, num_features=8)
    assert not np.array_equal(g.edges, other.edges)


def test_planted_partition_edge_counts_and_homophily_follow_p_in_and_p_out():
    n, c, p_in, p_out = 20000, 4, 2e-3, 2e-4
    g = graph_formats.planted_partition(n, c, p_in, p_out, 1.0, seed=0)
    within = p_in * c * (n // c) * (n // c - 1) / 2
    across = p_out * (n * n - c * (n // c) ** 2) / 2
    assert abs(g.num_edges - (within + across)) < 0.02 * (within + across)
    assert graphs.edge_homophily(g) == pytest.approx(within / (within + across), abs=0.01)


def nearest_mean_accuracy(x, graph):
    means = np.stack([x[graph.train_mask & (graph.labels == k)].mean(0) for k in range(5)])
    test = graph.test_mask
    guess = np.argmin(((x[test][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    return np.mean(guess == graph.labels[test])


def test_planted_partition_features_say_little_and_the_graph_says_much():
    g = graph_formats.planted_partition(3000, 5, 10 / 600, 1 / 2400, 2.0, seed=1)
    adj = graphs.normalized_adjacency(g)
    alone = nearest_mean_accuracy(g.features, g)
    smoothed = nearest_mean_accuracy(adj @ (adj @ g.features), g)  # two GCN propagations
    assert alone < 0.4  # chance is 0.2
    assert smoothed > 0.85


def test_planted_partition_scales_to_100k_nodes():
    g = graph_formats.planted_partition(100_000, 5, 10 / 20_000, 1 / 80_000, 3.0, seed=0)
    assert g.num_nodes == 100_000
    assert 500_000 < g.num_edges < 600_000  # ~550k expected


def test_planted_partition_bad_arguments():
    with pytest.raises(ValueError, match="num_classes >= 2"):
        graph_formats.planted_partition(10, 1, 0.1, 0.1, 1.0, seed=0)
    with pytest.raises(ValueError, match="probabilities, got 1.5"):
        graph_formats.planted_partition(10, 2, 1.5, 0.1, 1.0, seed=0)


def test_real_world_csv_messiness(tmp_path):
    """Comments, tabs / spaces, a weight column, string node ids in any order, class names."""
    (tmp_path / "cites.tsv.csv").write_text(
        "% KONECT-style comment\n# source\ttarget\tweight\n"
        "p3\tp1\t1.0\np1\tp2\t0.5\np2\tp3\t2\np4\tp5\t1\n"
    )
    (tmp_path / "content.csv").write_text("id,w1,w2\np5,0,1\np1,1,0\np2,1,1\np3,0,0\np4,1,1\n")
    (tmp_path / "labels.csv").write_text(
        "node,label\np2,Theory\np1,Neural_Networks\np4,\np5,Theory\np3,Neural_Networks\n"
    )
    (tmp_path / "split.csv").write_text("node_id train_mask test_mask\np1 1 0\np5 0 1\n")
    g = graph_formats.load_graph(
        str(tmp_path / "cites.tsv.csv"),
        features=str(tmp_path / "content.csv"),
        labels=str(tmp_path / "labels.csv"),
        masks=str(tmp_path / "split.csv"),
    )
    # Nodes are the features file's rows: p5 p1 p2 p3 p4 -> 0..4.
    assert g.stats["node_ids"] == ["p5", "p1", "p2", "p3", "p4"]
    np.testing.assert_array_equal(g.features[:, 0], [0, 1, 1, 0, 1])
    assert g.class_names == ("Neural_Networks", "Theory")
    np.testing.assert_array_equal(g.labels, [1, 0, 1, 0, -1])
    np.testing.assert_array_equal(np.flatnonzero(g.train_mask), [1])
    np.testing.assert_array_equal(np.flatnonzero(g.test_mask), [0])
    assert {(3, 1), (1, 2), (2, 3), (4, 0)} <= {tuple(e) for e in g.edges}
    assert g.num_edges == 4


def test_numeric_ids_in_an_id_column_and_a_1_based_file(tmp_path):
    # Integer ids 1..3 named by an id column are names, not rows.
    (tmp_path / "e.csv").write_text("1 2\n2 3\n")
    (tmp_path / "x.csv").write_text("id,f\n3,0.5\n1,1.5\n2,2.5\n")
    g = graph_formats.load_graph(str(tmp_path / "e.csv"), features=str(tmp_path / "x.csv"))
    assert g.stats["node_ids"] == ["3", "1", "2"]
    assert {(1, 2), (2, 0)} <= {tuple(e) for e in g.edges}
    # Without an id column, ids running 1..N are refused as 1-based, with the fix.
    (tmp_path / "plain.csv").write_text("f\n0.5\n1.5\n2.5\n")
    with pytest.raises(ValueError, match=r"e\.csv: node ids run 1\.\.3, 1-based.*column 'id'"):
        graph_formats.load_graph(str(tmp_path / "e.csv"), features=str(tmp_path / "plain.csv"))
    # An edge naming a node the id column lacks is named with its line.
    (tmp_path / "e.csv").write_text("1,2\n2,7\n")
    with pytest.raises(ValueError, match=r"e\.csv, line 2: node '7' is not in the id column"):
        graph_formats.load_graph(str(tmp_path / "e.csv"), features=str(tmp_path / "x.csv"))
