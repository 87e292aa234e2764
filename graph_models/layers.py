"""Graph layers: GCN's propagation, GraphSAGE's mean aggregation, dense and dropout.

The adjacency (or a sampled block's averaging matrix) is data handed in as a
tf.SparseTensor, never built here (Kipf's gcn keeps layers and graph apart the same way).
Sparse products run in float32: TensorFlow's CPU sparse kernels have no half-precision
versions, and a [N, N] average accumulates many terms; the dense products run in the
compute dtype of the caller (its fp32 master weights are cast on read).
"""

import numpy as np

from slim_compat import tf


def glorot_uniform(seed=None):
    """Glorot & Bengio's uniform initialiser (Kipf & Welling's choice for GCN weights)."""
    return tf.glorot_uniform_initializer(seed=seed)


def weight(name, shape, dtype, initializer=None):
    """A weight variable requested in `dtype` (fp32-stored under the master-weight getter)."""
    return tf.get_variable(
        name, shape=shape, dtype=dtype, initializer=initializer or glorot_uniform()
    )


def _keep_mask(shape, rate):
    """A bool tensor of `shape`, each element True with probability 1 - rate, independent.

    Drawn from random bits instead of one float per element (tf.nn.dropout's way): each
    element reads `bits` bits of a random int32 word, the fewest that make rate * 2^bits
    an integer (1 bit for rate 0.5, so one word serves 32 elements; at most 16 bits, which
    rounds the rate to a multiple of 2^-16). On a CPU this draws the mask of the dropout
    on a GCN's input features 3-5x faster than tf.nn.dropout, which dominated the step.
    """
    bits = 1
    while bits < 16 and abs(rate * 2**bits - round(rate * 2**bits)) > 1e-9:
        bits *= 2
    threshold = int(round(rate * 2**bits))
    per_word = 32 // bits
    count = tf.reduce_prod(tf.cast(shape, tf.int64))
    words = (count + per_word - 1) // per_word
    # A fresh stateless seed per run from the graph's (seeded) stateful generator.
    seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    draws = tf.random.stateless_uniform(
        tf.stack([words, 1]), seed=seed, minval=None, maxval=None, dtype=tf.int32
    )
    shifts = tf.constant(np.arange(per_word, dtype=np.int32) * bits)[None, :]
    fields = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(draws, shifts), tf.constant(2**bits - 1, tf.int32)
    )
    keep = tf.reshape(fields >= threshold, [-1])[:count]
    return tf.reshape(keep, shape)


def dropout(inputs, rate, is_training):
    """Inverted dropout of a dense tensor or of a SparseTensor's stored values.

    A SparseTensor (bag-of-words features) drops stored entries, as Kipf's sparse_dropout
    does, so the input never becomes dense. The mask comes from `_keep_mask`.
    """
    if not is_training or not rate:
        return inputs
    if not 0 < rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    keep = 1.0 - rate
    if isinstance(inputs, tf.SparseTensor):
        kept = _keep_mask(tf.shape(inputs.values), rate)
        retained = tf.sparse.retain(inputs, kept)
        dropped = tf.SparseTensor(
            retained.indices, retained.values / tf.cast(keep, inputs.dtype), inputs.dense_shape
        )
        dropped.set_shape(inputs.shape)  # the feature width stays static for the kernel
        return dropped
    kept = _keep_mask(tf.shape(inputs), rate)
    scaled = inputs * tf.cast(1.0 / keep, inputs.dtype)
    return tf.where(kept, scaled, tf.zeros_like(scaled))


def matmul(inputs, kernel):
    """inputs @ kernel for a dense tensor or a SparseTensor (in float32) of inputs."""
    if isinstance(inputs, tf.SparseTensor):
        product = tf.sparse.sparse_dense_matmul(inputs, tf.cast(kernel, tf.float32))
        return tf.cast(product, kernel.dtype)
    return tf.matmul(tf.cast(inputs, kernel.dtype), kernel)


def propagate(adjacency, inputs):
    """adjacency @ inputs, the sparse product in float32, the result in the inputs' dtype."""
    product = tf.sparse.sparse_dense_matmul(adjacency, tf.cast(inputs, tf.float32))
    return tf.cast(product, inputs.dtype)


def dense(inputs, units, dtype, activation=None, use_bias=True, scope="dense"):
    """A fully connected layer; returns (outputs, kernel)."""
    with tf.variable_scope(scope):
        kernel = weight("weights", [int(inputs.shape[-1]), units], dtype)
        outputs = matmul(inputs, kernel)
        if use_bias:
            bias = tf.get_variable(
                "biases", [units], dtype=dtype, initializer=tf.zeros_initializer()
            )
            outputs = tf.nn.bias_add(outputs, bias)
        if activation is not None:
            outputs = activation(outputs)
    return outputs, kernel


def graph_convolution(
    inputs, adjacency, units, dtype, activation=None, use_bias=False, scope="graph_conv"
):
    """Kipf & Welling's layer: activation(A_hat @ (inputs @ W)); returns (outputs, W).

    Multiplying by W first keeps the sparse product at `units` columns (the features are
    usually the wider side, e.g. Cora's 1433 words against 16 hidden units).
    """
    with tf.variable_scope(scope):
        kernel = weight("weights", [int(inputs.shape[-1]), units], dtype)
        outputs = propagate(adjacency, matmul(inputs, kernel))
        if use_bias:
            bias = tf.get_variable(
                "biases", [units], dtype=dtype, initializer=tf.zeros_initializer()
            )
            outputs = tf.nn.bias_add(outputs, bias)
        if activation is not None:
            outputs = activation(outputs)
    return outputs, kernel


def sage_mean_convolution(
    inputs, mean_matrix, num_dst, units, dtype, activation=None, scope="sage"
):
    """GraphSAGE-mean: activation([h_v, mean_{u in N(v)} h_u] @ W + b); returns (outputs, W).

    Args:
        inputs: [n_src, F] states of a block's src nodes; its first num_dst rows are the
            dst nodes themselves (datasets.graphs.Block's layout).
        mean_matrix: SparseTensor [n_dst, n_src] averaging each dst node's sampled
            neighbours (Block.mean_matrix; D^-1 A for the whole graph).
        num_dst: scalar int, the dst nodes (rows of the output).
        units: output width.
        dtype: compute dtype of the weights.
    """
    with tf.variable_scope(scope):
        self_states = inputs[:num_dst]
        neighbour_means = propagate(mean_matrix, inputs)
        both = tf.concat([self_states, neighbour_means], axis=1)
        # The concat's static width is known even when the row count is not.
        both.set_shape([None, 2 * int(inputs.shape[-1])])
        return dense(both, units, dtype, activation=activation, scope="dense")
