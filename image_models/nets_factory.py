"""THE map from network name to network: one entry per model.

Each entry records the network function, its arg_scope function, its default image size
and its default preprocessing, so the three facts TF-Slim kept in separate maps cannot
drift apart, and what the tests need to know of it (input channels, smallest buildable
size, whether its graph is slow to build), so no test keeps a table of model names. Adding a model is one file in this folder and one line in `NETWORKS`.

A network function has the signature

    fn(images, num_classes, is_training=True, **kwargs) -> (logits, end_points)

where `logits` is [batch, num_classes] (or pooled features when num_classes is 0/None).

    python -m image_models.nets_factory --list    # every name, image size, parameter count
"""

import collections
import contextlib
import functools
import sys

from tf_slim.nets import alexnet, inception, overfeat, resnet_v1, resnet_v2, vgg

from image_models import (
    cifar_models,
    cifarnet,
    inception_resnet_v2,
    inception_v4,
    lenet,
    mnist_models,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    nasnet,
    pnasnet,
)
from slim_compat import slim, tf

NetworkEntry = collections.namedtuple(
    "NetworkEntry",
    [
        "fn",
        "arg_scope",
        "image_size",
        "preprocessing",
        "aux_loss_weight",
        "channels",
        "min_image_size",
        "slow",
    ],
)
# aux_loss_weight: TF-Slim's weight for AuxLogits; channels: RGB; min_image_size: any size
# builds; slow: no.
NetworkEntry.__new__.__defaults__ = (0.4, 3, 1, False)
NetworkEntry.__doc__ = """One model: how to build it, how to scope it, what it eats.

fn: network function (see the module docstring).
arg_scope: function(weight_decay=...) -> arg_scope dict for the network's layers.
image_size: default (square) input size in pixels.
preprocessing: default preprocessing name in preprocessing_factory.
aux_loss_weight: weight of the auxiliary head's loss, for nets that have 'AuxLogits'.
channels: input channels the network wants (3: RGB), or None for the data's own
    (MNIST-style nets read grey digits and RGB alike).
min_image_size: the smallest input side in pixels the network builds at (fixed-size
    pools, VALID convolutions and strides make smaller inputs reach a negative size).
slow: building its graph takes more than ~10 s on 2 cores (or it is large to run), so the
    registry-driven tests mark it `slow`.
"""


def _resnet(fn):
    """TF-Slim's resnets return [batch, 1, 1, classes]; squeeze to [batch, classes]."""

    @functools.wraps(fn)
    def network(images, num_classes=None, is_training=True, **kwargs):
        net, end_points = fn(images, num_classes or None, is_training=is_training, **kwargs)
        net = tf.squeeze(net, [1, 2], name="SpatialSqueeze")
        if num_classes:
            end_points["Logits"] = net
        return net, end_points

    return network


# The end point whose spatial mean is the feature vector of each TF-Slim net that always
# builds a classifier: the last layer before the classifier's dropout, as in later TF-Slim.
_FEATURE_END_POINTS = {
    "alexnet_v2": "fc7",
    "overfeat": "fc7",
    "vgg_a": "fc7",
    "vgg_16": "fc7",
    "vgg_19": "fc7",
    "inception_v1": "Mixed_5c",
    "inception_v2": "Mixed_5c",
    "inception_v3": "Mixed_7c",
}


def _empty_variables_as_constants(getter, name, *args, shape=None, dtype=tf.float32, **kwargs):
    """Custom getter: a variable with no elements becomes a constant, so nothing empty is saved."""
    if shape is not None and tf.TensorShape(shape).num_elements() == 0:
        return tf.zeros(shape, dtype=dtype or tf.float32, name=name.split("/")[-1])
    return getter(name, *args, shape=shape, dtype=dtype, **kwargs)


def _features_when_no_classes(fn):
    """Makes num_classes 0 or None return pooled features [batch, C] from a TF-Slim 1.1 net.

    tf-slim 1.1.0's alexnet, overfeat, vgg and inception functions always build their
    classifier. With no classes it is built zero-wide (its empty variables become constants,
    so a checkpoint holds no empty head that would clash with a published one), and the
    feature end point of `_FEATURE_END_POINTS`, averaged over space, is returned instead.
    """
    if fn.__name__ not in _FEATURE_END_POINTS:
        raise ValueError(
            f"No feature end point known for {fn.__name__!r}; expected one of: "
            f"{', '.join(sorted(_FEATURE_END_POINTS))}"
        )
    feature_key = _FEATURE_END_POINTS[fn.__name__]

    @functools.wraps(fn)
    def network(images, num_classes=0, is_training=True, **kwargs):
        if num_classes:
            return fn(images, num_classes, is_training=is_training, **kwargs)
        with tf.variable_scope(
            tf.get_variable_scope(), custom_getter=_empty_variables_as_constants
        ):
            _, end_points = fn(images, 0, is_training=is_training, **kwargs)
        # Drop the zero-wide heads (Logits, AuxLogits, Predictions...); keep the real layers.
        end_points = {k: v for k, v in end_points.items() if v.shape[-1] != 0}
        matches = [k for k in end_points if k == feature_key or k.endswith("/" + feature_key)]
        if len(matches) != 1:
            raise ValueError(f"Expected one end point named {feature_key!r}, found {matches}")
        features = tf.reduce_mean(end_points[matches[0]], [1, 2], name="GlobalPool")
        end_points["global_pool"] = features
        return features, end_points

    network.default_image_size = getattr(fn, "default_image_size", None)
    return network


_slim = _features_when_no_classes

NETWORKS = {
    # name: NetworkEntry(fn, arg_scope, image_size, preprocessing[, channels=None for the
    # data's own, min_image_size=smallest buildable side, slow=True for a slow graph])
    "lenet": NetworkEntry(
        lenet.lenet, lenet.lenet_arg_scope, 28, "lenet", channels=None, min_image_size=4
    ),
    "cifarnet": NetworkEntry(cifarnet.cifarnet, cifarnet.cifarnet_arg_scope, 32, "cifarnet"),
    "alexnet_v2": NetworkEntry(
        _slim(alexnet.alexnet_v2),
        alexnet.alexnet_v2_arg_scope,
        224,
        "vgg",
        min_image_size=195,
        slow=True,
    ),
    "overfeat": NetworkEntry(
        _slim(overfeat.overfeat),
        overfeat.overfeat_arg_scope,
        231,
        "vgg",
        min_image_size=231,
        slow=True,
    ),
    "vgg_a": NetworkEntry(
        _slim(vgg.vgg_a), vgg.vgg_arg_scope, 224, "vgg", min_image_size=224, slow=True
    ),
    "vgg_16": NetworkEntry(
        _slim(vgg.vgg_16), vgg.vgg_arg_scope, 224, "vgg", min_image_size=224, slow=True
    ),
    "vgg_19": NetworkEntry(
        _slim(vgg.vgg_19), vgg.vgg_arg_scope, 224, "vgg", min_image_size=224, slow=True
    ),
    "inception_v1": NetworkEntry(
        _slim(inception.inception_v1),
        inception.inception_v1_arg_scope,
        224,
        "inception",
        min_image_size=193,
        slow=True,
    ),
    "inception_v2": NetworkEntry(
        _slim(inception.inception_v2), inception.inception_v2_arg_scope, 224, "inception", slow=True
    ),
    "inception_v3": NetworkEntry(
        _slim(inception.inception_v3),
        inception.inception_v3_arg_scope,
        299,
        "inception",
        min_image_size=107,
        slow=True,
    ),
    "resnet_v1_50": NetworkEntry(
        _resnet(resnet_v1.resnet_v1_50), resnet_v1.resnet_arg_scope, 224, "vgg", slow=True
    ),
    "resnet_v1_101": NetworkEntry(
        _resnet(resnet_v1.resnet_v1_101), resnet_v1.resnet_arg_scope, 224, "vgg", slow=True
    ),
    "resnet_v1_152": NetworkEntry(
        _resnet(resnet_v1.resnet_v1_152), resnet_v1.resnet_arg_scope, 224, "vgg", slow=True
    ),
    "resnet_v1_200": NetworkEntry(
        _resnet(resnet_v1.resnet_v1_200), resnet_v1.resnet_arg_scope, 224, "vgg", slow=True
    ),
    "resnet_v2_50": NetworkEntry(
        _resnet(resnet_v2.resnet_v2_50), resnet_v2.resnet_arg_scope, 224, "inception", slow=True
    ),
    "resnet_v2_101": NetworkEntry(
        _resnet(resnet_v2.resnet_v2_101), resnet_v2.resnet_arg_scope, 224, "inception", slow=True
    ),
    "resnet_v2_152": NetworkEntry(
        _resnet(resnet_v2.resnet_v2_152), resnet_v2.resnet_arg_scope, 224, "inception", slow=True
    ),
    "resnet_v2_200": NetworkEntry(
        _resnet(resnet_v2.resnet_v2_200), resnet_v2.resnet_arg_scope, 224, "inception", slow=True
    ),
    "inception_v4": NetworkEntry(
        inception_v4.inception_v4,
        inception_v4.inception_v4_arg_scope,
        299,
        "inception",
        min_image_size=75,
        slow=True,
    ),
    "inception_resnet_v2": NetworkEntry(
        inception_resnet_v2.inception_resnet_v2,
        inception_resnet_v2.inception_resnet_v2_arg_scope,
        299,
        "inception",
        min_image_size=75,
        slow=True,
    ),
    "mobilenet_v1": NetworkEntry(
        mobilenet_v1.mobilenet_v1, mobilenet_v1.mobilenet_v1_arg_scope, 224, "inception"
    ),
    "mobilenet_v1_075": NetworkEntry(
        mobilenet_v1.mobilenet_v1_075, mobilenet_v1.mobilenet_v1_arg_scope, 224, "inception"
    ),
    "mobilenet_v1_050": NetworkEntry(
        mobilenet_v1.mobilenet_v1_050, mobilenet_v1.mobilenet_v1_arg_scope, 224, "inception"
    ),
    "mobilenet_v1_025": NetworkEntry(
        mobilenet_v1.mobilenet_v1_025, mobilenet_v1.mobilenet_v1_arg_scope, 224, "inception"
    ),
    "mobilenet_v2": NetworkEntry(
        mobilenet_v2.mobilenet_v2, mobilenet_v2.mobilenet_v2_arg_scope, 224, "inception", slow=True
    ),
    "mobilenet_v2_140": NetworkEntry(
        mobilenet_v2.mobilenet_v2_140,
        mobilenet_v2.mobilenet_v2_arg_scope,
        224,
        "inception",
        slow=True,
    ),
    "mobilenet_v2_035": NetworkEntry(
        mobilenet_v2.mobilenet_v2_035,
        mobilenet_v2.mobilenet_v2_arg_scope,
        224,
        "inception",
        slow=True,
    ),
    "mobilenet_v3_small": NetworkEntry(
        mobilenet_v3.mobilenet_v3_small,
        mobilenet_v3.mobilenet_v3_arg_scope,
        224,
        "inception",
        slow=True,
    ),
    "mobilenet_v3_large": NetworkEntry(
        mobilenet_v3.mobilenet_v3_large,
        mobilenet_v3.mobilenet_v3_arg_scope,
        224,
        "inception",
        slow=True,
    ),
    "mobilenet_v3_small_minimalistic": NetworkEntry(
        mobilenet_v3.mobilenet_v3_small_minimalistic,
        mobilenet_v3.mobilenet_v3_arg_scope,
        224,
        "inception",
        slow=True,
    ),
    "mobilenet_v3_large_minimalistic": NetworkEntry(
        mobilenet_v3.mobilenet_v3_large_minimalistic,
        mobilenet_v3.mobilenet_v3_arg_scope,
        224,
        "inception",
        slow=True,
    ),
    "nasnet_cifar": NetworkEntry(
        nasnet.nasnet_cifar, nasnet.nasnet_cifar_arg_scope, 32, "inception", slow=True
    ),
    "nasnet_mobile": NetworkEntry(
        nasnet.nasnet_mobile,
        nasnet.nasnet_mobile_arg_scope,
        224,
        "inception",
        min_image_size=3,
        slow=True,
    ),
    "nasnet_large": NetworkEntry(
        nasnet.nasnet_large,
        nasnet.nasnet_large_arg_scope,
        331,
        "inception",
        min_image_size=3,
        slow=True,
    ),
    "pnasnet_mobile": NetworkEntry(
        pnasnet.pnasnet_mobile,
        pnasnet.pnasnet_mobile_arg_scope,
        224,
        "inception",
        min_image_size=3,
        slow=True,
    ),
    "pnasnet_large": NetworkEntry(
        pnasnet.pnasnet_large,
        pnasnet.pnasnet_large_arg_scope,
        331,
        "inception",
        min_image_size=3,
        slow=True,
    ),
    # Small MNIST models (28x28 digits).
    "logistic_regression": NetworkEntry(
        mnist_models.logistic_regression,
        mnist_models.logistic_regression_arg_scope,
        28,
        "lenet",
        channels=None,
    ),
    "mlp": NetworkEntry(mnist_models.mlp, mnist_models.mlp_arg_scope, 28, "lenet", channels=None),
    "cnn3": NetworkEntry(
        mnist_models.cnn3, mnist_models.cnn3_arg_scope, 28, "lenet", channels=None
    ),
    "alexnet_mnist": NetworkEntry(
        mnist_models.alexnet_mnist, mnist_models.alexnet_mnist_arg_scope, 28, "lenet", channels=None
    ),
    "lstm_mnist": NetworkEntry(
        mnist_models.lstm_mnist, mnist_models.lstm_mnist_arg_scope, 28, "lenet", channels=None
    ),
    "rnn_mnist": NetworkEntry(
        mnist_models.rnn_mnist, mnist_models.rnn_mnist_arg_scope, 28, "lenet", channels=None
    ),
    # CIFAR layouts of VGG (with batch norm) and ResNet (He et al. 2016, 6n+2 layers).
    "vgg11_cifar": NetworkEntry(
        cifar_models.vgg11_cifar, cifar_models.vgg_cifar_arg_scope, 32, "cifarnet"
    ),
    "vgg13_cifar": NetworkEntry(
        cifar_models.vgg13_cifar, cifar_models.vgg_cifar_arg_scope, 32, "cifarnet"
    ),
    "vgg16_cifar": NetworkEntry(
        cifar_models.vgg16_cifar, cifar_models.vgg_cifar_arg_scope, 32, "cifarnet", slow=True
    ),
    "vgg19_cifar": NetworkEntry(
        cifar_models.vgg19_cifar, cifar_models.vgg_cifar_arg_scope, 32, "cifarnet", slow=True
    ),
    "resnet20_cifar": NetworkEntry(
        cifar_models.resnet20_cifar, cifar_models.resnet_cifar_arg_scope, 32, "cifarnet"
    ),
    "resnet32_cifar": NetworkEntry(
        cifar_models.resnet32_cifar, cifar_models.resnet_cifar_arg_scope, 32, "cifarnet"
    ),
    "resnet44_cifar": NetworkEntry(
        cifar_models.resnet44_cifar, cifar_models.resnet_cifar_arg_scope, 32, "cifarnet", slow=True
    ),
    "resnet56_cifar": NetworkEntry(
        cifar_models.resnet56_cifar, cifar_models.resnet_cifar_arg_scope, 32, "cifarnet", slow=True
    ),
    "resnet110_cifar": NetworkEntry(
        cifar_models.resnet110_cifar, cifar_models.resnet_cifar_arg_scope, 32, "cifarnet", slow=True
    ),
}


def get_entry(name):
    """Returns the NetworkEntry of `name`; ValueError listing the valid names otherwise."""
    if name not in NETWORKS:
        raise ValueError(
            f"Unknown model_name {name!r}; expected one of: {', '.join(sorted(NETWORKS))}"
        )
    return NETWORKS[name]


def _in_scope(name, scope):
    return name == scope or name.startswith(scope.rstrip("/") + "/")


# Every module attribute through which TF-Slim's nets and tfzoo's reach slim.batch_norm
# (looked up at call time: slim.batch_norm, tf_slim.layers.batch_norm, layers_lib.batch_norm).
_BATCH_NORM_MODULES = ("tf_slim", "tf_slim.layers", "tf_slim.layers.layers")


@contextlib.contextmanager
def _batch_norm_frozen_outside(trainable_scopes, layers):
    """While building a net, batch norm outside `trainable_scopes` runs in inference mode.

    A frozen layer normalises with its moving statistics and adds no update op, as a
    Keras BatchNormalization with trainable=False does in TF Model Garden's finetunes.
    slim.batch_norm takes is_training from the arg_scope (set deep inside each net), so
    the one place that sees every layer is the function itself: it is swapped, for the
    duration of the build, for a wrapper that passes is_training=False to the layers
    outside the scopes. The layer's scope is the enclosing variable scope plus its
    `scope` argument (or 'BatchNorm'), checked against the variables it then creates.
    Variable and op names stay those of slim.batch_norm.

    Args:
        trainable_scopes: list of scope names whose batch norm keeps training.
        layers: a list that receives (variable scope name, name scope, frozen) of every
            batch norm layer built.
    """
    original = slim.batch_norm

    def batch_norm(inputs, *args, **kwargs):
        merged = dict(slim.current_arg_scope().get(original._key_op, {}), **kwargs)
        # The layer's scope, predicted without opening it (opening it would change op names).
        outer = tf.get_variable_scope().name
        own = merged.get("scope") or "BatchNorm"
        predicted = f"{outer}/{own}" if outer else own
        frozen = not any(_in_scope(predicted, s) for s in trainable_scopes)
        if frozen:
            kwargs["is_training"] = False  # an explicit argument wins over any arg_scope
        before = len(tf.global_variables())
        outputs = original(inputs, *args, **kwargs)
        created = [v.op.name for v in tf.global_variables()[before:]]
        actual = next(
            (n[: -len("/moving_mean")] for n in created if n.endswith("/moving_mean")), predicted
        )
        if actual != predicted and frozen != (
            not any(_in_scope(actual, s) for s in trainable_scopes)
        ):
            raise ValueError(
                f"--freeze_batch_norm: cannot tell whether batch norm {actual!r} is inside "
                f"--trainable_scopes ({', '.join(trainable_scopes)}); name its enclosing "
                f"scope {outer!r} instead"
            )
        name_scope = tf.get_default_graph().get_name_scope()
        layers.append((actual, f"{name_scope}/{own}" if name_scope else own, frozen))
        return outputs

    batch_norm._key_op = original._key_op  # the same arg_scope entry as slim.batch_norm
    modules = [sys.modules[name] for name in _BATCH_NORM_MODULES]
    for module in modules:
        module.batch_norm = batch_norm
    try:
        yield
    finally:
        for module in modules:
            module.batch_norm = original


def get_network_fn(name, num_classes, weight_decay=0.0, is_training=False, freeze_batch_norm=None):
    """Returns fn(images, **kwargs) -> (logits, end_points) for the named network.

    Args:
        name: a key of NETWORKS.
        num_classes: number of output classes; 0 or None gives pooled features.
        weight_decay: L2 regularisation of the weights (passed to the arg_scope).
        is_training: whether batch norm and dropout run in training mode.
        freeze_batch_norm: None (batch norm follows is_training), or a list of scopes: with
            is_training, batch norm layers outside these scopes run in inference mode (their
            moving statistics normalise and are not updated); an empty list freezes all.

    Raises:
        ValueError: `name` is not a registered network.
    """
    entry = get_entry(name)

    @functools.wraps(entry.fn)
    def network_fn(images, **kwargs):
        if not (is_training and freeze_batch_norm is not None):
            with slim.arg_scope(entry.arg_scope(weight_decay=weight_decay)):
                return entry.fn(images, num_classes, is_training=is_training, **kwargs)
        layers = []
        updates_before = set(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
        # The arg_scope is made inside, so its normalizer_fn is the wrapper too.
        with (
            _batch_norm_frozen_outside(freeze_batch_norm, layers),
            slim.arg_scope(entry.arg_scope(weight_decay=weight_decay)),
        ):
            outputs = entry.fn(images, num_classes, is_training=is_training, **kwargs)
        # Statistics updated by anything but a trained slim.batch_norm would escape.
        trained = [name_scope for _, name_scope, frozen in layers if not frozen]
        escaped = [
            op.name
            for op in tf.get_collection(tf.GraphKeys.UPDATE_OPS)
            if op not in updates_before and not any(op.name.startswith(n) for n in trained)
        ]
        if escaped:
            raise ValueError(
                f"--freeze_batch_norm: {name} updates statistics outside --trainable_scopes "
                f"that slim.batch_norm did not build, e.g. {escaped[0]}; expected every "
                f"batch norm of the net to come from slim.batch_norm"
            )
        network_fn.frozen_batch_norm = [name for name, _, frozen in layers if frozen]
        tf.logging.info(
            "Batch norm frozen (inference mode, statistics not updated) in %d of %d "
            "layer(s): those outside %s",
            len(network_fn.frozen_batch_norm),
            len(layers),
            ", ".join(freeze_batch_norm) or "(no scope)",
        )
        return outputs

    network_fn.default_image_size = entry.image_size
    network_fn.frozen_batch_norm = []
    return network_fn


def input_channels(name):
    """Channels the network wants: None (the data's own) for MNIST-style nets, else 3 (RGB)."""
    return get_entry(name).channels


def count_parameters(name, num_classes=1000, image_size=None):
    """Number of trainable parameters of the named network (builds it in a scratch graph)."""
    entry = get_entry(name)
    size = image_size or entry.image_size
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, size, size, 3])
        get_network_fn(name, num_classes, is_training=False)(images)
        return sum(v.shape.num_elements() for v in tf.trainable_variables())


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every registered network")
    parser.add_argument("--num_classes", type=int, default=1000, help="classes for the counts")
    args = parser.parse_args(argv)
    if not args.list:
        parser.print_help()
        return
    tf.disable_eager_execution()
    print(f"{'name':<28}{'image size':>11}{'preprocessing':>16}{'parameters':>14}")
    for name in sorted(NETWORKS):
        entry = NETWORKS[name]
        params = count_parameters(name, args.num_classes)
        print(f"{name:<28}{entry.image_size:>11}{entry.preprocessing:>16}{params:>14,}")


if __name__ == "__main__":
    main()
