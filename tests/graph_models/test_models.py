"""graph_models: every registered model builds and learns; GCN and GraphSAGE compute what
their papers say; GCN beats an MLP where the graph, not the features, tells the class."""

import numpy as np
import pytest
import scipy.sparse as sp

from datasets import graph_formats, graphs
from graph_models import gcn, graphsage, models_factory
from slim_compat import tf
from tests.graph_models.graph_testing import full_graph_inputs, sparse, train_full_batch


@pytest.fixture(scope="module")
def small_graph():
    return graph_formats.planted_partition(
        60,
        3,
        p_in=0.3,
        p_out=0.02,
        feature_noise=1.0,
        seed=1,
        num_features=5,
        train_per_class=4,
        num_val=10,
        num_test=20,
    )


def _int_graph(graph):
    """The same graph with two integer feature columns (for gcn_embedding)."""
    ids = np.stack([np.arange(graph.num_nodes) % 7, np.arange(graph.num_nodes) % 3], axis=1)
    return ids.astype(np.int64), 10


@pytest.mark.parametrize("name", sorted(models_factory.MODELS))
def test_every_model_builds_and_every_variable_gets_a_gradient(name, small_graph, graph):
    entry = models_factory.get_model(name)
    inputs = full_graph_inputs(small_graph, entry)
    kwargs = {}
    if entry.feature_kind == "ids":
        ids, num_ids = _int_graph(small_graph)
        inputs["features"] = tf.constant(ids)
        kwargs["num_ids"] = num_ids
    logits, end_points = entry.fn(inputs, 3, is_training=True, **kwargs)
    assert logits.dtype == tf.float32
    loss = tf.reduce_sum(logits**2) + end_points["regularization_loss"]
    variables = tf.trainable_variables()
    assert variables
    grads = tf.gradients(loss, variables)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        values, grad_values = session.run([logits, grads])
    assert values.shape == (small_graph.num_nodes, 3)
    assert np.isfinite(values).all()
    for var, grad in zip(variables, grad_values):
        grad = grad.values if hasattr(grad, "values") else grad
        assert grad is not None and np.abs(grad).sum() > 0, var.name


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="gcn, .*graphsage_mean"):
        models_factory.get_model("gat")


def test_gcn_is_kipf_and_wellings_two_layers(small_graph, graph):
    """Z = A relu(A X W0) W1, no biases, 16 hidden, L2 5e-4 on W0 only, dropout in training."""
    a_hat = graphs.normalized_adjacency(small_graph)
    inputs = {"features": tf.constant(small_graph.features), "adjacency": sparse(a_hat)}
    logits, end_points = gcn.gcn(inputs, 3, is_training=False)
    train_logits, _ = gcn.gcn(inputs, 3, is_training=True, scope="gcn_train")
    variables = {v.op.name: v for v in tf.trainable_variables(scope="gcn/")}
    assert {k: v.shape.as_list() for k, v in variables.items()} == {
        "gcn/layer_1/weights": [5, 16],
        "gcn/layer_2/weights": [16, 3],
    }
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        w0, w1, z, reg = session.run(
            [
                variables["gcn/layer_1/weights"],
                variables["gcn/layer_2/weights"],
                logits,
                end_points["regularization_loss"],
            ]
        )
        first, second = session.run(train_logits), session.run(train_logits)
    x = small_graph.features
    expected = a_hat @ (np.maximum(a_hat @ (x @ w0), 0) @ w1)
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reg, 5e-4 * (w0**2).sum() / 2, rtol=1e-5)
    assert not np.allclose(first, second)  # dropout draws anew each step


def test_gcn_takes_sparse_bag_of_words_features(small_graph, graph):
    """Sparse features give the dense features' logits (and sparse dropout keeps the width)."""
    a_hat = sparse(graphs.normalized_adjacency(small_graph))
    dense_in = {"features": tf.constant(small_graph.features), "adjacency": a_hat}
    sparse_in = {"features": sparse(sp.csr_matrix(small_graph.features)), "adjacency": a_hat}
    with tf.variable_scope("m"):
        dense_logits, _ = gcn.gcn(dense_in, 3, is_training=False)
    with tf.variable_scope("m", reuse=True):
        sparse_logits, _ = gcn.gcn(sparse_in, 3, is_training=False)
        training_logits, _ = gcn.gcn(sparse_in, 3, is_training=True)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        a, b, c = session.run([dense_logits, sparse_logits, training_logits])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert c.shape == a.shape and not np.allclose(a, c)


def test_graphsage_mean_layer_concatenates_self_and_neighbour_mean(graph):
    """h' = [h_v, mean(h_u)] W + b on a hand-made block: 2 dst nodes, 4 src nodes."""
    block = graphs.Block(
        dst_nodes=np.array([7, 3]),
        src_nodes=np.array([7, 3, 1, 9]),
        edge_src=np.array([1, 2, 3, 0]),
        edge_dst=np.array([0, 0, 0, 1]),
    )
    h = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    logits, _ = graphsage.graphsage_mean(
        {"features": tf.constant(h), "blocks": [(sparse(block.mean_matrix()), 2)]},
        num_classes=2,
        is_training=False,
    )
    kernel = [v for v in tf.trainable_variables() if "weights" in v.name][0]
    bias = [v for v in tf.trainable_variables() if "biases" in v.name][0]
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(bias.assign([0.5, -0.5]))
        w, z = session.run([kernel, logits])
    means = np.stack([h[[1, 2, 3]].mean(axis=0), h[0]])
    expected = np.concatenate([h[:2], means], axis=1) @ w + [0.5, -0.5]
    np.testing.assert_allclose(z, expected, rtol=1e-5)


def test_graphsage_on_full_fanout_samples_equals_full_graph_inference(small_graph, graph):
    """With fanouts >= every degree the sampled blocks hold all neighbours: the logits of
    the targets are the whole-graph logits of those nodes."""
    from tasks.node_classification import mean_adjacency

    adjacency = graphs.adjacency(small_graph)
    targets = np.array([5, 0, 17, 5, 33])
    blocks = graphs.sample_neighbors(adjacency, targets, (1000, 1000), rng=3)
    sampled_inputs = {
        "features": tf.constant(small_graph.features[blocks[0].src_nodes]),
        "blocks": [(sparse(b.mean_matrix()), b.num_dst) for b in blocks],
    }
    whole = sparse(mean_adjacency(small_graph))
    full_inputs = {
        "features": tf.constant(small_graph.features),
        "blocks": [(whole, small_graph.num_nodes)] * 2,
    }
    with tf.variable_scope("m"):
        sampled, _ = graphsage.graphsage_mean(sampled_inputs, 3, is_training=False)
    with tf.variable_scope("m", reuse=True):
        full, _ = graphsage.graphsage_mean(full_inputs, 3, is_training=False)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        a, b = session.run([sampled, full])
    np.testing.assert_allclose(a, b[targets], rtol=1e-4, atol=1e-5)


def test_gcn_embedding_is_hetus_model(small_graph, graph):
    """Embedding [num_ids, 128] (normal, stddev 0.1), K columns concatenated, GCN 128, GCN C."""
    ids, num_ids = _int_graph(small_graph)
    inputs = {
        "features": tf.constant(ids),
        "adjacency": sparse(graphs.normalized_adjacency(small_graph)),
    }
    gcn.gcn_embedding(inputs, 3, is_training=False, num_ids=num_ids)
    shapes = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert shapes == {
        "gcn_embedding/embeddings": [10, 128],
        "gcn_embedding/layer_1/weights": [256, 128],
        "gcn_embedding/layer_2/weights": [128, 3],
    }
    with pytest.raises(ValueError, match="num_ids"):
        gcn.gcn_embedding(inputs, 3, scope="other")


def test_gcn_beats_an_mlp_where_the_graph_tells_the_class():
    """Planted partition: features are the class mean under N(0, 3^2) noise per dimension
    (16 dims), each node has ~9 neighbours of its class and ~1 of others."""
    graph = graph_formats.planted_partition(
        1500, 5, p_in=0.03, p_out=0.001, feature_noise=3.0, seed=0, num_val=300, num_test=600
    )
    assert graphs.edge_homophily(graph) > 0.8
    gcn_accuracy, _ = train_full_batch(graph, gcn.gcn)
    mlp_accuracy, _ = train_full_batch(graph, gcn.mlp)
    assert mlp_accuracy < 0.45, mlp_accuracy  # features alone say little (chance: 0.2)
    assert gcn_accuracy > mlp_accuracy + 0.3, (gcn_accuracy, mlp_accuracy)


def test_karate_club_from_one_labelled_node_per_faction():
    """Zachary's club, labelled only at Mr. Hi (node 0) and the officer (node 33)."""
    graph = graph_formats.karate_club()
    assert graph.train_mask.sum() == 2 and graph.test_mask.sum() == 32
    accuracies = [train_full_batch(graph, gcn.gcn, steps=100, seed=s)[0] for s in range(3)]
    assert min(accuracies) >= 0.8, accuracies


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.1, 0.3])
def test_dropout_from_random_bits_keeps_the_right_share_independently(rate, graph):
    from graph_models import layers

    ones = tf.ones([1000, 201])  # 201: not a multiple of the elements one word serves
    dropped = layers.dropout(ones, rate, is_training=True)
    sparse_ones = tf.SparseTensor(
        tf.stack([tf.range(50000, dtype=tf.int64), tf.zeros([50000], tf.int64)], axis=1),
        tf.ones([50000]),
        [50000, 3],
    )
    sparse_dropped = layers.dropout(sparse_ones, rate, is_training=True)
    with tf.Session() as session:
        first, kept_values = session.run([dropped, sparse_dropped.values])
        second = session.run(dropped)
    keep = first > 0
    np.testing.assert_allclose(first[keep], 1 / (1 - rate), rtol=1e-6)
    assert keep.mean() == pytest.approx(1 - rate, abs=0.005)
    assert first.mean() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the scale
    # Neighbouring elements (the same random word) and the two runs are uncorrelated.
    flat = keep.ravel().astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.02
    assert abs(np.corrcoef(flat, (second > 0).ravel())[0, 1]) < 0.02
    assert kept_values.size == pytest.approx(50000 * (1 - rate), rel=0.03)
    assert layers.dropout(ones, rate, is_training=False) is ones
