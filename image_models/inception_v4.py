"""Inception-v4, with TF-Slim's variable names so its published checkpoints load.

C. Szegedy, S. Ioffe, V. Vanhoucke, A. Alemi: "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI 2017 (arXiv:1602.07261).

A stem (Conv2d_1a_3x3 .. Mixed_5a, 35x35x384 at 299 px), 4 Inception-A blocks
(Mixed_5b-e), Reduction-A (Mixed_6a, 17x17x1024), 7 Inception-B blocks (Mixed_6b-h),
Reduction-B (Mixed_7a, 8x8x1536), 3 Inception-C blocks (Mixed_7b-d), global average
pooling and a fully connected classifier; an auxiliary classifier reads Mixed_6h.

Typical use:

    with slim.arg_scope(inception_v4_arg_scope()):
        logits, end_points = inception_v4(images, num_classes=1001, is_training=True)

The smallest input is 75x75 (the stem's VALID convolutions and three stride-2 reductions).
"""

from slim_compat import slim, tf


def _concat_branches(net, *branches):
    """Runs each branch function on `net` under scope Branch_<i>; concatenates on depth."""
    outputs = []
    for index, branch in enumerate(branches):
        with tf.variable_scope(f"Branch_{index}"):
            outputs.append(branch(net))
    return tf.concat(outputs, axis=3)


def _conv_chain(net, layers):
    """Applies (depth, kernel, scope) 'SAME' convolutions one after another."""
    for depth, kernel, scope in layers:
        net = slim.conv2d(net, depth, kernel, scope=scope)
    return net


def inception_a(net, scope):
    """35x35 block: 1x1, 1x1->3x3, 1x1->3x3->3x3 and avg-pool->1x1 towers of 96 each."""
    with tf.variable_scope(scope):
        return _concat_branches(
            net,
            lambda x: slim.conv2d(x, 96, [1, 1], scope="Conv2d_0a_1x1"),
            lambda x: _conv_chain(
                x, [(64, [1, 1], "Conv2d_0a_1x1"), (96, [3, 3], "Conv2d_0b_3x3")]
            ),
            lambda x: _conv_chain(
                x,
                [
                    (64, [1, 1], "Conv2d_0a_1x1"),
                    (96, [3, 3], "Conv2d_0b_3x3"),
                    (96, [3, 3], "Conv2d_0c_3x3"),
                ],
            ),
            lambda x: slim.conv2d(
                slim.avg_pool2d(x, [3, 3], scope="AvgPool_0a_3x3"),
                96,
                [1, 1],
                scope="Conv2d_0b_1x1",
            ),
        )


def reduction_a(net, scope):
    """35x35 -> 17x17 (k=192, l=224, m=256, n=384 in the paper's Table 1)."""
    with tf.variable_scope(scope):
        return _concat_branches(
            net,
            lambda x: slim.conv2d(x, 384, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3"),
            lambda x: slim.conv2d(
                _conv_chain(x, [(192, [1, 1], "Conv2d_0a_1x1"), (224, [3, 3], "Conv2d_0b_3x3")]),
                256,
                [3, 3],
                stride=2,
                padding="VALID",
                scope="Conv2d_1a_3x3",
            ),
            lambda x: slim.max_pool2d(x, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3"),
        )


def inception_b(net, scope):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1)."""
    with tf.variable_scope(scope):
        return _concat_branches(
            net,
            lambda x: slim.conv2d(x, 384, [1, 1], scope="Conv2d_0a_1x1"),
            lambda x: _conv_chain(
                x,
                [
                    (192, [1, 1], "Conv2d_0a_1x1"),
                    (224, [1, 7], "Conv2d_0b_1x7"),
                    (256, [7, 1], "Conv2d_0c_7x1"),
                ],
            ),
            lambda x: _conv_chain(
                x,
                [
                    (192, [1, 1], "Conv2d_0a_1x1"),
                    (192, [7, 1], "Conv2d_0b_7x1"),
                    (224, [1, 7], "Conv2d_0c_1x7"),
                    (224, [7, 1], "Conv2d_0d_7x1"),
                    (256, [1, 7], "Conv2d_0e_1x7"),
                ],
            ),
            lambda x: slim.conv2d(
                slim.avg_pool2d(x, [3, 3], scope="AvgPool_0a_3x3"),
                128,
                [1, 1],
                scope="Conv2d_0b_1x1",
            ),
        )


def reduction_b(net, scope):
    """17x17 -> 8x8."""
    with tf.variable_scope(scope):
        return _concat_branches(
            net,
            lambda x: slim.conv2d(
                slim.conv2d(x, 192, [1, 1], scope="Conv2d_0a_1x1"),
                192,
                [3, 3],
                stride=2,
                padding="VALID",
                scope="Conv2d_1a_3x3",
            ),
            lambda x: slim.conv2d(
                _conv_chain(
                    x,
                    [
                        (256, [1, 1], "Conv2d_0a_1x1"),
                        (256, [1, 7], "Conv2d_0b_1x7"),
                        (320, [7, 1], "Conv2d_0c_7x1"),
                    ],
                ),
                320,
                [3, 3],
                stride=2,
                padding="VALID",
                scope="Conv2d_1a_3x3",
            ),
            lambda x: slim.max_pool2d(x, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3"),
        )


def _split_1x3_3x1(net, first_scope, second_scope):
    """The Inception-C fan-out: parallel 1x3 and 3x1 convolutions of 256, concatenated."""
    return tf.concat(
        [
            slim.conv2d(net, 256, [1, 3], scope=first_scope),
            slim.conv2d(net, 256, [3, 1], scope=second_scope),
        ],
        axis=3,
    )


def inception_c(net, scope):
    """8x8 block whose towers end in parallel 1x3 / 3x1 convolutions (1536 channels out)."""
    with tf.variable_scope(scope):
        return _concat_branches(
            net,
            lambda x: slim.conv2d(x, 256, [1, 1], scope="Conv2d_0a_1x1"),
            lambda x: _split_1x3_3x1(
                slim.conv2d(x, 384, [1, 1], scope="Conv2d_0a_1x1"), "Conv2d_0b_1x3", "Conv2d_0c_3x1"
            ),
            lambda x: _split_1x3_3x1(
                _conv_chain(
                    x,
                    [
                        (384, [1, 1], "Conv2d_0a_1x1"),
                        (448, [3, 1], "Conv2d_0b_3x1"),
                        (512, [1, 3], "Conv2d_0c_1x3"),
                    ],
                ),
                "Conv2d_0d_1x3",
                "Conv2d_0e_3x1",
            ),
            lambda x: slim.conv2d(
                slim.avg_pool2d(x, [3, 3], scope="AvgPool_0a_3x3"),
                256,
                [1, 1],
                scope="Conv2d_0b_1x1",
            ),
        )


def inception_v4_base(images, scope="InceptionV4"):
    """Builds the convolutional trunk up to Mixed_7d.

    Args:
        images: float tensor [batch, height, width, 3], height and width >= 75.
        scope: variable scope.

    Returns:
        (Mixed_7d activations [batch, 8, 8, 1536] at 299 px, end_points dict).
    """
    end_points = {}
    with tf.variable_scope(scope, "InceptionV4", [images]):
        with slim.arg_scope(
            [slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"
        ):
            net = slim.conv2d(images, 32, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3")
            end_points["Conv2d_1a_3x3"] = net
            net = slim.conv2d(net, 32, [3, 3], padding="VALID", scope="Conv2d_2a_3x3")
            end_points["Conv2d_2a_3x3"] = net
            net = slim.conv2d(net, 64, [3, 3], scope="Conv2d_2b_3x3")
            end_points["Conv2d_2b_3x3"] = net

            with tf.variable_scope("Mixed_3a"):
                net = _concat_branches(
                    net,
                    lambda x: slim.max_pool2d(
                        x, [3, 3], stride=2, padding="VALID", scope="MaxPool_0a_3x3"
                    ),
                    lambda x: slim.conv2d(
                        x, 96, [3, 3], stride=2, padding="VALID", scope="Conv2d_0a_3x3"
                    ),
                )
            end_points["Mixed_3a"] = net

            with tf.variable_scope("Mixed_4a"):
                net = _concat_branches(
                    net,
                    lambda x: slim.conv2d(
                        slim.conv2d(x, 64, [1, 1], scope="Conv2d_0a_1x1"),
                        96,
                        [3, 3],
                        padding="VALID",
                        scope="Conv2d_1a_3x3",
                    ),
                    lambda x: slim.conv2d(
                        _conv_chain(
                            x,
                            [
                                (64, [1, 1], "Conv2d_0a_1x1"),
                                (64, [1, 7], "Conv2d_0b_1x7"),
                                (64, [7, 1], "Conv2d_0c_7x1"),
                            ],
                        ),
                        96,
                        [3, 3],
                        padding="VALID",
                        scope="Conv2d_1a_3x3",
                    ),
                )
            end_points["Mixed_4a"] = net

            with tf.variable_scope("Mixed_5a"):
                net = _concat_branches(
                    net,
                    lambda x: slim.conv2d(
                        x, 192, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3"
                    ),
                    lambda x: slim.max_pool2d(
                        x, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3"
                    ),
                )
            end_points["Mixed_5a"] = net

            # The body: (block builder, stage name, block letters) per grid size.
            stages = [
                (inception_a, "Mixed_5", "bcde"),
                (reduction_a, "Mixed_6", "a"),
                (inception_b, "Mixed_6", "bcdefgh"),
                (reduction_b, "Mixed_7", "a"),
                (inception_c, "Mixed_7", "bcd"),
            ]
            for block, stage, letters in stages:
                for letter in letters:
                    name = stage + letter
                    net = end_points[name] = block(net, name)
    return net, end_points


def _aux_logits(net, num_classes):
    """Auxiliary classifier on Mixed_6h (17x17x1024 at 299 px)."""
    with tf.variable_scope("AuxLogits"):
        # 5x5 / 3 pooling as in TF-Slim; clipped to the grid so 75-105 px inputs still build
        # (checkpoint shapes only match at 299 px anyway, as Conv2d_2a spans the pooled grid).
        pool_size = [min(5, int(d)) for d in net.shape[1:3]]
        net = slim.avg_pool2d(net, pool_size, stride=3, padding="VALID", scope="AvgPool_1a_5x5")
        net = slim.conv2d(net, 128, [1, 1], scope="Conv2d_1b_1x1")
        net = slim.conv2d(net, 768, net.shape[1:3].as_list(), padding="VALID", scope="Conv2d_2a")
        net = slim.flatten(net)
        return slim.fully_connected(net, num_classes, activation_fn=None, scope="Aux_logits")


def inception_v4(
    images,
    num_classes=1001,
    is_training=True,
    dropout_keep_prob=0.8,
    create_aux_logits=True,
    reuse=None,
    scope="InceptionV4",
):
    """Builds Inception-v4 for classification.

    Args:
        images: float tensor [batch, height, width, 3]; 299x299 nominally, at least 75x75.
        num_classes: number of classes; 0 or None returns the pooled 1536-d features.
        is_training: whether batch norm and dropout run in training mode.
        dropout_keep_prob: probability of keeping an activation before the classifier.
        create_aux_logits: whether to build the auxiliary classifier ('AuxLogits').
        reuse: whether to reuse the variables of `scope`.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, 1536], end_points dict) with
        'global_pool', 'PreLogitsFlatten', 'Logits', 'Predictions' and 'AuxLogits'.
    """
    with tf.variable_scope(scope, "InceptionV4", [images], reuse=reuse) as var_scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v4_base(images, scope=var_scope)
            with slim.arg_scope(
                [slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"
            ):
                if create_aux_logits and num_classes:
                    end_points["AuxLogits"] = _aux_logits(end_points["Mixed_6h"], num_classes)

                with tf.variable_scope("Logits"):
                    if net.shape[1:3].is_fully_defined():
                        net = slim.avg_pool2d(
                            net, net.shape[1:3], padding="VALID", scope="AvgPool_1a"
                        )
                    else:
                        net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                    end_points["global_pool"] = net
                    if not num_classes:
                        return tf.squeeze(net, [1, 2], name="features"), end_points
                    net = slim.dropout(net, dropout_keep_prob, scope="Dropout_1b")
                    net = end_points["PreLogitsFlatten"] = slim.flatten(
                        net, scope="PreLogitsFlatten"
                    )
                    logits = slim.fully_connected(
                        net, num_classes, activation_fn=None, scope="Logits"
                    )
                    end_points["Logits"] = logits
                    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


inception_v4.default_image_size = 299


def inception_v4_arg_scope(
    weight_decay=0.00004,
    batch_norm_decay=0.9997,
    batch_norm_epsilon=0.001,
    activation_fn=tf.nn.relu,
):
    """Batch-normalised convolutions with L2 weight decay, as TF-Slim's inception scope.

    Batch norm has no scale (gamma) variable: ReLU follows it, so a scale would be redundant,
    and TF-Slim's checkpoints have none.
    """
    batch_norm_params = {
        "decay": batch_norm_decay,
        "epsilon": batch_norm_epsilon,
        "scale": False,
        "updates_collections": tf.GraphKeys.UPDATE_OPS,
    }
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected], weights_regularizer=slim.l2_regularizer(weight_decay)
    ):
        with slim.arg_scope(
            [slim.conv2d],
            weights_initializer=slim.variance_scaling_initializer(),
            activation_fn=activation_fn,
            normalizer_fn=slim.batch_norm,
            normalizer_params=batch_norm_params,
        ) as scope:
            return scope
