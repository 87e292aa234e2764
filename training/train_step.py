"""One training step of an image classifier: network -> loss -> optimizer -> train op.

The trainer (train_image_classifiers.py) and the throughput benchmark (scripts/benchmark.py)
both build their step here, so the benchmark times exactly the graph that training runs:
the network in its compute precision under the fp32-master-weight getter, TF-Slim's loss,
the configured optimizer, loss scaling for fp16, gradient accumulation, Horovod's
allreduce and the update (training/train_op.py).
"""

import collections

from training import checkpoints, classifier, learning_rates, optimizers, precision
from training import train_op as train_op_lib

TrainStep = collections.namedtuple(
    "TrainStep",
    [
        "train_op",
        "step_after",
        "total_loss",
        "cross_entropy",
        "accuracy",
        "learning_rate",
        "loss_scale_optimizer",
        "update_finite",
    ],
)
TrainStep.__doc__ = """The tensors of one training step.

train_op: run it to train one micro-step (one batch per rank; every
    --backward_passes_per_step-th micro-step also updates the weights and the global step).
step_after: the global step after this micro-step (fetch it with train_op).
total_loss, cross_entropy: fp32 scalars of this rank's batch.
accuracy: top-1 accuracy of this rank's batch.
learning_rate: the learning-rate tensor.
loss_scale_optimizer: the precision.LossScaleOptimizer for fp16, else None.
update_finite: False when this micro-step's update had inf/NaN gradients on some rank (the
    update was skipped); the same on every rank.
"""


def build_train_step(
    params,
    network_fn,
    images,
    labels,
    num_classes,
    compute,
    dist,
    global_step,
    steps_per_epoch,
    aux_loss_weight=0.4,
):
    """Builds the training step of `network_fn` on one batch.

    Args:
        params: object with the tfzoo flags as attributes (flags.FLAGS): label_smoothing,
            dropout_keep_prob, the learning-rate and optimizer flags, gradient_compression,
            allreduce_op, backward_passes_per_step, accumulation_reduction, loss_scale,
            loss_scale_growth_steps,
            trainable_scopes, max_gradient_norm, moving_average_decay.
        network_fn: from nets_factory.get_network_fn(..., is_training=True).
        images: float32 batch [B, H, W, C]; labels: int64 [B].
        num_classes: logits of the classifier.
        compute: 'fp32', 'fp16' or 'bf16' (precision.resolve_precision).
        dist: a distributed.Distributed (reduces the gradients over ranks when launched).
        global_step: the global step variable.
        steps_per_epoch: optimizer updates per epoch over the global batch of an update
            (batch_size x ranks x backward_passes_per_step), for the schedules.
        aux_loss_weight: weight of the auxiliary head's loss (NetworkEntry.aux_loss_weight).

    Returns:
        a TrainStep.
    """
    net_kwargs = {}
    if getattr(params, "dropout_keep_prob", None) is not None:
        net_kwargs["dropout_keep_prob"] = params.dropout_keep_prob
    logits, end_points = classifier.build_logits(network_fn, images, compute, **net_kwargs)
    total_loss, cross_entropy = classifier.classification_loss(
        logits, end_points, labels, num_classes, params.label_smoothing, aux_loss_weight
    )
    accuracy = classifier.batch_accuracy(logits, labels)

    # Horovod: the learning rate scales with the number of ranks (--lr_scaling), for
    # --allreduce_op=average only.
    lr = learning_rates.configure_learning_rate(params, global_step, steps_per_epoch, dist.size)
    optimizer = optimizers.configure_optimizer(params.optimizer, lr, params)
    loss_scale_opt = None
    if compute == "fp16":
        loss_scale_opt = precision.LossScaleOptimizer(
            optimizer,
            precision.parse_loss_scale(params.loss_scale),
            params.loss_scale_growth_steps,
        )
        optimizer = loss_scale_opt
    var_list = checkpoints.variables_to_train(params.trainable_scopes)
    # Horovod: the gradients, accumulated over micro-steps, are reduced over ranks once per
    # update; every rank applies or skips the same update (training/train_op.py).
    update = train_op_lib.build_update(
        total_loss,
        optimizer,
        global_step,
        var_list,
        params.max_gradient_norm,
        params.moving_average_decay,
        dist=dist,
        allreduce_op=params.allreduce_op,
        gradient_compression=params.gradient_compression,
        accumulation_steps=params.backward_passes_per_step,
        accumulation_reduction=params.accumulation_reduction,
    )
    return TrainStep(
        update.train_op,
        update.step_after,
        total_loss,
        cross_entropy,
        accuracy,
        lr,
        loss_scale_opt,
        update.update_finite,
    )
