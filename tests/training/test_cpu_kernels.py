"""training/cpu_kernels.py: the faster CPU gradient of MatMul computes the same values."""

import numpy as np
import pytest

from slim_compat import tf
from training import cpu_kernels


@pytest.mark.parametrize(
    "a_shape, b_shape, transpose_a, transpose_b",
    [
        ((4, 3136), (3136, 1024), False, False),  # LeNet's fc3: the transposed product
        ((3, 16), (16, 10), False, False),  # a small weight: the stock gradient
        ((3136, 4), (3136, 1024), True, False),  # transposed operands: the stock gradient
        ((4, 3136), (1024, 3136), False, True),
    ],
)
def test_gradients_equal_the_stock_ones(graph, a_shape, b_shape, transpose_a, transpose_b):
    rng = np.random.RandomState(0)
    a = tf.constant(rng.normal(size=a_shape).astype(np.float32))
    b = tf.constant(rng.normal(size=b_shape).astype(np.float32))
    upstream = None

    def grads(enabled):
        nonlocal upstream
        with cpu_kernels.faster_cpu_gradients(enabled):
            product = tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
        if upstream is None:
            upstream = tf.constant(rng.normal(size=product.shape.as_list()).astype(np.float32))
        return tf.gradients(product, [a, b], grad_ys=upstream)

    with tf.Session() as session:
        faster, stock = session.run([grads(True), grads(False)])
    for fast, slow in zip(faster, stock, strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-3)


def test_large_weights_take_the_transposed_product(graph):
    x = tf.zeros([4, 3136])
    with cpu_kernels.faster_cpu_gradients(True):
        small = tf.matmul(x, tf.zeros([3136, 10]))  # 31,360 elements: below the size
        large = tf.matmul(x, tf.zeros([3136, 1024]))
    tf.gradients([small, large], [x])
    ops = tf.get_default_graph().get_operations()
    # The stock input gradient dy W^T: a MatMul with the weight as its transposed B.
    stock_form = [
        op.inputs[1].shape.as_list()
        for op in ops
        if op.type == "MatMul" and op.name.startswith("gradients") and op.get_attr("transpose_b")
    ]
    assert [3136, 10] in stock_form and [3136, 1024] not in stock_form
    # The large weight's: W dy^T (the weight as A), then a transpose.
    assert any(
        op.type == "MatMul" and op.inputs[0].shape.as_list() == [3136, 1024]
        for op in ops
        if op.name.startswith("gradients")
    )
    assert any(op.type == "Transpose" and op.name.startswith("gradients") for op in ops)


def test_off_by_default_only_with_a_gpu(graph):
    with cpu_kernels.faster_cpu_gradients(False):
        product = tf.matmul(tf.zeros([2, 2]), tf.zeros([2, 2]))
    with pytest.raises(ValueError):
        product.op.get_attr("_gradient_op_type")
    with cpu_kernels.faster_cpu_gradients():  # no GPU on these machines: on
        product = tf.matmul(tf.zeros([2, 2]), tf.zeros([2, 2]))
    assert product.op.get_attr("_gradient_op_type") == cpu_kernels.GRADIENT_NAME.encode()


def _rewritten(x, weight):
    """Whether the input gradient of x @ weight took the transposed product (W as A)."""
    with cpu_kernels.faster_cpu_gradients(True):
        product = tf.matmul(x, weight)
    (grad_x,) = tf.gradients(product, [x])
    return grad_x.op.type == "Transpose"


@pytest.mark.parametrize(
    "dtype, rows, rewritten",
    [
        (tf.float32, 4, True),  # fp32, few rows: the stock kernel is slow, rewrite
        (tf.float32, None, True),  # rows unknown: as for few rows
        (tf.float32, cpu_kernels.MAX_ROWS, False),  # many rows: the stock kernel is as fast
        (tf.bfloat16, 4, False),  # oneDNN's bf16 kernel takes W^T at full speed
        (tf.float16, 4, False),
    ],
)
def test_only_fp32_with_few_rows_takes_the_transposed_product(graph, dtype, rows, rewritten):
    x = tf.placeholder(dtype, [rows, 3136])
    assert _rewritten(x, tf.zeros([3136, 1024], dtype)) is rewritten
