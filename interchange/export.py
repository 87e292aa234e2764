"""Export of a tfzoo image classifier: frozen GraphDef, SavedModel or ONNX, with a parity check.

Every exported artefact has one input and two outputs with fixed names:

    input          float32 [batch, size, size, channels]: images already preprocessed the
                   way the model was trained (see the model's preprocessing in
                   image_models/nets_factory.py). With `with_preprocessing=True` instead:
                   uint8 [batch, height, width, channels], any height and width, and the
                   graph applies the evaluation preprocessing itself (`preprocess_batch`).
    logits         float32 [batch, num_classes]
    probabilities  float32 [batch, num_classes], the softmax of the logits

The batch dimension is left open. The network is built with is_training=False (batch norm
uses its moving statistics, dropout is off), its variables are restored from a checkpoint
(the exponential moving averages instead when asked), and the graph is frozen (variables
become constants) for the frozen-graph and ONNX formats. ONNX conversion uses tf2onnx on
the frozen GraphDef.

Parity rule (`check_parity`): the exported artefact is run (ONNX Runtime, a SavedModel
loaded with tf.saved_model.load, or the frozen graph imported into a fresh tf.Graph) on a
random batch, and so is the TensorFlow graph it came from. The export passes when

    max |logits_exported - logits_tf|               <= tolerance * max |logits_tf|
    max |probabilities_exported - probabilities_tf| <= tolerance

i.e. the logits agree to `tolerance` relative to their largest magnitude (float32 kernels
of two runtimes differ in summation order, so an absolute bound would be wrong for logits
in the hundreds) and the probabilities, which lie in [0, 1], agree to `tolerance`
absolutely. Otherwise `ParityError` reports both maximum differences.

    graph = build_inference_graph("resnet_v1_50", num_classes=1000)
    with tf.Session(graph=graph.graph) as session:
        restore_weights(session, "/train/model.ckpt-1000")
        report = export(session, graph, "onnx", "/out/resnet.onnx")
"""

import collections
import contextlib
import os

import numpy as np

from image_models import nets_factory
from preprocessing import image_ops, inception_preprocessing, vgg_preprocessing
from slim_compat import tf
from training import checkpoints

INPUT_NAME = "input"
LOGITS_NAME = "logits"
PROBABILITIES_NAME = "probabilities"
OUTPUT_NAMES = (LOGITS_NAME, PROBABILITIES_NAME)
FORMATS = ("frozen_graph", "saved_model", "onnx")
DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
SERVING_SIGNATURE = "serving_default"

# tf2onnx's ONNX-level rewrites that matter for image classifiers (transposes around the
# NHWC convolutions, constant folding, identities). The others (quantization, loops,
# einsum, upsampling) find nothing in these graphs but each costs a pass over the model.
_ONNX_OPTIMIZERS = (
    "optimize_transpose",
    "fold_constants",
    "merge_duplication",
    "reshape_optimizer",
    "global_pool_optimizer",
    "remove_identity",
    "remove_back_to_back",
)

InferenceGraph = collections.namedtuple(
    "InferenceGraph",
    [
        "graph",
        "input",
        "logits",
        "probabilities",
        "model_name",
        "num_classes",
        "image_size",
        "channels",
        "preprocessing",
    ],
)
InferenceGraph.__doc__ = """A built inference graph and what describes its input.

graph: the tf.Graph. input / logits / probabilities: its named tensors.
model_name, num_classes: the network and its number of logits.
image_size: the network's (square) input size in pixels; channels: input channels.
preprocessing: the preprocessing name built into the graph, or None when `input` takes
  already preprocessed float images.
"""


class ParityError(AssertionError):
    """The exported artefact does not compute what the TensorFlow graph computes."""


# ------------------------------------------------------------------------- preprocessing
def _crop_or_pad_to_float(images, size):
    return tf.cast(tf.image.resize_image_with_crop_or_pad(images, size, size), tf.float32)


def _lenet_batch(images, size):
    return (_crop_or_pad_to_float(images, size) - 128.0) / 128.0


def _cifarnet_batch(images, size):
    return tf.image.per_image_standardization(_crop_or_pad_to_float(images, size))


def _resize_batch_tf1(images, height, width):
    # Same kernel and corner convention as image_ops.resize_tf1 (align_corners=False, no
    # half-pixel centres), on a whole batch.
    size = tf.cast(tf.stack([height, width]), tf.int32)
    return tf.raw_ops.ResizeBilinear(images=tf.cast(images, tf.float32), size=size)


def _vgg_batch(images, size):
    resize_side = float(max(vgg_preprocessing.RESIZE_SIDE_MIN, size))
    shape = tf.shape(images)
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    scale = resize_side / tf.minimum(height, width)
    new_height = tf.cast(tf.math.rint(height * scale), tf.int32)
    new_width = tf.cast(tf.math.rint(width * scale), tf.int32)
    resized = _resize_batch_tf1(images, new_height, new_width)
    top = (new_height - size) // 2
    left = (new_width - size) // 2
    cropped = resized[:, top : top + size, left : left + size, :]
    channels = images.get_shape()[-1]
    cropped.set_shape([None, size, size, channels])
    means = vgg_preprocessing.RGB_MEANS
    if channels == 1:
        return cropped - sum(means) / len(means)
    return cropped - tf.constant(means, tf.float32)


def _inception_batch(images, size):
    images = tf.image.convert_image_dtype(images, tf.float32)
    fraction = inception_preprocessing.CENTRAL_FRACTION
    if fraction and fraction < 1.0:
        images = tf.image.central_crop(images, central_fraction=fraction)
    resized = _resize_batch_tf1(images, size, size)
    return (resized - 0.5) * 2.0


# What each preprocessing's evaluation mode does, on a batch of equally sized images.
_BATCH_PREPROCESSINGS = {
    "lenet": _lenet_batch,
    "cifarnet": _cifarnet_batch,
    "vgg": _vgg_batch,
    "inception": _inception_batch,
}


def preprocess_batch(images, preprocessing_name, image_size):
    """The evaluation preprocessing of `preprocessing_name`, on a batch, inside the graph.

    It computes what preprocessing_factory's evaluation function computes on each image:
    lenet: center crop or zero pad to image_size, then (x - 128) / 128; cifarnet: center
    crop or zero pad, then per-image standardization; vgg: bilinear resize of the smaller
    side to max(256, image_size), central crop, RGB mean subtraction; inception: central
    crop of 87.5% of each side, bilinear resize to image_size, scale to [-1, 1]. All images
    of one batch share one height and width (a batch is one tensor); resizes use the TF1
    corner convention, as the training preprocessing does.

    Args:
        images: uint8 [batch, height, width, channels].
        preprocessing_name: a key of preprocessing_factory.PREPROCESSINGS.
        image_size: output side in pixels.

    Returns:
        float32 [batch, image_size, image_size, channels].
    """
    if preprocessing_name not in _BATCH_PREPROCESSINGS:
        raise ValueError(
            f"No in-graph preprocessing {preprocessing_name!r}; expected one of: "
            f"{', '.join(sorted(_BATCH_PREPROCESSINGS))}"
        )
    image_ops.check_output_size(image_size, image_size)
    with tf.name_scope("preprocessing"):
        return _BATCH_PREPROCESSINGS[preprocessing_name](images, image_size)


# ------------------------------------------------------------------------- the graph
def resolve_num_classes(num_classes, dataset_name, labels_offset=0, dataset_dir=None):
    """Logits of the exported model: --num_classes or the dataset's, minus labels_offset.

    The dataset's count comes from datasets/dataset_factory.get_dataset when dataset_dir
    is given (it reads labels.txt), else from the dataset module's NUM_CLASSES.
    """
    from datasets import dataset_factory

    if not num_classes:
        if dataset_name not in dataset_factory.DATASETS:
            raise ValueError(
                f"Unknown dataset_name {dataset_name!r}; expected one of: "
                f"{', '.join(sorted(dataset_factory.DATASETS))}"
            )
        module = dataset_factory.DATASETS[dataset_name]
        if dataset_dir or module.NUM_CLASSES is None:
            split = next(iter(module.SPLITS_TO_SIZES or {"train": 0}))
            num_classes = dataset_factory.get_dataset(dataset_name, split, dataset_dir).num_classes
        else:
            num_classes = module.NUM_CLASSES
    num_classes -= labels_offset or 0
    if num_classes < 1:
        raise ValueError(
            f"num_classes must be >= 1 after subtracting labels_offset={labels_offset}, "
            f"got {num_classes}"
        )
    return num_classes


def input_channels(model_name, dataset_name="mock"):
    """Input channels: the network's (3 for RGB nets) or, for MNIST-style nets, the dataset's."""
    from datasets import dataset_factory

    channels = nets_factory.input_channels(model_name)
    if channels:
        return channels
    module = dataset_factory.DATASETS.get(dataset_name)
    return getattr(module, "CHANNELS", None) or 3


def _named(tensor, name):
    if tensor.op.name != name:
        raise ValueError(
            f"Could not name the tensor {name!r} (got {tensor.op.name!r}): the network "
            f"already has an op called {name!r} at the top level"
        )
    return tensor


def build_inference_graph(
    model_name,
    num_classes,
    image_size=None,
    channels=3,
    with_preprocessing=False,
    preprocessing_name=None,
    seed=None,
):
    """Builds the network for inference in a new tf.Graph, with the named input and outputs.

    Args:
        model_name: a key of nets_factory.NETWORKS.
        num_classes: number of logits.
        image_size: input side in pixels; default: the model's default size.
        channels: input channels (see `input_channels`).
        with_preprocessing: take uint8 images of any size and preprocess them in the graph.
        preprocessing_name: the preprocessing for `with_preprocessing`; default: the model's.
        seed: graph-level random seed, which makes fresh (not restored) weights reproducible.

    Returns:
        an InferenceGraph.
    """
    entry = nets_factory.get_entry(model_name)
    image_size = image_size or entry.image_size
    preprocessing_name = (preprocessing_name or entry.preprocessing) if with_preprocessing else None
    graph = tf.Graph()
    graph.seed = seed
    with graph.as_default(), _tf1_control_flow():
        if with_preprocessing:
            images = tf.placeholder(tf.uint8, [None, None, None, channels], name=INPUT_NAME)
            net_input = preprocess_batch(images, preprocessing_name, image_size)
        else:
            images = tf.placeholder(
                tf.float32, [None, image_size, image_size, channels], name=INPUT_NAME
            )
            net_input = images
        _named(images, INPUT_NAME)
        network_fn = nets_factory.get_network_fn(model_name, num_classes, is_training=False)
        logits, _ = network_fn(net_input)
        logits = _named(tf.identity(tf.cast(logits, tf.float32), name=LOGITS_NAME), LOGITS_NAME)
        probabilities = _named(tf.nn.softmax(logits, name=PROBABILITIES_NAME), PROBABILITIES_NAME)
    return InferenceGraph(
        graph,
        images,
        logits,
        probabilities,
        model_name,
        num_classes,
        image_size,
        channels,
        preprocessing_name,
    )


@contextlib.contextmanager
def _tf1_control_flow():
    """Builds loops and conditionals as TF1 control flow (Enter / Switch / Merge ...).

    tf2onnx rewrites the TF1 loop of tf.nn.dynamic_rnn into ONNX Scan / LSTM ops; the TF2
    loop of the same layer (While with TensorList ops) it leaves unconverted. The setting
    is process-wide, so it is restored afterwards.
    """
    from tensorflow.python.ops import control_flow_util

    was_v2 = control_flow_util.ENABLE_CONTROL_FLOW_V2
    tf.disable_control_flow_v2()
    try:
        yield
    finally:
        if was_v2:
            tf.enable_control_flow_v2()


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix or a directory (its latest); names what is missing."""
    if not path:
        raise ValueError("A checkpoint is required: a checkpoint prefix or a training directory")
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"No checkpoint in directory {path!r}")
        return latest
    if not tf.train.checkpoint_exists(path):
        raise FileNotFoundError(f"No checkpoint at {path!r} (expected {path}.index)")
    return path


def restore_weights(session, checkpoint=None, moving_average_decay=None):
    """Fills the graph's variables: from `checkpoint`, or freshly initialized when None.

    Every variable is checked against the checkpoint first, so a wrong model, class count
    or a missing moving average is reported by name instead of by a restore failure.

    Args:
        session: a tf.Session on the inference graph.
        checkpoint: a checkpoint prefix or directory (see `resolve_checkpoint`), or None.
        moving_average_decay: restore the ExponentialMovingAverage shadow of each trainable
            variable (as saved by training with --moving_average_decay) instead of the
            variable itself; a variable the run did not train (--trainable_scopes) has no
            shadow and is restored as it is.

    Returns:
        the checkpoint prefix restored, or None.
    """
    graph = session.graph
    with graph.as_default():
        if checkpoint is None:
            session.run(tf.global_variables_initializer())
            return None
        checkpoint = resolve_checkpoint(checkpoint)
        if moving_average_decay:
            var_map = checkpoints.moving_average_variables_to_restore(
                checkpoint, moving_average_decay
            )
        else:
            var_map = {v.op.name: v for v in tf.global_variables()}
        saved = dict(tf.train.list_variables(checkpoint))
        missing = sorted(name for name in var_map if name not in saved)
        mismatched = [
            f"{name} (checkpoint {saved[name]}, model {var.shape.as_list()})"
            for name, var in sorted(var_map.items())
            if name in saved and list(saved[name]) != var.shape.as_list()
        ]
        if missing or mismatched:
            problems = []
            if missing:
                hint = (
                    " (no moving averages: was the model trained with --moving_average_decay?)"
                    if moving_average_decay
                    and any("ExponentialMovingAverage" in m for m in missing)
                    else ""
                )
                problems.append(f"{len(missing)} missing{hint}: {', '.join(missing[:5])}")
            if mismatched:
                problems.append(
                    f"{len(mismatched)} of another shape (check --num_classes / --labels_offset "
                    f"/ --image_size): {', '.join(mismatched[:5])}"
                )
            raise ValueError(
                f"Checkpoint {checkpoint!r} does not fit the inference graph with "
                f"{graph.get_tensor_by_name(LOGITS_NAME + ':0').shape[-1]} logits: "
                + "; ".join(problems)
            )
        tf.train.Saver(var_map).restore(session, checkpoint)
    return checkpoint


def freeze(session, inference_graph):
    """The inference GraphDef with every variable turned into a constant (outputs' subgraph)."""
    # Identities (variable reads among them) go first, while the graph holds no weights.
    graph_def = tf.graph_util.remove_training_nodes(
        inference_graph.graph.as_graph_def(), protected_nodes=[INPUT_NAME, *OUTPUT_NAMES]
    )
    return tf.graph_util.convert_variables_to_constants(session, graph_def, list(OUTPUT_NAMES))


# ------------------------------------------------------------------------- writers
def graph_def_to_onnx(
    graph_def,
    opset=DEFAULT_OPSET,
    model_name="tfzoo",
    input_names=(INPUT_NAME,),
    output_names=OUTPUT_NAMES,
):
    """Converts a frozen inference GraphDef (named input / outputs) to an onnx.ModelProto.

    The ONNX graph's inputs and outputs are named after the GraphDef's nodes
    `input_names` and `output_names` (an image classifier's: 'input', 'logits' and
    'probabilities'); its weights are initializers named after the TensorFlow variables.
    An op that tf2onnx cannot convert raises instead of being left in the model.

    tf2onnx copies every constant's data several times per rewrite pass, which takes
    minutes for a 100M-parameter net, so the weights go round it: they enter tf2onnx as
    graph inputs and come back as initializers, and the layout changes tf2onnx then
    inserts on them (transposes, reshapes) are applied to the weights here, before its
    optimizer (whose transpose pass rescans every remaining transpose after each change).
    Unlike tf2onnx's own converter this runs grappler (constant folding, dependency
    pruning) only on graphs with loops, whose RNN rewriters need it: elsewhere it would
    only delete the additions of all-zero biases (e.g. of a freshly initialized net) and
    so drop them from the model's parameters.
    """
    import onnx
    from tf2onnx import optimizer as onnx_optimizer
    from tf2onnx import tf_loader, tfonnx

    graph_def, weights = _weights_to_placeholders(graph_def, (*input_names, *output_names))
    weight_inputs = [f"{name}:0" for name in weights]
    inputs = [*(f"{name}:0" for name in input_names), *weight_inputs]
    outputs = [f"{name}:0" for name in output_names]
    renames = {f"{name}:0": name for name in (*input_names, *output_names, *weights)}
    if any(node.op == "LoopCond" for node in graph_def.node):
        # grappler exports the default graph's collections too: run it under an empty graph.
        with tf.Graph().as_default():
            graph_def = tf_loader.tf_optimize(inputs, outputs, graph_def)
    with tf.Graph().as_default() as tf_graph:
        tf.import_graph_def(graph_def, name="")
        onnx_graph = tfonnx.process_tf_graph(
            tf_graph,
            opset=opset,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=renames,
            continue_on_error=False,
        )
    weights = _move_layout_ops_into_weights(onnx_graph, weights)
    _scalar_addends_as_vectors(onnx_graph)
    available = onnx_optimizer._get_optimizers()  # noqa: SLF001 (the registry tf2onnx itself uses)
    onnx_graph = onnx_optimizer.optimize_graph(
        onnx_graph,
        catch_errors=False,
        optimizers=collections.OrderedDict((k, available[k]) for k in _ONNX_OPTIMIZERS),
    )
    model = onnx_graph.make_model(f"tfzoo {model_name}")
    _inputs_to_initializers(model, weights)
    _fold_initializer_transforms(model)
    onnx.checker.check_model(model)
    return model


def _weights_to_placeholders(graph_def, protected=(INPUT_NAME, *OUTPUT_NAMES)):
    """A copy of graph_def whose weight constants are placeholders, and {name: value}.

    Weights are the floating-point constants of rank >= 2 (convolution kernels, matrices);
    rank-0/1 constants (biases, batch-norm parameters, shapes, scalars) and the nodes
    named in `protected` (the model's inputs and outputs) stay as they are.
    """
    from tensorflow.python.framework import tensor_util

    stripped = tf.GraphDef()
    stripped.versions.CopyFrom(graph_def.versions)
    stripped.library.CopyFrom(graph_def.library)
    weights = {}
    for node in graph_def.node:
        tensor = node.attr["value"].tensor if node.op == "Const" else None
        shape = [d.size for d in tensor.tensor_shape.dim] if tensor is not None else []
        if (
            tensor is not None
            and tf.as_dtype(tensor.dtype).is_floating
            and len(shape) >= 2
            and node.name not in protected
        ):
            weights[node.name] = tensor_util.MakeNdarray(tensor)
            placeholder = stripped.node.add(name=node.name, op="Placeholder", device=node.device)
            placeholder.attr["dtype"].type = tensor.dtype
            placeholder.attr["shape"].shape.CopyFrom(tf.TensorShape(shape).as_proto())
        else:
            stripped.node.add().CopyFrom(node)
    return stripped, weights


_LAYOUT_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity")


def _apply_layout_op(value, op_type, attrs, operands):
    """numpy version of a layout op: value -> op(value); operands: its other (constant) inputs."""
    if op_type == "Transpose":
        return np.transpose(value, attrs.get("perm"))
    if op_type == "Reshape":
        target = [int(d) for d in np.reshape(operands[0], -1)]
        if not attrs.get("allowzero", 0):
            target = [value.shape[i] if d == 0 else d for i, d in enumerate(target)]
        return np.reshape(value, target)
    if op_type in ("Squeeze", "Unsqueeze"):
        axes = attrs.get("axes", operands[0] if operands else None)
        axes = None if axes is None else tuple(int(a) for a in np.reshape(axes, -1))
        return np.squeeze(value, axes) if op_type == "Squeeze" else np.expand_dims(value, axes)
    return value  # Identity


def _move_layout_ops_into_weights(onnx_graph, weights):
    """Applies the layout ops tf2onnx put on weight inputs to the weights themselves.

    A weight input read only by a Transpose / Reshape / Squeeze / Unsqueeze / Identity
    (whose other inputs are constants) becomes an input of the op's output shape, and the
    op is applied to the weight's numpy value.

    Returns:
        the new {input name: value}.
    """
    weights = dict(weights)
    for name in list(weights):
        while True:
            consumers = onnx_graph.find_output_consumers(name)
            if len(consumers) != 1:
                break
            (op,) = consumers
            others = [n for n in op.inputs[1:] if n is not None]
            if (
                op.type not in _LAYOUT_OPS
                or op.input[0] != name
                or not all(n.is_const() for n in others)
            ):
                break
            attrs = {key: op.get_attr_value(key) for key in op.attr}
            operands = [n.get_tensor_value(as_list=False) for n in others]
            weights[name] = np.ascontiguousarray(
                _apply_layout_op(weights[name], op.type, attrs, operands)
            )
            dtype = onnx_graph.get_dtype(name)
            result = op.output[0]
            placeholder = onnx_graph.get_node_by_output(name)
            onnx_graph.remove_node(op.name)
            onnx_graph.remove_node(placeholder.name)
            onnx_graph.add_graph_input(name, dtype, list(weights[name].shape))
            onnx_graph.replace_all_inputs(result, name)
    return weights


def _scalar_addends_as_vectors(onnx_graph):
    """Gives the scalar constants added to tensors the shape [1] (same broadcast result).

    tf2onnx 1.17's transpose optimizer fails on Conv -> Transpose -> Add(scalar constant)
    (it takes the largest dimension of the constant's shape), as in hard-swish's x + 3.
    """
    from tf2onnx import utils

    for node in list(onnx_graph.get_nodes()):
        if node.type != "Add":
            continue
        for index, producer in enumerate(node.inputs):
            other = node.input[1 - index]
            if producer is None or not producer.is_const() or onnx_graph.get_rank(other) == 0:
                continue
            value = producer.get_tensor_value(as_list=False)
            if value.shape == ():
                vector = onnx_graph.make_const(utils.make_name(producer.name), value.reshape([1]))
                onnx_graph.replace_input(node, node.input[index], vector.output[0], index)


def _inputs_to_initializers(model, weights):
    """Turns the graph inputs standing for weights back into initializers."""
    from onnx import numpy_helper

    kept = [i for i in model.graph.input if i.name not in weights]
    present = {i.name for i in model.graph.input}
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(
        numpy_helper.from_array(value, name) for name, value in weights.items() if name in present
    )


def _names_read(graph):
    """Every value name the nodes of `graph` read, subgraphs (Loop, Scan, If bodies) included."""
    from onnx import AttributeProto

    for node in graph.node:
        yield from node.input
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                yield from _names_read(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _names_read(subgraph)


def _fold_initializer_transforms(model):
    """Replaces Transpose / Reshape / Squeeze / Unsqueeze / Identity of initializers by results.

    A folded weight keeps its own name when nothing else reads the original.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    readers = collections.Counter(_names_read(graph))
    readers.update(o.name for o in graph.output)
    renames = {}
    kept_nodes = []
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        data_inputs = [n for n in node.input if n]
        if node.op_type not in _LAYOUT_OPS or not (
            data_inputs and all(n in initializers for n in data_inputs)
        ):
            kept_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        arrays = [numpy_helper.to_array(initializers[n]) for n in data_inputs]
        value = _apply_layout_op(arrays[0], node.op_type, attrs, arrays[1:])
        source = data_inputs[0]
        name = node.output[0]
        if readers[source] == 1 and source not in (o.name for o in graph.output):
            graph.initializer.remove(initializers.pop(source))
            renames[name] = name = source
        folded = numpy_helper.from_array(np.ascontiguousarray(value), name)
        graph.initializer.append(folded)
        initializers[name] = folded
    del graph.node[:]
    graph.node.extend(kept_nodes)
    for output in graph.output:
        if output.name in renames:
            raise ValueError(f"Output {output.name!r} is a folded constant")
    used = set(_names_read(graph))
    for initializer in list(graph.initializer):
        if initializer.name not in used:
            graph.initializer.remove(initializer)


def write_frozen_graph(graph_def, path):
    """Writes the frozen GraphDef as a binary protobuf file."""
    _make_parent(path)
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())


def write_onnx(model, path):
    _make_parent(path)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def write_saved_model(session, inference_graph, export_dir):
    """Writes a SavedModel (tag 'serve') with the variables and a 'serving_default' signature.

    Raises:
        FileExistsError: export_dir exists and is not empty.
    """
    check_new_directory(export_dir)
    with inference_graph.graph.as_default():
        builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            {INPUT_NAME: inference_graph.input},
            {
                LOGITS_NAME: inference_graph.logits,
                PROBABILITIES_NAME: inference_graph.probabilities,
            },
        )
        builder.add_meta_graph_and_variables(
            session,
            [tf.saved_model.tag_constants.SERVING],
            signature_def_map={SERVING_SIGNATURE: signature},
            strip_default_attrs=True,
        )
        builder.save()


def check_new_directory(export_dir):
    """Makes way for a SavedModel at export_dir: absent or empty, else FileExistsError."""
    if os.path.isdir(export_dir) and os.listdir(export_dir):
        raise FileExistsError(
            f"SavedModel directory {export_dir!r} exists and is not empty; choose a new "
            "--output or delete it"
        )
    if os.path.isdir(export_dir):
        os.rmdir(export_dir)  # the builder insists on creating it


def _make_parent(path):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


# ------------------------------------------------------------------------- runners
def run_frozen_graph(graph_def, images):
    """(logits, probabilities) of a frozen GraphDef (or its .pb path) imported into a fresh graph."""
    if isinstance(graph_def, (str, os.PathLike)):
        with open(graph_def, "rb") as f:
            graph_def = tf.GraphDef.FromString(f.read())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        fetches = [graph.get_tensor_by_name(f"{name}:0") for name in OUTPUT_NAMES]
        with tf.Session(graph=graph) as session:
            return tuple(session.run(fetches, {f"{INPUT_NAME}:0": images}))


def run_saved_model(export_dir, images):
    """(logits, probabilities) of a SavedModel loaded with tf.saved_model.load (TF2 loader)."""
    import tensorflow as tf2

    with tf.Graph().as_default():
        loaded = tf2.saved_model.load(export_dir)
        outputs = loaded.signatures[SERVING_SIGNATURE](**{INPUT_NAME: tf.constant(images)})
        with tf.Session() as session:
            # In graph mode the loader's variables hold the saved values once initialized.
            session.run(tf.global_variables_initializer())
            values = session.run(outputs)
    return values[LOGITS_NAME], values[PROBABILITIES_NAME]


def run_onnx(model, images):
    """(logits, probabilities) of an ONNX model (ModelProto or path) in ONNX Runtime."""
    import onnxruntime

    serialized = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    return tuple(session.run(list(OUTPUT_NAMES), {INPUT_NAME: images}))


def run_tensorflow(session, inference_graph, images):
    """(logits, probabilities) of the live TensorFlow graph."""
    return tuple(
        session.run(
            [inference_graph.logits, inference_graph.probabilities],
            {inference_graph.input: images},
        )
    )


# ------------------------------------------------------------------------- parity
def random_inputs(inference_graph, batch_size=2, seed=0):
    """A random batch for the graph's input: floats in [-1, 1), or uint8 images of another size.

    With in-graph preprocessing the images are 5/4 of the input size (plus one pixel in
    width, so height and width differ) to exercise the resize and crop.
    """
    rng = np.random.RandomState(seed)
    size, channels = inference_graph.image_size, inference_graph.channels
    if inference_graph.preprocessing:
        height, width = size * 5 // 4, size * 5 // 4 + 1
        return rng.randint(0, 256, size=(batch_size, height, width, channels)).astype(np.uint8)
    return rng.uniform(-1.0, 1.0, size=(batch_size, size, size, channels)).astype(np.float32)


ParityReport = collections.namedtuple(
    "ParityReport",
    ["max_abs_diff_logits", "max_abs_diff_probabilities", "max_abs_logits", "tolerance"],
)


def check_parity(reference, exported, tolerance=DEFAULT_TOLERANCE, what="exported model"):
    """Compares (logits, probabilities) pairs by the module's parity rule.

    Returns:
        a ParityReport.

    Raises:
        ParityError: naming both maximum differences and the bounds they broke.
    """
    ref_logits, ref_probs = (np.asarray(a, np.float64) for a in reference)
    out_logits, out_probs = (np.asarray(a, np.float64) for a in exported)
    if out_logits.shape != ref_logits.shape or out_probs.shape != ref_probs.shape:
        raise ParityError(
            f"{what}: output shapes {out_logits.shape}, {out_probs.shape} differ from "
            f"TensorFlow's {ref_logits.shape}, {ref_probs.shape}"
        )
    magnitude = float(np.max(np.abs(ref_logits))) if ref_logits.size else 0.0
    report = ParityReport(
        max_abs_diff_logits=float(np.max(np.abs(out_logits - ref_logits), initial=0.0)),
        max_abs_diff_probabilities=float(np.max(np.abs(out_probs - ref_probs), initial=0.0)),
        max_abs_logits=magnitude,
        tolerance=tolerance,
    )
    logits_bound = tolerance * magnitude
    finite = np.all(np.isfinite(out_logits)) and np.all(np.isfinite(out_probs))
    if (
        not finite
        or report.max_abs_diff_logits > logits_bound
        or report.max_abs_diff_probabilities > tolerance
    ):
        raise ParityError(
            f"{what} differs from TensorFlow: max |logits diff| = "
            f"{report.max_abs_diff_logits:.3g} (allowed {logits_bound:.3g} = {tolerance:g} x "
            f"max |logits| {magnitude:.3g}), max |probabilities diff| = "
            f"{report.max_abs_diff_probabilities:.3g} (allowed {tolerance:g})"
            + ("" if finite else "; the exported outputs are not all finite")
        )
    return report


# ------------------------------------------------------------------------- all together
def export(
    session,
    inference_graph,
    fmt,
    output,
    opset=DEFAULT_OPSET,
    tolerance=DEFAULT_TOLERANCE,
    batch_size=2,
    seed=0,
):
    """Writes the inference graph of a session in format `fmt` and checks its parity.

    Args:
        session: a tf.Session on inference_graph.graph with the weights restored.
        inference_graph: from build_inference_graph.
        fmt: one of FORMATS.
        output: a file path (frozen_graph, onnx) or a new directory (saved_model).
        opset: ONNX opset.
        tolerance: see the module's parity rule.
        batch_size, seed: the random parity batch.

    Returns:
        a dict describing the artefact (format, path, input and output names, dtypes and
        shapes, preprocessing) and the parity figures.

    Raises:
        ValueError: unknown format. ParityError: the artefact's outputs differ.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    images = random_inputs(inference_graph, batch_size, seed)
    reference = run_tensorflow(session, inference_graph, images)
    if fmt == "saved_model":
        write_saved_model(session, inference_graph, output)
        exported = run_saved_model(output, images)
    else:
        graph_def = freeze(session, inference_graph)
        if fmt == "frozen_graph":
            write_frozen_graph(graph_def, output)
            exported = run_frozen_graph(output, images)
        else:
            model = graph_def_to_onnx(graph_def, opset, inference_graph.model_name)
            write_onnx(model, output)
            exported = run_onnx(output, images)
    report = check_parity(reference, exported, tolerance, what=f"{fmt} {output}")
    input_shape = [None, None, None, inference_graph.channels]
    if not inference_graph.preprocessing:
        input_shape[1:3] = [inference_graph.image_size] * 2
    return {
        "format": fmt,
        "output": output,
        "model_name": inference_graph.model_name,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8" if inference_graph.preprocessing else "float32",
            "shape": input_shape,
            "preprocessing": inference_graph.preprocessing or "none (feed preprocessed images)",
        },
        "outputs": {name: [None, inference_graph.num_classes] for name in OUTPUT_NAMES},
        "opset": opset if fmt == "onnx" else None,
        "parity": report._asdict(),
    }
