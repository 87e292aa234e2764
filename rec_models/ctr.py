"""Click-through-rate models over Criteo's 13 dense and 26 categorical fields.

The categorical ids index ONE embedding table with per-field offsets (datasets/criteo.py,
Hetu's and DLRM's single-table layout); dense features are log(x + 1) already.

* Logistic regression: the baseline, a weight per id and per dense feature.
* Wide&Deep (Cheng et al. 2016, "Wide & Deep Learning for Recommender Systems"): a wide
  linear part (a weight per id, i.e. a [num_rows, 1] table, and per dense feature) plus a
  deep tower on the concatenated embeddings and dense features; the logits add up. The
  paper trains the wide part with FTRL and the deep part with AdaGrad.
* DeepFM (Guo et al. 2017, "DeepFM: A Factorization-Machine based Neural Network for CTR
  Prediction"): FM's first order (as the wide part) + FM's second order over the field
  embeddings, 0.5 * sum_k((sum_f v_fk)^2 - sum_f v_fk^2), + a deep tower sharing those
  embeddings.
* DCN (Wang et al. 2017, "Deep & Cross Network for Ad Click Predictions"): x0 = [flat
  embeddings, dense]; cross layers x_{l+1} = x0 * (x_l . w_l) + b_l + x_l (3 of them) beside
  a deep tower on x0; both outputs concatenated into one logit.

Towers are 3 x 256 ReLU (Hetu's heads use 256-unit layers). Every model returns
(logits [batch] fp32, end_points).

    logits, end_points = ctr.deepfm(dense, sparse, num_rows, Embeddings(), config=config)

Variable scopes: embedding (the shared table), wide/{first_order,dense,bias} (the linear
part, FTRL's with --optimizer=wide_ftrl), fm, deep/tower/layer_i, deep/output,
cross/layer_i, prediction.
"""

import collections

from rec_models import layers
from slim_compat import tf

CTRConfig = collections.namedtuple(
    "CTRConfig", ["embedding_dim", "hidden_units", "num_cross_layers"]
)
DEFAULT_CONFIG = CTRConfig(embedding_dim=16, hidden_units=(256, 256, 256), num_cross_layers=3)
#: The scope of the linear ("wide") part of every CTR model.
WIDE_SCOPE = "wide"


def _linear_part(dense, sparse, num_rows, embeddings, dtype):
    """Sum of a weight per id, a weight per dense feature and a bias -> [batch, 1]."""
    with tf.variable_scope(WIDE_SCOPE):
        weights = embeddings.lookup("first_order", sparse, num_rows, 1, dtype)  # [b, f, 1]
        return tf.reduce_sum(weights, axis=1) + layers.dense(dense, 1, "dense")


def _field_embeddings(sparse, num_rows, embeddings, dtype, config):
    return embeddings.lookup("embedding", sparse, num_rows, config.embedding_dim, dtype)


def _deep_input(fields, dense):
    flat = tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])
    return tf.concat([flat, dense], axis=-1)


def _tower(x, config):
    with tf.variable_scope("deep"):
        return layers.mlp(x, config.hidden_units, "tower")


def _finish(logits, end_points):
    end_points["logits"] = logits = tf.cast(tf.squeeze(logits, axis=-1), tf.float32)
    return logits, end_points


def logistic_regression(
    dense, sparse, num_rows, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG
):
    """Linear in the one-hot ids and the dense features.

    Args:
        dense: float [batch, 13]; sparse: int [batch, 26] (rows of the one table).
        num_rows: rows of the table; embeddings: a layers.Embeddings.
        dtype: the compute dtype; config: a CTRConfig.
    """
    dense = tf.cast(dense, dtype)
    linear = _linear_part(dense, sparse, num_rows, embeddings, dtype)
    return _finish(linear, {"wide": linear})


def wide_deep(dense, sparse, num_rows, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG):
    """Wide (linear) + deep (tower on embeddings and dense) logits. Args as logistic_regression."""
    dense = tf.cast(dense, dtype)
    wide = _linear_part(dense, sparse, num_rows, embeddings, dtype)
    fields = _field_embeddings(sparse, num_rows, embeddings, dtype, config)
    deep = _tower(_deep_input(fields, dense), config)
    with tf.variable_scope("deep"):
        deep = layers.dense(deep, 1, "output")
    return _finish(wide + deep, {"wide": wide, "deep": deep})


def deepfm(dense, sparse, num_rows, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG):
    """FM first order + FM second order + deep tower. Args as logistic_regression."""
    dense = tf.cast(dense, dtype)
    first = _linear_part(dense, sparse, num_rows, embeddings, dtype)
    fields = _field_embeddings(sparse, num_rows, embeddings, dtype, config)  # [b, f, k]
    with tf.name_scope("fm"):
        second = fm_second_order(fields)
    deep = _tower(_deep_input(fields, dense), config)
    with tf.variable_scope("deep"):
        deep = layers.dense(deep, 1, "output")
    return _finish(
        first + second + deep, {"first_order": first, "second_order": second, "deep": deep}
    )


def fm_second_order(fields):
    """FM's pairwise term 0.5 * sum_k((sum_f v_fk)^2 - sum_f v_fk^2) of [b, f, k] -> [b, 1].

    Its gradient is written out, d/dv_fk = upstream * (sum_f' v_f'k - v_fk): two
    elementwise passes over [b, f, k] where autodiff's chain through the squares and sums
    took six (two tiles, four products; ~25 ms of a traced DeepFM step at batch 8192).
    The same derivative, up to float rounding.
    """

    @tf.custom_gradient
    def second_order(fields):
        field_sum = tf.reduce_sum(fields, axis=1)  # [b, k]
        square_of_sum = tf.square(field_sum)
        sum_of_squares = tf.reduce_sum(tf.square(fields), axis=1)
        value = 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)

        def grad(upstream):  # upstream: [b, 1]
            return upstream[:, :, None] * (field_sum[:, None, :] - fields)

        return value, grad

    return second_order(fields)


def _cross_layers(x0, num_layers):
    x = x0
    with tf.variable_scope("cross"):
        for i in range(num_layers):
            with tf.variable_scope(f"layer_{i}"):
                width = x0.shape[-1]
                w = tf.get_variable(
                    "kernel",
                    [width, 1],
                    dtype=x0.dtype,
                    initializer=tf.glorot_uniform_initializer(),
                )
                b = tf.get_variable(
                    "bias", [width], dtype=x0.dtype, initializer=tf.zeros_initializer()
                )
                x = x0 * tf.matmul(x, w) + b + x
    return x


def dcn(dense, sparse, num_rows, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG):
    """Cross network beside a deep tower, concatenated into one logit. Args as logistic_regression."""
    dense = tf.cast(dense, dtype)
    fields = _field_embeddings(sparse, num_rows, embeddings, dtype, config)
    x0 = _deep_input(fields, dense)
    cross = _cross_layers(x0, config.num_cross_layers)
    deep = _tower(x0, config)
    logits = layers.dense(tf.concat([cross, deep], axis=-1), 1, "prediction")
    return _finish(logits, {"cross": cross, "deep": deep})
