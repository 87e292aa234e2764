"""Helpers of the graph tests: graphs as tensors, a plain session loop to train a model.

(Imported as tests.graph_models.graph_testing: with --import-mode=importlib a conftest.py
cannot be imported by name.)
"""

import numpy as np

from datasets import graphs
from slim_compat import tf


def sparse(matrix):
    """A constant tf.SparseTensor of a scipy.sparse matrix."""
    return tf.SparseTensor(*graphs.sparse_tensor_parts(matrix))


def full_graph_inputs(graph, entry, num_layers=2):
    """The model inputs of the whole graph for a models_factory entry."""
    features = graph.features
    inputs = {"features": sparse(features) if hasattr(features, "tocsr") else tf.constant(features)}
    if entry.graph_input == "adjacency":
        inputs["adjacency"] = sparse(graphs.normalized_adjacency(graph))
    elif entry.graph_input == "blocks":
        from tasks.node_classification import mean_adjacency

        inputs["blocks"] = [(sparse(mean_adjacency(graph)), graph.num_nodes)] * num_layers
    return inputs


def train_full_batch(graph, model_fn, steps=200, learning_rate=0.01, seed=0, **hparams):
    """Trains model_fn full-batch; returns (test accuracy, val accuracy or None).

    Adam on the train mask's mean cross-entropy plus the model's regularisation, one
    full-graph step per epoch, like Kipf & Welling's training (no early stopping).
    """
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        inputs = {
            "features": tf.constant(np.asarray(graph.features.todense()))
            if hasattr(graph.features, "todense")
            else tf.constant(graph.features),
            "adjacency": sparse(graphs.normalized_adjacency(graph)),
        }
        labels = tf.constant(np.maximum(graph.labels, 0))
        num_classes = graph.num_classes
        with tf.variable_scope("model"):
            logits, end_points = model_fn(inputs, num_classes, is_training=True, **hparams)
        with tf.variable_scope("model", reuse=True):
            eval_logits, _ = model_fn(inputs, num_classes, is_training=False, **hparams)
        mask = tf.constant(graph.train_mask.astype(np.float32))
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        loss = tf.reduce_sum(mask * losses) / tf.reduce_sum(mask)
        loss += end_points["regularization_loss"]
        step = tf.train.AdamOptimizer(learning_rate).minimize(loss)
        predictions = tf.argmax(eval_logits, axis=1)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for _ in range(steps):
                session.run(step)
            predicted = session.run(predictions)
    correct = predicted == graph.labels
    return correct[graph.test_mask].mean(), (
        correct[graph.val_mask].mean() if graph.val_mask.any() else None
    )
