"""Faster gradients on CPU for TensorFlow ops whose stock gradient hits a slow CPU kernel.

The input gradient of a dense layer y = x W is dy W^T, which TensorFlow computes as
MatMul(dy, W, transpose_b=True). On CPU that kernel is 3-10x slower than the same product
taken the other way round, (W dy^T)^T, whenever W is large (measured with TF 2.21 on 2 AMD
EPYC cores: x [4, 3136] by W [3136, 1024], LeNet's fc3, 15.5 ms vs 1.6 ms; batch 32,
10.1 ms vs 3.3 ms; VGG's fc6-sized [32, 9216] by [9216, 4096], 90 ms vs 23 ms). For small
weights the stock form is faster. `faster_cpu_gradients()` makes the MatMuls created in
its scope use the other form for large weights; the values are the same products.

Only fp32 with few rows gains. oneDNN's bf16 (and fp16) kernel takes the transposed W at
full speed, so there the extra Transpose is pure cost (same machine, VGG's fc6 shape at
32 rows: stock 9.6 ms, rewritten 19.1 ms; BERT-Base's [4096, 3072] x [3072, 768] 96 vs
118 ms); and from ~1024 rows on (a BERT batch of 32 x 128 tokens) the fp32 stock kernel
is as fast (fp32 [1024, 3072] by [768, 3072]: 56 vs 61 ms; [4096, ...]: 183 vs 186 ms).
"""

import contextlib

from tensorflow.python.ops import math_grad

from slim_compat import tf

GRADIENT_NAME = "TfzooMatMulCPU"
# Weights of at least this many elements take the transposed product (measured faster
# from a 2048 x 1000 weight up; slower for a 1024 x 10 one).
LARGE_WEIGHT_ELEMENTS = 1 << 18
# Products with at least this many rows (static) keep the stock form (measured: rewrite
# 15.9 vs stock 17.3 ms at 256 rows, 60.8 vs 56.3 ms at 1024; see the module docstring).
MAX_ROWS = 1024


@tf.RegisterGradient(GRADIENT_NAME)
def _matmul_gradient(op, grad):
    """MatMul's gradient, with dy W^T taken as (W dy^T)^T for a large fp32 W and few rows."""
    # Every other case keeps TensorFlow's own MatMul gradient (a private function of
    # tensorflow.python.ops.math_grad, pinned with TensorFlow in requirements.txt).
    if op.get_attr("transpose_a") or op.get_attr("transpose_b"):
        return math_grad._MatMulGrad(op, grad)
    a, b = op.inputs
    if not (b.shape.is_fully_defined() and b.shape.num_elements() >= LARGE_WEIGHT_ELEMENTS):
        return math_grad._MatMulGrad(op, grad)
    rows = tf.compat.dimension_value(a.shape[0])
    if b.dtype.base_dtype != tf.float32 or (rows is not None and rows >= MAX_ROWS):
        return math_grad._MatMulGrad(op, grad)
    grad_a = tf.transpose(tf.matmul(b, grad, transpose_b=True))
    grad_b = tf.matmul(a, grad, transpose_a=True)
    return grad_a, grad_b


@contextlib.contextmanager
def faster_cpu_gradients(enabled=None):
    """Within this scope, new MatMul ops get the faster CPU gradient.

    Args:
        enabled: True / False; None: when no GPU is visible (GPU BLAS libraries take
            transposed operands at full speed, so GPUs keep the stock gradient).
    """
    if enabled is None:
        enabled = not tf.config.list_physical_devices("GPU")
    if not enabled:
        yield
        return
    with tf.get_default_graph().gradient_override_map({"MatMul": GRADIENT_NAME}):
        yield
