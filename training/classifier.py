"""The image-classification task: the network in its compute precision, and its loss.

`build_logits` runs a network under the fp32-master-weight getter when the precision is
fp16/bf16 and returns fp32 logits; `classification_loss` is TF-Slim's training loss:
softmax cross-entropy (with label smoothing), the auxiliary head's loss when the network
has one, and the regularisation losses, all summed in fp32.
"""

from slim_compat import tf
from training import cpu_kernels
from training import precision as precision_lib


def build_logits(network_fn, images, precision="fp32", reuse=None, **net_kwargs):
    """Builds the network and returns (fp32 logits, end_points).

    Args:
        network_fn: from nets_factory.get_network_fn.
        images: float32 batch [B, H, W, C].
        precision: 'fp32', 'fp16' or 'bf16'.
        reuse: True to share the variables of an earlier call (the eval tower).
        **net_kwargs: passed to the network (e.g. dropout_keep_prob).
    """
    dtype = precision_lib.PRECISIONS[precision]
    getter = precision_lib.master_weights_getter(dtype) if dtype != tf.float32 else None
    # training/cpu_kernels.py: dense layers' input gradients avoid a slow CPU kernel.
    with (
        tf.variable_scope(tf.get_variable_scope(), reuse=reuse, custom_getter=getter),
        cpu_kernels.faster_cpu_gradients(),
    ):
        logits, end_points = network_fn(tf.cast(images, dtype), **net_kwargs)
    end_points = dict(end_points)
    if "AuxLogits" in end_points:
        end_points["AuxLogits"] = tf.cast(end_points["AuxLogits"], tf.float32)
    return tf.cast(logits, tf.float32), end_points


def classification_loss(
    logits, end_points, labels, num_classes, label_smoothing=0.0, aux_loss_weight=0.4
):
    """Total training loss and its cross-entropy part.

    Returns:
        (total_loss, cross_entropy): scalar fp32 tensors. The total includes the aux-logits
        loss (weighted) and every REGULARIZATION_LOSSES entry, each cast to fp32.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    # A label outside [0, num_classes) would one-hot to all zeros and train on nothing.
    checks = [
        tf.debugging.assert_non_negative(labels, message="label < 0: check --labels_offset"),
        tf.debugging.assert_less(
            labels,
            tf.cast(num_classes, labels.dtype),
            message=f"label >= num_classes ({num_classes}): check --num_classes / --labels_offset",
        ),
    ]
    with tf.control_dependencies(checks):
        onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
    with tf.name_scope("losses"):
        cross_entropy = tf.losses.softmax_cross_entropy(
            onehot, logits, label_smoothing=label_smoothing, loss_collection=None
        )
        total = cross_entropy
        aux = end_points.get("AuxLogits")
        if aux is not None and aux_loss_weight:
            aux_loss = tf.losses.softmax_cross_entropy(
                onehot,
                aux,
                label_smoothing=label_smoothing,
                weights=aux_loss_weight,
                loss_collection=None,
            )
            total = total + aux_loss
        reg = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
        if reg:
            total = total + tf.add_n([tf.cast(r, tf.float32) for r in reg], name="regularization")
        return tf.identity(total, name="total_loss"), tf.identity(
            cross_entropy, name="cross_entropy"
        )


def batch_accuracy(logits, labels):
    """Top-1 accuracy of one batch (for the training log)."""
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))
