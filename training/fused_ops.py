"""Fused CPU kernels for GELU, dropout, layer norm and the attention softmax, with gradients.

TensorFlow without XLA runs each element-wise op as its own pass over memory: google's
tanh GELU is 8 ops forward and about 15 backward, a layer norm about 9 and 15, dropout 4
and 2, and the attention softmax adds its scale, mask, fp32 casts and dropout. On
BERT-Base's [4096, 3072] feed-forward activations every such pass moves 100 MB.
`training/kernels/fused_ops.cc` does each in one pass (see its header). scripts/setup.sh
compiles it into the virtualenv beside a stamp naming the source's sha256 and the
TensorFlow it was built against.

Each function here uses the library when it is built for this source and TensorFlow, the
CPU has the instructions it was compiled for (AVX2, FMA, F16C) and no GPU is visible;
otherwise (or with TFZOO_FUSED_OPS=0) it builds the plain TensorFlow ops it replaces, the
reference the tests compare the kernels with. TFZOO_FUSED_OPS=<path> loads that library.

    y = fused_ops.gelu(x)
    y = fused_ops.dropout(x, rate=0.1)
    y = fused_ops.layer_norm(x, gamma, beta, epsilon=1e-12)   # the last axis, in fp32
    probs = fused_ops.attention_softmax(scores, adder, scale=0.125, rate=0.1)
"""

import contextlib
import hashlib
import math
import os
import sys

from absl import logging

from slim_compat import tf

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "fused_ops.cc")
#: Where scripts/setup.sh writes the library (and LIBRARY + ".stamp").
LIBRARY = os.path.join(sys.prefix, "lib", "tfzoo", "fused_ops.so")
ENV_VARIABLE = "TFZOO_FUSED_OPS"
#: The instructions setup.sh compiles for (-mavx2 -mfma -mf16c), as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "fma", "f16c")

_ELEMENTWISE_DTYPES = (tf.float32, tf.bfloat16, tf.float16)
_state = {"loaded": False, "library": None, "why": None}


def build_stamp(source=SOURCE):
    """The stamp a library built from `source` for this TensorFlow carries."""
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return f"{digest} tensorflow-{tf.__version__}"


def _cpu_lacks():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS if flag not in present]
    except OSError:
        pass
    return list(CPU_FLAGS)  # no /proc/cpuinfo: cannot tell, so do not risk it


def _load():
    """(the loaded library or None, why not)."""
    setting = os.environ.get(ENV_VARIABLE, "")
    if setting == "0":
        return None, f"{ENV_VARIABLE}=0"
    path = setting if setting not in ("", "1") else LIBRARY
    if not os.path.isfile(path):
        return None, f"{path} is not built (run scripts/setup.sh)"
    try:
        with open(path + ".stamp", encoding="utf-8") as f:
            stamp = f.read().strip()
    except OSError:
        stamp = None
    if stamp != build_stamp():
        return None, (
            f"{path} was built from another fused_ops.cc or TensorFlow ({stamp!r}); "
            "run scripts/setup.sh"
        )
    lacks = _cpu_lacks()
    if lacks:
        return None, f"this CPU lacks {', '.join(lacks)}, which {path} is compiled for"
    if tf.config.list_physical_devices("GPU"):
        return None, "a GPU is visible and the kernels are CPU-only"
    library = tf.load_op_library(path)
    _register_gradients(library)
    return library, None


@contextlib.contextmanager
def plain_ops():
    """Inside, the functions build plain TensorFlow ops: for graphs that leave this process
    (SavedModel, ONNX), which must run where the library is not loaded."""
    previous = _state.get("plain", False)
    _state["plain"] = True
    try:
        yield
    finally:
        _state["plain"] = previous


def library():
    """The loaded kernel library, or None (then `unavailable_reason()` says why)."""
    if _state.get("plain"):
        return None
    if not _state["loaded"]:
        _state["library"], _state["why"] = _load()
        _state["loaded"] = True
        if _state["library"] is None:
            logging.info("fused kernels not used: %s; plain TensorFlow ops instead", _state["why"])
    return _state["library"]


def unavailable_reason():
    """Why the kernels are not used, or None when they are."""
    library()
    return _state["why"]


def _register_gradients(lib):
    @tf.RegisterGradient("TfzooGelu")
    def _gelu_grad(op, dy):
        return lib.tfzoo_gelu_grad(dy, op.inputs[0])

    @tf.RegisterGradient("TfzooDropout")
    def _dropout_grad(op, dy, _unused_dmask):
        return lib.tfzoo_dropout_grad(dy, op.outputs[1], rate=op.get_attr("rate"))

    @tf.RegisterGradient("TfzooAttentionSoftmax")
    def _attention_softmax_grad(op, d_dropped, d_probs, _unused_dmask):
        scale = op.get_attr("scale")
        probs = op.outputs[1]
        if d_dropped is None:
            d_dropped = tf.zeros_like(probs)
        dscores = lib.tfzoo_attention_softmax_grad(
            d_dropped, probs, op.outputs[2], scale=scale, rate=op.get_attr("rate")
        )
        if d_probs is not None:  # the probabilities were used beside the dropped ones
            p, g = tf.cast(probs, tf.float32), tf.cast(d_probs, tf.float32)
            direct = scale * p * (g - tf.reduce_sum(g * p, axis=-1, keepdims=True))
            dscores += tf.cast(direct, dscores.dtype)
        return dscores, None  # the mask adder is not trained

    @tf.RegisterGradient("TfzooLayerNorm")
    def _layer_norm_grad(op, dy, _unused_dmean, _unused_drstd):
        dx, dgamma, dbeta = lib.tfzoo_layer_norm_grad(
            dy, op.inputs[0], op.inputs[1], op.outputs[1], op.outputs[2]
        )
        return dx, dgamma, dbeta


# ------------------------------------------------------------ the functions and references


def reference_gelu(x):
    """GELU with the tanh approximation (Hendrycks & Gimpel 2016) as plain TF ops."""
    cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    return x * cdf


def gelu(x):
    """GELU, tanh approximation: one fused pass (and one for its gradient) when built."""
    lib = library()
    if lib is None or x.dtype.base_dtype not in _ELEMENTWISE_DTYPES:
        return reference_gelu(x)
    return lib.tfzoo_gelu(x)


def dropout(x, rate, seed=None):
    """Zeroes each value with probability `rate`, scales the rest by 1 / (1 - rate).

    With the kernels: one pass that also writes a uint8 keep-mask for the gradient, seeded
    like tf.nn.dropout (the graph seed and `seed`); else tf.nn.dropout.
    """
    if not rate:
        return x
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    lib = library()
    x = tf.convert_to_tensor(x)
    if lib is None or x.dtype.base_dtype not in _ELEMENTWISE_DTYPES:
        return tf.nn.dropout(x, rate=rate, seed=seed)
    seed1, seed2 = tf.compat.v1.get_seed(seed)
    return lib.tfzoo_dropout(x, rate=float(rate), seed=seed1 or 0, seed2=seed2 or 0).y


def reference_attention_softmax(scores, adder, scale, rate, seed=None):
    """dropout(softmax(scores * scale + adder)) as plain TF ops, the softmax in fp32."""
    logits = scores * tf.cast(scale, scores.dtype) + adder
    probs = tf.cast(tf.nn.softmax(tf.cast(logits, tf.float32)), scores.dtype)
    return tf.nn.dropout(probs, rate=rate, seed=seed) if rate else probs


def attention_softmax(scores, adder, scale, rate, seed=None):
    """Attention weights: dropout(softmax(scores * scale + adder)) over the last axis.

    Args:
        scores: [batch, heads, queries, keys] query-key products (fp32, bf16 or fp16).
        adder: [batch, 1, 1, keys], added after scaling (0, or -10000 on padding).
        scale: the scores' factor (1 / sqrt(head size)).
        rate: the dropout rate (0: none).

    With the kernels: one pass forward (the softmax in fp32 registers) and one backward.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    lib = library()
    if lib is None or scores.dtype.base_dtype not in _ELEMENTWISE_DTYPES:
        return reference_attention_softmax(scores, adder, scale, rate, seed)
    seed1, seed2 = tf.compat.v1.get_seed(seed) if rate else (0, 0)
    return lib.tfzoo_attention_softmax(
        scores,
        tf.cast(adder, scores.dtype),
        scale=float(scale),
        rate=float(rate),
        seed=seed1 or 0,
        seed2=seed2 or 0,
    ).dropped


def reference_layer_norm(x, gamma, beta, epsilon):
    """Layer normalisation of x's last axis in fp32 as plain TF ops, in x's dtype."""
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
    out = (x32 - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta
    return tf.cast(out, x.dtype)


def layer_norm(x, gamma, beta, epsilon):
    """Layer normalisation of x's last axis in fp32 (fp32 gamma and beta), in x's dtype."""
    lib = library()
    if lib is None or x.dtype.base_dtype not in _ELEMENTWISE_DTYPES:
        return reference_layer_norm(x, gamma, beta, epsilon)
    return lib.tfzoo_layer_norm(x, gamma, beta, epsilon=float(epsilon)).y
