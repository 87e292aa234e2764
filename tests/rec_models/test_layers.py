"""rec_models/layers.py: a lookup's cheaper gradient equals the plain gather's bitwise."""

import numpy as np
import pytest

from rec_models import layers
from slim_compat import tf


@pytest.mark.parametrize("dim", [1, 4])
def test_lookup_gradient_equals_a_plain_gather_bitwise(graph, dim):
    rng = np.random.default_rng(0)
    rows = 50
    ids_value = rng.integers(0, rows, (64, 5))  # many repeats per row
    ids = tf.constant(ids_value)
    weights = tf.constant(rng.standard_normal((64, 5, dim)).astype(np.float32) * 1e3)
    with tf.variable_scope("m"):
        looked_up = layers.Embeddings().lookup("table", ids, rows, dim)
    (table,) = tf.trainable_variables()
    plain = tf.nn.embedding_lookup(table, ids)
    (grad,) = tf.gradients(tf.reduce_sum(looked_up * weights), [table])
    (want,) = tf.gradients(tf.reduce_sum(plain * weights), [table])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got_rows, want_rows = session.run([looked_up, plain])
        got = session.run(tf.convert_to_tensor(grad))
        want = session.run(tf.convert_to_tensor(want))
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_array_equal(got, want)
    # Rows looked up get a gradient, the others none.
    assert np.count_nonzero(got.any(axis=1)) == len(np.unique(ids_value))
