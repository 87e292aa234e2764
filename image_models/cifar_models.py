"""VGG and ResNet networks in their CIFAR (32x32) layouts.

* `vgg_cifar`: Simonyan, Zisserman: "Very Deep Convolutional Networks for Large-Scale
  Image Recognition", ICLR 2015, with batch normalisation after every convolution and,
  since five 2x2 pools bring 32x32 down to 1x1, a 512-unit fully connected layer before
  the classifier (the CIFAR layout of Li et al., "Pruning Filters for Efficient
  ConvNets", ICLR 2017: VGG-16 has 1.5e7 parameters). Variants list their convolutions.
* `resnet_cifar`: He, Zhang, Ren, Sun: "Deep Residual Learning for Image Recognition",
  CVPR 2016, section 4.2: a 3x3 convolution of 16 filters, three stages of n basic
  blocks (two 3x3 convolutions) with 16, 32 and 64 filters on 32, 16 and 8 pixels,
  global average pooling and a fully connected classifier: 6n+2 layers. As in the
  paper, shortcuts are identities, and where a stage halves the map and doubles the
  filters the shortcut subsamples and pads the new channels with zeros (option A), so
  they add no parameters: 0.27M, 0.46M, 0.85M and 1.7M parameters for 20, 32, 56, 110
  layers (the paper's Table 6).

Every function takes images [batch, 32, 32, channels] and returns
(logits [batch, num_classes], end_points); num_classes 0 or None returns the
penultimate features [batch, C] instead.

Typical use:

    with slim.arg_scope(resnet_cifar_arg_scope(weight_decay=1e-4)):
        logits, end_points = resnet20_cifar(images, num_classes=10, is_training=True)
"""

import collections

from slim_compat import slim, tf

_CIFAR_SIZE = 32


def _batch_norm_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon):
    """ReLU conv layers with He-normal weights and batch norm (learned scale and offset)."""
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected],
        weights_initializer=slim.variance_scaling_initializer(),
        weights_regularizer=slim.l2_regularizer(weight_decay) if weight_decay else None,
        activation_fn=tf.nn.relu,
    ):
        with slim.arg_scope(
            [slim.conv2d],
            padding="SAME",
            normalizer_fn=slim.batch_norm,
        ):
            with slim.arg_scope(
                [slim.batch_norm],
                decay=batch_norm_decay,
                epsilon=batch_norm_epsilon,
                scale=True,
                updates_collections=tf.GraphKeys.UPDATE_OPS,
            ) as sc:
                return sc


# ---------------------------------------------------------------------------------------
# VGG


def vgg_cifar(
    images,
    conv_stages,
    num_classes=10,
    is_training=True,
    dropout_keep_prob=0.5,
    scope="vgg_cifar",
):
    """Builds a VGG net for 32x32 images: conv stages, each ending in a 2x2 max-pool.

    Args:
        images: float tensor [batch, 32, 32, channels].
        conv_stages: list of stages, each a list of filter counts of its 3x3 convolutions;
            stage i is scoped 'conv{i}' with layers 'conv{i}_{j}', then 'pool{i}'.
        num_classes: number of classes; 0 or None returns the 512-d fc6 features.
        is_training: whether batch norm and dropout run in training mode.
        dropout_keep_prob: probability of keeping an activation before each fc layer.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, 512], end_points).
    """
    end_points = {}
    with tf.variable_scope(scope, "vgg_cifar", [images]):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net = images
            for i, stage in enumerate(conv_stages, start=1):
                with tf.variable_scope(f"conv{i}"):
                    for j, filters in enumerate(stage, start=1):
                        net = end_points[f"conv{i}_{j}"] = slim.conv2d(
                            net, filters, [3, 3], scope=f"conv{i}_{j}"
                        )
                # SAME padding: identical at 32x32, and smaller inputs still work.
                net = end_points[f"pool{i}"] = slim.max_pool2d(
                    net, [2, 2], padding="SAME", scope=f"pool{i}"
                )
            # Average whatever map is left (1x1 at 32x32) so other sizes work too.
            net = end_points["global_pool"] = tf.reduce_mean(net, [1, 2], name="global_pool")
            net = slim.dropout(net, dropout_keep_prob, scope="dropout5")
            net = end_points["fc6"] = slim.fully_connected(
                net, 512, normalizer_fn=slim.batch_norm, scope="fc6"
            )
            if not num_classes:
                return net, end_points
            net = slim.dropout(net, dropout_keep_prob, scope="dropout6")
            logits = end_points["Logits"] = slim.fully_connected(
                net, num_classes, activation_fn=None, scope="logits"
            )
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


def vgg11_cifar(images, num_classes=10, is_training=True, dropout_keep_prob=0.5, **kwargs):
    """VGG-11 (configuration A): 8 convolutions."""
    stages = [[64], [128], [256, 256], [512, 512], [512, 512]]
    return vgg_cifar(
        images, stages, num_classes, is_training, dropout_keep_prob, scope="vgg11_cifar", **kwargs
    )


def vgg13_cifar(images, num_classes=10, is_training=True, dropout_keep_prob=0.5, **kwargs):
    """VGG-13 (configuration B): 10 convolutions."""
    stages = [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]
    return vgg_cifar(
        images, stages, num_classes, is_training, dropout_keep_prob, scope="vgg13_cifar", **kwargs
    )


def vgg16_cifar(images, num_classes=10, is_training=True, dropout_keep_prob=0.5, **kwargs):
    """VGG-16 (configuration D): 13 convolutions."""
    stages = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
    return vgg_cifar(
        images, stages, num_classes, is_training, dropout_keep_prob, scope="vgg16_cifar", **kwargs
    )


def vgg19_cifar(images, num_classes=10, is_training=True, dropout_keep_prob=0.5, **kwargs):
    """VGG-19 (configuration E): 16 convolutions."""
    stages = [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4]
    return vgg_cifar(
        images, stages, num_classes, is_training, dropout_keep_prob, scope="vgg19_cifar", **kwargs
    )


for _vgg in (vgg11_cifar, vgg13_cifar, vgg16_cifar, vgg19_cifar):
    _vgg.default_image_size = _CIFAR_SIZE


def vgg_cifar_arg_scope(weight_decay=5e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-5):
    """He-normal weights, L2 decay 5e-4 and batch norm as in the CIFAR VGG recipes."""
    return _batch_norm_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


# ---------------------------------------------------------------------------------------
# ResNet

Stage = collections.namedtuple("Stage", ["scope", "filters", "num_blocks", "stride"])
Stage.__doc__ = (
    """One ResNet stage: `num_blocks` basic blocks of `filters`; the first has `stride`."""
)


def _shortcut(net, filters, stride):
    """Identity shortcut; subsamples and zero-pads channels when the shape changes (option A)."""
    if stride > 1:
        net = net[:, ::stride, ::stride, :]
    missing = filters - net.shape[-1]
    if missing:
        net = tf.pad(net, [[0, 0], [0, 0], [0, 0], [missing // 2, missing - missing // 2]])
    return net


def basic_block(net, filters, stride, scope):
    """conv3x3-BN-ReLU, conv3x3-BN, plus the shortcut, then ReLU (He et al. 2016, Fig. 2)."""
    with tf.variable_scope(scope, "basic_block", [net]):
        shortcut = _shortcut(net, filters, stride)
        residual = slim.conv2d(net, filters, [3, 3], stride=stride, scope="conv1")
        residual = slim.conv2d(residual, filters, [3, 3], activation_fn=None, scope="conv2")
        return tf.nn.relu(shortcut + residual)


def resnet_cifar(images, stages, num_classes=10, is_training=True, scope="resnet_cifar"):
    """Builds a CIFAR ResNet: 3x3 stem, the stages of basic blocks, global pool, classifier.

    Args:
        images: float tensor [batch, 32, 32, channels].
        stages: list of `Stage`s, in order.
        num_classes: number of classes; 0 or None returns the pooled features.
        is_training: whether batch norm runs in training mode.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, stages[-1].filters], end_points).
    """
    end_points = {}
    with tf.variable_scope(scope, "resnet_cifar", [images]):
        with slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = end_points["conv1"] = slim.conv2d(
                images, stages[0].filters, [3, 3], scope="conv1"
            )
            for stage in stages:
                with tf.variable_scope(stage.scope):
                    for index in range(stage.num_blocks):
                        stride = stage.stride if index == 0 else 1
                        net = basic_block(net, stage.filters, stride, scope=f"unit_{index + 1}")
                end_points[stage.scope] = net
            net = end_points["global_pool"] = tf.reduce_mean(net, [1, 2], name="global_pool")
            if not num_classes:
                return net, end_points
            logits = end_points["Logits"] = slim.fully_connected(
                net, num_classes, activation_fn=None, scope="logits"
            )
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


def resnet20_cifar(images, num_classes=10, is_training=True, **kwargs):
    """ResNet-20 (n=3): 0.27M parameters."""
    stages = [Stage("block1", 16, 3, 1), Stage("block2", 32, 3, 2), Stage("block3", 64, 3, 2)]
    return resnet_cifar(images, stages, num_classes, is_training, scope="resnet20_cifar", **kwargs)


def resnet32_cifar(images, num_classes=10, is_training=True, **kwargs):
    """ResNet-32 (n=5): 0.46M parameters."""
    stages = [Stage("block1", 16, 5, 1), Stage("block2", 32, 5, 2), Stage("block3", 64, 5, 2)]
    return resnet_cifar(images, stages, num_classes, is_training, scope="resnet32_cifar", **kwargs)


def resnet44_cifar(images, num_classes=10, is_training=True, **kwargs):
    """ResNet-44 (n=7): 0.66M parameters."""
    stages = [Stage("block1", 16, 7, 1), Stage("block2", 32, 7, 2), Stage("block3", 64, 7, 2)]
    return resnet_cifar(images, stages, num_classes, is_training, scope="resnet44_cifar", **kwargs)


def resnet56_cifar(images, num_classes=10, is_training=True, **kwargs):
    """ResNet-56 (n=9): 0.85M parameters."""
    stages = [Stage("block1", 16, 9, 1), Stage("block2", 32, 9, 2), Stage("block3", 64, 9, 2)]
    return resnet_cifar(images, stages, num_classes, is_training, scope="resnet56_cifar", **kwargs)


def resnet110_cifar(images, num_classes=10, is_training=True, **kwargs):
    """ResNet-110 (n=18): 1.7M parameters."""
    stages = [Stage("block1", 16, 18, 1), Stage("block2", 32, 18, 2), Stage("block3", 64, 18, 2)]
    return resnet_cifar(images, stages, num_classes, is_training, scope="resnet110_cifar", **kwargs)


for _resnet in (resnet20_cifar, resnet32_cifar, resnet44_cifar, resnet56_cifar, resnet110_cifar):
    _resnet.default_image_size = _CIFAR_SIZE


def resnet_cifar_arg_scope(weight_decay=1e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-5):
    """He-normal weights, L2 decay 1e-4 and batch norm after every convolution (the paper's)."""
    return _batch_norm_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)
