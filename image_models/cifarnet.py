"""CifarNet, the CIFAR-10 network of the TF-Slim and TensorFlow CIFAR-10 tutorials.

After Krizhevsky's cuda-convnet CIFAR-10 layout (A. Krizhevsky, "Learning Multiple
Layers of Features from Tiny Images", 2009): two 5x5 conv + pool + LRN stages of 64
filters, then fully connected layers of 384 and 192 units. Variable names follow TF-Slim's.

Typical use:

    with slim.arg_scope(cifarnet_arg_scope()):
        logits, end_points = cifarnet(images, num_classes=10, is_training=True)
"""

from slim_compat import slim, tf


def _lrn(net, name):
    """Local response normalisation, computed in fp32 (there is no bf16 LRN kernel on CPU)."""
    out = tf.nn.lrn(tf.cast(net, tf.float32), 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name=name)
    return tf.cast(out, net.dtype)


def cifarnet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5, scope="CifarNet"):
    """Builds CifarNet.

    Args:
        images: float tensor [batch, 32, 32, 3] nominally.
        num_classes: number of classes; 0 or None returns the 192-d features instead.
        is_training: whether dropout is active.
        dropout_keep_prob: probability of keeping an activation in the dropout layer.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, 192], end_points dict).
    """
    end_points = {}
    with tf.variable_scope(scope, "CifarNet", [images]):
        net = end_points["conv1"] = slim.conv2d(images, 64, [5, 5], scope="conv1")
        net = end_points["pool1"] = slim.max_pool2d(net, [3, 3], 2, scope="pool1", padding="SAME")
        net = _lrn(net, "norm1")
        net = end_points["conv2"] = slim.conv2d(net, 64, [5, 5], scope="conv2")
        net = _lrn(net, "norm2")
        net = end_points["pool2"] = slim.max_pool2d(net, [3, 3], 2, scope="pool2", padding="SAME")
        net = slim.flatten(net)
        end_points["Flatten"] = net
        net = end_points["fc3"] = slim.fully_connected(net, 384, scope="fc3")
        net = end_points["dropout3"] = slim.dropout(
            net, dropout_keep_prob, is_training=is_training, scope="dropout3"
        )
        net = end_points["fc4"] = slim.fully_connected(net, 192, scope="fc4")
        if not num_classes:
            return net, end_points
        logits = end_points["Logits"] = slim.fully_connected(
            net,
            num_classes,
            biases_initializer=tf.zeros_initializer(),
            weights_initializer=tf.truncated_normal_initializer(stddev=1 / 192.0),
            weights_regularizer=None,
            activation_fn=None,
            scope="logits",
        )
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


cifarnet.default_image_size = 32


def cifarnet_arg_scope(weight_decay=0.004):
    """ReLU layers, truncated-normal initialisers, L2 weight decay on fully connected layers."""
    with slim.arg_scope(
        [slim.conv2d],
        weights_initializer=tf.truncated_normal_initializer(stddev=5e-2),
        activation_fn=tf.nn.relu,
    ):
        with slim.arg_scope(
            [slim.fully_connected],
            biases_initializer=tf.constant_initializer(0.1),
            weights_initializer=tf.truncated_normal_initializer(stddev=0.04),
            weights_regularizer=slim.l2_regularizer(weight_decay),
            activation_fn=tf.nn.relu,
        ) as sc:
            return sc
