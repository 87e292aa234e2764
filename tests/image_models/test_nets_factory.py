"""Registry-driven tests: every network in nets_factory.NETWORKS is tested once registered.

For each name: logits of the right shape that are finite, a gradient for every trainable
variable, and pooled features [batch, C] when num_classes is 0 or None. Then parameter
counts against published figures, variable names and shapes against TF-Slim's published
checkpoints, and a short training run of each small model on learnable synthetic data.

Graph construction, not arithmetic, dominates here (a 200-layer ResNet takes about a minute
to build on 2 cores), so each heavy net is built as few times as possible and marked slow.
"""

import functools

import numpy as np
import pytest

from image_models import nets_factory
from preprocessing import preprocessing_factory
from slim_compat import tf

NAMES = sorted(nets_factory.NETWORKS)
BATCH = 2
NUM_CLASSES = 5  # not 10 or 1000, so a net that ignores num_classes is caught
SIZE_CAP = 64  # nets are built at min(default size, SIZE_CAP), or their min_image_size

# What each test needs to know of a net (its input channels, its smallest input, whether its
# graph is slow to build) is a field of its NetworkEntry: a new entry is tested as it is.


def _params(names):
    """pytest params of these names, marked slow where the entry says so."""
    return [
        pytest.param(n, marks=pytest.mark.slow)
        if getattr(nets_factory.NETWORKS.get(n), "slow", False)
        else n
        for n in names
    ]


def _image_size(name):
    entry = nets_factory.get_entry(name)
    return max(entry.min_image_size, min(entry.image_size, SIZE_CAP))


def _channels(name):
    """MNIST-style nets eat the data's own channels: test them on grey images."""
    return nets_factory.get_entry(name).channels or 1


def _images(name, batch=BATCH, size=None):
    size = size or _image_size(name)
    return tf.random.normal([batch, size, size, _channels(name)], seed=1)


def _training_loss(logits, end_points, labels, aux_loss_weight):
    """Cross-entropy of the logits plus, as in training, the weighted auxiliary head's."""
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if "AuxLogits" in end_points:
        aux_logits = tf.reshape(end_points["AuxLogits"], [BATCH, -1])
        loss += aux_loss_weight * tf.losses.sparse_softmax_cross_entropy(labels, aux_logits)
    return loss


# ---------------------------------------------------------------------------------------
# Every registered net


@pytest.mark.parametrize("name", _params(NAMES))
def test_logits_are_finite_and_every_variable_gets_a_gradient(graph, name):
    entry = nets_factory.get_entry(name)
    network_fn = nets_factory.get_network_fn(name, NUM_CLASSES, weight_decay=1e-4, is_training=True)
    logits, end_points = network_fn(_images(name))
    assert logits.shape.as_list() == [BATCH, NUM_CLASSES]

    labels = tf.constant([0, 3])
    loss = _training_loss(logits, end_points, labels, entry.aux_loss_weight)
    variables = tf.trainable_variables()
    assert variables, f"{name} has no trainable variables"
    gradients = tf.gradients(loss, variables)
    no_gradient = [v.op.name for v, g in zip(variables, gradients, strict=True) if g is None]
    assert not no_gradient, f"{name}: variables without a gradient: {no_gradient}"

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = sess.run(logits)
    assert values.shape == (BATCH, NUM_CLASSES)
    assert np.all(np.isfinite(values)), f"{name} logits are not finite: {values}"


# Feature width of the nets whose feature layer is known (the TF-Slim wrappers' choice
# of end point included): what num_classes=0 must return.
FEATURE_DEPTH = {
    "alexnet_v2": 4096,
    "overfeat": 4096,
    "vgg_a": 4096,
    "vgg_16": 4096,
    "vgg_19": 4096,
    "inception_v1": 1024,
    "inception_v2": 1024,
    "inception_v3": 2048,
    **{f"resnet_v{v}_{d}": 2048 for v in (1, 2) for d in (50, 101, 152, 200)},
    "lenet": 1024,
    "cifarnet": 192,
    "logistic_regression": 28 * 28,
    "mlp": 512,
    "cnn3": 256,
    "alexnet_mnist": 1024,
    "lstm_mnist": 128,
    "rnn_mnist": 128,
    **{f"vgg{d}_cifar": 512 for d in (11, 13, 16, 19)},
    **{f"resnet{d}_cifar": 64 for d in (20, 32, 44, 56, 110)},
}


@pytest.mark.parametrize("name", _params(NAMES))
def test_no_classes_gives_rank2_features_and_no_empty_variables(name):
    # Heavy nets are built once (num_classes=0); None takes the same path in every wrapper.
    for num_classes in (0,) if nets_factory.get_entry(name).slow else (0, None):
        with tf.Graph().as_default():
            network_fn = nets_factory.get_network_fn(name, num_classes, is_training=False)
            features, _ = network_fn(_images(name))
            shape = features.shape.as_list()
            assert len(shape) == 2 and shape[0] == BATCH, (name, num_classes, shape)
            assert shape[1] and shape[1] > 0, (name, num_classes, shape)
            assert shape[1] == FEATURE_DEPTH.get(name, shape[1]), (name, num_classes, shape)
            empty = [v.op.name for v in tf.global_variables() if v.shape.num_elements() == 0]
            assert not empty, f"{name} with num_classes={num_classes} made empty {empty}"


def test_unknown_name_raises_value_error_listing_valid_names():
    with pytest.raises(ValueError) as raised:
        nets_factory.get_network_fn("resnet_v3_50", 10)
    message = str(raised.value)
    assert "resnet_v3_50" in message
    for name in NAMES:
        assert name in message


def test_every_entry_is_complete():
    for name, entry in nets_factory.NETWORKS.items():
        assert callable(entry.fn) and callable(entry.arg_scope), name
        assert entry.image_size >= 28, name
        assert entry.preprocessing in preprocessing_factory.PREPROCESSINGS, name
        assert entry.channels in (None, 1, 3), (name, entry.channels)
        assert isinstance(entry.min_image_size, int), (name, entry.min_image_size)
        assert 1 <= entry.min_image_size <= entry.image_size, (name, entry.min_image_size)
        assert isinstance(entry.slow, bool), (name, entry.slow)


def _builds(name, size):
    """Whether the inference graph of `name` builds at size x size (shape inference only)."""
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, size, size, _channels(name)])
        try:
            nets_factory.get_network_fn(name, NUM_CLASSES)(images)
        except ValueError as e:
            # Too small: "Negative dimension size caused by subtracting 7 from 6 for ...".
            assert "Negative dimension" in str(e), (name, size, e)
            return False
    return True


@pytest.mark.parametrize("name", _params(NAMES))
def test_min_image_size_is_the_smallest_size_that_builds(name):
    """min_image_size builds, one pixel less does not (when the net has a minimum above 1)."""
    smallest = nets_factory.get_entry(name).min_image_size
    assert _builds(name, smallest), f"{name} does not build at its min_image_size={smallest}"
    if smallest > 1:
        assert not _builds(name, smallest - 1), (
            f"{name} builds at {smallest - 1}: its min_image_size={smallest} is too large"
        )


def test_registry_tests_read_a_new_entry_from_the_registry(monkeypatch):
    """A net registered with its facts is sized, shaped and marked from its entry alone."""
    lenet = nets_factory.get_entry("lenet")
    monkeypatch.setitem(
        nets_factory.NETWORKS,
        "new_net",
        lenet._replace(image_size=200, channels=3, min_image_size=100, slow=True),
    )
    monkeypatch.setitem(nets_factory.NETWORKS, "new_grey_net", lenet._replace(image_size=40))
    (slow,) = _params(["new_net"])
    assert slow.values == ("new_net",) and [m.name for m in slow.marks] == ["slow"]
    assert _params(["new_grey_net"]) == ["new_grey_net"]
    assert (_image_size("new_net"), _channels("new_net")) == (100, 3)
    assert (_image_size("new_grey_net"), _channels("new_grey_net")) == (40, 1)


# ---------------------------------------------------------------------------------------
# Parameter counts and checkpoint layouts


@functools.lru_cache(maxsize=None)
def _variable_shapes(name, num_classes, image_size, channels):
    """{variable name: shape} of every global variable of one inference build (cached)."""
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, image_size, image_size, channels])
        nets_factory.get_network_fn(name, num_classes, is_training=False)(images)
        trainable = {v.op.name for v in tf.trainable_variables()}
        shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    return shapes, frozenset(trainable)


def _parameter_count(name, num_classes, image_size, channels):
    shapes, trainable = _variable_shapes(name, num_classes, image_size, channels)
    return sum(int(np.prod(shapes[v])) for v in trainable)


# name -> (classes, input size, channels, published count, tolerance). Classes are those of
# the published checkpoints (1001 for TF-Slim's Inception and ResNet v2 ones: class 0 is
# "background"). Counts are trainable parameters. Sources:
PUBLISHED_PARAMETERS = {
    # TensorFlow "Deep MNIST for experts" tutorial network (same layers as TF-Slim's
    # lenet): 832 + 51,264 + 3,212,288 + 10,250 on 28x28 grey images.
    "lenet": (10, 28, 1, 3_274_634, 0.0),
    # TensorFlow CIFAR-10 tutorial: "1,068,298 learnable parameters" on 24x24 crops.
    "cifarnet": (10, 24, 3, 1_068_298, 0.0),
    # No published total: the sum over the layer sizes of Krizhevsky 2014 ("One weird
    # trick", 64-192-384-384-256 filters) with TF-Slim's 5x5 fc6 and 4096-4096-1000 heads.
    "alexnet_v2": (1000, 224, 3, 50_303_912, 0.01),
    # Sermanet et al. 2014 (OverFeat), fast model layer table: 145M parameters.
    "overfeat": (1000, 231, 3, 145_000_000, 0.01),
    # Simonyan & Zisserman 2015, Table 2: A 133M, D 138M, E 144M; exact totals from
    # keras.applications VGG16 / VGG19 (138,357,544 / 143,667,240) and torchvision vgg11.
    "vgg_a": (1000, 224, 3, 132_863_336, 0.01),
    "vgg_16": (1000, 224, 3, 138_357_544, 0.01),
    "vgg_19": (1000, 224, 3, 143_667_240, 0.01),
    # torchvision googlenet (ported from TF-Slim's checkpoint) num_params 6,624,904 at 1000
    # classes; Zoph et al. 2018 (NASNet), Table 3: Inception V1 6.6M.
    "inception_v1": (1001, 224, 3, 6_624_904, 0.01),
    # Zoph et al. 2018 (NASNet), Table 2: Inception V2 11.2M.
    "inception_v2": (1001, 224, 3, 11_200_000, 0.01),
    # torchvision inception_v3 (with its auxiliary head, like TF-Slim's) num_params 27,161,264.
    "inception_v3": (1001, 299, 3, 27_161_264, 0.01),
    # torchvision resnet50/101/152 num_params; osmr/imgclsmob resnet200 weight count.
    "resnet_v1_50": (1000, 64, 3, 25_557_032, 0.01),
    "resnet_v1_101": (1000, 64, 3, 44_549_160, 0.01),
    "resnet_v1_152": (1000, 64, 3, 60_192_808, 0.01),
    "resnet_v1_200": (1000, 64, 3, 64_673_832, 0.01),
    # keras.applications ResNet50V2 / 101V2 / 152V2 totals; imgclsmob preresnet200.
    "resnet_v2_50": (1001, 64, 3, 25_613_800, 0.01),
    "resnet_v2_101": (1001, 64, 3, 44_675_560, 0.01),
    "resnet_v2_152": (1001, 64, 3, 60_380_648, 0.01),
    "resnet_v2_200": (1001, 64, 3, 64_666_280, 0.01),
    # The small models of this zoo:
    # Keras mnist_mlp example summary: 669,706 (two 512-unit layers, 10 classes).
    "mlp": (10, 28, 1, 669_706, 0.0),
    # 784 * 10 + 10.
    "logistic_regression": (10, 28, 1, 7_850, 0.0),
    # He et al. 2016, Table 6: 0.27M, 0.46M, 0.85M, 1.7M; exact totals with option-A
    # shortcuts from akamaster/pytorch_resnet_cifar10: 269,722 / 464,154 / 853,018 / 1,727,962.
    "resnet20_cifar": (10, 32, 3, 269_722, 0.0),
    "resnet32_cifar": (10, 32, 3, 464_154, 0.0),
    "resnet56_cifar": (10, 32, 3, 853_018, 0.0),
    "resnet110_cifar": (10, 32, 3, 1_727_962, 0.0),
    # Li et al. 2017 ("Pruning Filters for Efficient ConvNets"), Table 1: VGG-16 on
    # CIFAR-10, 1.5e7 parameters.
    "vgg16_cifar": (10, 32, 3, 15_000_000, 0.01),
}


@pytest.mark.parametrize("name", _params(sorted(PUBLISHED_PARAMETERS)))
def test_parameter_count_matches_published_figure(name):
    num_classes, size, channels, published, tolerance = PUBLISHED_PARAMETERS[name]
    if name not in nets_factory.NETWORKS:
        pytest.fail(f"{name} has a published count but is not registered")
    count = _parameter_count(name, num_classes, size, channels)
    assert abs(count - published) <= tolerance * published, (name, count, published)


# First and last variables (and a few in between) of TF-Slim's published checkpoints
# (vgg_16_2016_08_28, inception_v1..v3_2016_08_28 / 2017_06_26, resnet_v1_*_2016_08_28,
# resnet_v2_*_2017_04_14), as listed by tf.train.list_variables on those files.
CHECKPOINT_VARIABLES = {
    "vgg_16": (
        1000,
        224,
        {
            "vgg_16/conv1/conv1_1/weights": [3, 3, 3, 64],
            "vgg_16/conv1/conv1_1/biases": [64],
            "vgg_16/conv5/conv5_3/weights": [3, 3, 512, 512],
            "vgg_16/fc6/weights": [7, 7, 512, 4096],
            "vgg_16/fc7/weights": [1, 1, 4096, 4096],
            "vgg_16/fc8/weights": [1, 1, 4096, 1000],
            "vgg_16/fc8/biases": [1000],
        },
    ),
    "vgg_19": (
        1000,
        224,
        {
            "vgg_19/conv1/conv1_1/weights": [3, 3, 3, 64],
            "vgg_19/conv5/conv5_4/weights": [3, 3, 512, 512],
            "vgg_19/fc8/weights": [1, 1, 4096, 1000],
        },
    ),
    "inception_v1": (
        1001,
        224,
        {
            "InceptionV1/Conv2d_1a_7x7/weights": [7, 7, 3, 64],
            "InceptionV1/Conv2d_1a_7x7/BatchNorm/beta": [64],
            "InceptionV1/Conv2d_1a_7x7/BatchNorm/moving_mean": [64],
            "InceptionV1/Conv2d_1a_7x7/BatchNorm/moving_variance": [64],
            "InceptionV1/Mixed_5c/Branch_3/Conv2d_0b_1x1/weights": [1, 1, 832, 128],
            "InceptionV1/Logits/Conv2d_0c_1x1/weights": [1, 1, 1024, 1001],
            "InceptionV1/Logits/Conv2d_0c_1x1/biases": [1001],
        },
    ),
    "inception_v2": (
        1001,
        224,
        {
            "InceptionV2/Conv2d_1a_7x7/depthwise_weights": [7, 7, 3, 8],
            "InceptionV2/Conv2d_1a_7x7/pointwise_weights": [1, 1, 24, 64],
            "InceptionV2/Mixed_5c/Branch_3/Conv2d_0b_1x1/weights": [1, 1, 1024, 128],
            "InceptionV2/Logits/Conv2d_1c_1x1/weights": [1, 1, 1024, 1001],
        },
    ),
    "inception_v3": (
        1001,
        299,
        {
            "InceptionV3/Conv2d_1a_3x3/weights": [3, 3, 3, 32],
            "InceptionV3/Conv2d_1a_3x3/BatchNorm/beta": [32],
            "InceptionV3/Mixed_7c/Branch_3/Conv2d_0b_1x1/weights": [1, 1, 2048, 192],
            "InceptionV3/AuxLogits/Conv2d_2a_5x5/weights": [5, 5, 128, 768],
            "InceptionV3/AuxLogits/Conv2d_2b_1x1/weights": [1, 1, 768, 1001],
            "InceptionV3/Logits/Conv2d_1c_1x1/weights": [1, 1, 2048, 1001],
            "InceptionV3/Logits/Conv2d_1c_1x1/biases": [1001],
        },
    ),
    "resnet_v1_50": (
        1000,
        64,
        {
            "resnet_v1_50/conv1/weights": [7, 7, 3, 64],
            "resnet_v1_50/conv1/BatchNorm/gamma": [64],
            "resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/weights": [1, 1, 64, 256],
            "resnet_v1_50/block4/unit_3/bottleneck_v1/conv3/weights": [1, 1, 512, 2048],
            "resnet_v1_50/logits/weights": [1, 1, 2048, 1000],
            "resnet_v1_50/logits/biases": [1000],
        },
    ),
    "resnet_v1_101": (
        1000,
        64,
        {
            "resnet_v1_101/conv1/weights": [7, 7, 3, 64],
            "resnet_v1_101/block3/unit_23/bottleneck_v1/conv2/weights": [3, 3, 256, 256],
            "resnet_v1_101/logits/weights": [1, 1, 2048, 1000],
        },
    ),
    "resnet_v1_152": (
        1000,
        64,
        {
            "resnet_v1_152/conv1/weights": [7, 7, 3, 64],
            "resnet_v1_152/block2/unit_8/bottleneck_v1/conv1/weights": [1, 1, 512, 128],
            "resnet_v1_152/block3/unit_36/bottleneck_v1/conv3/weights": [1, 1, 256, 1024],
            "resnet_v1_152/logits/weights": [1, 1, 2048, 1000],
        },
    ),
    "resnet_v2_50": (
        1001,
        64,
        {
            "resnet_v2_50/conv1/weights": [7, 7, 3, 64],
            "resnet_v2_50/conv1/biases": [64],
            "resnet_v2_50/block1/unit_1/bottleneck_v2/preact/beta": [64],
            "resnet_v2_50/block4/unit_3/bottleneck_v2/conv3/weights": [1, 1, 512, 2048],
            "resnet_v2_50/postnorm/gamma": [2048],
            "resnet_v2_50/logits/weights": [1, 1, 2048, 1001],
            "resnet_v2_50/logits/biases": [1001],
        },
    ),
    "resnet_v2_101": (
        1001,
        64,
        {
            "resnet_v2_101/conv1/weights": [7, 7, 3, 64],
            "resnet_v2_101/block3/unit_23/bottleneck_v2/conv2/weights": [3, 3, 256, 256],
            "resnet_v2_101/logits/weights": [1, 1, 2048, 1001],
        },
    ),
    "resnet_v2_152": (
        1001,
        64,
        {
            "resnet_v2_152/conv1/weights": [7, 7, 3, 64],
            "resnet_v2_152/block3/unit_36/bottleneck_v2/conv3/weights": [1, 1, 256, 1024],
            "resnet_v2_152/logits/weights": [1, 1, 2048, 1001],
        },
    ),
}


@pytest.mark.parametrize("name", _params(sorted(CHECKPOINT_VARIABLES)))
def test_variables_match_tf_slim_published_checkpoint(name):
    num_classes, size, expected = CHECKPOINT_VARIABLES[name]
    shapes, _ = _variable_shapes(name, num_classes, size, 3)  # same key as the count's
    missing = sorted(set(expected) - set(shapes))
    assert not missing, f"{name} lacks checkpoint variables {missing}"
    wrong = {v: (shapes[v], s) for v, s in expected.items() if shapes[v] != s}
    assert not wrong, f"{name} shapes (ours, checkpoint's) differ: {wrong}"


# ---------------------------------------------------------------------------------------
# Small models learn


def _quadrant_images(num_examples, size, channels, seed=0):
    """Noisy images with one bright quadrant; the label is which quadrant (4 classes)."""
    rng = np.random.RandomState(seed)
    labels = np.arange(num_examples) % 4
    images = rng.normal(0.0, 0.3, [num_examples, size, size, channels]).astype(np.float32)
    half = size // 2
    for image, label in zip(images, labels, strict=True):
        row, column = divmod(label, 2)
        image[row * half : (row + 1) * half, column * half : (column + 1) * half, :] += 1.0
    return images, labels.astype(np.int32)


# name -> (input size, learning rate). Inputs are 16x16 to keep the run short (the recurrent
# nets then read 16 steps of 16 pixels). The VGG-CIFAR nets are left out: on this CPU build
# Conv2DBackpropInput with 512 channels on 2x2 or smaller maps runs at ~0.1 GMAC/s, seconds
# per step; their gradients are checked above.
SMALL_MODELS = {
    "logistic_regression": (16, 0.01),
    "mlp": (16, 0.01),
    "cnn3": (16, 0.01),
    "alexnet_mnist": (16, 0.01),
    "lstm_mnist": (16, 0.01),
    "rnn_mnist": (16, 0.01),
    "lenet": (16, 0.01),
    "cifarnet": (16, 0.01),
    "resnet20_cifar": (16, 0.01),
}
TRAIN_STEPS = 30


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "alexnet_mnist" else n for n in SMALL_MODELS],
)
def test_short_training_run_lowers_the_loss(graph, name):
    size, learning_rate = SMALL_MODELS[name]
    images, labels = _quadrant_images(64, size, _channels(name))
    tf.set_random_seed(0)
    network_fn = nets_factory.get_network_fn(name, 4, is_training=True)
    logits, _ = network_fn(tf.constant(images))
    loss = tf.losses.sparse_softmax_cross_entropy(tf.constant(labels), logits)
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op = tf.train.MomentumOptimizer(learning_rate, 0.9).minimize(loss)

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        losses = [sess.run([loss, train_op])[0] for _ in range(TRAIN_STEPS)]
    first, last = losses[0], np.mean(losses[-3:])
    assert np.all(np.isfinite(losses)), (name, losses)
    assert last < 0.5 * first, f"{name} did not learn: loss {first:.3f} -> {last:.3f}"


def test_recurrent_nets_read_rgb_as_its_grey_mean(graph):
    rgb = tf.random.uniform([BATCH, 28, 28, 3], seed=2)
    grey = tf.reduce_mean(rgb, axis=3, keepdims=True)
    network_fn = nets_factory.get_network_fn("lstm_mnist", NUM_CLASSES)
    with tf.variable_scope("shared") as scope:
        logits_rgb, _ = network_fn(rgb)
        scope.reuse_variables()
        logits_grey, _ = network_fn(grey)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        from_rgb, from_grey = sess.run([logits_rgb, logits_grey])
    np.testing.assert_allclose(from_rgb, from_grey, rtol=1e-5, atol=1e-6)
    assert np.std(from_rgb) > 0


def _moving_statistics():
    return [v for v in tf.global_variables() if v.op.name.endswith(("moving_mean", "variance"))]


def test_freeze_batch_norm_normalises_with_the_moving_statistics(graph):
    # --freeze_batch_norm: outside the trainable scopes, a training tower's batch norm is
    # the inference one (moving statistics, no updates); inside them it trains as usual.
    images = tf.constant(np.random.RandomState(0).uniform(0, 1, [4, 32, 32, 3]), tf.float32)
    trainable = ["resnet20_cifar/block3", "resnet20_cifar/logits"]
    network_fn = nets_factory.get_network_fn(
        "resnet20_cifar", 10, is_training=True, freeze_batch_norm=trainable
    )
    _, end_points = network_fn(images)
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        _, eval_points = nets_factory.get_network_fn("resnet20_cifar", 10)(images)
    # 19 batch norms: the stem's and two per block, 6 blocks in block1-2 frozen.
    assert len(network_fn.frozen_batch_norm) == 13
    assert "resnet20_cifar/conv1/BatchNorm" in network_fn.frozen_batch_norm
    assert not any("block3" in n for n in network_fn.frozen_batch_norm)
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert updates and all(op.name.startswith("resnet20_cifar/block3/") for op in updates)

    rng = np.random.RandomState(1)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for var in _moving_statistics():  # not the initial 0 / 1, so using them shows
            low = 0.5 if var.op.name.endswith("variance") else -0.5
            session.run(var.assign(rng.uniform(low, low + 1.5, var.shape.as_list())))
        before = session.run(_moving_statistics())
        frozen_out, frozen_ref, trained_out, trained_ref = session.run(
            [
                end_points["block2"],
                eval_points["block2"],
                end_points["block3"],
                eval_points["block3"],
            ]
        )
        session.run(updates)
        after = session.run(_moving_statistics())
    # The frozen layers (all of block2's input path) normalise with the moving statistics.
    np.testing.assert_allclose(frozen_out, frozen_ref, rtol=1e-4, atol=1e-5)
    # The trained block3 normalises with its batch's statistics, not the moving ones.
    assert not np.allclose(trained_out, trained_ref, rtol=1e-4, atol=1e-5)
    changed = {
        v.op.name
        for v, a, b in zip(_moving_statistics(), after, before)
        if not np.array_equal(a, b)
    }
    assert changed and all(n.startswith("resnet20_cifar/block3/") for n in changed)


def test_freeze_batch_norm_keeps_variable_and_op_names(graph):
    # Checkpoints and graphs stay those of slim.batch_norm; resnet_v2 calls it directly.
    def names(freeze):
        with tf.Graph().as_default() as g:
            images = tf.zeros([1, 64, 64, 3])
            nets_factory.get_network_fn(
                "resnet_v2_50", 10, is_training=True, freeze_batch_norm=freeze
            )(images)
            return [op.name for op in g.get_operations()]

    assert names(["resnet_v2_50"]) == names(None)


def test_freeze_batch_norm_without_trainable_scopes_freezes_every_batch_norm(graph):
    network_fn = nets_factory.get_network_fn(
        "resnet20_cifar", 10, is_training=True, freeze_batch_norm=[]
    )
    network_fn(tf.zeros([2, 32, 32, 3]))
    assert len(network_fn.frozen_batch_norm) == 19
    assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == []
