"""Inception-ResNet-v2, with TF-Slim's variable names so its published checkpoints load.

C. Szegedy, S. Ioffe, V. Vanhoucke, A. Alemi: "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI 2017 (arXiv:1602.07261).

A stem (Conv2d_1a_3x3 .. Mixed_5b, 35x35x320 at 299 px), 10 residual 35x35 blocks
(scaled by 0.17), Mixed_6a (17x17x1088), 20 residual 17x17 blocks (x0.10), Mixed_7a
(8x8x2080), 10 residual 8x8 blocks (x0.20, the last one linear), Conv2d_7b_1x1 (1536),
global average pooling and a fully connected classifier; an auxiliary classifier reads the
17x17 grid ('PreAuxLogits').

TF-Slim's scope layout is kept exactly: the repeated blocks live in 'Repeat/block35_<i>',
'Repeat_1/block17_<i>' and 'Repeat_2/block8_<i>' (the names `slim.repeat` gives them), and
the last 8x8 block in 'Block8'.

Typical use:

    with slim.arg_scope(inception_resnet_v2_arg_scope()):
        logits, end_points = inception_resnet_v2(images, num_classes=1001, is_training=True)

The smallest input is 75x75.
"""

from slim_compat import slim, tf


def _towers(net, *towers):
    """Runs each tower (a list of (depth, kernel, scope) convolutions) under Branch_<i>."""
    outputs = []
    for index, tower in enumerate(towers):
        with tf.variable_scope(f"Branch_{index}"):
            branch = net
            for depth, kernel, scope in tower:
                branch = slim.conv2d(branch, depth, kernel, scope=scope)
            outputs.append(branch)
    return tf.concat(outputs, axis=3)


def _residual_block(net, towers, scale, activation_fn, scope):
    """Adds `scale` times a linear 1x1 projection of the concatenated towers to `net`.

    The projection ('Conv2d_1x1' beside the branches) has a bias and no batch norm: the
    paper scales residuals down (0.1-0.3) before the sum to keep training stable.
    """
    with tf.variable_scope(scope):
        mixed = _towers(net, *towers)
        residual = slim.conv2d(
            mixed,
            int(net.shape[3]),
            [1, 1],
            normalizer_fn=None,
            activation_fn=None,
            scope="Conv2d_1x1",
        )
        net = net + scale * residual
        if activation_fn:
            net = activation_fn(net)
    return net


# Towers of the three residual blocks: (depth, kernel, scope) per convolution.
BLOCK35_TOWERS = (
    [(32, [1, 1], "Conv2d_1x1")],
    [(32, [1, 1], "Conv2d_0a_1x1"), (32, [3, 3], "Conv2d_0b_3x3")],
    [(32, [1, 1], "Conv2d_0a_1x1"), (48, [3, 3], "Conv2d_0b_3x3"), (64, [3, 3], "Conv2d_0c_3x3")],
)
BLOCK17_TOWERS = (
    [(192, [1, 1], "Conv2d_1x1")],
    [
        (128, [1, 1], "Conv2d_0a_1x1"),
        (160, [1, 7], "Conv2d_0b_1x7"),
        (192, [7, 1], "Conv2d_0c_7x1"),
    ],
)
BLOCK8_TOWERS = (
    [(192, [1, 1], "Conv2d_1x1")],
    [
        (192, [1, 1], "Conv2d_0a_1x1"),
        (224, [1, 3], "Conv2d_0b_1x3"),
        (256, [3, 1], "Conv2d_0c_3x1"),
    ],
)


def _repeat(net, count, towers, scale, activation_fn, repeat_scope, block_name):
    """`count` residual blocks named <repeat_scope>/<block_name>_<i>, i from 1."""
    with tf.variable_scope(repeat_scope):
        for index in range(1, count + 1):
            net = _residual_block(net, towers, scale, activation_fn, f"{block_name}_{index}")
    return net


def inception_resnet_v2_base(images, activation_fn=tf.nn.relu, scope="InceptionResnetV2"):
    """Builds the convolutional trunk up to Conv2d_7b_1x1.

    Args:
        images: float tensor [batch, height, width, 3], height and width >= 75.
        activation_fn: activation after each residual sum.
        scope: variable scope.

    Returns:
        (Conv2d_7b_1x1 activations [batch, 8, 8, 1536] at 299 px, end_points dict).
    """
    end_points = {}
    with tf.variable_scope(scope, "InceptionResnetV2", [images]):
        with slim.arg_scope(
            [slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"
        ):
            stem = [
                (
                    "Conv2d_1a_3x3",
                    lambda x, s: slim.conv2d(x, 32, [3, 3], stride=2, padding="VALID", scope=s),
                ),
                (
                    "Conv2d_2a_3x3",
                    lambda x, s: slim.conv2d(x, 32, [3, 3], padding="VALID", scope=s),
                ),
                ("Conv2d_2b_3x3", lambda x, s: slim.conv2d(x, 64, [3, 3], scope=s)),
                (
                    "MaxPool_3a_3x3",
                    lambda x, s: slim.max_pool2d(x, [3, 3], stride=2, padding="VALID", scope=s),
                ),
                (
                    "Conv2d_3b_1x1",
                    lambda x, s: slim.conv2d(x, 80, [1, 1], padding="VALID", scope=s),
                ),
                (
                    "Conv2d_4a_3x3",
                    lambda x, s: slim.conv2d(x, 192, [3, 3], padding="VALID", scope=s),
                ),
                (
                    "MaxPool_5a_3x3",
                    lambda x, s: slim.max_pool2d(x, [3, 3], stride=2, padding="VALID", scope=s),
                ),
            ]
            net = images
            for name, layer in stem:
                net = end_points[name] = layer(net, name)

            with tf.variable_scope("Mixed_5b"):
                convs = _towers(
                    net,
                    [(96, [1, 1], "Conv2d_1x1")],
                    [(48, [1, 1], "Conv2d_0a_1x1"), (64, [5, 5], "Conv2d_0b_5x5")],
                    [
                        (64, [1, 1], "Conv2d_0a_1x1"),
                        (96, [3, 3], "Conv2d_0b_3x3"),
                        (96, [3, 3], "Conv2d_0c_3x3"),
                    ],
                )
                with tf.variable_scope("Branch_3"):
                    pooled = slim.avg_pool2d(net, [3, 3], scope="AvgPool_0a_3x3")
                    pooled = slim.conv2d(pooled, 64, [1, 1], scope="Conv2d_0b_1x1")
                net = end_points["Mixed_5b"] = tf.concat([convs, pooled], axis=3)

            net = _repeat(net, 10, BLOCK35_TOWERS, 0.17, activation_fn, "Repeat", "block35")

            with tf.variable_scope("Mixed_6a"):
                with tf.variable_scope("Branch_0"):
                    branch_0 = slim.conv2d(
                        net, 384, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3"
                    )
                with tf.variable_scope("Branch_1"):
                    branch_1 = slim.conv2d(net, 256, [1, 1], scope="Conv2d_0a_1x1")
                    branch_1 = slim.conv2d(branch_1, 256, [3, 3], scope="Conv2d_0b_3x3")
                    branch_1 = slim.conv2d(
                        branch_1, 384, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3"
                    )
                with tf.variable_scope("Branch_2"):
                    branch_2 = slim.max_pool2d(
                        net, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3"
                    )
                net = end_points["Mixed_6a"] = tf.concat([branch_0, branch_1, branch_2], axis=3)

            net = _repeat(net, 20, BLOCK17_TOWERS, 0.10, activation_fn, "Repeat_1", "block17")
            end_points["PreAuxLogits"] = net

            with tf.variable_scope("Mixed_7a"):
                reductions = []
                for index, (depth, middle) in enumerate([(384, None), (288, None), (320, 288)]):
                    with tf.variable_scope(f"Branch_{index}"):
                        branch = slim.conv2d(net, 256, [1, 1], scope="Conv2d_0a_1x1")
                        if middle:
                            branch = slim.conv2d(branch, middle, [3, 3], scope="Conv2d_0b_3x3")
                        reductions.append(
                            slim.conv2d(
                                branch,
                                depth,
                                [3, 3],
                                stride=2,
                                padding="VALID",
                                scope="Conv2d_1a_3x3",
                            )
                        )
                with tf.variable_scope("Branch_3"):
                    reductions.append(
                        slim.max_pool2d(
                            net, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3"
                        )
                    )
                net = end_points["Mixed_7a"] = tf.concat(reductions, axis=3)

            net = _repeat(net, 9, BLOCK8_TOWERS, 0.20, activation_fn, "Repeat_2", "block8")
            # The last 8x8 block is unscaled and linear, as in TF-Slim.
            net = _residual_block(net, BLOCK8_TOWERS, 1.0, None, "Block8")
            net = end_points["Conv2d_7b_1x1"] = slim.conv2d(
                net, 1536, [1, 1], scope="Conv2d_7b_1x1"
            )
    return net, end_points


def _aux_logits(net, num_classes):
    """Auxiliary classifier on the 17x17x1088 grid."""
    with tf.variable_scope("AuxLogits"):
        # 5x5 / 3 pooling as in TF-Slim; clipped to the grid so 75-105 px inputs still build.
        pool_size = [min(5, int(d)) for d in net.shape[1:3]]
        net = slim.avg_pool2d(net, pool_size, stride=3, padding="VALID", scope="Conv2d_1a_3x3")
        net = slim.conv2d(net, 128, [1, 1], scope="Conv2d_1b_1x1")
        net = slim.conv2d(
            net, 768, net.shape[1:3].as_list(), padding="VALID", scope="Conv2d_2a_5x5"
        )
        net = slim.flatten(net)
        return slim.fully_connected(net, num_classes, activation_fn=None, scope="Logits")


def inception_resnet_v2(
    images,
    num_classes=1001,
    is_training=True,
    dropout_keep_prob=0.8,
    create_aux_logits=True,
    activation_fn=tf.nn.relu,
    reuse=None,
    scope="InceptionResnetV2",
):
    """Builds Inception-ResNet-v2 for classification.

    Args:
        images: float tensor [batch, height, width, 3]; 299x299 nominally, at least 75x75.
        num_classes: number of classes; 0 or None returns the pooled 1536-d features.
        is_training: whether batch norm and dropout run in training mode.
        dropout_keep_prob: probability of keeping an activation before the classifier.
        create_aux_logits: whether to build the auxiliary classifier ('AuxLogits').
        activation_fn: activation after each residual sum.
        reuse: whether to reuse the variables of `scope`.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, 1536], end_points dict) with
        'PreAuxLogits', 'global_pool', 'PreLogitsFlatten', 'Logits', 'Predictions' and
        'AuxLogits'.
    """
    with tf.variable_scope(scope, "InceptionResnetV2", [images], reuse=reuse) as var_scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_resnet_v2_base(
                images, activation_fn=activation_fn, scope=var_scope
            )
            if create_aux_logits and num_classes:
                with slim.arg_scope([slim.conv2d, slim.avg_pool2d], stride=1, padding="SAME"):
                    end_points["AuxLogits"] = _aux_logits(end_points["PreAuxLogits"], num_classes)

            with tf.variable_scope("Logits"):
                if net.shape[1:3].is_fully_defined():
                    net = slim.avg_pool2d(
                        net, net.shape[1:3].as_list(), padding="VALID", scope="AvgPool_1a_8x8"
                    )
                else:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                end_points["global_pool"] = net
                if not num_classes:
                    return tf.squeeze(net, [1, 2], name="features"), end_points
                net = slim.flatten(net)
                net = slim.dropout(net, dropout_keep_prob, scope="Dropout")
                end_points["PreLogitsFlatten"] = net
                logits = slim.fully_connected(net, num_classes, activation_fn=None, scope="Logits")
                end_points["Logits"] = logits
                end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


inception_resnet_v2.default_image_size = 299


def inception_resnet_v2_arg_scope(
    weight_decay=0.00004,
    batch_norm_decay=0.9997,
    batch_norm_epsilon=0.001,
    activation_fn=tf.nn.relu,
):
    """Batch-normalised convolutions; L2 decay on weights and biases, as in TF-Slim.

    Batch norm has no scale (gamma) variable, as in TF-Slim's checkpoints.
    """
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected],
        weights_regularizer=regularizer,
        biases_regularizer=regularizer,
    ):
        with slim.arg_scope(
            [slim.conv2d],
            activation_fn=activation_fn,
            normalizer_fn=slim.batch_norm,
            normalizer_params={
                "decay": batch_norm_decay,
                "epsilon": batch_norm_epsilon,
                "scale": False,
                "updates_collections": tf.GraphKeys.UPDATE_OPS,
            },
        ) as scope:
            return scope
