"""NASNet-A: builds, trains (gradients), counts and names like TF-Slim's checkpoints."""

import numpy as np
import pytest

from image_models import nasnet, nasnet_cells, nets_factory
from slim_compat import slim, tf

# name: (network, arg_scope, classes of the count, published parameters)
# Published figures: NASNet-A (6 @ 768) 3.3 M on CIFAR-10 (Zoph et al., arXiv:1707.07012,
# Table 1); NASNet-A Mobile 5.3 M and Large 88.9 M (same paper, Tables 2-3, and TF-Slim's
# research/slim/nets/nasnet/README.md checkpoint table). They exclude the auxiliary head.
NETS = {
    "nasnet_cifar": (nasnet.nasnet_cifar, nasnet.nasnet_cifar_arg_scope, 10, 3.3e6),
    "nasnet_mobile": (nasnet.nasnet_mobile, nasnet.nasnet_mobile_arg_scope, 1001, 5.3e6),
    "nasnet_large": (nasnet.nasnet_large, nasnet.nasnet_large_arg_scope, 1001, 88.9e6),
}
FEATURES = {"nasnet_cifar": 768, "nasnet_mobile": 1056, "nasnet_large": 4032}
# Exact trainable counts of the Keras ports of the TF-Slim checkpoints
# (tf.keras.applications NASNetMobile / NASNetLarge, model.summary() "Trainable params"
# at 1000 classes): an independent check of every layer's shape.
KERAS_TRAINABLE_AT_1000_CLASSES = {"nasnet_mobile": 5_289_978, "nasnet_large": 88_753_150}
SMALL_SIZE = 32  # smallest practical: ImageNet nets end at 1x1, CIFAR's native size


def _count(variables):
    return sum(v.shape.num_elements() for v in variables)


@pytest.fixture(scope="module")
def inference_graphs():
    """name -> variables of the net at its default size, count classes, no aux head."""
    built = {}

    def build(name):
        if name not in built:
            network, arg_scope, num_classes, _ = NETS[name]
            size = network.default_image_size
            with tf.Graph().as_default():
                images = tf.placeholder(tf.float32, [1, size, size, 3])
                with slim.arg_scope(arg_scope()):
                    logits, end_points = network(images, num_classes, is_training=False)
                built[name] = (tf.trainable_variables(), tf.global_variables(), logits, end_points)
        return built[name]

    return build


@pytest.mark.slow  # a full-size graph: 15-30 s on 2 free cores
@pytest.mark.parametrize("name", list(NETS))
def test_parameter_count_matches_published_figure(name, inference_graphs):
    trainable, _, logits, end_points = inference_graphs(name)
    _, _, num_classes, published = NETS[name]
    count = _count(trainable)
    # The figures are rounded to 0.1 M, so they cannot be held to better than 0.05 M.
    assert abs(count - published) <= max(0.01 * published, 0.05e6), count
    features = FEATURES[name]
    assert end_points["global_pool"].shape.as_list() == [1, features]
    assert logits.shape.as_list() == [1, num_classes]
    if name in KERAS_TRAINABLE_AT_1000_CLASSES:
        one_class_fewer = count - (features + 1)
        assert one_class_fewer == KERAS_TRAINABLE_AT_1000_CLASSES[name]


@pytest.mark.slow  # a full-size graph: 15-30 s on 2 free cores
@pytest.mark.parametrize("name", list(NETS))
def test_scope_names_of_first_and_last_layers_match_tf_slim(name, inference_graphs):
    trainable, all_variables, _, _ = inference_graphs(name)
    shapes = {v.name[:-2]: v.shape.as_list() for v in trainable}
    names = [v.name[:-2] for v in all_variables]
    _, _, num_classes, _ = NETS[name]
    if name == "nasnet_cifar":
        assert names[0] == "l1_stem_3x3/weights"
        assert shapes["l1_stem_3x3/weights"] == [3, 3, 3, 96]
        assert "l1_stem_bn/moving_variance" in names
        assert not any(n.startswith("cell_stem_") for n in names)
        last_cell = "cell_17"
    else:
        stem_filters = 96 if name == "nasnet_large" else 32
        assert names[0] == "conv0/weights"
        assert shapes["conv0/weights"] == [3, 3, 3, stem_filters]
        # The first stem cell reads conv0's output as is; the second reduces it.
        assert "cell_stem_0/comb_iter_0/left/separable_5x5_1/depthwise_weights" in shapes
        assert "cell_stem_0/comb_iter_1/right/separable_7x7_2/pointwise_weights" in shapes
        assert "cell_stem_1/path2_conv/weights" in shapes
        assert "cell_stem_1/final_path_bn/moving_mean" in names
        last_cell = "cell_17" if name == "nasnet_large" else "cell_11"
    assert "reduction_cell_1/comb_iter_4/left/bn_sep_3x3_2/gamma" in shapes
    assert "cell_0/comb_iter_0/left/separable_5x5_1/depthwise_weights" in shapes
    assert f"{last_cell}/comb_iter_4/left/separable_3x3_2/pointwise_weights" in shapes
    assert f"{last_cell}/beginning_bn/beta" in shapes
    assert not any(n.startswith("aux_") for n in names)  # inference: no auxiliary head
    assert not any(n.startswith(name) for n in names)  # TF-Slim's have no net-wide scope
    assert shapes["final_layer/FC/weights"] == [FEATURES[name], num_classes]
    assert names[-1] == "final_layer/FC/biases"
    assert all("biases" not in n for n in names if not n.startswith("final_layer/"))


# The full-size nets are built as graphs only (above, for the count and the names) and
# through the registry test; gradients are checked on 3-cell nets of the same code: the
# CIFAR stem and the ImageNet stem cells, each with its auxiliary head.
@pytest.mark.parametrize("name", ["nasnet_cifar", "nasnet_mobile"])
def test_builds_with_gradients_for_every_variable_and_finite_logits(name, graph):
    network, arg_scope, _, _ = NETS[name]
    config = {"nasnet_cifar": nasnet.CIFAR_CONFIG, "nasnet_mobile": nasnet.MOBILE_CONFIG}[name]
    config = config._replace(num_cells=3, num_conv_filters=8)
    images = tf.random.uniform([2, SMALL_SIZE, SMALL_SIZE, 3], -1.0, 1.0, seed=1)
    with slim.arg_scope(arg_scope()):
        logits, end_points = network(images, num_classes=7, is_training=True, config=config)
    assert logits.shape.as_list() == [2, 7]
    assert end_points["AuxLogits"].shape.as_list() == [2, 7]
    assert end_points["Predictions"].shape.as_list() == [2, 7]
    shapes = {v.name[:-2]: v.shape.as_list() for v in tf.global_variables()}
    # The head sits on the normal cell before the second reduction: cell 1 of 3 here,
    # aux_11 / aux_7 in the Large / Mobile checkpoints (cells 11 of 18 and 7 of 12).
    aux_fc = "aux_1/aux_logits/FC/weights"
    assert shapes[aux_fc] == [768, 7]
    assert shapes["aux_1/aux_logits/proj/weights"][-1] == 128

    labels = tf.constant([1, 3])
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    loss += 0.4 * tf.losses.sparse_softmax_cross_entropy(labels, end_points["AuxLogits"])
    variables = tf.trainable_variables()
    gradients = tf.gradients(loss, variables)
    missing = [v.name for v, g in zip(variables, gradients, strict=True) if g is None]
    assert not missing

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        logit_values, gradient_values = sess.run([logits, gradients])
    assert np.all(np.isfinite(logit_values))
    assert all(np.all(np.isfinite(g)) for g in gradient_values)
    # A gradient that is exactly zero everywhere would mean a disconnected layer.
    dead = [v.name for v, g in zip(variables, gradient_values, strict=True) if not np.any(g)]
    assert not dead


# Behaviour tests on a 3-cell NASNet-A (one cell per stack): same code, cheap graphs.
TINY = nasnet.CIFAR_CONFIG._replace(num_cells=3, num_conv_filters=8)


def test_num_classes_zero_returns_pooled_features(graph):
    images = tf.zeros([2, 16, 16, 3])
    with slim.arg_scope(nasnet.nasnet_cifar_arg_scope()):
        features, end_points = nasnet.nasnet_cifar(images, 0, is_training=True, config=TINY)
    assert features.shape.as_list() == [2, 6 * 32]  # normal cell: 6 states of 4x8 filters
    assert features is end_points["global_pool"]
    assert "Logits" not in end_points and "AuxLogits" not in end_points
    assert not [v.name for v in tf.global_variables() if "FC" in v.name or "aux" in v.name]
    features, _ = nasnet.nasnet_cifar(images, None, config=TINY, scope="no_classes")
    assert features.shape.as_list() == [2, 6 * 32]


def test_drop_path_is_absent_when_not_training(graph):
    images = tf.random.uniform([4, 16, 16, 3], seed=2)
    with slim.arg_scope(nasnet.nasnet_cifar_arg_scope()):
        logits, _ = nasnet.nasnet_cifar(images, 10, is_training=False, config=TINY)
    op_types = {op.type for op in graph.get_operations()}
    # The only random op of the graph is the input: no drop-path, no dropout.
    random_ops = [
        op.name
        for op in graph.get_operations()
        if op.type == "RandomUniform" and "/Initializer/" not in op.name
    ]
    assert len(random_ops) == 1
    assert "Floor" not in op_types
    assert tf.train.get_global_step() is None  # no schedule, no step created


def test_drop_path_follows_the_schedule_when_training(graph):
    images = tf.constant(np.random.RandomState(0).uniform(size=[8, 16, 16, 3]), tf.float32)
    step = tf.placeholder(tf.int64, [])
    with slim.arg_scope(nasnet.nasnet_cifar_arg_scope()):
        logits, _ = nasnet.nasnet_cifar(
            images, 10, is_training=True, config=TINY, current_step=step
        )
    assert tf.train.get_global_step() is None  # the given step drives the schedule
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        # Step 0: nothing is dropped yet, so training-mode outputs are deterministic.
        first, second = (sess.run(logits, {step: 0}) for _ in range(2))
        np.testing.assert_array_equal(first, second)
        # End of schedule: paths drop at random, so two runs differ.
        end = TINY.total_training_steps
        third, fourth = (sess.run(logits, {step: end}) for _ in range(2))
        assert not np.allclose(third, fourth)


def test_drop_path_schedule_defaults_to_a_root_global_step(graph):
    with tf.variable_scope("tower"):
        images = tf.zeros([2, 16, 16, 3])
        nasnet.nasnet_cifar(images, 10, is_training=True, config=TINY)
    assert tf.train.get_global_step().name == "global_step:0"


def test_drop_path_drops_whole_examples_and_rescales_the_rest(graph):
    net = tf.ones([64, 2, 2, 3])
    assert nasnet_cells.drop_path(net, 1.0) is net
    with tf.Session() as sess:
        dropped = sess.run(nasnet_cells.drop_path(net, 0.5))
    per_example = dropped.reshape(64, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert np.all(per_example.min(axis=1) == per_example.max(axis=1))  # whole examples
    assert 0 < np.count_nonzero(per_example[:, 0]) < 64


def test_cell_keep_prob_grows_with_depth_and_progress():
    assert nasnet_cells.cell_keep_prob(1.0, 5, 20) == 1.0
    assert nasnet_cells.cell_keep_prob(0.6, 19, 20) == pytest.approx(0.6)
    assert nasnet_cells.cell_keep_prob(0.6, 0, 20) == pytest.approx(0.98)
    assert nasnet_cells.cell_keep_prob(0.6, 19, 20, progress=0.5) == pytest.approx(0.8)


def test_reduction_cells_sit_at_thirds():
    assert nasnet_cells.reduction_cell_indices(18, 2) == [6, 12]
    assert nasnet_cells.reduction_cell_indices(12, 2) == [4, 8]
    assert nasnet_cells.reduction_cell_indices(9, 2) == [3, 6]


def test_final_endpoint_and_scope_options(graph):
    images = tf.zeros([2, 16, 16, 3])
    net, end_points = nasnet.nasnet_cifar(
        images, 10, is_training=False, config=TINY, final_endpoint="Reduction_Cell_0"
    )
    assert net is end_points["Reduction_Cell_0"]
    assert net.shape.as_list() == [2, 8, 8, 4 * 16]  # reduction cell: 4 states of 2x filters
    assert "Cell_1" not in end_points
    with pytest.raises(ValueError, match="Unknown final_endpoint 'Mixed_5b'.*Reduction_Cell_1"):
        nasnet.nasnet_cifar(images, 10, config=TINY, final_endpoint="Mixed_5b", scope="again")
    with pytest.raises(ValueError, match="'AuxLogits' was not built"):
        nasnet.nasnet_cifar(
            images, 10, is_training=False, config=TINY, final_endpoint="AuxLogits", scope="aux"
        )
    with tf.Graph().as_default():
        images = tf.zeros([1, 16, 16, 3])
        nasnet.nasnet_cifar(images, is_training=False, config=TINY, scope="nasnet_cifar")
        assert all(v.name.startswith("nasnet_cifar/") for v in tf.global_variables())


@pytest.mark.parametrize("name", list(NETS))
def test_registered_in_the_factory(name):
    entry = nets_factory.get_entry(name)
    network, arg_scope, _, _ = NETS[name]
    assert entry.fn is network and entry.arg_scope is arg_scope
    assert entry.image_size == network.default_image_size
    assert entry.image_size == {"nasnet_cifar": 32, "nasnet_mobile": 224, "nasnet_large": 331}[name]
    assert entry.preprocessing == "inception"
    assert entry.aux_loss_weight == 0.4


def test_factory_passes_weight_decay_to_every_weight(graph):
    network_fn = nets_factory.get_network_fn("nasnet_cifar", 10, weight_decay=1e-3)
    network_fn(tf.zeros([1, 32, 32, 3]), config=TINY)
    weights = [v for v in tf.trainable_variables() if "weights" in v.name]
    assert len(tf.losses.get_regularization_losses()) == len(weights) > 0
