"""NASNet-A: the CIFAR-10 net and the Mobile and Large ImageNet nets.

    B. Zoph, V. Vasudevan, J. Shlens, Q. V. Le, "Learning Transferable Architectures for
    Scalable Image Recognition", CVPR 2018, arXiv:1707.07012.

A stem (one 3x3 convolution, plus two reduction cells on ImageNet) is followed by three
stacks of `num_cells / 3` normal cells, with a reduction cell before the second and third
stacks that halves the resolution and doubles the filters. An auxiliary classifier sits
on the last cell before the second reduction (training only); the final layer is ReLU,
global average pooling, dropout and a fully connected layer. The cells are in
`nasnet_cells`.

Variable names and shapes are those of TF-Slim's nets/nasnet, so its published
checkpoints (nasnet-a_mobile_04_10_2017, nasnet-a_large_04_10_2017) load as they are.
Like TF-Slim's, the variables have no network-wide scope ('conv0/weights',
'cell_stem_0/...', 'cell_0/...', 'reduction_cell_0/...', 'aux_11/aux_logits/FC/weights',
'final_layer/FC/weights'); pass `scope=` to put them under one.

Typical use:

    with slim.arg_scope(nasnet_large_arg_scope()):
        logits, end_points = nasnet_large(images, num_classes=1001, is_training=True)
"""

import collections
import contextlib

from image_models import nasnet_cells
from slim_compat import slim, tf

NASNetConfig = collections.namedtuple(
    "NASNetConfig",
    [
        "num_cells",
        "num_conv_filters",
        "stem_multiplier",
        "imagenet_stem",
        "drop_path_keep_prob",
        "dense_dropout_keep_prob",
        "skip_reduction_layer_input",
        "total_training_steps",
        "use_aux_head",
        "filter_scaling_rate",
        "num_reduction_layers",
    ],
)
NASNetConfig.__new__.__defaults__ = (True, 2.0, 2)
NASNetConfig.__doc__ = """Hyper-parameters of one NASNet (or PNASNet) variant.

num_cells: normal cells (NASNet) or all cells after the stem (PNASNet).
num_conv_filters: filters of the first stack's cells; doubled at each reduction.
stem_multiplier: the first convolution has int(32 * this) filters on ImageNet,
    int(num_conv_filters * this) on CIFAR.
imagenet_stem: True for a strided 3x3 convolution and two reduction cells; False for
    CIFAR's single 3x3 convolution.
drop_path_keep_prob: keep probability of the deepest cell at the end of the schedule.
dense_dropout_keep_prob: dropout keep probability before the final fully connected layer.
skip_reduction_layer_input: whether the cell after a reduction skips the reduction cell
    for its second input (takes the cell before it instead).
total_training_steps: steps over which drop-path ramps up from none to full.
use_aux_head: whether to build the auxiliary classifier when training.
filter_scaling_rate: filter multiplier at each reduction.
num_reduction_layers: number of reductions after the stem.
"""

# The published hyper-parameters (TF-Slim nets/nasnet/nasnet.py configs; paper Sec. 4).
CIFAR_CONFIG = NASNetConfig(
    num_cells=18,
    num_conv_filters=32,
    stem_multiplier=3.0,
    imagenet_stem=False,
    drop_path_keep_prob=0.6,
    dense_dropout_keep_prob=1.0,
    skip_reduction_layer_input=False,
    total_training_steps=937500,  # 600 epochs of CIFAR-10 at batch 32
)
MOBILE_CONFIG = NASNetConfig(
    num_cells=12,
    num_conv_filters=44,
    stem_multiplier=1.0,
    imagenet_stem=True,
    drop_path_keep_prob=1.0,
    dense_dropout_keep_prob=0.5,
    skip_reduction_layer_input=False,
    total_training_steps=250000,
)
LARGE_CONFIG = NASNetConfig(
    num_cells=18,
    num_conv_filters=168,
    stem_multiplier=3.0,
    imagenet_stem=True,
    drop_path_keep_prob=0.7,
    dense_dropout_keep_prob=0.5,
    skip_reduction_layer_input=True,
    total_training_steps=250000,
)


def training_progress(total_training_steps, current_step=None):
    """Fraction of the drop-path schedule done, min(1, step / total_training_steps).

    Args:
        total_training_steps: length of the schedule in steps.
        current_step: scalar step tensor; None uses the graph's global step (created at
            the graph's root scope if it does not exist yet).
    """
    if current_step is None:
        current_step = tf.train.get_global_step()
    if current_step is None:
        # Outside any variable scope, so the step is 'global_step' wherever the net is built.
        with tf.variable_scope(tf.VariableScope(reuse=tf.AUTO_REUSE, name="")):
            with tf.name_scope(None):
                current_step = tf.train.get_or_create_global_step()
    step = tf.cast(current_step, tf.float32)
    return tf.minimum(1.0, step / float(total_training_steps))


def make_keep_prob_fn(config, total_cells, is_training, current_step=None):
    """Returns cell_number -> drop-path keep probability; always 1.0 when not training."""
    if not is_training or config.drop_path_keep_prob >= 1.0:
        return lambda cell_number: 1.0
    progress = None
    if config.total_training_steps:
        progress = training_progress(config.total_training_steps, current_step)
    return lambda cell_number: nasnet_cells.cell_keep_prob(
        config.drop_path_keep_prob, cell_number, total_cells, progress
    )


def imagenet_stem(images, config, stem_cell, keep_prob_fn):
    """Strided 3x3 convolution then two stride-2 cells at 1/4 and 1/2 of the filters.

    Returns:
        (net, cell_outputs) where cell_outputs lists [None, conv0, stem 0, stem 1].
    """
    stem_filters = int(32 * config.stem_multiplier)
    net = nasnet_cells.conv_bn(
        images, stem_filters, 3, "conv0", "conv0_bn", stride=2, padding="VALID"
    )
    cell_outputs = [None, net]
    num_stem_cells = 2
    filter_scaling = 1.0 / config.filter_scaling_rate**num_stem_cells
    for stem_number in range(num_stem_cells):
        net = nasnet_cells.build_cell(
            stem_cell,
            net,
            cell_outputs[-2],
            int(config.num_conv_filters * filter_scaling),
            stride=2,
            keep_prob=keep_prob_fn(stem_number),
            scope=f"cell_stem_{stem_number}",
        )
        cell_outputs.append(net)
        filter_scaling *= config.filter_scaling_rate
    return net, cell_outputs


def cifar_stem(images, config):
    """One 3x3 convolution at full resolution."""
    stem_filters = int(config.num_conv_filters * config.stem_multiplier)
    net = nasnet_cells.conv_bn(images, stem_filters, 3, "l1_stem_3x3", "l1_stem_bn")
    return net, [None, net]


def aux_head(net, num_classes, scope):
    """Auxiliary classifier: pool, 1x1 to 128, a conv over the whole map to 768, FC.

    The 5x5 pooling window shrinks to the feature map on inputs too small for it (which
    TF-Slim rejects); at the published image sizes it is 5x5 as in TF-Slim.
    """
    with tf.variable_scope(scope), tf.variable_scope("aux_logits"):
        net = tf.nn.relu(net)
        window = min(5, int(net.shape[1]), int(net.shape[2]))
        net = slim.avg_pool2d(net, window, stride=3, padding="VALID")
        net = tf.nn.relu(nasnet_cells.conv_bn(net, 128, 1, "proj", "aux_bn0"))
        # The kernel covers the whole map, so the result is 1x1 at any input size.
        kernel = [int(net.shape[1]), int(net.shape[2])]
        net = nasnet_cells.conv_bn(net, 768, kernel, "Conv", "aux_bn1", padding="VALID")
        net = slim.flatten(tf.nn.relu(net))
        return slim.fully_connected(
            net, num_classes, activation_fn=None, normalizer_fn=None, scope="FC"
        )


def final_layer(net, num_classes, dropout_keep_prob, end_points):
    """ReLU, global average pool, dropout and the classifier, in scope 'final_layer'.

    Returns:
        logits [batch, num_classes], or the pooled features when num_classes is 0/None or
        'global_pool' is the final end point.
    """
    with tf.variable_scope("final_layer"):
        net = tf.reduce_mean(tf.nn.relu(net), [1, 2], name="global_pool")
        if end_points.add("global_pool", net) or not num_classes:
            return net
        net = slim.dropout(net, dropout_keep_prob, scope="dropout")
        logits = slim.fully_connected(
            net, num_classes, activation_fn=None, normalizer_fn=None, scope="FC"
        )
        end_points["Logits"] = logits
        end_points["Predictions"] = tf.nn.softmax(logits, name="predictions")
    return logits


class EndPoints(dict):
    """end_points dict that knows the requested final end point.

    Args:
        final_endpoint: name of the end point to stop at, or None for the whole net.
        valid_names: every end point the net can have; final_endpoint must be one.

    Raises:
        ValueError: final_endpoint is not in valid_names (checked before any building).
    """

    def __init__(self, final_endpoint, valid_names):
        super().__init__()
        if final_endpoint is not None and final_endpoint not in valid_names:
            raise ValueError(
                f"Unknown final_endpoint {final_endpoint!r}; expected one of: "
                f"{', '.join(valid_names)}"
            )
        self.final_endpoint = final_endpoint

    def add(self, name, net):
        """Records `net`; returns True when `name` is the requested final end point."""
        self[name] = net
        return name == self.final_endpoint

    def output(self, logits):
        """What the net returns: the final end point if one was requested, else logits."""
        if self.final_endpoint is None:
            return logits
        if self.final_endpoint not in self:
            raise ValueError(
                f"final_endpoint {self.final_endpoint!r} was not built: the auxiliary head "
                "exists only when training with num_classes > 0, the logits only with "
                "num_classes > 0"
            )
        return self[self.final_endpoint]


def head_end_point_names():
    """End points after the cells, common to NASNet and PNASNet."""
    return ["AuxLogits", "global_pool", "Logits", "Predictions"]


def build_nasnet(
    images,
    config,
    num_classes,
    is_training=True,
    final_endpoint=None,
    current_step=None,
    scope=None,
):
    """Builds a NASNet-A from its config.

    Args:
        images: float tensor [batch, height, width, 3] with a static spatial shape.
        config: a NASNetConfig.
        num_classes: number of classes; 0 or None returns the pooled features.
        is_training: whether batch norm, dropout and drop-path run in training mode
            (drop-path is not built at all when False).
        final_endpoint: stop after this end point ('Stem', 'Cell_3', 'Reduction_Cell_0',
            'global_pool', ...) and return it.
        current_step: scalar step tensor driving the drop-path schedule; None uses the
            global step (created if missing). Unused when drop-path is off.
        scope: optional variable scope around the whole net. None (the default) gives
            TF-Slim's checkpoint names.

    Returns:
        (logits [batch, num_classes] or features [batch, channels], end_points dict).
    """
    reductions = nasnet_cells.reduction_cell_indices(config.num_cells, config.num_reduction_layers)
    valid_names = ["Stem"] + [f"Cell_{i}" for i in range(config.num_cells)]
    valid_names += [f"Reduction_Cell_{i}" for i in range(len(reductions))]
    end_points = EndPoints(final_endpoint, valid_names + head_end_point_names())
    # TF-Slim numbers cells for drop-path counting the reduction (and ImageNet stem) cells.
    total_cells = config.num_cells + config.num_reduction_layers
    total_cells += 2 if config.imagenet_stem else 0
    aux_cell = reductions[1] - 1 if len(reductions) >= 2 else None

    with tf.variable_scope(scope) if scope else contextlib.nullcontext():
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            keep_prob_fn = make_keep_prob_fn(config, total_cells, is_training, current_step)
            if config.imagenet_stem:
                net, cell_outputs = imagenet_stem(
                    images, config, nasnet_cells.NASNET_A_REDUCTION, keep_prob_fn
                )
                cell_number = 2
            else:
                net, cell_outputs = cifar_stem(images, config)
                cell_number = 0
            if end_points.add("Stem", net):
                return net, end_points

            filter_scaling = 1.0
            for normal_index in range(config.num_cells):
                # The cell before last, as seen before any reduction cell is added.
                prev_layer = cell_outputs[-2]
                if normal_index in reductions:
                    reduction_index = reductions.index(normal_index)
                    filter_scaling *= config.filter_scaling_rate
                    net = nasnet_cells.build_cell(
                        nasnet_cells.NASNET_A_REDUCTION,
                        net,
                        cell_outputs[-2],
                        int(config.num_conv_filters * filter_scaling),
                        stride=2,
                        keep_prob=keep_prob_fn(cell_number),
                        scope=f"reduction_cell_{reduction_index}",
                    )
                    if end_points.add(f"Reduction_Cell_{reduction_index}", net):
                        return net, end_points
                    cell_number += 1
                    cell_outputs.append(net)
                    if not config.skip_reduction_layer_input:
                        prev_layer = cell_outputs[-2]
                net = nasnet_cells.build_cell(
                    nasnet_cells.NASNET_A_NORMAL,
                    net,
                    prev_layer,
                    int(config.num_conv_filters * filter_scaling),
                    stride=1,
                    keep_prob=keep_prob_fn(cell_number),
                    scope=f"cell_{normal_index}",
                )
                if end_points.add(f"Cell_{normal_index}", net):
                    return net, end_points
                cell_number += 1
                cell_outputs.append(net)
                if config.use_aux_head and num_classes and is_training and normal_index == aux_cell:
                    end_points["AuxLogits"] = aux_head(net, num_classes, f"aux_{normal_index}")

            logits = final_layer(net, num_classes, config.dense_dropout_keep_prob, end_points)
    return end_points.output(logits), end_points


def make_network(build_fn, config, default_num_classes, image_size, name, title, end_point_names):
    """Wraps build_fn(images, config, num_classes, ...) as a zoo network function."""

    def network(
        images,
        num_classes=default_num_classes,
        is_training=True,
        final_endpoint=None,
        current_step=None,
        scope=None,
        config=config,
    ):
        return build_fn(
            images,
            config,
            num_classes,
            is_training=is_training,
            final_endpoint=final_endpoint,
            current_step=current_step,
            scope=scope,
        )

    network.__name__ = network.__qualname__ = name
    network.__doc__ = f"""{title} for {image_size}x{image_size} inputs.

    Args:
        images: float tensor [batch, height, width, 3], {image_size}x{image_size} nominally.
        num_classes: number of classes; 0 or None returns the pooled features.
        is_training: training mode for batch norm, dropout and drop-path.
        final_endpoint: optional end point name to stop at.
        current_step: optional step tensor for the drop-path schedule (default: the
            global step).
        scope: optional variable scope around the net (None: TF-Slim's names).
        config: a NASNetConfig to override the published one.

    Returns:
        (logits [batch, num_classes] or features [batch, channels], end_points) with
        end points {end_point_names}.
    """
    network.default_image_size = image_size
    return network


_NASNET_END_POINTS = (
    "'Stem', 'Cell_<i>', 'Reduction_Cell_<i>', 'AuxLogits' (training only), "
    "'global_pool', 'Logits', 'Predictions'"
)
nasnet_cifar = make_network(
    build_nasnet,
    CIFAR_CONFIG,
    10,
    32,
    "nasnet_cifar",
    "NASNet-A (6 @ 768) for CIFAR-10",
    _NASNET_END_POINTS,
)
nasnet_mobile = make_network(
    build_nasnet,
    MOBILE_CONFIG,
    1001,
    224,
    "nasnet_mobile",
    "NASNet-A Mobile (4 @ 1056)",
    _NASNET_END_POINTS,
)
nasnet_large = make_network(
    build_nasnet,
    LARGE_CONFIG,
    1001,
    331,
    "nasnet_large",
    "NASNet-A Large (6 @ 4032)",
    _NASNET_END_POINTS,
)


def nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon):
    """He-normal (fan-out) initialisation, L2 decay on every weight, BN with scale."""
    with slim.arg_scope(
        [slim.conv2d, slim.separable_conv2d, slim.fully_connected],
        weights_initializer=slim.variance_scaling_initializer(mode="FAN_OUT"),
        weights_regularizer=slim.l2_regularizer(weight_decay),
    ):
        with slim.arg_scope(
            [slim.conv2d, slim.separable_conv2d], activation_fn=None, biases_initializer=None
        ):
            with slim.arg_scope([slim.fully_connected], activation_fn=None):
                with slim.arg_scope(
                    [slim.batch_norm],
                    decay=batch_norm_decay,
                    epsilon=batch_norm_epsilon,
                    scale=True,
                    fused=True,
                ) as scope:
                    return scope


def nasnet_cifar_arg_scope(weight_decay=5e-4, batch_norm_decay=0.9, batch_norm_epsilon=1e-5):
    """arg_scope of the CIFAR-10 NASNet-A (TF-Slim's defaults)."""
    return nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def nasnet_mobile_arg_scope(weight_decay=4e-5, batch_norm_decay=0.9997, batch_norm_epsilon=1e-3):
    """arg_scope of NASNet-A Mobile (TF-Slim's defaults)."""
    return nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def nasnet_large_arg_scope(weight_decay=5e-5, batch_norm_decay=0.9997, batch_norm_epsilon=1e-3):
    """arg_scope of NASNet-A Large (TF-Slim's defaults)."""
    return nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)
