"""MobileNet v1, with TF-Slim's variable names so its published checkpoints load.

A. G. Howard, M. Zhu, B. Chen, D. Kalenichenko, W. Wang, T. Weyand, M. Andreetto,
H. Adam: "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv:1704.04861, 2017.

One full 3x3 convolution (Conv2d_0) then 13 depthwise-separable layers (Conv2d_<i>_depthwise,
a 3x3 per-channel convolution, and Conv2d_<i>_pointwise, a 1x1 convolution), each followed by
batch norm and ReLU6; global average pooling and a 1x1 convolution as classifier
('Logits/Conv2d_1c_1x1'). The width multiplier thins every layer (0.75, 0.5, 0.25 variants).

Typical use:

    with slim.arg_scope(mobilenet_v1_arg_scope()):
        logits, end_points = mobilenet_v1(images, num_classes=1001, is_training=True)

Every layer uses SAME padding, so any input size of at least 1x1 builds (32 px gives a 1x1
final grid).
"""

import collections
import functools

from slim_compat import slim, tf

# kind: "conv" (full 3x3 convolution) or "separable" (depthwise 3x3 then pointwise 1x1).
Layer = collections.namedtuple("Layer", ["kind", "stride", "depth"])

MOBILENET_V1_LAYERS = (
    Layer("conv", 2, 32),
    Layer("separable", 1, 64),
    Layer("separable", 2, 128),
    Layer("separable", 1, 128),
    Layer("separable", 2, 256),
    Layer("separable", 1, 256),
    Layer("separable", 2, 512),
    *[Layer("separable", 1, 512)] * 5,
    Layer("separable", 2, 1024),
    Layer("separable", 1, 1024),
)


def mobilenet_v1_base(
    images, depth_multiplier=1.0, min_depth=8, layers=MOBILENET_V1_LAYERS, scope="MobilenetV1"
):
    """Builds the convolutional trunk up to Conv2d_13_pointwise.

    Args:
        images: float tensor [batch, height, width, 3].
        depth_multiplier: width multiplier applied to every layer's number of channels.
        min_depth: fewest channels any layer keeps after the multiplier.
        layers: the Layer sequence to build.
        scope: variable scope.

    Returns:
        (last activations [batch, height/32, width/32, 1024 * depth_multiplier], end_points).

    Raises:
        ValueError: depth_multiplier is not positive.
    """
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}")

    def depth(channels):
        return max(int(channels * depth_multiplier), min_depth)

    end_points = {}
    with tf.variable_scope(scope, "MobilenetV1", [images]):
        # Batch norm with scale and center is part of the architecture (the checkpoints
        # hold gamma and beta), so it is set here rather than in the arg_scope.
        with (
            slim.arg_scope(
                [slim.conv2d, slim.separable_conv2d],
                padding="SAME",
                normalizer_fn=slim.batch_norm,
                activation_fn=tf.nn.relu6,
            ),
            slim.arg_scope([slim.batch_norm], center=True, scale=True),
        ):
            net = images
            for index, layer in enumerate(layers):
                name = f"Conv2d_{index}"
                if layer.kind == "conv":
                    net = slim.conv2d(
                        net, depth(layer.depth), [3, 3], stride=layer.stride, scope=name
                    )
                    end_points[name] = net
                elif layer.kind == "separable":
                    # num_outputs=None makes slim build the depthwise half only.
                    net = slim.separable_conv2d(
                        net,
                        None,
                        [3, 3],
                        depth_multiplier=1,
                        stride=layer.stride,
                        scope=name + "_depthwise",
                    )
                    end_points[name + "_depthwise"] = net
                    net = slim.conv2d(net, depth(layer.depth), [1, 1], scope=name + "_pointwise")
                    end_points[name + "_pointwise"] = net
                else:
                    raise ValueError(
                        f"Unknown layer kind {layer.kind!r} at {index}; expected conv or separable"
                    )
    return net, end_points


def mobilenet_v1(
    images,
    num_classes=1001,
    is_training=True,
    dropout_keep_prob=0.999,
    depth_multiplier=1.0,
    min_depth=8,
    reuse=None,
    scope="MobilenetV1",
):
    """Builds MobileNet v1 for classification.

    Args:
        images: float tensor [batch, height, width, 3]; 224x224 nominally.
        num_classes: number of classes; 0 or None returns the pooled features
            [batch, 1024 * depth_multiplier].
        is_training: whether batch norm and dropout run in training mode.
        dropout_keep_prob: probability of keeping an activation before the classifier.
        depth_multiplier: width multiplier (1.0, 0.75, 0.5, 0.25 have published checkpoints).
        min_depth: fewest channels any layer keeps after the multiplier.
        reuse: whether to reuse the variables of `scope`.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features, end_points dict) with the layer names,
        'AvgPool_1a', 'Logits' and 'Predictions'.
    """
    with tf.variable_scope(scope, "MobilenetV1", [images], reuse=reuse) as var_scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v1_base(
                images, depth_multiplier=depth_multiplier, min_depth=min_depth, scope=var_scope
            )
            with tf.variable_scope("Logits"):
                # Pool the whole grid: the same 7x7 window as TF-Slim at 224 px, and logits stay
                # [batch, classes] at other sizes too.
                if net.shape[1:3].is_fully_defined():
                    net = slim.avg_pool2d(
                        net, net.shape[1:3].as_list(), padding="VALID", scope="AvgPool_1a"
                    )
                else:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                end_points["AvgPool_1a"] = net
                if not num_classes:
                    return tf.squeeze(net, [1, 2], name="features"), end_points
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout_1b")
                logits = slim.conv2d(
                    net,
                    num_classes,
                    [1, 1],
                    activation_fn=None,
                    normalizer_fn=None,
                    scope="Conv2d_1c_1x1",
                )
                logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
            end_points["Logits"] = logits
            end_points["Predictions"] = slim.softmax(logits, scope="Predictions")
    return logits, end_points


mobilenet_v1.default_image_size = 224


def _thinned(depth_multiplier, name):
    """mobilenet_v1 with a fixed width multiplier, as a named variant."""
    network = functools.partial(mobilenet_v1, depth_multiplier=depth_multiplier)
    functools.update_wrapper(network, mobilenet_v1)
    network.__name__ = network.__qualname__ = name
    return network


mobilenet_v1_075 = _thinned(0.75, "mobilenet_v1_075")
mobilenet_v1_050 = _thinned(0.50, "mobilenet_v1_050")
mobilenet_v1_025 = _thinned(0.25, "mobilenet_v1_025")


def mobilenet_v1_arg_scope(
    weight_decay=0.00004,
    stddev=0.09,
    regularize_depthwise=False,
    batch_norm_decay=0.9997,
    batch_norm_epsilon=0.001,
):
    """Truncated-normal initialisation, L2 weight decay, batch-norm moving-average settings.

    Depthwise filters are not decayed by default: they have few parameters, and decaying
    them hurts accuracy (section 3.3 of the paper).
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
