"""training/sparse_adagrad.py: the vectorised sparse update equals the stock Adagrad's."""

import numpy as np
import pytest

from rec_models import layers
from slim_compat import tf
from training import sparse_adagrad

ROWS, DIM = 7, 3


def _train(optimizer_cls, ids_value, steps, dedupe_in_lookup):
    """Table and accumulator after `steps` Adagrad steps on a loss of rows `ids_value`."""
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        ids = tf.constant(ids_value, tf.int64)
        weights = tf.constant(np.linspace(-1.0, 2.0, ids_value.size * DIM), tf.float32)
        if dedupe_in_lookup:
            with tf.variable_scope("m"):
                rows = layers.Embeddings().lookup("table", ids, ROWS, DIM)
            (table,) = tf.trainable_variables()
        else:
            table = tf.get_variable(
                "m/table", [ROWS, DIM], initializer=tf.random_normal_initializer(seed=1)
            )
            rows = tf.nn.embedding_lookup(table, ids)
        loss = tf.reduce_sum(tf.square(tf.reshape(rows, [-1]) * weights - 0.5))
        optimizer = optimizer_cls(0.3, initial_accumulator_value=0.1)
        grads = optimizer.compute_gradients(loss, [table])
        assert isinstance(grads[0][0], tf.IndexedSlices)
        train_op = optimizer.apply_gradients(grads)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(
                table.assign(np.arange(ROWS * DIM, dtype=np.float32).reshape(ROWS, DIM) / 10)
            )
            for _ in range(steps):
                session.run(train_op)
            return session.run([table, optimizer.get_slot(table, "accumulator")]), grads


@pytest.mark.parametrize("dedupe_in_lookup", [False, True])
def test_sparse_update_equals_stock_adagrad_with_repeated_ids(dedupe_in_lookup):
    ids = np.array([[3, 1, 3], [0, 6, 3], [1, 1, 5]])  # repeats; rows 2 and 4 untouched
    (table, accum), grads = _train(sparse_adagrad.AdagradOptimizer, ids, 4, dedupe_in_lookup)
    (ref_table, ref_accum), _ = _train(tf.train.AdagradOptimizer, ids, 4, dedupe_in_lookup)
    np.testing.assert_allclose(table, ref_table, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(accum, ref_accum, rtol=1e-6, atol=1e-7)
    start = np.arange(ROWS * DIM, dtype=np.float32).reshape(ROWS, DIM) / 10
    np.testing.assert_array_equal(table[[2, 4]], start[[2, 4]])  # untouched rows stay
    assert not np.allclose(table[[0, 1, 3, 5, 6]], start[[0, 1, 3, 5, 6]])
    # A lookup through layers.Embeddings hands over distinct indices (no second dedupe).
    assert sparse_adagrad.indices_are_unique(grads[0][0].indices) == dedupe_in_lookup


def test_dense_gradient_keeps_the_stock_update(graph):
    var = tf.get_variable("w", [2, 2], initializer=tf.ones_initializer())
    optimizer = sparse_adagrad.AdagradOptimizer(0.5, initial_accumulator_value=1.0)
    train_op = optimizer.minimize(tf.reduce_sum(var * tf.constant([[1.0, 2.0], [3.0, 4.0]])))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train_op)
        got = session.run(var)
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(got, 1.0 - 0.5 * g / np.sqrt(1.0 + g * g), rtol=1e-6)


def _table_gathers(table):
    """Gathers of `table`'s variable in the default graph (forward lookup and updates)."""
    handle = table.handle
    return [
        op
        for op in tf.get_default_graph().get_operations()
        if op.type == "ResourceGather" and op.inputs[0] is handle
    ]


def test_update_reuses_the_lookups_rows_bitwise(monkeypatch):
    ids = np.array([[3, 1, 3], [0, 6, 3], [1, 1, 5]])
    reused, _ = _train(sparse_adagrad.AdagradOptimizer, ids, 3, dedupe_in_lookup=True)
    # The same optimizer forced to gather var in its update: bitwise the same weights.
    monkeypatch.setattr(sparse_adagrad, "_registered_rows", lambda var, indices: None)
    gathered, _ = _train(sparse_adagrad.AdagradOptimizer, ids, 3, dedupe_in_lookup=True)
    for got, want in zip(reused, gathered):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("registered", [False, True])
def test_registered_lookup_spares_the_update_a_gather(graph, registered):
    with tf.variable_scope("m"):
        if registered:
            rows = layers.Embeddings().lookup("table", tf.constant([2, 0, 2]), ROWS, DIM)
        else:
            table = tf.get_variable("table", [ROWS, DIM])
            rows = tf.nn.embedding_lookup(table, tf.unique(tf.constant([2, 0, 2]))[0])
    (table,) = tf.trainable_variables()
    forward = len(_table_gathers(table))
    sparse_adagrad.AdagradOptimizer(0.1).minimize(tf.reduce_sum(rows * rows))
    # Forward lookup once; the update gathers the table only without a registered lookup.
    assert len(_table_gathers(table)) == forward + (0 if registered else 1)
