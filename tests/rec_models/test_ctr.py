"""rec_models/ctr.py: FM's second order with its written-out gradient equals autodiff's."""

import numpy as np

from rec_models import ctr
from slim_compat import tf


def _autodiff_second_order(fields):
    square_of_sum = tf.square(tf.reduce_sum(fields, axis=1))
    sum_of_squares = tf.reduce_sum(tf.square(fields), axis=1)
    return 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)


def test_fm_second_order_value_and_gradient(graph):
    rng = np.random.default_rng(0)
    fields_value = rng.standard_normal((6, 5, 4)).astype(np.float32)
    upstream = tf.constant(rng.standard_normal((6, 1)).astype(np.float32))
    fields = tf.constant(fields_value)
    got = ctr.fm_second_order(fields)
    want = _autodiff_second_order(fields)
    (got_grad,) = tf.gradients(got, [fields], grad_ys=upstream)
    (want_grad,) = tf.gradients(want, [fields], grad_ys=upstream)
    with tf.Session() as session:
        got, want, got_grad, want_grad, up = session.run([got, want, got_grad, want_grad, upstream])
    np.testing.assert_array_equal(got, want)  # the forward ops are the same
    # Pairwise products by hand: sum over f < g of <v_f, v_g>.
    pairs = sum(
        fields_value[:, f] * fields_value[:, g] for f in range(5) for g in range(f + 1, 5)
    ).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, pairs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-6, atol=1e-6)
    by_hand = up[:, :, None] * (fields_value.sum(axis=1, keepdims=True) - fields_value)
    np.testing.assert_allclose(got_grad, by_hand, rtol=1e-6, atol=1e-6)
