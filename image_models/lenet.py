"""LeNet, the small convolutional network of the TF-Slim MNIST examples.

LeCun, Bottou, Bengio, Haffner: "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998. This is TF-Slim's variant (two 5x5 conv layers of 32 and
64 filters, a 1024-unit fully connected layer, dropout), with TF-Slim's variable names,
so its checkpoints interchange with TF-Slim's.

Typical use:

    with slim.arg_scope(lenet_arg_scope()):
        logits, end_points = lenet(images, num_classes=10, is_training=True)
"""

from slim_compat import slim, tf


def lenet(images, num_classes=10, is_training=False, dropout_keep_prob=0.5, scope="LeNet"):
    """Builds LeNet.

    Args:
        images: float tensor [batch, height, width, channels], height = width = 28 nominally.
        num_classes: number of classes; 0 or None returns the 1024-d features instead.
        is_training: whether dropout is active.
        dropout_keep_prob: probability of keeping an activation in the dropout layer.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, 1024], end_points dict).
    """
    end_points = {}
    with tf.variable_scope(scope, "LeNet", [images]):
        net = end_points["conv1"] = slim.conv2d(images, 32, [5, 5], scope="conv1")
        net = end_points["pool1"] = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = end_points["conv2"] = slim.conv2d(net, 64, [5, 5], scope="conv2")
        net = end_points["pool2"] = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = slim.flatten(net)
        end_points["Flatten"] = net
        net = end_points["fc3"] = slim.fully_connected(net, 1024, scope="fc3")
        if not num_classes:
            return net, end_points
        net = end_points["dropout3"] = slim.dropout(
            net, dropout_keep_prob, is_training=is_training, scope="dropout3"
        )
        logits = end_points["Logits"] = slim.fully_connected(
            net, num_classes, activation_fn=None, scope="fc4"
        )
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


lenet.default_image_size = 28


def lenet_arg_scope(weight_decay=0.0):
    """ReLU, truncated-normal(0.1) initialiser and L2 weight decay for conv and fc layers."""
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected],
        weights_regularizer=slim.l2_regularizer(weight_decay),
        weights_initializer=tf.truncated_normal_initializer(stddev=0.1),
        activation_fn=tf.nn.relu,
    ) as sc:
        return sc
