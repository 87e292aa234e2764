"""MobileNet v1 and its thinned variants: build, gradients, features, TF-Slim layout."""

import numpy as np
import pytest

from image_models import mobilenet_v1, nets_factory
from slim_compat import slim, tf

# name -> (width multiplier, published parameters in millions at 224 px and 1001 classes,
# from the TF-Slim MobileNet v1 table, research/slim/nets/mobilenet_v1.md).
VARIANTS = {
    "mobilenet_v1": (1.0, 4.24),
    "mobilenet_v1_075": (0.75, 2.59),
    "mobilenet_v1_050": (0.50, 1.34),
    "mobilenet_v1_025": (0.25, 0.47),
}
SMALL_SIZE = 32  # five stride-2 layers: a 1x1 final grid


def _build(name, num_classes, size, is_training=True):
    images = tf.random.uniform([2, size, size, 3], -1.0, 1.0, seed=3)
    network_fn = nets_factory.get_network_fn(name, num_classes, is_training=is_training)
    return network_fn(images)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_builds_trains_and_runs_through_the_factory(graph, name):
    logits, end_points = _build(name, 5, SMALL_SIZE)
    assert logits.shape.as_list() == [2, 5]
    assert end_points["Predictions"].shape.as_list() == [2, 5]

    variables = tf.trainable_variables()
    gradients = tf.gradients(tf.reduce_sum(logits), variables)
    assert not [v.name for v, g in zip(variables, gradients, strict=True) if g is None]

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = sess.run(logits)
    assert np.all(np.isfinite(values))
    assert np.std(values) > 0  # not a constant (e.g. all-zero) output


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_count_matches_published_figure(name):
    _, published_millions = VARIANTS[name]
    count = nets_factory.count_parameters(name, num_classes=1001)
    assert count == pytest.approx(published_millions * 1e6, rel=0.01)


def test_scope_names_and_shapes_match_tf_slim(graph):
    images = tf.zeros([1, 224, 224, 3])
    with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
        logits, end_points = mobilenet_v1.mobilenet_v1_050(images, 1001, is_training=False)
    shapes = {v.name: v.shape.as_list() for v in tf.global_variables()}
    assert list(shapes)[0] == "MobilenetV1/Conv2d_0/weights:0"
    assert shapes["MobilenetV1/Conv2d_0/weights:0"] == [3, 3, 3, 16]
    assert shapes["MobilenetV1/Conv2d_0/BatchNorm/gamma:0"] == [16]
    assert shapes["MobilenetV1/Conv2d_1_depthwise/depthwise_weights:0"] == [3, 3, 16, 1]
    assert shapes["MobilenetV1/Conv2d_13_pointwise/weights:0"] == [1, 1, 512, 512]
    assert shapes["MobilenetV1/Conv2d_13_pointwise/BatchNorm/moving_variance:0"] == [512]
    assert shapes["MobilenetV1/Logits/Conv2d_1c_1x1/weights:0"] == [1, 1, 512, 1001]
    assert list(shapes)[-1] == "MobilenetV1/Logits/Conv2d_1c_1x1/biases:0"
    assert end_points["AvgPool_1a"].shape.as_list() == [1, 1, 1, 512]
    assert end_points["Conv2d_13_pointwise"].shape.as_list() == [1, 7, 7, 512]
    assert logits.shape.as_list() == [1, 1001]


def test_no_classes_gives_pooled_features_and_depthwise_weights_are_not_decayed(graph):
    images = tf.zeros([2, SMALL_SIZE, SMALL_SIZE, 3])
    network_fn = nets_factory.get_network_fn("mobilenet_v1_025", 0, weight_decay=1e-4)
    features, end_points = network_fn(images)
    assert features.shape.as_list() == [2, 256]
    assert "Logits" not in end_points
    assert not [v for v in tf.trainable_variables() if "Logits" in v.name]
    # Only Conv2d_0 and the 13 pointwise convolutions are decayed (TF-Slim's default).
    decayed = [v for v in tf.trainable_variables() if v.name.endswith("/weights:0")]
    assert len(tf.losses.get_regularization_losses()) == len(decayed) == 14


def test_non_positive_multiplier_is_rejected(graph):
    with pytest.raises(ValueError, match="depth_multiplier must be > 0, got 0"):
        mobilenet_v1.mobilenet_v1(tf.zeros([1, 32, 32, 3]), 10, depth_multiplier=0)
