"""Learning-rate schedules: fixed, exponential, polynomial, t2t warmup and the Luong step decays.

All schedules are functions of the global step, built as graph tensors. The decay
schemes luong234 / luong5 / luong10 come from the TensorFlow NMT tutorial (Luong, Brevdo,
Zhao 2017): halve the rate a fixed number of times, evenly spaced over the end of training.
"""

import math

from absl import logging

from slim_compat import tf

DECAY_TYPES = ("fixed", "exponential", "polynomial")
DECAY_SCHEMES = ("luong234", "luong5", "luong10")
WARMUP_SCHEMES = ("t2t",)

# decay scheme -> (fraction of training after which decay starts, number of halvings)
_LUONG = {"luong234": (2.0 / 3.0, 4), "luong5": (0.5, 5), "luong10": (0.5, 10)}


def _check(name, value, valid):
    if value not in valid:
        raise ValueError(f"Unknown {name} {value!r}; expected one of: {', '.join(valid)}")


def configure_learning_rate(params, global_step, steps_per_epoch, num_ranks=1):
    """Builds the learning-rate tensor.

    Args:
        params: object with the learning-rate flags as attributes: learning_rate,
            learning_rate_decay_type, end_learning_rate, learning_rate_decay_factor,
            num_epochs_per_decay, warmup_steps, warmup_scheme, decay_scheme,
            stop_at_step, lr_scaling, allreduce_op.
        global_step: the global step tensor.
        steps_per_epoch: optimizer steps in one epoch over the global batch (> 0).
        num_ranks: data-parallel ranks; with params.lr_scaling == 'linear' the rate is
            multiplied by it (Goyal et al. 2017, "Accurate, Large Minibatch SGD") when the
            gradients are averaged over ranks (allreduce_op 'average'). With 'sum' the
            gradient already grows with the ranks, and Adasum adapts its own combination,
            so the rate is not scaled: a warning says so.

    Returns:
        A scalar float32 tensor.

    Raises:
        ValueError: an unknown schedule name or a non-positive steps_per_epoch.
    """
    decay_type = params.learning_rate_decay_type
    _check("learning_rate_decay_type", decay_type, DECAY_TYPES)
    scheme = getattr(params, "decay_scheme", None)
    if scheme:
        _check("decay_scheme", scheme, DECAY_SCHEMES)
    warmup_steps = int(getattr(params, "warmup_steps", 0) or 0)
    if warmup_steps:
        _check("warmup_scheme", params.warmup_scheme, WARMUP_SCHEMES)
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be > 0, got {steps_per_epoch}")
    scaling = getattr(params, "lr_scaling", "linear")
    _check("lr_scaling", scaling, ("linear", "none"))

    op = getattr(params, "allreduce_op", "average")
    if scaling == "linear" and op != "average" and num_ranks > 1:
        logging.warning(
            "--lr_scaling=linear scales the learning rate only with --allreduce_op=average; "
            "with --allreduce_op=%s the rate stays %g on %d ranks",
            op,
            params.learning_rate,
            num_ranks,
        )
        scaling = "none"
    base_lr = params.learning_rate * (num_ranks if scaling == "linear" else 1)
    step = tf.cast(global_step, tf.float32)
    # Decay is measured from the end of warmup, so warmup and decay compose.
    decay_step = tf.maximum(step - warmup_steps, 0.0)

    with tf.name_scope("learning_rate"):
        if scheme:
            lr = _luong_decay(
                base_lr, decay_step, scheme, max(params.stop_at_step - warmup_steps, 1)
            )
        elif decay_type == "fixed":
            lr = tf.constant(base_lr, tf.float32)
        elif decay_type == "exponential":
            decay_steps = max(int(steps_per_epoch * params.num_epochs_per_decay), 1)
            lr = tf.train.exponential_decay(
                base_lr, decay_step, decay_steps, params.learning_rate_decay_factor, staircase=True
            )
        else:  # polynomial
            decay_steps = max(int(steps_per_epoch * params.num_epochs_per_decay), 1)
            lr = tf.train.polynomial_decay(
                base_lr, decay_step, decay_steps, params.end_learning_rate, power=1.0, cycle=False
            )
        if warmup_steps:
            lr = _t2t_warmup(lr, step, warmup_steps)
        return tf.identity(tf.cast(lr, tf.float32), name="value")


def _t2t_warmup(lr, step, warmup_steps):
    """Exponential warmup from 1% of lr to lr over warmup_steps (tensor2tensor's shape)."""
    warmup_factor = math.exp(math.log(0.01) / warmup_steps)
    inv_decay = tf.pow(warmup_factor, tf.cast(warmup_steps, tf.float32) - step)
    return tf.where(step < warmup_steps, inv_decay * lr, lr)


def _luong_decay(base_lr, step, scheme, train_steps):
    """Halves base_lr `times` times, evenly over the last part of train_steps."""
    start_fraction, times = _LUONG[scheme]
    start = int(train_steps * start_fraction)
    interval = max((train_steps - start) // times, 1)
    num_halvings = tf.minimum(tf.floor(tf.maximum(step - start, 0.0) / interval), float(times))
    return base_lr * tf.pow(0.5, num_halvings)
