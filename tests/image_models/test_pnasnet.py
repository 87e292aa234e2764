"""PNASNet-5: builds, trains (gradients), counts and names like TF-Slim's checkpoints."""

import numpy as np
import pytest

from image_models import nets_factory, pnasnet
from slim_compat import slim, tf

# name: (network, arg_scope, published parameters at 1000/1001 classes, no auxiliary head)
# Published figures: PNASNet-5 Large 86.1 M and Mobile 5.1 M (Liu et al.,
# arXiv:1712.00559, ImageNet tables for the large and mobile settings); 86.1 M is also
# the count of timm's port of the TF-Slim checkpoint (model card pnasnet5large.tf_in1k).
NETS = {
    "pnasnet_mobile": (pnasnet.pnasnet_mobile, pnasnet.pnasnet_mobile_arg_scope, 5.1e6),
    "pnasnet_large": (pnasnet.pnasnet_large, pnasnet.pnasnet_large_arg_scope, 86.1e6),
}
FEATURES = {"pnasnet_mobile": 1080, "pnasnet_large": 4320}  # 5 states x 4 x F
LAST_CELL = {"pnasnet_mobile": "cell_8", "pnasnet_large": "cell_11"}
SMALL_SIZE = 32  # the smallest practical input: the last cells run at 1x1


@pytest.fixture(scope="module")
def inference_graphs():
    """name -> variables of the 1001-class net at its default size, no aux head."""
    built = {}

    def build(name):
        if name not in built:
            network, arg_scope, _ = NETS[name]
            size = network.default_image_size
            with tf.Graph().as_default():
                images = tf.placeholder(tf.float32, [1, size, size, 3])
                with slim.arg_scope(arg_scope()):
                    logits, end_points = network(images, 1001, is_training=False)
                built[name] = (tf.trainable_variables(), tf.global_variables(), logits, end_points)
        return built[name]

    return build


@pytest.mark.slow  # a full-size graph: 15-30 s on 2 free cores
@pytest.mark.parametrize("name", list(NETS))
def test_parameter_count_matches_published_figure(name, inference_graphs):
    trainable, _, logits, end_points = inference_graphs(name)
    count = sum(v.shape.num_elements() for v in trainable)
    assert count == pytest.approx(NETS[name][2], rel=0.01)
    assert end_points["global_pool"].shape.as_list() == [1, FEATURES[name]]
    assert logits.shape.as_list() == [1, 1001]


@pytest.mark.slow  # a full-size graph: 15-30 s on 2 free cores
@pytest.mark.parametrize("name", list(NETS))
def test_scope_names_of_first_and_last_layers_match_tf_slim(name, inference_graphs):
    trainable, all_variables, _, _ = inference_graphs(name)
    shapes = {v.name[:-2]: v.shape.as_list() for v in trainable}
    names = [v.name[:-2] for v in all_variables]
    stem_filters = 96 if name == "pnasnet_large" else 32
    assert names[0] == "conv0/weights"
    assert shapes["conv0/weights"] == [3, 3, 3, stem_filters]
    assert "conv0_bn/moving_mean" in names
    # Stem cells are PNASNet cells too: max-pool branch, 7x7 separable, strided identity.
    assert "cell_stem_0/comb_iter_1/left/separable_7x7_1/depthwise_weights" in shapes
    assert "cell_stem_0/comb_iter_4/right/1x1/weights" in shapes
    assert "cell_stem_1/path1_conv/weights" in shapes
    if name == "pnasnet_mobile":
        # 27 filters: the factorized reduction gives the shifted path the odd one.
        assert shapes["cell_stem_1/path1_conv/weights"][-1] == 13
        assert shapes["cell_stem_1/path2_conv/weights"][-1] == 14
    last = LAST_CELL[name]
    assert f"{last}/comb_iter_3/left/separable_3x3_2/pointwise_weights" in shapes
    assert f"{last}/prev_1x1/weights" in shapes
    assert not any(n.startswith("reduction_cell") for n in names)  # strided PNASNet cells
    assert not any(n.startswith("aux_") for n in names)  # inference: no auxiliary head
    assert shapes["final_layer/FC/weights"] == [FEATURES[name], 1001]
    assert names[-1] == "final_layer/FC/biases"


# The full-size nets are built as graphs only (above, for the count and the names) and
# through the registry test; gradients are checked on a 3-cell net of the same code.
def test_builds_with_gradients_for_every_variable_and_finite_logits(graph):
    config = pnasnet.MOBILE_CONFIG._replace(num_cells=3, num_conv_filters=8)
    images = tf.random.uniform([2, SMALL_SIZE, SMALL_SIZE, 3], -1.0, 1.0, seed=1)
    with slim.arg_scope(pnasnet.pnasnet_mobile_arg_scope()):
        logits, end_points = pnasnet.pnasnet_mobile(
            images, num_classes=7, is_training=True, config=config
        )
    assert logits.shape.as_list() == [2, 7]
    assert end_points["AuxLogits"].shape.as_list() == [2, 7]
    assert end_points["Predictions"].shape.as_list() == [2, 7]
    shapes = {v.name[:-2]: v.shape.as_list() for v in tf.global_variables()}
    # The head sits on the normal cell before the second reduction: cell 1 of 3 here,
    # aux_7 / aux_5 in the Large / Mobile checkpoints (cells 7 of 12 and 5 of 9).
    aux_fc = "aux_1/aux_logits/FC/weights"
    assert shapes[aux_fc] == [768, 7]

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
    dead = [v.name for v, g in zip(variables, gradient_values, strict=True) if not np.any(g)]
    assert not dead


# Behaviour tests on a 3-cell PNASNet (stride-2 cells at 1 and 2): cheap graphs.
TINY = pnasnet.LARGE_CONFIG._replace(num_cells=3, num_conv_filters=8, stem_multiplier=1.0)


def test_num_classes_zero_returns_pooled_features(graph):
    images = tf.zeros([2, 32, 32, 3])
    features, end_points = pnasnet.pnasnet_large(images, 0, is_training=True, config=TINY)
    assert features.shape.as_list() == [2, 5 * 32]  # 5 states of 4 x 8 filters
    assert features is end_points["global_pool"]
    assert "Logits" not in end_points and "AuxLogits" not in end_points
    assert not [v.name for v in tf.global_variables() if "FC" in v.name or "aux" in v.name]


def test_drop_path_only_when_training(graph):
    images = tf.zeros([2, 32, 32, 3])
    step = tf.placeholder(tf.int64, [])

    def random_ops():  # random ops of the forward pass, not of the variable initialisers
        return [
            op
            for op in graph.get_operations()
            if op.type == "RandomUniform" and "/Initializer/" not in op.name
        ]

    pnasnet.pnasnet_large(images, 5, is_training=False, config=TINY, scope="inference")
    assert not random_ops()
    pnasnet.pnasnet_large(images, 5, is_training=True, config=TINY, current_step=step)
    assert random_ops()
    assert tf.train.get_global_step() is None  # the given step drives the schedule


def test_strided_cells_and_end_points(graph):
    images = tf.zeros([2, 32, 32, 3])
    net, end_points = pnasnet.pnasnet_large(
        images, 5, is_training=False, config=TINY, final_endpoint="Cell_1"
    )
    assert net is end_points["Cell_1"]
    # 32 -> conv0 15 -> stems 8, 4 -> cell_1 strides to 2; 5 states of 2 x 8 filters.
    assert end_points["Stem"].shape.as_list() == [2, 4, 4, 5 * 4]
    assert net.shape.as_list() == [2, 2, 2, 5 * 16]
    assert "Cell_2" not in end_points
    with pytest.raises(ValueError, match="Unknown final_endpoint 'Reduction_Cell_0'"):
        pnasnet.pnasnet_large(images, 5, config=TINY, final_endpoint="Reduction_Cell_0")


@pytest.mark.parametrize("name", list(NETS))
def test_registered_in_the_factory(name):
    entry = nets_factory.get_entry(name)
    network, arg_scope, _ = NETS[name]
    assert entry.fn is network and entry.arg_scope is arg_scope
    assert entry.image_size == network.default_image_size
    assert entry.image_size == {"pnasnet_mobile": 224, "pnasnet_large": 331}[name]
    assert entry.preprocessing == "inception"
    assert entry.aux_loss_weight == 0.4
