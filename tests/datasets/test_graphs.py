"""datasets/graphs.py: the Graph checks, the normalised adjacency, sampling and rank sharding."""

import numpy as np
import pytest
import scipy.sparse as sp

from datasets import graphs

# A path 0-1-2-3, a triangle 3-4-5 and node 6 isolated; 7 nodes.
EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 3]])
N = 7


def make(edges=EDGES, num_nodes=N, **kwargs):
    return graphs.Graph.from_edges(edges, num_nodes=num_nodes, **kwargs)


def dense_adjacency(edges, n):
    a = np.zeros((n, n))
    for u, v in edges:
        if u != v:
            a[u, v] = a[v, u] = 1
    return a


def test_edges_are_symmetric_sorted_and_counted():
    g = make()
    assert g.num_edges == 6
    assert g.edges.shape == (12, 2)
    assert {tuple(e) for e in g.edges} == {(u, v) for u, v in EDGES} | {(v, u) for u, v in EDGES}
    assert np.array_equal(g.edges, g.edges[np.lexsort((g.edges[:, 1], g.edges[:, 0]))])
    assert g.stats["isolated_nodes"] == 1
    assert g.stats["reverse_edges_added"] == 6
    assert sp.issparse(g.features) and g.features.shape == (N, N)  # identity features


def test_self_loops_are_removed_and_duplicates_merged():
    edges = np.concatenate([EDGES, [[2, 2], [6, 6], [0, 1], [0, 1], [1, 0]]])
    g = make(edges)
    assert g.stats["self_loops_removed"] == 2
    assert g.stats["duplicate_edges_merged"] == 2  # the repeated (0, 1); (1, 0) is its reverse
    assert g.num_edges == 6
    assert not (g.edges[:, 0] == g.edges[:, 1]).any()
    # The removed loop must not add weight to the self loop of the normalisation.
    assert np.allclose(
        graphs.normalized_adjacency(g).toarray(), graphs.normalized_adjacency(make()).toarray()
    )


def test_out_of_range_node_id_names_the_edge_and_num_nodes():
    with pytest.raises(ValueError, match=r"edge 2 \(2, 7\).*num_nodes=7"):
        make(np.array([[0, 1], [1, 2], [2, 7]]))
    with pytest.raises(ValueError, match=r"edge 0 \(-1, 1\)"):
        make(np.array([[-1, 1]]))


def test_directed_true_refuses_asymmetric_arcs_and_accepts_symmetric_ones():
    with pytest.raises(ValueError, match=r"directed=True.*1 -> 2"):
        make(np.array([[0, 1], [1, 0], [1, 2]]), directed=True)
    both = np.concatenate([EDGES, EDGES[:, ::-1]])
    g = make(both, directed=True)
    assert np.array_equal(g.edges, make().edges)
    assert g.stats["reverse_edges_added"] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": np.zeros(N - 1, np.int64)}, r"labels must have shape \[num_nodes=7\]"),
        ({"train_mask": np.zeros(N + 1, bool)}, r"train_mask must have shape \[num_nodes=7\]"),
        ({"features": np.zeros((N - 2, 3))}, r"features must have shape \[num_nodes=7, F\]"),
        ({"labels": np.full(N, -2)}, r"got -2"),
        ({"test_mask": np.full(N, 2)}, r"test_mask must be boolean"),
    ],
)
def test_wrong_lengths_and_values_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_overlapping_masks_are_an_error():
    labels = np.zeros(N, np.int64)
    train, val = np.zeros(N, bool), np.zeros(N, bool)
    train[[0, 1]] = val[[1, 2]] = True
    with pytest.raises(ValueError, match=r"train_mask and val_mask overlap in 1 node.*node 1"):
        make(labels=labels, train_mask=train, val_mask=val)


def test_mask_on_an_unlabelled_node_is_an_error():
    labels = np.zeros(N, np.int64)
    labels[4] = -1
    test = np.zeros(N, bool)
    test[4] = True
    with pytest.raises(ValueError, match=r"test_mask holds 1 node.*first node 4"):
        make(labels=labels, test_mask=test)


@pytest.mark.parametrize("self_loops", [True, False])
def test_normalized_adjacency_matches_dense_numpy(self_loops):
    g = make()
    a = dense_adjacency(EDGES, N) + (np.eye(N) if self_loops else 0)
    d = a.sum(axis=1)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, d**-0.5, 0)
    expected = inv[:, None] * a * inv[None, :]
    got = graphs.normalized_adjacency(g, self_loops=self_loops)
    assert sp.isspmatrix_csr(got) and got.dtype == np.float32
    np.testing.assert_allclose(got.toarray(), expected, rtol=1e-6)
    # The isolated node: degree 1 with its self loop (its own features), 0 without.
    assert got[6, 6] == (1.0 if self_loops else 0.0)


def test_sparse_tensor_parts_build_the_same_matrix_in_tensorflow():
    from slim_compat import tf

    adj = graphs.normalized_adjacency(make())
    indices, values, dense_shape = graphs.sparse_tensor_parts(adj)
    assert indices.dtype == np.int64 and values.dtype == np.float32
    assert np.array_equal(indices, indices[np.lexsort((indices[:, 1], indices[:, 0]))])
    with tf.Graph().as_default():
        dense = tf.sparse.to_dense(tf.SparseTensor(indices, values, dense_shape))
        with tf.Session() as session:
            np.testing.assert_allclose(session.run(dense), adj.toarray())


def test_edge_homophily_counts_same_label_edges():
    labels = np.array([0, 0, 1, 1, 1, 1, 0])  # edges 0-1 and 2-3..5-3 same; 1-2 differs
    assert graphs.edge_homophily(make(labels=labels)) == pytest.approx(5 / 6)


# -- sampling -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_graph():
    rng = np.random.default_rng(0)
    edges = rng.integers(0, 200, size=(3000, 2))
    return graphs.adjacency(make(edges, num_nodes=201))  # node 200 isolated


def test_sampled_blocks_respect_fanouts_and_hold_real_distinct_neighbours(random_graph):
    adj = random_graph
    targets = np.array([5, 17, 200, 3, 99])
    blocks = graphs.sample_neighbors(adj, targets, fanouts=(4, 3), rng=1)
    assert len(blocks) == 2
    assert np.array_equal(blocks[-1].dst_nodes, targets)
    assert np.array_equal(blocks[0].dst_nodes, blocks[1].src_nodes)  # layers chain
    degree = np.diff(adj.indptr)
    for block, fanout in zip(blocks[::-1], (4, 3)):
        assert np.array_equal(block.src_nodes[: block.num_dst], block.dst_nodes)
        assert len(set(block.src_nodes.tolist())) == block.num_src  # dst unique here
        counts = np.bincount(block.edge_dst, minlength=block.num_dst)
        assert np.array_equal(counts, np.minimum(degree[block.dst_nodes], fanout))
        src = block.src_nodes[block.edge_src]
        dst = block.dst_nodes[block.edge_dst]
        assert np.all(adj[dst, src] == 1)  # every sampled neighbour is a real one
        pairs = set(zip(src.tolist(), dst.tolist()))
        assert len(pairs) == src.size  # without replacement
    assert blocks[-1].mean_matrix()[2].nnz == 0  # node 200: isolated, nothing sampled
    row = blocks[-1].mean_matrix()[0].toarray()
    assert row.sum() == pytest.approx(1.0)


def test_sampling_is_seeded(random_graph):
    def sample(seed):
        blocks = graphs.sample_neighbors(random_graph, np.arange(10), (5, 5), rng=seed)
        return [np.concatenate([b.src_nodes, b.edge_src, b.edge_dst]) for b in blocks]

    assert all(np.array_equal(a, b) for a, b in zip(sample(3), sample(3)))
    assert not all(np.array_equal(a, b) for a, b in zip(sample(3), sample(4)))


def sampled_neighbours(blocks):
    """{(hop, dst node): sorted sampled neighbour ids} of sample_neighbors' blocks."""
    out = {}
    for hop, block in enumerate(blocks[::-1]):
        for row, node in enumerate(block.dst_nodes.tolist()):
            picked = block.src_nodes[block.edge_src[block.edge_dst == row]]
            out[hop, node] = sorted(picked.tolist())
    return out


def test_two_ranks_sample_the_neighbours_of_one_process(random_graph):
    mask = np.zeros(201, bool)
    mask[:120] = True
    for step, (b0, b1, one) in enumerate(
        zip(batches(mask, 6, rank=0, size=2), batches(mask, 6, rank=1, size=2), batches(mask, 12))
    ):
        key = (7, 0, step)  # (seed, epoch, step): the same on every rank
        single = sampled_neighbours(graphs.sample_neighbors(random_graph, one.nodes, (4, 3), key))
        for part in (b0, b1):
            ranked = sampled_neighbours(
                graphs.sample_neighbors(random_graph, part.nodes, (4, 3), key)
            )
            assert ranked.items() <= single.items()
        targets = {(0, n) for n in one.nodes.tolist()}
        assert {k for k in single if k[0] == 0} == targets


def test_sampling_is_uniform_over_neighbours():
    star = make(np.array([[0, i] for i in range(1, 11)]), num_nodes=11)
    rng = np.random.default_rng(0)
    counts = np.zeros(11)
    for _ in range(2000):
        (block,) = graphs.sample_neighbors(graphs.adjacency(star), [0], (3,), rng)
        counts[block.src_nodes[block.edge_src]] += 1
    # 2000 draws x 3 of 10: 600 each, binomial sd ~20.
    assert np.all(np.abs(counts[1:] - 600) < 100), counts


def test_duplicate_targets_keep_one_row_each(random_graph):
    (block,) = graphs.sample_neighbors(random_graph, [5, 5, 7], (2,), rng=0)
    assert np.array_equal(block.src_nodes[:3], [5, 5, 7])
    assert len(set(block.src_nodes[3:].tolist()) & {5, 7}) == 0


def test_bad_fanouts_and_targets_are_errors(random_graph):
    with pytest.raises(ValueError, match="fanouts must be positive"):
        graphs.sample_neighbors(random_graph, [0], (5, 0))
    with pytest.raises(ValueError, match=r"target node 201 is outside \[0, num_nodes=201\)"):
        graphs.sample_neighbors(random_graph, [0, 201], (5,))


# -- rank sharding of target batches --------------------------------------------------------


def batches(mask, batch_size, epoch=0, rank=0, size=1, remainder="pad"):
    return list(graphs.target_batches(mask, batch_size, 7, epoch, rank, size, remainder))


@pytest.mark.parametrize("remainder", ["pad", "drop"])
def test_two_ranks_are_disjoint_equal_in_count_and_equal_one_process(remainder):
    mask = np.zeros(100, bool)
    mask[::3] = True  # 34 targets: 4 global batches of 8 + 2
    ranks = [batches(mask, 4, rank=r, size=2, remainder=remainder) for r in range(2)]
    single = batches(mask, 8, remainder=remainder)
    expected = graphs.num_target_batches(34, 4, 2, remainder)
    assert (
        len(ranks[0])
        == len(ranks[1])
        == len(single)
        == expected
        == (5 if remainder == "pad" else 4)
    )
    for b0, b1, one in zip(ranks[0], ranks[1], single):
        assert b0.nodes.shape == b1.nodes.shape == (4,)
        assert np.array_equal(np.concatenate([b0.nodes, b1.nodes]), one.nodes)
        assert np.array_equal(np.concatenate([b0.weights, b1.weights]), one.weights)
    real = [b.nodes[b.weights == 1] for rank in ranks for b in rank]
    real = np.concatenate(real)
    assert len(set(real.tolist())) == real.size  # disjoint across ranks and batches
    assert set(real.tolist()) <= set(np.flatnonzero(mask).tolist())
    if remainder == "pad":
        assert np.array_equal(np.sort(real), np.flatnonzero(mask))  # every target once
        assert sum(b.weights.sum() for rank in ranks for b in rank) == 34
    else:
        assert real.size == 32


def test_each_epoch_has_its_own_order_and_repeats_with_the_seed():
    mask = np.ones(50, bool)
    first = np.concatenate([b.nodes for b in batches(mask, 10, epoch=0)])
    again = np.concatenate([b.nodes for b in batches(mask, 10, epoch=0)])
    second = np.concatenate([b.nodes for b in batches(mask, 10, epoch=1)])
    assert np.array_equal(first, again)
    assert not np.array_equal(first, second)
    assert np.array_equal(np.sort(first), np.sort(second))


def test_bad_batching_arguments_are_errors():
    with pytest.raises(ValueError, match=r"remainder must be one of \('pad', 'drop'\)"):
        batches(np.ones(4, bool), 2, remainder="wrap")
    with pytest.raises(ValueError, match="rank=2, size=2"):
        batches(np.ones(4, bool), 2, rank=2, size=2)
    with pytest.raises(ValueError, match="selects no nodes"):
        batches(np.zeros(4, bool), 2)
