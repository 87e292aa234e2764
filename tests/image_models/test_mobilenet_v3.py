"""MobileNet v3 (large, small, minimalistic): build, gradients, features, TF-Slim layout."""

import numpy as np
import pytest

from image_models import mobilenet_v3, nets_factory
from slim_compat import slim, tf

# name -> (pooled feature width, published parameters in millions at 224 px: the ports of
# TF-Slim's checkpoints in timm's model index, docs/models/tf-mobilenet-v3.md of
# pytorch-image-models: tf_mobilenetv3_large_100 5.48 M, _large_minimal_100 3.92 M,
# _small_100 2.54 M, _small_minimal_100 2.04 M). (TF-Slim's README rounds to 5.4 / 3.9 /
# 2.9 / 2.0; its 2.9 for the small net disagrees with the checkpoint and the paper's 2.5.)
# The counts here also equal, to the parameter, those of tf_keras' MobileNetV3Large/Small
# (weights=None, classes=1001), which load the same TF checkpoints; building those in a test
# takes over a minute, so that check is not repeated here.
VARIANTS = {
    "mobilenet_v3_large": (1280, 5.48),
    "mobilenet_v3_large_minimalistic": (1280, 3.92),
    "mobilenet_v3_small": (1024, 2.54),
    "mobilenet_v3_small_minimalistic": (1024, 2.04),
}
SMALL_SIZE = 32


def _build(name, num_classes, size=SMALL_SIZE):
    images = tf.random.uniform([2, size, size, 3], -1.0, 1.0, seed=7)
    return nets_factory.get_network_fn(name, num_classes, is_training=True)(images)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_builds_trains_and_runs_through_the_factory(graph, name):
    logits, end_points = _build(name, 5)
    assert logits.shape.as_list() == [2, 5]
    assert end_points["Predictions"].shape.as_list() == [2, 5]

    variables = tf.trainable_variables()
    gradients = tf.gradients(tf.reduce_sum(logits), variables)
    assert not [v.name for v, g in zip(variables, gradients, strict=True) if g is None]

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = sess.run(logits)
    assert np.all(np.isfinite(values))
    assert np.std(values) > 0


def test_no_classes_gives_features_and_minimalistic_drops_se_and_5x5(graph):
    features, end_points = _build("mobilenet_v3_small_minimalistic", 0)
    assert features.shape.as_list() == [2, 1024]
    assert "Logits" not in end_points
    names = [v.name for v in tf.trainable_variables()]
    assert not [n for n in names if "squeeze_excite" in n]
    kernels = {
        tuple(v.shape.as_list()[:2])
        for v in tf.trainable_variables()
        if v.name.endswith("depthwise_weights:0")
    }
    assert kernels == {(3, 3)}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_count_matches_published_figure(name):
    _, published_millions = VARIANTS[name]
    count = nets_factory.count_parameters(name, num_classes=1001)
    assert count == pytest.approx(published_millions * 1e6, rel=0.01)


def test_large_scope_names_and_shapes_match_tf_slim(graph):
    images = tf.zeros([1, 224, 224, 3])
    with slim.arg_scope(mobilenet_v3.mobilenet_v3_arg_scope()):
        logits, end_points = mobilenet_v3.mobilenet_v3_large(images, 1001, is_training=False)
    shapes = {v.name: v.shape.as_list() for v in tf.global_variables()}
    assert list(shapes)[0] == "MobilenetV3/Conv/weights:0"
    assert shapes["MobilenetV3/Conv/weights:0"] == [3, 3, 3, 16]
    assert "MobilenetV3/expanded_conv/expand/weights:0" not in shapes  # expansion 1
    assert shapes["MobilenetV3/expanded_conv_3/depthwise/depthwise_weights:0"] == [5, 5, 72, 1]
    # Squeeze-and-excite: 72 -> make_divisible(72 / 4) = 24 -> 72, with biases, no batch norm.
    assert shapes["MobilenetV3/expanded_conv_3/squeeze_excite/Conv/weights:0"] == [1, 1, 72, 24]
    assert shapes["MobilenetV3/expanded_conv_3/squeeze_excite/Conv_1/biases:0"] == [72]
    assert "MobilenetV3/expanded_conv_3/squeeze_excite/Conv/BatchNorm/beta:0" not in shapes
    assert "MobilenetV3/expanded_conv_2/squeeze_excite/Conv/weights:0" not in shapes
    assert shapes["MobilenetV3/expanded_conv_9/expand/weights:0"] == [1, 1, 80, 184]
    assert shapes["MobilenetV3/expanded_conv_14/project/weights:0"] == [1, 1, 960, 160]
    assert shapes["MobilenetV3/Conv_1/weights:0"] == [1, 1, 160, 960]
    assert shapes["MobilenetV3/Conv_1/BatchNorm/gamma:0"] == [960]
    assert shapes["MobilenetV3/Conv_2/weights:0"] == [1, 1, 960, 1280]
    assert shapes["MobilenetV3/Conv_2/biases:0"] == [1280]
    assert "MobilenetV3/Conv_2/BatchNorm/beta:0" not in shapes
    assert shapes["MobilenetV3/Logits/Conv2d_1c_1x1/weights:0"] == [1, 1, 1280, 1001]
    assert list(shapes)[-1] == "MobilenetV3/Logits/Conv2d_1c_1x1/biases:0"
    assert end_points["layer_17"].shape.as_list() == [1, 7, 7, 960]
    assert end_points["layer_18"].shape.as_list() == [1, 1, 1, 960]  # pooled inside the trunk
    assert logits.shape.as_list() == [1, 1001]
