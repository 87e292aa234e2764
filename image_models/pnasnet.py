"""PNASNet-5: the Mobile and Large ImageNet nets.

    C. Liu, B. Zoph, M. Neumann, J. Shlens, W. Hua, L.-J. Li, L. Fei-Fei, A. Yuille,
    J. Huang, K. Murphy, "Progressive Neural Architecture Search", ECCV 2018,
    arXiv:1712.00559.

The same skeleton as NASNet-A (`image_models.nasnet`) with one searched cell: the stem's
two reduction cells and the two reductions in the body are that cell run with stride 2,
so there are no 'reduction_cell_*' scopes; cells are numbered 'cell_0' ...
'cell_<num_cells - 1>' straight through. The auxiliary classifier sits on the cell
before the second reduction (training only).

Variable names and shapes are those of TF-Slim's nets/nasnet/pnasnet.py, so its
published checkpoints (pnasnet-5_large_2017_12_13, pnasnet-5_mobile_2017_12_13) load
as they are: no network-wide scope ('conv0/weights', 'cell_stem_0/...', 'cell_11/...',
'aux_7/aux_logits/FC/weights', 'final_layer/FC/weights'); pass `scope=` to add one.

Typical use:

    with slim.arg_scope(pnasnet_large_arg_scope()):
        logits, end_points = pnasnet_large(images, num_classes=1001, is_training=True)
"""

import contextlib

from image_models import nasnet, nasnet_cells
from slim_compat import slim, tf

# The published hyper-parameters (TF-Slim nets/nasnet/pnasnet.py configs; paper Sec. 5).
LARGE_CONFIG = nasnet.NASNetConfig(
    num_cells=12,
    num_conv_filters=216,
    stem_multiplier=3.0,
    imagenet_stem=True,
    drop_path_keep_prob=0.6,
    dense_dropout_keep_prob=0.5,
    skip_reduction_layer_input=True,
    total_training_steps=250000,
)
MOBILE_CONFIG = nasnet.NASNetConfig(
    num_cells=9,
    num_conv_filters=54,
    stem_multiplier=1.0,
    imagenet_stem=True,
    drop_path_keep_prob=1.0,
    dense_dropout_keep_prob=0.5,
    skip_reduction_layer_input=True,
    total_training_steps=250000,
)


def build_pnasnet(
    images,
    config,
    num_classes,
    is_training=True,
    final_endpoint=None,
    current_step=None,
    scope=None,
):
    """Builds a PNASNet-5 from its config.

    Args:
        images: float tensor [batch, height, width, 3] with a static spatial shape.
        config: a NASNetConfig (imagenet_stem must be True).
        num_classes: number of classes; 0 or None returns the pooled features.
        is_training: whether batch norm, dropout and drop-path run in training mode
            (drop-path is not built at all when False).
        final_endpoint: stop after this end point ('Stem', 'Cell_3', 'global_pool', ...)
            and return it.
        current_step: scalar step tensor driving the drop-path schedule; None uses the
            global step (created if missing). Unused when drop-path is off.
        scope: optional variable scope around the whole net. None (the default) gives
            TF-Slim's checkpoint names.

    Returns:
        (logits [batch, num_classes] or features [batch, channels], end_points dict).
    """
    if not config.imagenet_stem:
        raise ValueError(
            f"PNASNet has only the ImageNet stem; got imagenet_stem={config.imagenet_stem!r}"
        )
    reductions = nasnet_cells.reduction_cell_indices(config.num_cells, config.num_reduction_layers)
    valid_names = ["Stem"] + [f"Cell_{i}" for i in range(config.num_cells)]
    end_points = nasnet.EndPoints(final_endpoint, valid_names + nasnet.head_end_point_names())
    # TF-Slim's drop-path depth ratio counts the two stem cells in the numbering but not
    # in the total; kept so that training schedules match.
    total_cells = config.num_cells + 2
    aux_cell = reductions[1] - 1 if len(reductions) >= 2 else None
    cell = nasnet_cells.PNASNET_5

    with tf.variable_scope(scope) if scope else contextlib.nullcontext():
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            keep_prob_fn = nasnet.make_keep_prob_fn(config, total_cells, is_training, current_step)
            net, cell_outputs = nasnet.imagenet_stem(images, config, cell, keep_prob_fn)
            if end_points.add("Stem", net):
                return net, end_points

            filter_scaling = 1.0
            cell_number = 2
            for index in range(config.num_cells):
                is_reduction = index in reductions
                if is_reduction:
                    filter_scaling *= config.filter_scaling_rate
                # Without skip_reduction_layer_input a strided cell takes, like TF-Slim's,
                # the second input of the cell before it.
                skip_back = 3 if is_reduction and not config.skip_reduction_layer_input else 2
                net = nasnet_cells.build_cell(
                    cell,
                    net,
                    cell_outputs[-skip_back],
                    int(config.num_conv_filters * filter_scaling),
                    stride=2 if is_reduction else 1,
                    keep_prob=keep_prob_fn(cell_number),
                    scope=f"cell_{index}",
                )
                if end_points.add(f"Cell_{index}", net):
                    return net, end_points
                cell_number += 1
                cell_outputs.append(net)
                if config.use_aux_head and num_classes and is_training and index == aux_cell:
                    end_points["AuxLogits"] = nasnet.aux_head(net, num_classes, f"aux_{index}")

            logits = nasnet.final_layer(
                net, num_classes, config.dense_dropout_keep_prob, end_points
            )
    return end_points.output(logits), end_points


_PNASNET_END_POINTS = (
    "'Stem', 'Cell_<i>', 'AuxLogits' (training only), 'global_pool', 'Logits', 'Predictions'"
)
pnasnet_mobile = nasnet.make_network(
    build_pnasnet,
    MOBILE_CONFIG,
    1001,
    224,
    "pnasnet_mobile",
    "PNASNet-5 Mobile (N=3, F=54)",
    _PNASNET_END_POINTS,
)
pnasnet_large = nasnet.make_network(
    build_pnasnet,
    LARGE_CONFIG,
    1001,
    331,
    "pnasnet_large",
    "PNASNet-5 Large (N=4, F=216)",
    _PNASNET_END_POINTS,
)


def pnasnet_mobile_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997, batch_norm_epsilon=1e-3):
    """arg_scope of PNASNet-5 Mobile (TF-Slim's defaults)."""
    return nasnet.nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def pnasnet_large_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997, batch_norm_epsilon=1e-3):
    """arg_scope of PNASNet-5 Large (TF-Slim's defaults)."""
    return nasnet.nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)
