"""The small networks that MNIST model zoos ship, sized for 28x28 digits.

* `logistic_regression`: multinomial logistic regression on the flattened pixels.
* `mlp`: a multilayer perceptron, two hidden layers of 512 ReLU units with dropout
  (the layout of the Keras `mnist_mlp` example).
* `cnn3`: three 3x3 convolution + max-pool stages and a fully connected layer.
* `alexnet_mnist`: AlexNet's layout (five convolutions, three max-pools, two wide fully
  connected layers with dropout; Krizhevsky, Sutskever, Hinton: "ImageNet Classification
  with Deep Convolutional Neural Networks", NIPS 2012) scaled down for 28x28 inputs.
* `lstm_mnist`, `rnn_mnist`: read the 28 rows of the image as a sequence of 28 steps of
  28 pixels with an LSTM (Hochreiter, Schmidhuber: "Long Short-Term Memory", Neural
  Computation 1997) or a plain tanh recurrent layer, and classify the last output.

Every function takes images [batch, height, width, channels] and returns
(logits [batch, num_classes], end_points); num_classes 0 or None returns the last hidden
layer [batch, C] instead.

Typical use:

    with slim.arg_scope(mlp_arg_scope(weight_decay=1e-4)):
        logits, end_points = mlp(images, num_classes=10, is_training=True)
"""

# The TF1 recurrent cells that `tf.compat.v1.nn.rnn_cell` names are served by tf_keras;
# with Keras 3 installed TensorFlow refuses to route there, so take them from tf_keras's
# v1 API directly (the module TensorFlow itself routes to when TF_USE_LEGACY_KERAS is set).
from tf_keras.api._v1.keras.__internal__.legacy import rnn_cell

from slim_compat import slim, tf

_MNIST_SIZE = 28


def _classify(net, end_points, num_classes, scope="logits"):
    """Adds the linear classifier, or returns `net` as features when num_classes is 0/None."""
    if not num_classes:
        return net, end_points
    logits = end_points["Logits"] = slim.fully_connected(
        net, num_classes, activation_fn=None, normalizer_fn=None, scope=scope
    )
    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
    return logits, end_points


def dense_arg_scope(weight_decay=0.0):
    """ReLU layers with He-normal weights (He et al. 2015), zero biases and L2 weight decay."""
    with slim.arg_scope(
        [slim.conv2d, slim.fully_connected],
        weights_initializer=slim.variance_scaling_initializer(),
        weights_regularizer=slim.l2_regularizer(weight_decay) if weight_decay else None,
        biases_initializer=tf.zeros_initializer(),
        activation_fn=tf.nn.relu,
    ):
        with slim.arg_scope([slim.conv2d], padding="SAME"):
            with slim.arg_scope([slim.max_pool2d], padding="SAME") as sc:
                return sc


# ---------------------------------------------------------------------------------------
# Fully connected nets


def logistic_regression(images, num_classes=10, is_training=True, scope="LogisticRegression"):
    """Multinomial logistic regression: flatten -> linear.

    Args:
        images: float tensor [batch, height, width, channels].
        num_classes: number of classes; 0 or None returns the flattened pixels.
        is_training: unused (the model has no dropout or batch norm); kept for the
            common signature.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or pixels [batch, height*width*channels], end_points).
    """
    del is_training
    end_points = {}
    with tf.variable_scope(scope, "LogisticRegression", [images]):
        net = end_points["Flatten"] = slim.flatten(images)
        return _classify(net, end_points, num_classes)


logistic_regression.default_image_size = _MNIST_SIZE


def logistic_regression_arg_scope(weight_decay=0.0):
    """Zero-initialised weights (the convex problem needs no symmetry breaking), L2 decay."""
    with slim.arg_scope(
        [slim.fully_connected],
        weights_initializer=tf.zeros_initializer(),
        weights_regularizer=slim.l2_regularizer(weight_decay) if weight_decay else None,
    ) as sc:
        return sc


def multilayer_perceptron(
    images,
    hidden_units,
    num_classes=10,
    is_training=True,
    dropout_keep_prob=0.8,
    scope="MLP",
):
    """Builds a multilayer perceptron: flatten, then ReLU layers each followed by dropout.

    Args:
        images: float tensor [batch, height, width, channels].
        hidden_units: width of each hidden layer, in order; layer i is scoped 'fc{i+1}'.
        num_classes: number of classes; 0 or None returns the last hidden layer.
        is_training: whether dropout is active.
        dropout_keep_prob: probability of keeping an activation after each hidden layer.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, hidden_units[-1]], end_points).
    """
    end_points = {}
    with tf.variable_scope(scope, "MLP", [images]):
        net = end_points["Flatten"] = slim.flatten(images)
        for index, units in enumerate(hidden_units, start=1):
            net = end_points[f"fc{index}"] = slim.fully_connected(net, units, scope=f"fc{index}")
            if index == len(hidden_units) and not num_classes:
                return net, end_points  # features come before the last dropout
            net = slim.dropout(
                net, dropout_keep_prob, is_training=is_training, scope=f"dropout{index}"
            )
        return _classify(net, end_points, num_classes)


def mlp(images, num_classes=10, is_training=True, dropout_keep_prob=0.8, **kwargs):
    """Two hidden layers of 512 units with dropout 0.2 (669,706 parameters for 10 classes)."""
    return multilayer_perceptron(
        images, [512, 512], num_classes, is_training, dropout_keep_prob, **kwargs
    )


mlp.default_image_size = _MNIST_SIZE
mlp_arg_scope = dense_arg_scope


# ---------------------------------------------------------------------------------------
# Convolutional nets


def convnet(
    images,
    conv_layers,
    fc_units,
    num_classes=10,
    is_training=True,
    dropout_keep_prob=0.5,
    scope="ConvNet",
):
    """Builds a plain convolutional net: conv (and pool) layers, then dropout-fc layers.

    Args:
        images: float tensor [batch, height, width, channels].
        conv_layers: list of (filters, kernel_size, pool) with pool a (size, stride) tuple
            for a max-pool after the convolution or None; layer i is scoped 'conv{i+1}' and
            its pool 'pool{i+1}'.
        fc_units: widths of the fully connected layers after flattening, scoped
            'fc{len(conv_layers)+1}', ... (continuing the layer numbering).
        num_classes: number of classes; 0 or None returns the last fully connected layer.
        is_training: whether dropout is active.
        dropout_keep_prob: probability of keeping an activation after each fc layer.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, fc_units[-1]], end_points).
    """
    end_points = {}
    with tf.variable_scope(scope, "ConvNet", [images]):
        net = images
        for index, (filters, kernel_size, pool) in enumerate(conv_layers, start=1):
            net = end_points[f"conv{index}"] = slim.conv2d(
                net, filters, kernel_size, scope=f"conv{index}"
            )
            if pool:
                net = end_points[f"pool{index}"] = slim.max_pool2d(
                    net, pool[0], pool[1], scope=f"pool{index}"
                )
        net = end_points["Flatten"] = slim.flatten(net)
        for index, units in enumerate(fc_units, start=len(conv_layers) + 1):
            net = end_points[f"fc{index}"] = slim.fully_connected(net, units, scope=f"fc{index}")
            if index == len(conv_layers) + len(fc_units) and not num_classes:
                return net, end_points  # features come before the last dropout
            net = slim.dropout(
                net, dropout_keep_prob, is_training=is_training, scope=f"dropout{index}"
            )
        return _classify(net, end_points, num_classes)


def cnn3(images, num_classes=10, is_training=True, dropout_keep_prob=0.5, scope="CNN3", **kwargs):
    """Three 3x3 conv + 2x2 max-pool stages (32, 64, 128 filters), fc 256, dropout."""
    conv_layers = [(32, [3, 3], ([2, 2], 2)), (64, [3, 3], ([2, 2], 2)), (128, [3, 3], ([2, 2], 2))]
    return convnet(
        images, conv_layers, [256], num_classes, is_training, dropout_keep_prob, scope, **kwargs
    )


cnn3.default_image_size = _MNIST_SIZE
cnn3_arg_scope = dense_arg_scope


def alexnet_mnist(
    images, num_classes=10, is_training=True, dropout_keep_prob=0.5, scope="AlexNetMNIST", **kwargs
):
    """AlexNet's five convolutions and three overlapping 3x3/2 max-pools, two fc of 1024.

    Filter counts are AlexNet's one-tower widths (64, 192, 384, 256, 256); the 11x11/4
    stem becomes 5x5/1 and the fully connected layers shrink from 4096 to 1024 units, so
    28x28 inputs keep a 4x4 map before the classifier.
    """
    overlapping_pool = ([3, 3], 2)
    conv_layers = [
        (64, [5, 5], overlapping_pool),
        (192, [5, 5], overlapping_pool),
        (384, [3, 3], None),
        (256, [3, 3], None),
        (256, [3, 3], overlapping_pool),
    ]
    return convnet(
        images,
        conv_layers,
        [1024, 1024],
        num_classes,
        is_training,
        dropout_keep_prob,
        scope,
        **kwargs,
    )


alexnet_mnist.default_image_size = _MNIST_SIZE
alexnet_mnist_arg_scope = dense_arg_scope


# ---------------------------------------------------------------------------------------
# Recurrent nets


@slim.add_arg_scope
def recurrent_layer(sequence, cell, weights_regularizer=None, scope=None):
    """Runs `cell` over `sequence` [batch, steps, features]; returns outputs [batch, steps, units].

    A function of its own so that an arg_scope can give the cell's kernel a regularizer,
    as slim's layers take one (biases are not decayed, as in slim's layers).
    """

    def regularize_kernels(variable):
        if weights_regularizer is None or not variable.op.name.endswith("kernel"):
            return None
        return weights_regularizer(variable)

    with tf.variable_scope(
        scope, "recurrent", [sequence], regularizer=regularize_kernels
    ) as variable_scope:
        outputs, _ = tf.nn.dynamic_rnn(cell, sequence, dtype=sequence.dtype, scope=variable_scope)
    return outputs


def sequence_classifier(images, make_cell, num_classes=10, scope="RNN"):
    """Reads the image rows top to bottom as a sequence and classifies the last output.

    Args:
        images: float tensor [batch, height, width, channels]; RGB is averaged to grey.
        make_cell: function() -> a TF1 recurrent cell.
        num_classes: number of classes; 0 or None returns the last output.
        scope: variable scope.

    Returns:
        (logits [batch, num_classes] or features [batch, units], end_points).
    """
    end_points = {}
    with tf.variable_scope(scope, "RNN", [images]):
        # Each row of pixels is one time step of `width` features.
        rows = tf.reduce_mean(images, axis=3, name="grayscale")
        outputs = end_points["outputs"] = recurrent_layer(rows, make_cell(), scope="rnn")
        net = end_points["last_output"] = outputs[:, -1, :]
        return _classify(net, end_points, num_classes)


def lstm_mnist(
    images, num_classes=10, is_training=True, num_units=128, scope="LSTMMNIST", **kwargs
):
    """One LSTM layer of `num_units` over the 28 rows (is_training unused: no dropout)."""
    del is_training

    def make_cell():
        return rnn_cell.LSTMCell(num_units, initializer=slim.xavier_initializer())

    return sequence_classifier(images, make_cell, num_classes, scope, **kwargs)


lstm_mnist.default_image_size = _MNIST_SIZE


def rnn_mnist(images, num_classes=10, is_training=True, num_units=128, scope="RNNMNIST", **kwargs):
    """One tanh recurrent layer of `num_units` over the 28 rows (is_training unused)."""
    del is_training

    def make_cell():
        return rnn_cell.BasicRNNCell(num_units)

    return sequence_classifier(images, make_cell, num_classes, scope, **kwargs)


rnn_mnist.default_image_size = _MNIST_SIZE


def recurrent_arg_scope(weight_decay=0.0):
    """L2 weight decay on the recurrent and classifier weights; Glorot-uniform classifier."""
    regularizer = slim.l2_regularizer(weight_decay) if weight_decay else None
    with slim.arg_scope([recurrent_layer], weights_regularizer=regularizer):
        with slim.arg_scope(
            [slim.fully_connected],
            weights_initializer=slim.xavier_initializer(),
            weights_regularizer=regularizer,
        ) as sc:
            return sc


lstm_mnist_arg_scope = recurrent_arg_scope
rnn_mnist_arg_scope = recurrent_arg_scope
