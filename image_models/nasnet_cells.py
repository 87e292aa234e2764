"""The searched cells of NASNet-A and PNASNet-5, and the layers they are made of.

A cell takes the outputs of the two cells before it (`net`, the latest, and `prev_layer`)
and grows a list of hidden states: state 0 is `net` after a ReLU-1x1-BN, state 1 is
`prev_layer` brought to the cell's resolution and width, and each of five blocks adds a
state made by applying one operation to each of two earlier states and adding the
results. The cell's output concatenates the states that the spec does not leave out.

    B. Zoph, V. Vasudevan, J. Shlens, Q. V. Le, "Learning Transferable Architectures for
    Scalable Image Recognition", CVPR 2018, arXiv:1707.07012 (NASNet-A, Fig. 4).
    C. Liu et al., "Progressive Neural Architecture Search", ECCV 2018, arXiv:1712.00559
    (PNASNet-5, Fig. 1).

Variable scopes, names and shapes are those of TF-Slim's nets/nasnet, so its published
checkpoints load: `<cell>/1x1`, `<cell>/beginning_bn`, `<cell>/prev_1x1`,
`<cell>/comb_iter_<b>/{left,right}/separable_<k>x<k>_<i>` and `bn_sep_<k>x<k>_<i>`, ...
Every layer states its structural arguments (no bias, no activation, BN with scale), so
the variables do not depend on the arg_scope the net is built under; the arg_scope only
brings initialisers, regularisers and batch-norm statistics settings.
"""

import collections

from slim_compat import slim, tf

Op = collections.namedtuple("Op", ["kind", "kernel", "layers"])
Op.__doc__ = """One operation of a block: kind 'separable', 'avg_pool', 'max_pool' or 'identity'.

kernel: spatial size of the separable convolution or of the pooling window.
layers: how many ReLU-separable-BN layers a 'separable' op stacks (1 for the others).
"""

SEP_3x3 = Op("separable", 3, 2)
SEP_5x5 = Op("separable", 5, 2)
SEP_7x7 = Op("separable", 7, 2)
AVG_3x3 = Op("avg_pool", 3, 1)
MAX_3x3 = Op("max_pool", 3, 1)
IDENTITY = Op("identity", 1, 1)

Block = collections.namedtuple("Block", ["left_input", "left_op", "right_input", "right_op"])
Block.__doc__ = "new state = left_op(states[left_input]) + right_op(states[right_input])"

CellSpec = collections.namedtuple("CellSpec", ["name", "blocks", "left_out"])
CellSpec.__doc__ = """A searched cell.

name: what the cell is, for error messages.
blocks: the five Blocks, in order (block b adds state b + 2).
left_out: indices of the hidden states that the output concatenation skips.
"""

# NASNet-A, arXiv:1707.07012 Fig. 4 (left): output = concat of states 1..6.
NASNET_A_NORMAL = CellSpec(
    "NASNet-A normal",
    (
        Block(0, SEP_5x5, 1, SEP_3x3),
        Block(1, SEP_5x5, 1, SEP_3x3),
        Block(0, AVG_3x3, 1, IDENTITY),
        Block(1, AVG_3x3, 1, AVG_3x3),
        Block(0, SEP_3x3, 0, IDENTITY),
    ),
    left_out=(0,),
)

# NASNet-A, arXiv:1707.07012 Fig. 4 (right): output = concat of states 3..6.
NASNET_A_REDUCTION = CellSpec(
    "NASNet-A reduction",
    (
        Block(0, SEP_5x5, 1, SEP_7x7),
        Block(0, MAX_3x3, 1, SEP_7x7),
        Block(0, AVG_3x3, 1, SEP_5x5),
        Block(3, IDENTITY, 2, AVG_3x3),
        Block(2, SEP_3x3, 0, MAX_3x3),
    ),
    left_out=(0, 1, 2),
)

# PNASNet-5, arXiv:1712.00559 Fig. 1: one cell, run with stride 2 where NASNet reduces.
PNASNET_5 = CellSpec(
    "PNASNet-5",
    (
        Block(1, SEP_5x5, 1, MAX_3x3),
        Block(0, SEP_7x7, 0, MAX_3x3),
        Block(0, SEP_5x5, 0, SEP_3x3),
        Block(4, SEP_3x3, 0, MAX_3x3),
        Block(1, SEP_3x3, 0, IDENTITY),
    ),
    left_out=(0, 1),
)


def _width(net):
    return int(net.shape[2])


def _channels(net):
    return int(net.shape[3])


def conv_bn(net, filters, kernel, conv_scope, bn_scope, stride=1, padding="SAME"):
    """Convolution (no bias, no activation) followed by batch norm with scale."""
    net = slim.conv2d(
        net,
        filters,
        kernel,
        stride=stride,
        padding=padding,
        activation_fn=None,
        normalizer_fn=None,
        biases_initializer=None,
        scope=conv_scope,
    )
    return batch_norm(net, bn_scope)


def batch_norm(net, scope):
    """Batch norm with both offset and scale, as NASNet's checkpoints have."""
    return slim.batch_norm(net, center=True, scale=True, activation_fn=None, scope=scope)


def factorized_reduction(net, filters, stride):
    """Halves the resolution of `net` without skipping half the pixels.

    A 1x1 convolution with stride 2 only sees the even pixels; this concatenates two
    such convolutions of half the filters each, the second over the input shifted by
    one pixel, so every input pixel reaches the output. With stride 1 it is a plain
    1x1 convolution that changes the width. An odd `filters` gives the shifted path the
    extra filter (PNASNet Mobile's 27-filter stem cell needs it).
    """
    if stride == 1:
        return conv_bn(net, filters, 1, "path_conv", "path_bn")
    strides = [1, stride, stride, 1]
    path1 = tf.nn.avg_pool2d(net, ksize=1, strides=strides, padding="VALID")
    path1 = _conv_1x1(path1, filters // 2, "path1_conv")
    # Shift by one pixel: pad bottom and right, drop the first row and column.
    shifted = tf.pad(net, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
    path2 = tf.nn.avg_pool2d(shifted, ksize=1, strides=strides, padding="VALID")
    path2 = _conv_1x1(path2, filters - filters // 2, "path2_conv")
    return batch_norm(tf.concat([path1, path2], axis=3), "final_path_bn")


def _conv_1x1(net, filters, scope, stride=1):
    return slim.conv2d(
        net,
        filters,
        1,
        stride=stride,
        activation_fn=None,
        normalizer_fn=None,
        biases_initializer=None,
        scope=scope,
    )


def drop_path(net, keep_prob):
    """Zeroes whole examples of `net` with probability 1 - keep_prob, rescaling the rest.

    Drop-path (FractalNet, arXiv:1605.07648) as NASNet uses it: each example of the
    batch keeps or loses the whole output of one operation. `keep_prob` may be a float
    or a scalar tensor; a float of 1.0 or more returns `net` unchanged.
    """
    if isinstance(keep_prob, (int, float)) and keep_prob >= 1.0:
        return net
    keep_prob = tf.cast(keep_prob, net.dtype)
    noise_shape = tf.stack([tf.shape(net)[0], 1, 1, 1])
    keep_mask = tf.floor(keep_prob + tf.random.uniform(noise_shape, dtype=net.dtype))
    return net / keep_prob * keep_mask


def _apply_op(net, op, filters, stride, keep_prob):
    """Runs one operation of a block (inside its 'left' or 'right' scope)."""
    in_channels = _channels(net)
    if op.kind == "separable":
        for layer in range(1, op.layers + 1):
            net = tf.nn.relu(net)
            net = slim.separable_conv2d(
                net,
                filters,
                op.kernel,
                depth_multiplier=1,
                stride=stride if layer == 1 else 1,
                activation_fn=None,
                normalizer_fn=None,
                biases_initializer=None,
                scope=f"separable_{op.kernel}x{op.kernel}_{layer}",
            )
            net = batch_norm(net, f"bn_sep_{op.kernel}x{op.kernel}_{layer}")
    elif op.kind in ("avg_pool", "max_pool"):
        pool = slim.avg_pool2d if op.kind == "avg_pool" else slim.max_pool2d
        net = pool(net, op.kernel, stride=stride, padding="SAME")
        if in_channels != filters:
            net = conv_bn(net, filters, 1, "1x1", "bn_1")
    elif op.kind == "identity":
        # An identity that must stride or change width becomes a ReLU-1x1-BN; it is the
        # only kind that never gets drop-path (a skip connection stays a skip).
        if stride > 1 or in_channels != filters:
            net = conv_bn(tf.nn.relu(net), filters, 1, "1x1", "bn_1", stride=stride)
        return net
    else:
        raise ValueError(
            f"Unknown operation kind {op.kind!r}; expected separable, avg_pool, max_pool "
            "or identity"
        )
    return drop_path(net, keep_prob)


def _match_prev_layer(prev_layer, net, filters):
    """Brings the output of the cell before last to this cell's resolution and width."""
    if prev_layer is None:
        return net
    if _width(prev_layer) != _width(net):
        return factorized_reduction(tf.nn.relu(prev_layer), filters, stride=2)
    if _channels(prev_layer) != filters:
        return conv_bn(tf.nn.relu(prev_layer), filters, 1, "prev_1x1", "prev_bn")
    return prev_layer


def build_cell(spec, net, prev_layer, filters, stride, keep_prob, scope):
    """Builds one cell.

    Args:
        spec: a CellSpec.
        net: output of the previous cell, [batch, height, width, channels].
        prev_layer: output of the cell before that, or None (then `net` stands in).
        filters: the width of every operation of the cell.
        stride: 2 to halve the resolution (operations on states 0 and 1 stride), else 1.
        keep_prob: drop-path keep probability for this cell (float or scalar tensor);
            1.0 disables drop-path.
        scope: variable scope of the cell, e.g. 'cell_3' or 'reduction_cell_0'.

    Returns:
        The cell output, [batch, height / stride, width / stride, n * filters] where n is
        the number of hidden states the spec concatenates.
    """
    with tf.variable_scope(scope):
        prev_layer = _match_prev_layer(prev_layer, net, filters)
        net = conv_bn(tf.nn.relu(net), filters, 1, "1x1", "beginning_bn")
        states = [net, prev_layer]
        for index, block in enumerate(spec.blocks):
            with tf.variable_scope(f"comb_iter_{index}"):
                halves = []
                for side, source, op in (
                    ("left", block.left_input, block.left_op),
                    ("right", block.right_input, block.right_op),
                ):
                    if source >= len(states):
                        raise ValueError(
                            f"{spec.name} block {index} reads state {source}, but only "
                            f"{len(states)} exist"
                        )
                    # Only the cell inputs are at the old resolution: they stride.
                    op_stride = stride if source < 2 else 1
                    with tf.variable_scope(side):
                        halves.append(_apply_op(states[source], op, filters, op_stride, keep_prob))
                with tf.variable_scope("combine"):
                    states.append(tf.add(halves[0], halves[1]))
        with tf.variable_scope("cell_output"):
            return _concat_output_states(states, spec.left_out)


def _concat_output_states(states, left_out):
    """Concatenates the output states, first reducing any whose shape lags the last's."""
    final_width, final_channels = _width(states[-1]), _channels(states[-1])
    kept = []
    for index, state in enumerate(states):
        if index in left_out:
            continue
        if _width(state) != final_width or _channels(state) != final_channels:
            stride = 2 if _width(state) != final_width else 1
            with tf.variable_scope(f"reduction_{index}"):
                state = factorized_reduction(state, final_channels, stride)
        kept.append(state)
    return tf.concat(kept, axis=3)


def reduction_cell_indices(num_cells, num_reductions):
    """Cell numbers at which the resolution halves: evenly spaced through the cells."""
    return [int(num_cells * k / (num_reductions + 1)) for k in range(1, num_reductions + 1)]


def cell_keep_prob(keep_prob, cell_number, total_cells, progress=None):
    """Drop-path keep probability of one cell (TF-Slim's 'v3' schedule).

    The drop probability grows linearly with depth, (cell_number + 1) / total_cells of
    the full 1 - keep_prob, and, when `progress` (a tensor in [0, 1], the fraction of
    the schedule's training steps done) is given, linearly with training progress.

    Returns:
        1.0 (a float) when keep_prob >= 1, else a float or scalar float32 tensor.
    """
    if keep_prob >= 1.0:
        return 1.0
    depth_keep = 1.0 - (cell_number + 1) / float(total_cells) * (1.0 - keep_prob)
    if progress is None:
        return depth_keep
    return 1.0 - progress * (1.0 - depth_keep)
