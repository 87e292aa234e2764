"""MobileNet v3 (large, small, minimalistic), with TF-Slim's variable names.

A. Howard, M. Sandler, G. Chu, L.-C. Chen, B. Chen, M. Tan, W. Wang, Y. Zhu, R. Pang,
V. Vasudevan, Q. V. Le, H. Adam: "Searching for MobileNetV3", ICCV 2019 (arXiv:1905.02244).

The networks reuse MobileNet v2's inverted-residual block (mobilenet_v2.py) with per-block
kernel sizes (3 or 5), activations (ReLU or hard-swish) and squeeze-and-excite gates, and a
cheaper head: a 1x1 convolution ('Conv_1'), global pooling inside the trunk, then a 1x1
convolution with biases and no batch norm ('Conv_2', 1280 or 1024 channels) before the
classifier ('Logits/Conv2d_1c_1x1'). The minimalistic variants drop squeeze-and-excite,
hard-swish and 5x5 kernels. Scope 'MobilenetV3' as in TF-Slim's checkpoints.

Typical use:

    with slim.arg_scope(mobilenet_v3_arg_scope()):
        logits, end_points = mobilenet_v3_large(images, num_classes=1001, is_training=True)
"""

import functools

from image_models.mobilenet_v2 import (
    Conv,
    GlobalPool,
    InvertedResidual,
    mobilenet,
    mobilenet_v2_arg_scope,
)
from slim_compat import tf


def hard_swish(x):
    """x * ReLU6(x + 3) / 6: a piecewise-linear swish, cheap on mobile hardware."""
    with tf.name_scope("hard_swish"):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


RELU, HSWISH = tf.nn.relu, hard_swish


def _block(expansion, depth, kernel, stride=1, activation=RELU, squeeze_excite=False):
    return InvertedResidual(expansion, depth, kernel, stride, activation, squeeze_excite)


def _se_block(expansion, depth, kernel, stride=1, activation=RELU):
    return _block(expansion, depth, kernel, stride, activation, squeeze_excite=True)


# Table 1 of the paper; expansions are given as inner width / input width.
MOBILENET_V3_LARGE_LAYERS = (
    Conv(16, 3, stride=2, activation=HSWISH),
    _block(1, 16, 3),
    _block(4, 24, 3, stride=2),
    _block(3, 24, 3),
    _se_block(3, 40, 5, stride=2),
    _se_block(3, 40, 5),
    _se_block(3, 40, 5),
    _block(6, 80, 3, stride=2, activation=HSWISH),
    _block(2.5, 80, 3, activation=HSWISH),
    _block(184 / 80, 80, 3, activation=HSWISH),
    _block(184 / 80, 80, 3, activation=HSWISH),
    _se_block(6, 112, 3, activation=HSWISH),
    _se_block(6, 112, 3, activation=HSWISH),
    _se_block(6, 160, 5, stride=2, activation=HSWISH),
    _se_block(6, 160, 5, activation=HSWISH),
    _se_block(6, 160, 5, activation=HSWISH),
    Conv(960, 1, activation=HSWISH),
    GlobalPool(),
    Conv(1280, 1, activation=HSWISH, batch_norm=False),
)

# Table 2 of the paper.
MOBILENET_V3_SMALL_LAYERS = (
    Conv(16, 3, stride=2, activation=HSWISH),
    _se_block(1, 16, 3, stride=2),
    _block(72 / 16, 24, 3, stride=2),
    _block(88 / 24, 24, 3),
    _se_block(4, 40, 5, stride=2, activation=HSWISH),
    _se_block(6, 40, 5, activation=HSWISH),
    _se_block(6, 40, 5, activation=HSWISH),
    _se_block(3, 48, 5, activation=HSWISH),
    _se_block(3, 48, 5, activation=HSWISH),
    _se_block(6, 96, 5, stride=2, activation=HSWISH),
    _se_block(6, 96, 5, activation=HSWISH),
    _se_block(6, 96, 5, activation=HSWISH),
    Conv(576, 1, activation=HSWISH),
    GlobalPool(),
    Conv(1024, 1, activation=HSWISH, batch_norm=False),
)


def minimalistic(layers):
    """The same widths with ReLU everywhere, 3x3 kernels and no squeeze-and-excite."""
    simplified = []
    for layer in layers:
        if isinstance(layer, InvertedResidual):
            layer = layer._replace(kernel=3, activation=RELU, squeeze_excite=False)
        elif isinstance(layer, Conv):
            layer = layer._replace(activation=RELU)
        simplified.append(layer)
    return tuple(simplified)


MOBILENET_V3_LARGE_MINIMALISTIC_LAYERS = minimalistic(MOBILENET_V3_LARGE_LAYERS)
MOBILENET_V3_SMALL_MINIMALISTIC_LAYERS = minimalistic(MOBILENET_V3_SMALL_LAYERS)


def mobilenet_v3(
    images,
    num_classes=1001,
    is_training=True,
    dropout_keep_prob=0.8,
    layers=MOBILENET_V3_LARGE_LAYERS,
    depth_multiplier=1.0,
    finegrain_classification_mode=False,
    reuse=None,
    scope="MobilenetV3",
):
    """Builds a MobileNet v3 classifier (see mobilenet_v2.mobilenet for the arguments).

    Returns:
        (logits [batch, num_classes] or features [batch, C], end_points dict) with
        'layer_<i>', 'global_pool', 'Logits' and 'Predictions'.
    """
    return mobilenet(
        images,
        layers,
        num_classes=num_classes,
        is_training=is_training,
        dropout_keep_prob=dropout_keep_prob,
        depth_multiplier=depth_multiplier,
        finegrain_classification_mode=finegrain_classification_mode,
        reuse=reuse,
        scope=scope,
    )


mobilenet_v3.default_image_size = 224


def _variant(name, layers):
    """mobilenet_v3 with a fixed layer list, as a named variant."""
    network = functools.partial(mobilenet_v3, layers=layers)
    functools.update_wrapper(network, mobilenet_v3)
    network.__name__ = network.__qualname__ = name
    return network


mobilenet_v3_large = _variant("mobilenet_v3_large", MOBILENET_V3_LARGE_LAYERS)
mobilenet_v3_small = _variant("mobilenet_v3_small", MOBILENET_V3_SMALL_LAYERS)
mobilenet_v3_large_minimalistic = _variant(
    "mobilenet_v3_large_minimalistic", MOBILENET_V3_LARGE_MINIMALISTIC_LAYERS
)
mobilenet_v3_small_minimalistic = _variant(
    "mobilenet_v3_small_minimalistic", MOBILENET_V3_SMALL_MINIMALISTIC_LAYERS
)

# TF-Slim trains MobileNet v3 with the same settings as v2 (mobilenet.training_scope).
mobilenet_v3_arg_scope = mobilenet_v2_arg_scope
