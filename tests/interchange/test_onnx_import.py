"""ONNX import: models made with onnx.helper (NCHW) and models exported by tfzoo, back in TF.

Each imported graph is compared with ONNX Runtime on the same random batch by the export
parity rule (logits within 1e-4 of their largest magnitude), and finetuned a few steps.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from image_models import nets_factory
from interchange import export, onnx_import
from slim_compat import tf

TOLERANCE = 1e-4
OPSET = 13


def _init(rng, name, shape, scale=None, positive=False):
    scale = scale if scale is not None else 1.0 / np.sqrt(max(np.prod(shape[1:]), 1))
    values = rng.uniform(0.5, 1.5, shape) if positive else rng.normal(0.0, scale, shape)
    return numpy_helper.from_array(values.astype(np.float32), name)


def independent_model(opset=OPSET, channels=3, size=16, classes=10):
    """A small NCHW CNN covering the supported vision ops, built with onnx.helper only.

    conv (stride 2, pads) -> batch norm -> relu -> depthwise conv -> clip(0, 6) ->
    grouped 1x1 conv -> squeeze-excitation (global pool, conv, sigmoid, mul) -> add of a
    [C, 1, 1] constant -> {max pool (ceil mode), average pool (pads excluded)} -> concat
    on channels -> transpose of H and W -> two heads: flatten + gemm (transB) -> logits and
    softmax, and reshape + matmul + add -> 'embedding'.
    """
    rng = np.random.RandomState(0)
    pooled = size // 4  # stride-2 conv, then stride-2 pools
    inits = [
        _init(rng, "conv1.w", [8, channels, 3, 3]),
        _init(rng, "conv1.b", [8], 0.1),
        _init(rng, "bn1.scale", [8], positive=True),
        _init(rng, "bn1.bias", [8], 0.1),
        _init(rng, "bn1.mean", [8], 0.1),
        _init(rng, "bn1.var", [8], positive=True),
        _init(rng, "dw.w", [8, 1, 3, 3], 0.5),
        numpy_helper.from_array(np.array(0.0, np.float32), "clip.min"),
        numpy_helper.from_array(np.array(6.0, np.float32), "clip.max"),
        _init(rng, "group.w", [8, 4, 1, 1]),
        _init(rng, "group.b", [8], 0.1),
        _init(rng, "se.w", [8, 8, 1, 1]),
        _init(rng, "chan.bias", [8, 1, 1], 0.1),
        _init(rng, "fc.w", [classes, 16 * pooled * pooled]),
        _init(rng, "fc.b", [classes], 0.1),
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat.shape"),
        _init(rng, "emb.w", [16 * pooled * pooled, 6]),
        _init(rng, "emb.b", [6], 0.1),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        node(
            "BatchNormalization",
            ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
            ["b1"],
            epsilon=1e-3,
            momentum=0.9,
        ),
        node("Relu", ["b1"], ["r1"]),
        node("Conv", ["r1", "dw.w"], ["dw"], group=8, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        node("Clip", ["dw", "clip.min", "clip.max"], ["r6"]),
        node("Conv", ["r6", "group.w", "group.b"], ["g"], group=2),
        node("GlobalAveragePool", ["g"], ["gap"]),
        node("Conv", ["gap", "se.w"], ["se"]),
        node("Sigmoid", ["se"], ["gate"]),
        node("Mul", ["g", "gate"], ["scaled"]),
        node("Add", ["scaled", "chan.bias"], ["a"]),
        node(
            "MaxPool",
            ["a"],
            ["mp"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 0, 0],
            ceil_mode=1,
        ),
        node(
            "AveragePool",
            ["a"],
            ["ap"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=0,
        ),
        node("Concat", ["mp", "ap"], ["cat"], axis=1),
        node("Transpose", ["cat"], ["hw"], perm=[0, 1, 3, 2]),
        node("Flatten", ["hw"], ["flat"], axis=1),
        node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
        node("Softmax", ["logits"], ["probabilities"], axis=-1),
        node("Reshape", ["hw", "flat.shape"], ["flat2"]),
        node("MatMul", ["flat2", "emb.w"], ["mm"]),
        node("Add", ["mm", "emb.b"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "independent_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 6]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def shape_ops_model(opset=OPSET):
    """A second onnx.helper model: padding, dilation, LRN, slicing, reductions and the
    Shape -> Gather -> Concat -> Reshape arithmetic exporters emit, and more activations."""
    rng = np.random.RandomState(1)
    const = numpy_helper.from_array
    inits = [
        _init(rng, "conv.w", [6, 4, 3, 3]),
        const(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pad.pads"),
        const(np.array(0.5, np.float32), "pad.value"),
        const(np.array([1, 1], np.int64), "slice.starts"),
        const(np.array([8, 100], np.int64), "slice.ends"),
        const(np.array([2, 3], np.int64), "slice.axes"),
        const(np.array([1, 2], np.int64), "slice.steps"),
        const(np.array([1], np.int64), "unsq.axes"),
        const(np.array([0], np.int64), "zero"),
        const(np.array([-1], np.int64), "minus_one"),
        _init(rng, "sub.c", [42], 0.1),
        const(np.array(2.0, np.float32), "two"),
        _init(rng, "prelu.slope", [42], 0.2),
        _init(rng, "head.w", [42, 5]),
        const(np.array([2, 3], np.int64), "hw.axes"),
    ]
    node = helper.make_node
    nodes = [
        node("Pad", ["x", "pad.pads", "pad.value"], ["p"], mode="constant"),
        node("Conv", ["p", "conv.w"], ["c"], dilations=[2, 2]),
        node("LRN", ["c"], ["n"], size=3, alpha=0.01, beta=0.75, bias=1.5),
        node("LeakyRelu", ["n"], ["l"], alpha=0.1),
        node("Slice", ["l", "slice.starts", "slice.ends", "slice.axes", "slice.steps"], ["s"]),
        node(
            "ReduceMean",
            ["s", "mean.axes"] if opset >= 18 else ["s"],
            ["m"],
            keepdims=0,
            **({} if opset >= 18 else {"axes": [3]}),
        ),
        node("Unsqueeze", ["m", "unsq.axes"], ["u"]),
        node("Tanh", ["u"], ["t"]),
        node("Shape", ["x"], ["shape"]),
        node("Gather", ["shape", "zero"], ["n1"], axis=0),
        node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        node("Reshape", ["t", "target"], ["flat"]),
        node("HardSigmoid", ["flat"], ["hs"], alpha=0.3, beta=0.4),
        node("Sub", ["hs", "sub.c"], ["d"]),
        node("Div", ["d", "two"], ["q"]),
        node("Dropout", ["q"], ["dr"]),
        node("PRelu", ["dr", "prelu.slope"], ["pr"]),
        node("MatMul", ["pr", "head.w"], ["y"]),
        node(
            "ReduceMean",
            ["c", "hw.axes"] if opset >= 18 else ["c"],
            ["gm"],
            keepdims=1,
            **({} if opset >= 18 else {"axes": [2, 3]}),
        ),
        node("Squeeze", ["gm", "hw.axes"], ["z"]),
        node("Transpose", ["c"], ["nhwc"], perm=[0, 2, 3, 1]),
        node("Flatten", ["nhwc"], ["w"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "shape_ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 10, 10])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 6]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, ["M", "K"]),
        ],
        inits,
    )
    if opset >= 18:  # ReduceMean's axes became an input
        graph.initializer.append(const(np.array([3], np.int64), "mean.axes"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _onnxruntime(model, feeds, outputs):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(outputs, feeds)


def _assert_close(reference, actual, what):
    reference, actual = np.asarray(reference), np.asarray(actual)
    assert actual.shape == reference.shape, what
    diff = float(np.max(np.abs(actual - reference)))
    bound = TOLERANCE * float(np.max(np.abs(reference)))
    print(f"{what}: max |diff| {diff:.3g}, max |value| {np.max(np.abs(reference)):.3g}")
    assert diff <= bound, f"{what}: max |diff| {diff:.3g} > {bound:.3g}"


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_independent_nchw_model_matches_onnxruntime(opset, graph):
    model = independent_model(opset)
    x = np.random.RandomState(1).uniform(-1, 1, (3, 3, 16, 16)).astype(np.float32)
    names = ["logits", "probabilities", "embedding"]
    expected = _onnxruntime(model, {"x": x}, names)
    imported = onnx_import.import_onnx(model)
    assert set(imported.inputs) == {"x"} and set(imported.outputs) == set(names)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        actual = session.run([imported.outputs[n] for n in names], {imported.inputs["x"]: x})
    for name, want, got in zip(names, expected, actual):
        _assert_close(want, got, name)
    # Weights are variables; the batch-norm statistics are not trainable; ints and scalars
    # (the reshape target, the clip bounds) stay constants.
    trainable = {v.op.name for v in tf.trainable_variables()}
    assert "bn1.mean" not in trainable and "bn1.var" not in trainable
    assert {"conv1.w", "dw.w", "fc.w", "emb.w", "chan.bias", "bn1.scale"} <= trainable
    assert set(imported.variables) == {
        i.name
        for i in model.graph.initializer
        if i.name not in ("flat.shape", "clip.min", "clip.max")
    }


@pytest.mark.parametrize("opset", [13, 18])
def test_shape_arithmetic_and_more_ops_match_onnxruntime(opset, graph):
    model = shape_ops_model(opset)
    x = np.random.RandomState(2).uniform(-1, 1, (3, 4, 10, 10)).astype(np.float32)
    names = ["y", "z", "w"]
    expected = _onnxruntime(model, {"x": x}, names)
    imported = onnx_import.import_onnx(model)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        actual = session.run([imported.outputs[n] for n in names], {imported.inputs["x"]: x})
    assert expected[2].shape == (3 * 9, 9 * 6)  # Flatten at axis 2 of [N, 9, 9, 6]
    for name, want, got in zip(names, expected, actual):
        _assert_close(want, got, name)


def test_nhwc_image_input_builds_no_input_transpose(graph):
    """network_fn feeds NHWC images straight into the NCHW model's first convolution."""
    model = independent_model()
    network_fn = onnx_import.network_fn_from_onnx(model, output_name="logits")
    assert onnx_import.input_layout(model) == "NCHW"
    images = tf.placeholder(tf.float32, [None, 16, 16, 3])
    logits, end_points = network_fn(images, num_classes=10, is_training=False)
    first_conv = [op for op in graph.get_operations() if op.type == "Conv2D"][0]
    assert first_conv.inputs[0].op.type == "Pad" and first_conv.inputs[0].op.inputs[0] is images
    x = np.random.RandomState(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    (expected,) = _onnxruntime(model, {"x": x.transpose(0, 3, 1, 2)}, ["logits"])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        _assert_close(expected, session.run(logits, {images: x}), "logits")
    assert set(end_points) >= {"Logits", "Predictions", "embedding"}
    with pytest.raises(ValueError, match="10 outputs in 'logits', but num_classes is 7"):
        network_fn(images, num_classes=7, scope="again")


def test_unsupported_ops_are_listed_in_one_error(graph):
    nodes = [
        helper.make_node("Erf", ["x"], ["e"]),
        helper.make_node("Relu", ["e"], ["r"]),
        helper.make_node("Round", ["r"], ["y"]),
    ]
    graph_proto = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", OPSET)])
    assert onnx_import.unsupported_ops(model) == ["Erf", "Round"]
    with pytest.raises(onnx_import.UnsupportedOpsError, match=r"2 op type\(s\).*: Erf, Round\."):
        onnx_import.import_onnx(model)


def _finetune(logits, labels, steps=8, learning_rate=0.05):
    """Losses of `steps` SGD steps (batch-norm updates included) on one fixed batch."""
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op = tf.train.GradientDescentOptimizer(learning_rate).minimize(loss)
    losses = []
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for _ in range(steps):
            losses.append(session.run([loss, train_op])[0])
        losses.append(session.run(loss))
        moving = {v.op.name: session.run(v) for v in tf.global_variables() if not v.trainable}
    return losses, moving


def test_finetuning_the_imported_model_lowers_the_loss(graph):
    model = independent_model()
    network_fn = onnx_import.network_fn_from_onnx(model, output_name="logits")
    rng = np.random.RandomState(3)
    images = tf.constant(rng.uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32))
    labels = tf.constant(rng.randint(0, 10, 8))
    logits, end_points = network_fn(images, num_classes=10, is_training=True)
    both_heads = tf.reduce_sum(logits) + tf.reduce_sum(end_points["embedding"])
    grads = tf.gradients(both_heads, tf.trainable_variables())
    assert all(g is not None for g in grads)  # every imported weight is trained
    losses, moving = _finetune(logits, labels)
    print("losses", [round(float(v), 4) for v in losses])
    assert losses[-1] < 0.8 * losses[0]
    bn_mean = numpy_helper.to_array([i for i in model.graph.initializer if i.name == "bn1.mean"][0])
    assert not np.allclose(moving["onnx/bn1.mean"], bn_mean)  # the running mean was updated


# Registered nets covering plain convs + fc (lenet), LRN-free cifar convs (cifarnet),
# depthwise convs and relu6 (mobilenet_v1_025), batch norm folded into residual convs
# (resnet20_cifar) and concatenated branches (inception_v1 at its smallest size). Each
# runs at its default size up to 64 px, or at its entry's min_image_size if larger.
ROUND_TRIP = ("cifarnet", "inception_v1", "lenet", "mobilenet_v1_025", "resnet20_cifar")


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip_through_onnx(name, perturb_constant_variables):
    """tfzoo net -> ONNX (tf2onnx) -> imported back: same outputs as TensorFlow."""
    entry = nets_factory.get_entry(name)
    size = max(entry.min_image_size, min(entry.image_size, 64))
    inference = export.build_inference_graph(name, 10, size, export.input_channels(name))
    with tf.Session(graph=inference.graph) as session:
        export.restore_weights(session)
        perturb_constant_variables(session)
        images = export.random_inputs(inference, batch_size=2, seed=4)
        reference = export.run_tensorflow(session, inference, images)
        model = export.graph_def_to_onnx(export.freeze(session, inference))
    assert onnx_import.input_layout(model) == "NHWC"  # tf2onnx keeps TensorFlow's layout
    with tf.Graph().as_default():
        network_fn = onnx_import.network_fn_from_onnx(model, output_name="logits")
        logits, end_points = network_fn(tf.constant(images), num_classes=10, is_training=False)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            imported = session.run([logits, end_points["probabilities"]])
    report = export.check_parity(reference, imported, TOLERANCE, what=f"{name} round trip")
    print(name, report)


def test_round_trip_model_finetunes(perturb_constant_variables):
    # Seeded: from some random starts, 12 steps at this rate barely move cifarnet's loss.
    inference = export.build_inference_graph("cifarnet", 10, 32, seed=0)
    with tf.Session(graph=inference.graph) as session:
        export.restore_weights(session)
        perturb_constant_variables(session)
        model = export.graph_def_to_onnx(export.freeze(session, inference))
    with tf.Graph().as_default():
        rng = np.random.RandomState(5)
        images = tf.constant(rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32))
        labels = tf.constant(rng.randint(0, 10, 8))
        network_fn = onnx_import.network_fn_from_onnx(model, output_name="logits")
        logits, _ = network_fn(images, num_classes=10, is_training=True)
        losses, _ = _finetune(logits, labels, steps=12, learning_rate=0.05)
    print("losses", [round(float(v), 4) for v in losses])
    assert losses[-1] < 0.8 * losses[0]


def test_imported_model_trains_with_the_harness(tmp_path, monkeypatch, train):
    """Registered in nets_factory, an imported model runs through train_image_classifiers."""
    model = independent_model(size=32)
    path = tmp_path / "independent.onnx"
    onnx.save(model, str(path))
    entry = onnx_import.network_entry(str(path), "cifarnet", image_size=32, output_name="logits")
    assert entry.image_size == 32 and entry.preprocessing == "cifarnet"
    assert entry.channels == 3  # the ONNX input's, recorded in the registry entry
    monkeypatch.setitem(nets_factory.NETWORKS, "imported_cnn", entry)
    result = train(
        model_name="imported_cnn",
        dataset_name="mock",
        num_classes=10,
        batch_size=4,
        stop_at_step=3,
        train_dir=str(tmp_path / "train"),
        weight_decay=0.001,
        log_every_n_steps=1,
    )
    print(result)
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "train"))
    assert checkpoint and checkpoint.endswith("-3")
    names = dict(tf.train.list_variables(checkpoint))
    assert names["onnx/conv1.w"] == [3, 3, 3, 8]  # HWIO, as TensorFlow convolutions want
    assert "onnx/bn1.mean" in names


def test_weight_decay_comes_from_the_factory_arg_scope(graph, monkeypatch):
    entry = onnx_import.network_entry(independent_model(), "cifarnet", output_name="logits")
    assert entry.image_size == 16  # the ONNX input's static size
    monkeypatch.setitem(nets_factory.NETWORKS, "imported_cnn", entry)
    network_fn = nets_factory.get_network_fn("imported_cnn", 10, weight_decay=0.01)
    network_fn(tf.zeros([1, 16, 16, 3]))
    regularized = sorted(
        loss.op.name.split("/")[1] for loss in tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    )
    # Conv, Gemm and MatMul weights; not biases, batch norm or element-wise constants.
    assert regularized == ["conv1.w", "dw.w", "emb.w", "fc.w", "group.w", "se.w"]
