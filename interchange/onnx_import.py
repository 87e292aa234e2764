"""ONNX import: an ONNX image model becomes a tf.compat.v1 graph with trainable weights.

The converter is written for tfzoo (it does not use onnx-tf). It covers the ops vision
classifiers are made of (see `SUPPORTED_OPS`): convolutions (grouped and depthwise
included), Gemm / MatMul, batch normalization, max / average / global pooling,
element-wise arithmetic and activations, local response normalization, Reshape / Flatten / Squeeze / Unsqueeze /
Transpose / Concat / Pad, Softmax and the shape arithmetic that exporters emit around
Reshape (Shape, Gather, Cast, Slice). A model with other ops is refused with one error
that lists every unsupported op type (`UnsupportedOpsError`).

Weights: every floating-point initializer that a layer uses as a weight (Conv, Gemm,
MatMul, BatchNormalization, PRelu) or that enters element-wise arithmetic as a tensor of
more than one element becomes a variable created with `tf.get_variable` and initialized
with the ONNX values: trainable, except batch-norm running mean and variance, which are
non-trainable (as slim's moving statistics) and updated by ops in
`tf.GraphKeys.UPDATE_OPS` when the graph is built for training. Integer initializers
and scalars stay constants. Variables are named after their initializers (characters
TensorFlow does not accept in names become '_'), under the variable scope of the call,
so a checkpoint of an imported model restores into the same import.

Layout: ONNX image tensors are NCHW, TensorFlow's CPU convolutions and pools are NHWC.
Every 4-D ONNX value is therefore held as its NHWC transpose from the first convolution
on, and operations that depend on the axis order (Concat, Softmax, Reshape, Flatten,
Transpose, Squeeze, reductions, Pad) translate their axes or, where they must see the
ONNX order (Reshape, Flatten), transpose back first. A Transpose that only moves between
the two layouts (e.g. the NHWC -> NCHW transpose at the input of a model exported from
TensorFlow) costs nothing. Outputs are returned in ONNX layout.

Training mode (`is_training=True`) changes two things: batch normalization uses the
batch's statistics and updates the running ones (with the node's momentum), and Dropout
drops (with the node's ratio); in inference mode both follow ONNX inference semantics.

    graph_outputs = import_onnx("model.onnx", inputs={"input": images_nchw})
    network_fn = network_fn_from_onnx("model.onnx")            # like a nets_factory fn
    logits, end_points = network_fn(images_nhwc, num_classes=10, is_training=True)
"""

import collections
import re

import numpy as np

from slim_compat import slim, tf

# ONNX value P[i] of a 4-D NCHW value is axis i of its NHWC storage; NCHW axis j sits
# at storage axis _TO_NCHW[j].
_TO_NHWC = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)


class UnsupportedOpsError(ValueError):
    """The ONNX model uses op types (or op variants) this importer does not convert."""


class _Value:
    """One ONNX value: a TF tensor, possibly stored as the NHWC transpose of an NCHW value.

    Attributes:
        tensor: the TF tensor.
        nhwc: True when `tensor` is the NHWC storage of a 4-D ONNX (NCHW) value.
    """

    __slots__ = ("tensor", "nhwc")

    def __init__(self, tensor, nhwc=False):
        self.tensor = tensor
        self.nhwc = nhwc

    @property
    def rank(self):
        return self.tensor.get_shape().ndims

    def onnx_shape(self):
        """Static ONNX shape as a list (None for unknown dims), or None for unknown rank."""
        shape = self.tensor.get_shape()
        if shape.ndims is None:
            return None
        dims = shape.as_list()
        return [dims[i] for i in _TO_NCHW] if self.nhwc else dims


def _perm_compose(first, then):
    """transpose(transpose(x, first), then) == transpose(x, result)."""
    return [first[i] for i in then]


def _is_identity(perm):
    return list(perm) == list(range(len(perm)))


def _sanitize(name):
    """A TensorFlow-acceptable op / variable name from an ONNX name."""
    name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).strip("/") or "tensor"
    if not re.match(r"[A-Za-z0-9.]", name[0]):
        name = "v" + name
    return re.sub(r"/+", "/", name)


def _attributes(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


_ONNX_TO_TF_DTYPE = {
    1: tf.float32,
    2: tf.uint8,
    3: tf.int8,
    5: tf.int16,
    6: tf.int32,
    7: tf.int64,
    9: tf.bool,
    10: tf.float16,
    11: tf.float64,
    16: tf.bfloat16,
}


def load_model(model):
    """An onnx.ModelProto from a path, bytes or a ModelProto (checked with onnx.checker)."""
    import onnx

    if isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    elif not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    onnx.checker.check_model(model)
    return model


def _opset(model):
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def unsupported_ops(model):
    """Sorted op types of `model` that the importer has no converter for."""
    model = load_model(model)
    return sorted(
        {
            f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
            for node in model.graph.node
            if node.domain not in ("", "ai.onnx") or node.op_type not in _CONVERTERS
        }
    )


ImportedModel = collections.namedtuple("ImportedModel", ["inputs", "outputs", "variables"])
ImportedModel.__doc__ = """What `import_onnx` built.

inputs: ONNX input name -> the TF tensor fed to it (a placeholder unless given).
outputs: ONNX output name -> TF tensor, in ONNX layout (NCHW for 4-D values).
variables: initializer name -> the tf.Variable made from it.
"""


@slim.add_arg_scope
def import_onnx(model, inputs=None, is_training=False, weight_decay=0.0, nhwc_inputs=()):
    """Builds the ONNX model's graph in the default tf.Graph, under the current variable scope.

    Args:
        model: path, bytes or onnx.ModelProto.
        inputs: optional ONNX input name -> tensor (ONNX layout, unless listed in
            `nhwc_inputs`); inputs not given become placeholders of the ONNX shape.
        is_training: batch statistics and dropout as in training (see the module docstring).
        weight_decay: adds weight_decay * l2_loss(w) to tf.GraphKeys.REGULARIZATION_LOSSES
            for each Conv / Gemm / MatMul weight, as slim layers do.
        nhwc_inputs: names in `inputs` whose tensors are NHWC images standing for 4-D NCHW
            ONNX inputs (no transpose is built for them).

    Returns:
        an ImportedModel.

    Raises:
        UnsupportedOpsError: listing every op type of the model that cannot be converted.
    """
    model = load_model(model)
    missing = unsupported_ops(model)
    if missing:
        raise UnsupportedOpsError(
            f"The ONNX model uses {len(missing)} op type(s) this importer does not convert: "
            f"{', '.join(missing)}. Supported: {', '.join(SUPPORTED_OPS)}"
        )
    return _Importer(model, is_training, weight_decay).build(inputs or {}, set(nhwc_inputs))


class _Importer:
    def __init__(self, model, is_training, weight_decay):
        import onnx.numpy_helper

        self.model = model
        self.opset = _opset(model)
        self.is_training = is_training
        self.weight_decay = weight_decay
        self.initializers = {
            init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer
        }
        self.values = {}  # ONNX name -> _Value
        self.variables = {}  # initializer name -> (variable, perm of its storage)
        self.used_variable_names = set()

    # ------------------------------------------------------------------ inputs
    def build(self, inputs, nhwc_inputs):
        graph_inputs = {}
        for info in self.model.graph.input:
            if info.name in self.initializers:
                continue  # IR < 4 lists initializers as inputs too
            if info.name in inputs:
                tensor = tf.convert_to_tensor(inputs[info.name])
            else:
                tensor = self._placeholder(info)
            graph_inputs[info.name] = tensor
            self.values[info.name] = _Value(tensor, nhwc=info.name in nhwc_inputs)
        unknown = set(inputs) - set(graph_inputs)
        if unknown:
            raise ValueError(
                f"inputs {sorted(unknown)} are not inputs of the ONNX graph; its inputs: "
                f"{sorted(graph_inputs)}"
            )
        for node in self.model.graph.node:
            with tf.name_scope(_sanitize(node.name or node.op_type)):
                outputs = _CONVERTERS[node.op_type](self, node, _attributes(node))
            if not isinstance(outputs, (list, tuple)):
                outputs = [outputs]
            for name, value in zip(node.output, outputs):
                if name:
                    self.values[name] = value
        outputs = {
            info.name: tf.identity(
                self.onnx_layout(self.value(info.name)), name=_sanitize(info.name)
            )
            for info in self.model.graph.output
        }
        variables = {name: var for name, (var, _) in self.variables.items()}
        return ImportedModel(graph_inputs, outputs, variables)

    def _placeholder(self, info):
        tensor_type = info.type.tensor_type
        dtype = _ONNX_TO_TF_DTYPE.get(tensor_type.elem_type)
        if dtype is None:
            raise UnsupportedOpsError(
                f"input {info.name!r} has unsupported element type {tensor_type.elem_type}"
            )
        shape = None
        if tensor_type.HasField("shape"):
            shape = [
                d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
            ]
        return tf.placeholder(dtype, shape, name=_sanitize(info.name))

    # ------------------------------------------------------------------ values
    def value(self, name):
        """The _Value of an ONNX name; initializers become variables or constants."""
        if name in self.values:
            return self.values[name]
        if name in self.initializers:
            array = self.initializers[name]
            if array.dtype.kind == "f" and array.size > 1:
                return _Value(self.param(name))
            return _Value(tf.constant(array, name=_sanitize(name)))
        raise ValueError(f"ONNX value {name!r} is used before it is produced")

    def static(self, name):
        """The numpy value of an ONNX input that must be known when the graph is built, or None."""
        if not name:
            return None
        if name in self.initializers:
            return self.initializers[name]
        value = self.value(name)
        static = tf.get_static_value(value.tensor)
        if static is not None and value.nhwc:
            static = np.transpose(static, _TO_NCHW)
        return static

    def param(self, name, perm=None, trainable=True, regularize=False):
        """The variable of initializer `name`, as transpose(onnx_value, perm)."""
        array = self.initializers[name]
        perm = list(perm) if perm is not None else list(range(array.ndim))
        if name not in self.variables:
            base = _sanitize(re.sub(r":\d+$", "", name))  # 'w:0' (a TF tensor name) -> 'w'
            var_name, suffix = base, 1
            while var_name in self.used_variable_names:
                suffix += 1
                var_name = f"{base}_{suffix}"
            self.used_variable_names.add(var_name)
            regularizer = None
            if regularize and self.weight_decay:
                decay = self.weight_decay
                regularizer = lambda w: tf.multiply(decay, tf.nn.l2_loss(w), name="l2")  # noqa: E731
            variable = tf.get_variable(
                var_name,
                initializer=np.ascontiguousarray(np.transpose(array, perm)),
                trainable=trainable,
                regularizer=regularizer,
                collections=None
                if trainable
                else [tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.MODEL_VARIABLES],
            )
            self.variables[name] = (variable, perm)
        variable, stored = self.variables[name]
        if stored == perm:
            return variable
        # stored axis i is ONNX axis stored[i]; ONNX axis j is stored axis inverse[j].
        inverse = list(np.argsort(stored))
        return tf.transpose(variable, [inverse[p] for p in perm])

    def weight(self, name, perm=None, trainable=True, regularize=False):
        """A layer's weight input: its variable when it is an initializer, else its tensor."""
        if name in self.initializers:
            return self.param(name, perm, trainable, regularize)
        tensor = self.onnx_layout(self.value(name))
        return tensor if perm is None else tf.transpose(tensor, perm)

    # ------------------------------------------------------------------ layouts
    @staticmethod
    def onnx_layout(value):
        """The tensor in ONNX axis order."""
        return tf.transpose(value.tensor, _TO_NCHW) if value.nhwc else value.tensor

    def nhwc(self, value, what):
        """The NHWC tensor of a 4-D ONNX value."""
        if value.nhwc:
            return value.tensor
        if value.rank != 4:
            raise UnsupportedOpsError(f"{what} needs a 4-D (NCHW) input, got rank {value.rank}")
        return tf.transpose(value.tensor, _TO_NHWC)

    @staticmethod
    def storage_axis(value, axis):
        """Storage axis of ONNX axis `axis` (negative allowed) of `value`."""
        rank = value.rank
        axis = axis + rank if axis < 0 else axis
        return _TO_NCHW[axis] if value.nhwc else axis


# ---------------------------------------------------------------------- helpers
def _same_dtype(tensor, like):
    if tensor.dtype != like.dtype and tensor.dtype.is_floating and like.dtype.is_floating:
        return tf.cast(tensor, like.dtype)
    return tensor


def _as_nhwc_operand(value):
    """A value of rank <= 4 made to broadcast against the NHWC storage of a 4-D value.

    ONNX broadcasting aligns trailing axes, so the value is first padded with leading axes
    to rank 4 (in ONNX order) and then transposed like the storage; None when rank > 4.
    """
    tensor, rank = value.tensor, value.rank
    if rank is None or rank > 4:
        return None
    if rank < 4:
        tensor = tf.reshape(tensor, [1] * (4 - rank) + _dims(tensor))
    return tf.transpose(tensor, _TO_NHWC)


def _dims(tensor):
    """Static dims where known, dynamic ones from tf.shape, as a list for tf.reshape."""
    static = tensor.get_shape().as_list()
    dynamic = None
    dims = []
    for i, d in enumerate(static):
        if d is None:
            dynamic = tf.shape(tensor) if dynamic is None else dynamic
            dims.append(dynamic[i])
        else:
            dims.append(d)
    return dims


def _binary(fn):
    def convert(importer, node, attrs):
        a, b = importer.value(node.input[0]), importer.value(node.input[1])
        if a.nhwc or b.nhwc:
            a_t = a.tensor if a.nhwc else _as_nhwc_operand(a)
            b_t = b.tensor if b.nhwc else _as_nhwc_operand(b)
            if a_t is not None and b_t is not None:
                if a.nhwc:
                    b_t = _same_dtype(b_t, a_t)
                else:
                    a_t = _same_dtype(a_t, b_t)
                return _Value(fn(a_t, b_t), nhwc=True)
        a_t, b_t = importer.onnx_layout(a), importer.onnx_layout(b)
        if a_t.dtype.is_floating and b_t.dtype.is_floating:
            b_t = _same_dtype(b_t, a_t)
        return _Value(fn(a_t, b_t))

    return convert


def _unary(fn):
    def convert(importer, node, attrs):
        value = importer.value(node.input[0])
        return _Value(fn(value.tensor, attrs), nhwc=value.nhwc)

    return convert


def _padding(attrs, in_hw, kernel, strides, dilations, what):
    """(top, bottom, left, right) explicit padding of a 2-D conv / pool."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            if size is None:
                raise UnsupportedOpsError(f"{what}: auto_pad={auto_pad} needs static input sizes")
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
        return (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return (pads[0], pads[2], pads[1], pads[3])


def _spatial_attrs(importer, node, attrs, x_nhwc, kernel):
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    if len(kernel) != 2:
        raise UnsupportedOpsError(f"{node.op_type} {node.name!r}: only 2-D kernels are supported")
    in_hw = x_nhwc.get_shape().as_list()[1:3]
    pads = _padding(attrs, in_hw, kernel, strides, dilations, f"{node.op_type} {node.name!r}")
    return strides, dilations, pads, in_hw


def _pad_nhwc(x, pads, value=0.0):
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=value)


# ---------------------------------------------------------------------- converters
def _conv(importer, node, attrs):
    x = importer.nhwc(importer.value(node.input[0]), f"Conv {node.name!r}")
    weight_shape = (
        importer.initializers[node.input[1]].shape
        if node.input[1] in importer.initializers
        else importer.value(node.input[1]).onnx_shape()
    )
    out_channels, in_per_group, kh, kw = weight_shape
    group = attrs.get("group", 1)
    kernel = list(attrs.get("kernel_shape", [kh, kw]))
    strides, dilations, pads, _ = _spatial_attrs(importer, node, attrs, x, kernel)
    x = _pad_nhwc(x, pads)
    # HWIO for TensorFlow.
    w = _same_dtype(importer.weight(node.input[1], (2, 3, 1, 0), regularize=True), x)
    in_channels = in_per_group * group
    if group == 1:
        y = tf.nn.conv2d(x, w, [1, *strides, 1], "VALID", dilations=[1, *dilations, 1])
    elif group == in_channels and out_channels % in_channels == 0:
        # Depthwise: ONNX output channel c * m + j reads input channel c, as TF's multiplier.
        w = tf.reshape(w, [kh, kw, in_channels, out_channels // in_channels])
        y = tf.nn.depthwise_conv2d(
            x, w, [1, *strides, 1], "VALID", dilations=dilations if dilations != [1, 1] else None
        )
    else:
        xs = tf.split(x, group, axis=3)
        ws = tf.split(w, group, axis=3)
        y = tf.concat(
            [
                tf.nn.conv2d(xi, wi, [1, *strides, 1], "VALID", dilations=[1, *dilations, 1])
                for xi, wi in zip(xs, ws)
            ],
            axis=3,
        )
    if len(node.input) > 2 and node.input[2]:
        y = tf.nn.bias_add(y, _same_dtype(importer.weight(node.input[2]), y))
    return _Value(y, nhwc=True)


def _pool_geometry(importer, node, attrs, x):
    kernel = list(attrs["kernel_shape"])
    strides, dilations, pads, in_hw = _spatial_attrs(importer, node, attrs, x, kernel)
    if dilations != [1, 1]:
        raise UnsupportedOpsError(f"{node.op_type} {node.name!r}: dilated pooling is not supported")
    extra = [0, 0]
    if attrs.get("ceil_mode", 0):
        pads_hw = [(pads[0], pads[1]), (pads[2], pads[3])]
        for i, (size, k, s) in enumerate(zip(in_hw, kernel, strides)):
            if size is None:
                raise UnsupportedOpsError(
                    f"{node.op_type} {node.name!r}: ceil_mode needs static sizes"
                )
            padded = size + sum(pads_hw[i])
            out = -(-(padded - k) // s) + 1
            if (out - 1) * s >= size + pads_hw[i][0]:
                out -= 1  # a last window starting in the end padding is dropped
            extra[i] = max((out - 1) * s + k - padded, 0)
    return kernel, strides, pads, extra


def _max_pool(importer, node, attrs):
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedOpsError(f"MaxPool {node.name!r}: the Indices output is not supported")
    x = importer.nhwc(importer.value(node.input[0]), f"MaxPool {node.name!r}")
    kernel, strides, pads, extra = _pool_geometry(importer, node, attrs, x)
    lowest = x.dtype.min
    x = _pad_nhwc(x, (pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1]), lowest)
    return _Value(tf.nn.max_pool2d(x, kernel, strides, "VALID"), nhwc=True)


def _average_pool(importer, node, attrs):
    x = importer.nhwc(importer.value(node.input[0]), f"AveragePool {node.name!r}")
    kernel, strides, pads, extra = _pool_geometry(importer, node, attrs, x)
    all_pads = (pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1])
    pooled = tf.nn.avg_pool2d(_pad_nhwc(x, all_pads), kernel, strides, "VALID")
    if not any(all_pads):
        return _Value(pooled, nhwc=True)
    # Average over the cells each window counts: the image only (count_include_pad=0), or
    # also the explicit padding (=1); ceil_mode's extra cells never count.
    ones = tf.ones_like(x[:1, :, :, :1])
    if attrs.get("count_include_pad", 0):
        ones = _pad_nhwc(ones, pads, 1.0)
        mask = _pad_nhwc(ones, (0, extra[0], 0, extra[1]))
    else:
        mask = _pad_nhwc(ones, all_pads)
    counted = tf.nn.avg_pool2d(mask, kernel, strides, "VALID")
    return _Value(pooled / counted, nhwc=True)


def _global_pool(reduce_fn):
    def convert(importer, node, attrs):
        x = importer.nhwc(importer.value(node.input[0]), f"{node.op_type} {node.name!r}")
        return _Value(reduce_fn(x, axis=[1, 2], keepdims=True), nhwc=True)

    return convert


def _batch_norm(importer, node, attrs):
    value = importer.value(node.input[0])
    x = (
        value.tensor
        if (value.nhwc or value.rank == 2)
        else importer.nhwc(value, "BatchNormalization")
    )
    epsilon = attrs.get("epsilon", 1e-5)
    momentum = attrs.get("momentum", 0.9)
    scale = _same_dtype(importer.weight(node.input[1]), x)
    offset = _same_dtype(importer.weight(node.input[2]), x)
    has_running_stats = (
        node.input[3] in importer.initializers and node.input[4] in importer.initializers
    )
    if has_running_stats:
        mean = importer.param(node.input[3], trainable=False)
        variance = importer.param(node.input[4], trainable=False)
    else:
        mean = importer.weight(node.input[3])
        variance = importer.weight(node.input[4])
    axes = list(range(x.get_shape().ndims - 1))
    if importer.is_training and has_running_stats:
        batch_mean, batch_variance = tf.nn.moments(tf.cast(x, tf.float32), axes)
        for running, batch in ((mean, batch_mean), (variance, batch_variance)):
            update = tf.assign_sub(running, (running - batch) * (1.0 - momentum))
            tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
        mean, variance = batch_mean, batch_variance
    y = tf.nn.batch_normalization(
        x, _same_dtype(mean, x), _same_dtype(variance, x), offset, scale, epsilon
    )
    return _Value(y, nhwc=x.get_shape().ndims == 4)


def _gemm(importer, node, attrs):
    a = importer.onnx_layout(importer.value(node.input[0]))
    if attrs.get("transA", 0):
        a = tf.transpose(a)
    b = importer.weight(node.input[1], (1, 0) if attrs.get("transB", 0) else None, regularize=True)
    y = tf.matmul(a, _same_dtype(b, a))
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * alpha
    if len(node.input) > 2 and node.input[2]:
        c = _same_dtype(importer.weight(node.input[2]), y)
        y = y + (c * beta if beta != 1.0 else c)
    return _Value(y)


def _matmul(importer, node, attrs):
    a = importer.onnx_layout(importer.value(node.input[0]))
    b = (
        importer.weight(node.input[1], regularize=True)
        if node.input[1] in importer.initializers
        else (importer.onnx_layout(importer.value(node.input[1])))
    )
    return _Value(tf.matmul(a, _same_dtype(b, a)))


def _reshape(importer, node, attrs):
    data = importer.onnx_layout(importer.value(node.input[0]))
    shape = importer.static(node.input[1]) if len(node.input) > 1 else attrs.get("shape")
    allow_zero = attrs.get("allowzero", 0)
    if shape is not None:
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        if not allow_zero and 0 in shape:
            dims = _dims(data)
            shape = [dims[i] if s == 0 else s for i, s in enumerate(shape)]
        return _Value(tf.reshape(data, shape))
    target = tf.cast(importer.onnx_layout(importer.value(node.input[1])), tf.int32)
    if not allow_zero:
        length = target.get_shape()[0]
        if length is None:
            raise UnsupportedOpsError(f"Reshape {node.name!r}: shape of unknown length")
        target = tf.where(tf.equal(target, 0), tf.shape(data)[:length], target)
    return _Value(tf.reshape(data, target))


def _flatten(importer, node, attrs):
    data = importer.onnx_layout(importer.value(node.input[0]))
    axis = attrs.get("axis", 1)
    rank = data.get_shape().ndims
    axis = axis + rank if axis < 0 else axis
    dims = data.get_shape().as_list()
    inner = dims[axis:]
    if None not in inner:
        return _Value(tf.reshape(data, [-1, int(np.prod(inner, dtype=np.int64))]))
    shape = tf.shape(data)
    return _Value(
        tf.reshape(data, tf.stack([tf.reduce_prod(shape[:axis]), tf.reduce_prod(shape[axis:])]))
    )


def _transpose(importer, node, attrs):
    value = importer.value(node.input[0])
    rank = value.rank
    perm = list(attrs.get("perm", list(reversed(range(rank)))))
    if value.nhwc:
        plain = [_TO_NCHW[p] for p in perm]  # output axis k = storage axis _TO_NCHW[perm[k]]
    else:
        plain = perm
    if rank == 4:
        tracked = _perm_compose(plain, _TO_NHWC)  # NHWC storage of the output
        if _is_identity(tracked):
            return _Value(value.tensor, nhwc=True)
    if _is_identity(plain):
        return _Value(value.tensor)
    return _Value(tf.transpose(value.tensor, plain))


def _concat(importer, node, attrs):
    values = [importer.value(name) for name in node.input]
    axis = attrs["axis"]
    if any(v.nhwc for v in values) and all(v.rank == 4 for v in values):
        tensors = [importer.nhwc(v, "Concat") for v in values]
        tensors = [_same_dtype(t, tensors[0]) for t in tensors]
        return _Value(tf.concat(tensors, _TO_NCHW[axis % 4]), nhwc=True)
    tensors = [importer.onnx_layout(v) for v in values]
    return _Value(tf.concat(tensors, axis))


def _softmax(importer, node, attrs):
    value = importer.value(node.input[0])
    if importer.opset >= 13:
        axis = attrs.get("axis", -1)
        return _Value(
            tf.nn.softmax(value.tensor, axis=importer.storage_axis(value, axis)), nhwc=value.nhwc
        )
    # Before opset 13 Softmax flattens to 2-D at `axis` (default 1).
    data = importer.onnx_layout(value)
    axis = attrs.get("axis", 1)
    rank = data.get_shape().ndims
    axis = axis + rank if axis < 0 else axis
    if axis == rank - 1:
        return _Value(tf.nn.softmax(data, axis=-1))
    shape = tf.shape(data)
    flat = tf.reshape(data, tf.stack([tf.reduce_prod(shape[:axis]), -1]))
    return _Value(tf.reshape(tf.nn.softmax(flat, axis=-1), shape))


def _clip(importer, node, attrs):
    value = importer.value(node.input[0])
    if importer.opset >= 11:
        low = importer.static(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        high = importer.static(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    else:
        low, high = attrs.get("min"), attrs.get("max")
    x = value.tensor
    if low is not None and high is not None and float(low) == 0.0 and float(high) == 6.0:
        return _Value(tf.nn.relu6(x), nhwc=value.nhwc)
    if low is not None:
        x = tf.maximum(x, tf.cast(low, x.dtype))
    if high is not None:
        x = tf.minimum(x, tf.cast(high, x.dtype))
    return _Value(x, nhwc=value.nhwc)


def _axes(importer, node, attrs, input_index=1):
    """Axes from the attribute (old opsets) or the input (newer ones), or None."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(node.input) > input_index and node.input[input_index]:
        axes = importer.static(node.input[input_index])
        if axes is None:
            raise UnsupportedOpsError(f"{node.op_type} {node.name!r}: axes must be constant")
        return [int(a) for a in np.asarray(axes).reshape(-1)]
    return None


def _drop_axes(value, axes, fn):
    """Applies an axis-removing op, staying in storage layout when the axis order allows."""
    rank = value.rank
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if value.nhwc:
        storage_axes = sorted(_TO_NCHW[a] for a in axes)
        remaining = [_TO_NHWC[i] for i in range(4) if i not in storage_axes]
        if remaining == sorted(remaining):
            return _Value(fn(value.tensor, storage_axes))
        return _Value(fn(tf.transpose(value.tensor, _TO_NCHW), axes))
    return _Value(fn(value.tensor, axes))


def _squeeze(importer, node, attrs):
    value = importer.value(node.input[0])
    axes = _axes(importer, node, attrs)
    if axes is None:
        axes = [i for i, d in enumerate(value.onnx_shape()) if d == 1]
    return _drop_axes(value, axes, lambda t, a: tf.squeeze(t, a))


def _unsqueeze(importer, node, attrs):
    data = importer.onnx_layout(importer.value(node.input[0]))
    axes = _axes(importer, node, attrs)
    rank = data.get_shape().ndims + len(axes)
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        data = tf.expand_dims(data, axis)
    return _Value(data)


def _reduce(fn):
    def convert(importer, node, attrs):
        value = importer.value(node.input[0])
        axes = _axes(importer, node, attrs)
        if axes is None:
            if attrs.get("noop_with_empty_axes", 0):
                return value
            axes = list(range(value.rank))
        if attrs.get("keepdims", 1):
            storage = [importer.storage_axis(value, a) for a in axes]
            return _Value(fn(value.tensor, axis=storage, keepdims=True), nhwc=value.nhwc)
        return _drop_axes(value, axes, lambda t, a: fn(t, axis=a, keepdims=False))

    return convert


def _pad(importer, node, attrs):
    value = importer.value(node.input[0])
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect"):
        raise UnsupportedOpsError(
            f"Pad {node.name!r}: mode {mode!r} (supported: constant, reflect)"
        )
    if importer.opset >= 11:
        pads = importer.static(node.input[1])
        constant = importer.static(node.input[2]) if len(node.input) > 2 and node.input[2] else 0
        if len(node.input) > 3 and node.input[3]:
            raise UnsupportedOpsError(f"Pad {node.name!r}: the axes input is not supported")
    else:
        pads, constant = attrs["pads"], attrs.get("value", 0.0)
    if pads is None:
        raise UnsupportedOpsError(f"Pad {node.name!r}: pads must be constant")
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    rank = value.rank
    pairs = [[pads[i], pads[i + rank]] for i in range(rank)]
    if value.nhwc:
        pairs = [pairs[_TO_NHWC[i]] for i in range(4)]
    constant = float(np.asarray(constant).reshape(-1)[0]) if np.size(constant) else 0.0
    if mode == "reflect":
        return _Value(tf.pad(value.tensor, pairs, mode="REFLECT"), nhwc=value.nhwc)
    return _Value(tf.pad(value.tensor, pairs, constant_values=constant), nhwc=value.nhwc)


def _identity(importer, node, attrs):
    return importer.value(node.input[0])


def _dropout(importer, node, attrs):
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedOpsError(f"Dropout {node.name!r}: the mask output is not supported")
    value = importer.value(node.input[0])
    if not importer.is_training:
        return value
    ratio = attrs.get("ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        ratio = float(importer.static(node.input[1]))
    return _Value(tf.nn.dropout(value.tensor, rate=ratio), nhwc=value.nhwc)


def _constant(importer, node, attrs):
    import onnx.numpy_helper

    if "value" in attrs:
        array = onnx.numpy_helper.to_array(attrs["value"])
    elif "value_float" in attrs:
        array = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        array = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        array = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        array = np.array(attrs["value_ints"], np.int64)
    else:
        raise UnsupportedOpsError(
            f"Constant {node.name!r}: attributes {sorted(attrs)} not supported"
        )
    return _Value(tf.constant(array))


def _shape(importer, node, attrs):
    value = importer.value(node.input[0])
    shape = tf.shape(value.tensor, out_type=tf.int64)
    if value.nhwc:
        shape = tf.gather(shape, _TO_NCHW)
    start, end = attrs.get("start"), attrs.get("end")
    if start is not None or end is not None:
        shape = shape[start:end]
    return _Value(shape)


def _gather(importer, node, attrs):
    data = importer.onnx_layout(importer.value(node.input[0]))
    indices = importer.onnx_layout(importer.value(node.input[1]))
    return _Value(tf.gather(data, indices, axis=attrs.get("axis", 0)))


def _cast(importer, node, attrs):
    value = importer.value(node.input[0])
    dtype = _ONNX_TO_TF_DTYPE.get(attrs["to"])
    if dtype is None:
        raise UnsupportedOpsError(f"Cast {node.name!r}: to element type {attrs['to']}")
    return _Value(tf.cast(value.tensor, dtype), nhwc=value.nhwc)


def _slice(importer, node, attrs):
    value = importer.value(node.input[0])
    if importer.opset >= 10:
        starts = importer.static(node.input[1])
        ends = importer.static(node.input[2])
        axes = importer.static(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        steps = importer.static(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes"), None
    if starts is None or ends is None:
        raise UnsupportedOpsError(f"Slice {node.name!r}: starts and ends must be constant")
    rank = value.rank
    starts, ends = list(np.reshape(starts, -1)), list(np.reshape(ends, -1))
    axes = list(np.reshape(axes, -1)) if axes is not None else list(range(len(starts)))
    steps = list(np.reshape(steps, -1)) if steps is not None else [1] * len(starts)
    index = [slice(None)] * rank
    big = np.iinfo(np.int64).max // 2
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = importer.storage_axis(value, int(axis))
        start, end = int(start), int(end)
        index[axis] = slice(
            None if abs(start) >= big else start,
            None if abs(end) >= big else end,
            int(step),
        )
    return _Value(value.tensor[tuple(index)], nhwc=value.nhwc)


def _lrn(importer, node, attrs):
    """Local response normalization across channels (TF's has a centred, odd window)."""
    size = attrs["size"]
    if size % 2 == 0:
        raise UnsupportedOpsError(f"LRN {node.name!r}: even size {size} (only odd windows)")
    x = importer.nhwc(importer.value(node.input[0]), f"LRN {node.name!r}")
    y = tf.nn.local_response_normalization(
        x,
        depth_radius=(size - 1) // 2,
        bias=attrs.get("bias", 1.0),
        alpha=attrs.get("alpha", 1e-4) / size,  # ONNX divides the sum of squares by size
        beta=attrs.get("beta", 0.75),
    )
    return _Value(y, nhwc=True)


def _hard_sigmoid(tensor, attrs):
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return tf.clip_by_value(alpha * tensor + beta, 0.0, 1.0)


def _hard_swish(tensor, attrs):
    return tensor * tf.nn.relu6(tensor + 3.0) / 6.0


def _prelu(importer, node, attrs):
    return _binary(lambda x, slope: tf.maximum(x, 0.0) + slope * tf.minimum(x, 0.0))(
        importer, node, attrs
    )


_CONVERTERS = {
    "Add": _binary(tf.add),
    "AveragePool": _average_pool,
    "BatchNormalization": _batch_norm,
    "Cast": _cast,
    "Clip": _clip,
    "Concat": _concat,
    "Constant": _constant,
    "Conv": _conv,
    "Div": _binary(tf.truediv),
    "Dropout": _dropout,
    "Elu": _unary(lambda t, a: tf.where(t > 0, t, a.get("alpha", 1.0) * (tf.exp(t) - 1.0))),
    "Flatten": _flatten,
    "Gather": _gather,
    "Gemm": _gemm,
    "GlobalAveragePool": _global_pool(tf.reduce_mean),
    "GlobalMaxPool": _global_pool(tf.reduce_max),
    "HardSigmoid": _unary(_hard_sigmoid),
    "HardSwish": _unary(_hard_swish),
    "Identity": _identity,
    "LRN": _lrn,
    "LeakyRelu": _unary(lambda t, a: tf.nn.leaky_relu(t, alpha=a.get("alpha", 0.01))),
    "MatMul": _matmul,
    "Max": _binary(tf.maximum),
    "MaxPool": _max_pool,
    "Min": _binary(tf.minimum),
    "Mul": _binary(tf.multiply),
    "Pad": _pad,
    "PRelu": _prelu,
    "ReduceMax": _reduce(tf.reduce_max),
    "ReduceMean": _reduce(tf.reduce_mean),
    "Relu": _unary(lambda t, a: tf.nn.relu(t)),
    "Reshape": _reshape,
    "Shape": _shape,
    "Sigmoid": _unary(lambda t, a: tf.sigmoid(t)),
    "Slice": _slice,
    "Softmax": _softmax,
    "Squeeze": _squeeze,
    "Sub": _binary(tf.subtract),
    "Tanh": _unary(lambda t, a: tf.tanh(t)),
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
}
SUPPORTED_OPS = tuple(sorted(_CONVERTERS))


# ---------------------------------------------------------------------- network fn
def image_input(model, input_name=None):
    """The ValueInfoProto of the model's image input (`input_name`, or the only input)."""
    graph_inputs = [
        i for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}
    ]
    if input_name is None:
        if len(graph_inputs) != 1:
            raise ValueError(
                f"The ONNX model has {len(graph_inputs)} inputs {[i.name for i in graph_inputs]}; "
                "name the image input with input_name"
            )
        return graph_inputs[0]
    for info in graph_inputs:
        if info.name == input_name:
            return info
    raise ValueError(f"No input {input_name!r}; inputs: {[i.name for i in graph_inputs]}")


def static_dims(info):
    """Static dims of an input's ValueInfoProto (None where symbolic)."""
    return [
        d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim
    ]


def input_layout(model, input_name=None):
    """'NCHW' or 'NHWC': the layout of the model's 4-D image input.

    ONNX images are NCHW; models exported from TensorFlow (tf2onnx) keep NHWC inputs.
    A dimension of 1 or 3 (channels) in position 3 but not in position 1 means NHWC.
    """
    dims = static_dims(image_input(load_model(model), input_name))
    if len(dims) != 4:
        raise ValueError(f"Expected a 4-D image input, got shape {dims}")
    if dims[3] in (1, 3) and dims[1] not in (1, 3):
        return "NHWC"
    return "NCHW"


def network_fn_from_onnx(model, input_name=None, output_name=None, layout=None):
    """A network function (nets_factory convention) that builds the ONNX model.

    Args:
        model: path, bytes or onnx.ModelProto of an image classifier.
        input_name: the image input (default: the only input).
        output_name: the logits output (default: the first output).
        layout: 'NCHW' or 'NHWC' input; default: `input_layout(model)`.

    Returns:
        fn(images, num_classes=None, is_training=True, weight_decay=0.0, scope='onnx')
        -> (logits, end_points), taking NHWC float images like every tfzoo network.
        end_points maps each ONNX output name to its tensor, plus 'Logits' and
        'Predictions'. fn.default_image_size and fn.input_channels are the input's
        static size and channels (or None).
    """
    model = load_model(model)
    info = image_input(model, input_name)
    layout = layout or input_layout(model, info.name)
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    output_names = [o.name for o in model.graph.output]
    output_name = output_name or output_names[0]
    if output_name not in output_names:
        raise ValueError(f"No output {output_name!r}; outputs: {output_names}")
    dims = static_dims(info)
    height = dims[2] if layout == "NCHW" else dims[1]
    channels = dims[1] if layout == "NCHW" else dims[3]

    def network_fn(images, num_classes=None, is_training=True, weight_decay=None, scope="onnx"):
        kwargs = {} if weight_decay is None else {"weight_decay": weight_decay}
        with tf.variable_scope(scope):
            imported = import_onnx(
                model,
                inputs={info.name: images},
                is_training=is_training,
                nhwc_inputs=[info.name] if layout == "NCHW" else [],
                **kwargs,
            )
        logits = imported.outputs[output_name]
        classes = logits.get_shape().as_list()[-1]
        if num_classes and classes is not None and classes != num_classes:
            raise ValueError(
                f"The ONNX model has {classes} outputs in {output_name!r}, but num_classes is "
                f"{num_classes}"
            )
        end_points = dict(imported.outputs)
        end_points["Logits"] = logits
        end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
        return logits, end_points

    network_fn.default_image_size = height
    network_fn.input_channels = channels
    return network_fn


def onnx_arg_scope(weight_decay=0.0):
    """The arg_scope of imported networks: weight decay for Conv / Gemm / MatMul weights."""
    with slim.arg_scope([import_onnx], weight_decay=weight_decay) as scope:
        return scope


def network_entry(model, preprocessing, image_size=None, **network_fn_kwargs):
    """A nets_factory.NetworkEntry for an ONNX model, to register it under a name:

        nets_factory.NETWORKS["my_net"] = onnx_import.network_entry("my.onnx", "inception")

    Args:
        model: path, bytes or onnx.ModelProto.
        preprocessing: a preprocessing_factory name matching what the model expects.
        image_size: default input size; default: the ONNX input's static size.
        **network_fn_kwargs: passed to network_fn_from_onnx.
    """
    from image_models import nets_factory

    fn = network_fn_from_onnx(model, **network_fn_kwargs)
    size = image_size or fn.default_image_size
    if not size:
        raise ValueError("The ONNX input has no static size: pass image_size")
    # The ONNX input's channels; a symbolic one takes the data's own.
    return nets_factory.NetworkEntry(
        fn, onnx_arg_scope, size, preprocessing, channels=fn.input_channels
    )
