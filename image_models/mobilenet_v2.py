"""MobileNet v2, with TF-Slim's variable names so its published checkpoints load.

M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen: "MobileNetV2: Inverted Residuals
and Linear Bottlenecks", CVPR 2018 (arXiv:1801.04381).

A 3x3 convolution ('Conv'), 17 inverted-residual blocks ('expanded_conv', 'expanded_conv_1',
... each a 1x1 expansion 'expand', a 3x3 depthwise 'depthwise' and a linear 1x1 projection
'project', with a shortcut when shapes allow), a 1x1 convolution to 1280 channels ('Conv_1'),
global average pooling and a 1x1 convolution as classifier ('Logits/Conv2d_1c_1x1').

This module also holds the layer-list builder that MobileNet v3 (mobilenet_v3.py) shares:
a network is a tuple of `Conv`, `InvertedResidual` and `GlobalPool` layers.

Typical use:

    with slim.arg_scope(mobilenet_v2_arg_scope()):
        logits, end_points = mobilenet_v2(images, num_classes=1001, is_training=True)

Every layer uses SAME padding, so any input size builds (32 px gives a 1x1 final grid).
"""

import collections
import functools

from slim_compat import slim, tf

# A full convolution; batch_norm=False gives it biases instead (MobileNet v3's last layer).
Conv = collections.namedtuple("Conv", ["depth", "kernel", "stride", "activation", "batch_norm"])
Conv.__new__.__defaults__ = (1, tf.nn.relu6, True)

# expansion: the inner width is this factor times the input width (rounded to a multiple of
# 8); squeeze_excite: whether a squeeze-and-excite gate follows the depthwise convolution.
InvertedResidual = collections.namedtuple(
    "InvertedResidual",
    ["expansion", "depth", "kernel", "stride", "activation", "squeeze_excite"],
)
InvertedResidual.__new__.__defaults__ = (3, 1, tf.nn.relu6, False)

# Average pooling of the whole grid to 1x1 inside the trunk (MobileNet v3's head).
GlobalPool = collections.namedtuple("GlobalPool", [])

MOBILENET_V2_LAYERS = (
    Conv(32, 3, stride=2),
    InvertedResidual(1, 16),
    InvertedResidual(6, 24, stride=2),
    InvertedResidual(6, 24),
    InvertedResidual(6, 32, stride=2),
    *[InvertedResidual(6, 32)] * 2,
    InvertedResidual(6, 64, stride=2),
    *[InvertedResidual(6, 64)] * 3,
    *[InvertedResidual(6, 96)] * 3,
    InvertedResidual(6, 160, stride=2),
    *[InvertedResidual(6, 160)] * 2,
    InvertedResidual(6, 320),
    Conv(1280, 1),
)


def make_divisible(value, divisor=8, min_value=None):
    """Rounds `value` to a multiple of `divisor` (>= min_value), never more than 10% down."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def hard_sigmoid(x):
    """ReLU6(x + 3) / 6, the cheap sigmoid of MobileNet v3 (gate of squeeze-and-excite)."""
    return tf.nn.relu6(x + 3.0) * 0.16667


def squeeze_excite(net, squeeze_factor=4, divisible_by=8):
    """Scales each channel by a gate computed from the globally pooled activations."""
    channels = int(net.shape[3])
    with tf.variable_scope("squeeze_excite"):
        pooled = tf.reduce_mean(net, [1, 2], keepdims=True)
        squeezed = slim.conv2d(
            pooled,
            make_divisible(channels / squeeze_factor, divisible_by),
            [1, 1],
            normalizer_fn=None,
            activation_fn=tf.nn.relu,
            scope="Conv",
        )
        gate = slim.conv2d(
            squeezed,
            channels,
            [1, 1],
            normalizer_fn=None,
            activation_fn=hard_sigmoid,
            scope="Conv_1",
        )
    return net * gate


def inverted_residual(net, layer, depth, end_points, end_point, scope):
    """expand (1x1) -> depthwise (kxk) -> [squeeze-excite] -> linear project (1x1) [+ input]."""
    input_depth = int(net.shape[3])
    inner_depth = make_divisible(input_depth * layer.expansion)
    with tf.variable_scope(scope):
        inputs = net
        if inner_depth > input_depth:
            net = slim.conv2d(
                net, inner_depth, [1, 1], activation_fn=layer.activation, scope="expand"
            )
            end_points[end_point + "/expansion_output"] = net
        net = slim.separable_conv2d(
            net,
            None,  # depthwise only
            [layer.kernel, layer.kernel],
            depth_multiplier=1,
            stride=layer.stride,
            activation_fn=layer.activation,
            scope="depthwise",
        )
        end_points[end_point + "/depthwise_output"] = net
        if layer.squeeze_excite:
            net = squeeze_excite(net)
        # Linear bottleneck: no activation after the projection (section 3.2 of the paper).
        net = slim.conv2d(net, depth, [1, 1], activation_fn=None, scope="project")
        if layer.stride == 1 and depth == input_depth:
            net = net + inputs
        net = tf.identity(net, name="output")
        end_points[end_point + "/output"] = net
    return net


def _pool_whole_grid(net, name):
    """Average-pools [batch, h, w, c] to [batch, 1, 1, c] (reduce_mean if h, w unknown)."""
    if net.shape[1:3].is_fully_defined():
        return tf.nn.avg_pool2d(
            net, [1, *net.shape[1:3].as_list(), 1], [1, 1, 1, 1], "VALID", name=name
        )
    return tf.reduce_mean(net, [1, 2], keepdims=True, name=name)


def mobilenet(
    images,
    layers,
    num_classes=1001,
    is_training=True,
    dropout_keep_prob=0.8,
    depth_multiplier=1.0,
    finegrain_classification_mode=False,
    min_depth=8,
    reuse=None,
    scope="MobilenetV2",
):
    """Builds a MobileNet v2/v3-style classifier from a layer list.

    Args:
        images: float tensor [batch, height, width, 3].
        layers: tuple of Conv, InvertedResidual and GlobalPool layers.
        num_classes: number of classes; 0 or None returns the pooled features [batch, C].
        is_training: whether batch norm and dropout run in training mode.
        dropout_keep_prob: probability of keeping an activation before the classifier.
        depth_multiplier: width multiplier for every layer's output channels.
        finegrain_classification_mode: keep the last layer at full width when
            depth_multiplier < 1 (how TF-Slim's thin checkpoints were trained).
        min_depth: fewest channels any layer keeps after the multiplier.
        reuse: whether to reuse the variables of `scope`.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features, end_points dict) with 'layer_<i>' for each
        layer (and 'layer_<i>/expansion_output', '/depthwise_output', '/output' for blocks),
        'global_pool', 'Logits' and 'Predictions'.

    Raises:
        ValueError: depth_multiplier is not positive, or a layer is of an unknown type.
    """
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}")
    end_points = {}
    conv_count = block_count = 0
    with tf.variable_scope(scope, "Mobilenet", [images], reuse=reuse):
        # Batch norm with scale and center, SAME padding and the activations are part of the
        # architecture (the checkpoints depend on them), so they are set here, not in arg_scope.
        with (
            slim.arg_scope(
                [slim.conv2d, slim.separable_conv2d], normalizer_fn=slim.batch_norm, padding="SAME"
            ),
            slim.arg_scope([slim.batch_norm], center=True, scale=True, is_training=is_training),
            slim.arg_scope([slim.dropout], is_training=is_training),
        ):
            net = images
            for index, layer in enumerate(layers):
                end_point = f"layer_{index + 1}"
                if isinstance(layer, GlobalPool):
                    net = _pool_whole_grid(net, end_point)
                    end_points[end_point] = net
                    continue
                depth = make_divisible(layer.depth * depth_multiplier, 8, min_depth)
                if (
                    finegrain_classification_mode
                    and depth_multiplier < 1
                    and index == len(layers) - 1
                ):
                    depth = layer.depth
                if isinstance(layer, Conv):
                    # TF-Slim's unnamed slim.conv2d calls: 'Conv', 'Conv_1', 'Conv_2'.
                    name = f"Conv_{conv_count}" if conv_count else "Conv"
                    conv_count += 1
                    net = slim.conv2d(
                        net,
                        depth,
                        [layer.kernel, layer.kernel],
                        stride=layer.stride,
                        activation_fn=layer.activation,
                        normalizer_fn=slim.batch_norm if layer.batch_norm else None,
                        scope=name,
                    )
                elif isinstance(layer, InvertedResidual):
                    name = f"expanded_conv_{block_count}" if block_count else "expanded_conv"
                    block_count += 1
                    net = inverted_residual(net, layer, depth, end_points, end_point, name)
                else:
                    raise ValueError(
                        f"Unknown layer {layer!r} at {index}; expected Conv, InvertedResidual "
                        "or GlobalPool"
                    )
                end_points[end_point] = net

            with tf.variable_scope("Logits"):
                net = end_points["global_pool"] = _pool_whole_grid(net, "global_pool")
                if not num_classes:
                    return tf.squeeze(net, [1, 2], name="features"), end_points
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout")
                logits = slim.conv2d(
                    net,
                    num_classes,
                    [1, 1],
                    activation_fn=None,
                    normalizer_fn=None,
                    biases_initializer=tf.zeros_initializer(),
                    scope="Conv2d_1c_1x1",
                )
                logits = tf.squeeze(logits, [1, 2], name="output")
            end_points["Logits"] = logits
            end_points["Predictions"] = slim.softmax(logits, scope="Predictions")
    return logits, end_points


def mobilenet_v2(
    images,
    num_classes=1001,
    is_training=True,
    dropout_keep_prob=0.8,
    depth_multiplier=1.0,
    finegrain_classification_mode=False,
    reuse=None,
    scope="MobilenetV2",
):
    """Builds MobileNet v2 for classification (see `mobilenet` for the arguments)."""
    return mobilenet(
        images,
        MOBILENET_V2_LAYERS,
        num_classes=num_classes,
        is_training=is_training,
        dropout_keep_prob=dropout_keep_prob,
        depth_multiplier=depth_multiplier,
        finegrain_classification_mode=finegrain_classification_mode,
        reuse=reuse,
        scope=scope,
    )


mobilenet_v2.default_image_size = 224


def _variant(name, **defaults):
    """mobilenet_v2 with fixed width settings, as a named variant."""
    network = functools.partial(mobilenet_v2, **defaults)
    functools.update_wrapper(network, mobilenet_v2)
    network.__name__ = network.__qualname__ = name
    return network


mobilenet_v2_140 = _variant("mobilenet_v2_140", depth_multiplier=1.4)
# TF-Slim's 0.35 checkpoint keeps the 1280-channel last layer (finegrain mode).
mobilenet_v2_035 = _variant(
    "mobilenet_v2_035", depth_multiplier=0.35, finegrain_classification_mode=True
)


def mobilenet_v2_arg_scope(
    weight_decay=0.00004,
    stddev=0.09,
    batch_norm_decay=0.997,
    batch_norm_epsilon=0.001,
    regularize_depthwise=False,
):
    """TF-Slim's MobileNet training settings: initialiser, L2 decay, batch-norm averaging.

    Depthwise filters are not decayed by default, as in TF-Slim.
    """
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope(
        [slim.conv2d, slim.separable_conv2d],
        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
    ):
        with slim.arg_scope([slim.batch_norm], decay=batch_norm_decay, epsilon=batch_norm_epsilon):
            with slim.arg_scope([slim.conv2d], weights_regularizer=regularizer):
                with slim.arg_scope(
                    [slim.separable_conv2d],
                    weights_regularizer=regularizer if regularize_depthwise else None,
                ) as scope:
                    return scope
