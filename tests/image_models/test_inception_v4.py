"""Inception-v4: builds, trains (gradients), runs, and matches TF-Slim's checkpoint layout."""

import numpy as np
import pytest

from image_models import inception_v4, nets_factory
from slim_compat import slim, tf

SMALLEST_SIZE = 75  # the stem's VALID convolutions and three stride-2 reductions


def _trainable_count(variables):
    return sum(v.shape.num_elements() for v in variables)


@pytest.fixture(scope="module")
def full_size_variables():
    """Variables of the 299 px, 1001-class net without its auxiliary head (graph only)."""
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 299, 299, 3])
        with slim.arg_scope(inception_v4.inception_v4_arg_scope()):
            inception_v4.inception_v4(images, 1001, is_training=False, create_aux_logits=False)
        return tf.trainable_variables(), tf.global_variables()


@pytest.mark.slow
def test_builds_with_gradients_for_every_variable_and_finite_logits(graph):
    images = tf.random.uniform([2, SMALLEST_SIZE, SMALLEST_SIZE, 3], -1.0, 1.0, seed=1)
    with slim.arg_scope(inception_v4.inception_v4_arg_scope()):
        logits, end_points = inception_v4.inception_v4(images, num_classes=7, is_training=True)
    assert logits.shape.as_list() == [2, 7]
    assert end_points["AuxLogits"].shape.as_list() == [2, 7]
    assert end_points["Predictions"].shape.as_list() == [2, 7]
    assert end_points["Mixed_7d"].shape.as_list()[-1] == 1536

    loss = tf.reduce_sum(logits) + tf.reduce_sum(end_points["AuxLogits"])
    variables = tf.trainable_variables()
    gradients = tf.gradients(loss, variables)
    missing = [v.name for v, g in zip(variables, gradients, strict=True) if g is None]
    assert not missing

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        logit_values, aux_values = sess.run([logits, end_points["AuxLogits"]])
    assert np.all(np.isfinite(logit_values)) and np.all(np.isfinite(aux_values))


@pytest.mark.slow  # builds the full 299 px graph (module fixture)
def test_parameter_count_matches_published_figure(full_size_variables):
    trainable, _ = full_size_variables
    # Published: 42.7 M parameters (timm model card "inception_v4.tf_in1k", the TF-Slim
    # checkpoint ported; 1000 classes, no auxiliary head).
    assert _trainable_count(trainable) == pytest.approx(42.7e6, rel=0.01)


@pytest.mark.slow  # builds the full 299 px graph (module fixture)
def test_scope_names_of_first_and_last_layers_match_tf_slim(full_size_variables):
    trainable, all_variables = full_size_variables
    names = [v.name for v in all_variables]
    assert names[0] == "InceptionV4/Conv2d_1a_3x3/weights:0"
    assert trainable[0].shape.as_list() == [3, 3, 3, 32]
    assert "InceptionV4/Conv2d_1a_3x3/BatchNorm/beta:0" in names
    assert "InceptionV4/Conv2d_1a_3x3/BatchNorm/gamma:0" not in names  # TF-Slim: scale=False
    assert "InceptionV4/Mixed_6h/Branch_2/Conv2d_0e_1x7/weights:0" in names
    assert "InceptionV4/Mixed_7d/Branch_2/Conv2d_0e_3x1/weights:0" in names
    shapes = {v.name: v.shape.as_list() for v in trainable}
    assert shapes["InceptionV4/Logits/Logits/weights:0"] == [1536, 1001]
    assert names[-1] == "InceptionV4/Logits/Logits/biases:0"


@pytest.mark.slow
def test_aux_head_and_features_through_the_factory(graph):
    entry = nets_factory.get_entry("inception_v4")
    assert entry.image_size == inception_v4.inception_v4.default_image_size == 299
    assert entry.preprocessing == "inception"

    images = tf.zeros([2, SMALLEST_SIZE, SMALLEST_SIZE, 3])
    network_fn = nets_factory.get_network_fn("inception_v4", 0, weight_decay=4e-5, is_training=True)
    features, end_points = network_fn(images)
    assert features.shape.as_list() == [2, 1536]
    assert "AuxLogits" not in end_points and "Logits" not in end_points
    # weight_decay reaches the arg_scope: every conv weight is regularised.
    assert len(tf.losses.get_regularization_losses()) == len(
        [v for v in tf.trainable_variables() if v.name.endswith("weights:0")]
    )


def test_aux_head_variables_match_tf_slim(graph):
    # Only the AuxLogits head: build its function on a Mixed_6h-shaped input.
    mixed_6h = tf.zeros([1, 17, 17, 1024])
    with slim.arg_scope(inception_v4.inception_v4_arg_scope()):
        with slim.arg_scope([slim.conv2d, slim.avg_pool2d], stride=1, padding="SAME"):
            with tf.variable_scope("InceptionV4"):
                aux = inception_v4._aux_logits(mixed_6h, 1001)
    assert aux.shape.as_list() == [1, 1001]
    shapes = {v.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert shapes == {
        "InceptionV4/AuxLogits/Conv2d_1b_1x1/weights:0": [1, 1, 1024, 128],
        "InceptionV4/AuxLogits/Conv2d_1b_1x1/BatchNorm/beta:0": [128],
        "InceptionV4/AuxLogits/Conv2d_2a/weights:0": [5, 5, 128, 768],
        "InceptionV4/AuxLogits/Conv2d_2a/BatchNorm/beta:0": [768],
        "InceptionV4/AuxLogits/Aux_logits/weights:0": [768, 1001],
        "InceptionV4/AuxLogits/Aux_logits/biases:0": [1001],
    }
