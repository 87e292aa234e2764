"""MobileNet v2 (1.0, 1.4, 0.35): build, gradients, features, TF-Slim checkpoint layout."""

import numpy as np
import pytest

from image_models import mobilenet_v2, nets_factory
from slim_compat import slim, tf

# name -> published parameters in millions at 224 px and 1001 classes, from the TF-Slim
# MobileNet v2 table (research/slim/nets/mobilenet/README.md). That table counts convolution
# weights and biases without the batch-norm scales and offsets; the totals with them, 3.51 M,
# 6.11 M and 1.68 M, equal to the parameter those of tf_keras' MobileNetV2 (alpha 1.0, 1.4,
# 0.35; weights=None, classes=1001), which loads the same TF checkpoints.
VARIANTS = {
    "mobilenet_v2": 3.47,
    "mobilenet_v2_140": 6.06,
    "mobilenet_v2_035": 1.66,
}
SMALL_SIZE = 32  # five stride-2 layers: a 1x1 final grid


def _build(name, num_classes, size=SMALL_SIZE):
    images = tf.random.uniform([2, size, size, 3], -1.0, 1.0, seed=5)
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


def test_no_classes_gives_pooled_features_of_the_thin_variant(graph):
    features, end_points = _build("mobilenet_v2_035", None)
    assert features.shape.as_list() == [2, 1280]  # finegrain mode keeps the last layer wide
    assert end_points["global_pool"].shape.as_list() == [2, 1, 1, 1280]
    assert "Logits" not in end_points
    shapes = {v.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert shapes["MobilenetV2/Conv/weights:0"] == [3, 3, 3, 16]  # 32 * 0.35 rounds up to 16
    for name, shape in shapes.items():
        if name.endswith("/weights:0"):  # every layer width stays a multiple of 8
            assert shape[-1] % 8 == 0, name


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_count_matches_published_figure(graph, name):
    published_millions = VARIANTS[name]
    images = tf.placeholder(tf.float32, [1, 224, 224, 3])
    nets_factory.get_network_fn(name, 1001)(images)
    without_batch_norm = sum(
        v.shape.num_elements() for v in tf.trainable_variables() if "/BatchNorm/" not in v.name
    )
    assert without_batch_norm == pytest.approx(published_millions * 1e6, rel=0.01)


def test_scope_names_shapes_and_end_points_match_tf_slim(graph):
    images = tf.zeros([1, 224, 224, 3])
    with slim.arg_scope(mobilenet_v2.mobilenet_v2_arg_scope()):
        logits, end_points = mobilenet_v2.mobilenet_v2(images, 1001, is_training=False)
    shapes = {v.name: v.shape.as_list() for v in tf.global_variables()}
    assert list(shapes)[0] == "MobilenetV2/Conv/weights:0"
    assert shapes["MobilenetV2/Conv/weights:0"] == [3, 3, 3, 32]
    assert shapes["MobilenetV2/Conv/BatchNorm/gamma:0"] == [32]
    # The first block has no expansion layer (expansion factor 1).
    assert "MobilenetV2/expanded_conv/expand/weights:0" not in shapes
    assert shapes["MobilenetV2/expanded_conv/depthwise/depthwise_weights:0"] == [3, 3, 32, 1]
    assert shapes["MobilenetV2/expanded_conv/project/weights:0"] == [1, 1, 32, 16]
    assert shapes["MobilenetV2/expanded_conv_1/expand/weights:0"] == [1, 1, 16, 96]
    assert shapes["MobilenetV2/expanded_conv_16/project/weights:0"] == [1, 1, 960, 320]
    assert "MobilenetV2/expanded_conv_17/project/weights:0" not in shapes
    assert shapes["MobilenetV2/Conv_1/weights:0"] == [1, 1, 320, 1280]
    assert shapes["MobilenetV2/Conv_1/BatchNorm/moving_variance:0"] == [1280]
    assert shapes["MobilenetV2/Logits/Conv2d_1c_1x1/weights:0"] == [1, 1, 1280, 1001]
    assert list(shapes)[-1] == "MobilenetV2/Logits/Conv2d_1c_1x1/biases:0"
    assert logits.shape.as_list() == [1, 1001]
    assert end_points["layer_19"].shape.as_list() == [1, 7, 7, 1280]
    assert end_points["layer_18/expansion_output"].shape.as_list() == [1, 7, 7, 960]
    assert end_points["layer_2/depthwise_output"].shape.as_list() == [1, 112, 112, 32]


def test_make_divisible_rounds_like_tf_slim():
    assert mobilenet_v2.make_divisible(32 * 0.35) == 16  # 11.2 -> 8 is >10% down, so 16
    assert mobilenet_v2.make_divisible(16 * 0.35) == 8
    assert mobilenet_v2.make_divisible(320 * 1.4) == 448
    assert mobilenet_v2.make_divisible(24 * 6) == 144
