"""Learning-rate schedules as functions of the global step: THE map from name to schedule.

Decay types (`--learning_rate_decay_type`): fixed, exponential and polynomial (TF-Slim's);
linear (from the full rate at the end of warmup to `--end_learning_rate` at
`--stop_at_step`: google-research/bert's schedule); inverse_sqrt (fairseq's: linear
warmup, then lr * sqrt(warmup / step)); noam (Vaswani et al. 2017, "Attention Is All You
Need", eq. 3: lr * d^-0.5 * min(step^-0.5, step * warmup^-1.5) with d =
`--noam_hidden_size`, `--learning_rate` being the constant in front). inverse_sqrt and
noam warm up by themselves. Warmups (`--warmup_scheme`, over `--warmup_steps`) for the
others: t2t (exponential from 1%) and linear (from 0, as google's BERT). The decay schemes
luong234 / luong5 / luong10 come from the TensorFlow NMT tutorial (Luong, Brevdo, Zhao
2017): halve the rate a fixed number of times, evenly spaced over the end of training.

A task family adds a schedule with `register_schedule(name, fn, has_warmup)`.
"""

import collections
import math

from absl import logging

from slim_compat import tf

DECAY_SCHEMES = ("luong234", "luong5", "luong10")

# decay scheme -> (fraction of training after which decay starts, number of halvings)
_LUONG = {"luong234": (2.0 / 3.0, 4), "luong5": (0.5, 5), "luong10": (0.5, 10)}

Schedule = collections.namedtuple("Schedule", ["fn", "has_warmup"])
Schedule.__doc__ = """One decay type.

fn: (base_lr, step, decay_step, warmup_steps, params, steps_per_epoch) -> float32 tensor;
    step is the global step as float32, decay_step the steps since the end of warmup.
has_warmup: the schedule warms up by itself, so no --warmup_scheme is applied on top.
"""


def _fixed(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch):
    return tf.constant(base_lr, tf.float32)


def _decay_steps(params, steps_per_epoch):
    return max(int(steps_per_epoch * params.num_epochs_per_decay), 1)


def _exponential(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch):
    return tf.train.exponential_decay(
        base_lr,
        decay_step,
        _decay_steps(params, steps_per_epoch),
        params.learning_rate_decay_factor,
        staircase=True,
    )


def _polynomial(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch):
    return tf.train.polynomial_decay(
        base_lr,
        decay_step,
        _decay_steps(params, steps_per_epoch),
        params.end_learning_rate,
        power=1.0,
        cycle=False,
    )


def _linear(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch):
    length = max(params.stop_at_step - warmup_steps, 1)
    return tf.train.polynomial_decay(
        base_lr, decay_step, length, params.end_learning_rate, power=1.0, cycle=False
    )


def _needs_warmup(name, warmup_steps):
    if warmup_steps <= 0:
        raise ValueError(f"--learning_rate_decay_type={name} needs --warmup_steps > 0")


def _inverse_sqrt(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch):
    _needs_warmup("inverse_sqrt", warmup_steps)
    warm = float(warmup_steps)
    return base_lr * tf.minimum(step / warm, tf.sqrt(warm / tf.maximum(step, 1.0)))


def _noam(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch):
    _needs_warmup("noam", warmup_steps)
    if params.noam_hidden_size <= 0:
        raise ValueError(f"--noam_hidden_size must be > 0, got {params.noam_hidden_size}")
    step = tf.maximum(step, 1.0)
    scale = base_lr * float(params.noam_hidden_size) ** -0.5
    return scale * tf.minimum(tf.math.rsqrt(step), step * float(warmup_steps) ** -1.5)


SCHEDULES = {
    "fixed": Schedule(_fixed, False),
    "exponential": Schedule(_exponential, False),
    "polynomial": Schedule(_polynomial, False),
    "linear": Schedule(_linear, False),
    "inverse_sqrt": Schedule(_inverse_sqrt, True),
    "noam": Schedule(_noam, True),
}


def _t2t_warmup(lr, step, warmup_steps):
    """Exponential warmup from 1% of lr to lr over warmup_steps (tensor2tensor's shape)."""
    warmup_factor = math.exp(math.log(0.01) / warmup_steps)
    inv_decay = tf.pow(warmup_factor, tf.cast(warmup_steps, tf.float32) - step)
    return tf.where(step < warmup_steps, inv_decay * lr, lr)


def _linear_warmup(lr, step, warmup_steps):
    """Linear warmup from 0 to lr over warmup_steps (google-research/bert's)."""
    return tf.where(step < warmup_steps, lr * step / float(warmup_steps), lr)


WARMUPS = {"t2t": _t2t_warmup, "linear": _linear_warmup}


def register_schedule(name, fn, has_warmup=False):
    """Adds the decay type `name` (see Schedule); a new name only."""
    if name in SCHEDULES:
        raise ValueError(f"Learning-rate schedule {name!r} is already registered")
    SCHEDULES[name] = Schedule(fn, has_warmup)


def check_schedule_name(name):
    """Raises ValueError for a decay type that is not registered, listing the valid ones."""
    _check("learning_rate_decay_type", name, tuple(SCHEDULES))


def _check(name, value, valid):
    if value not in valid:
        raise ValueError(f"Unknown {name} {value!r}; expected one of: {', '.join(valid)}")


def configure_learning_rate(params, global_step, steps_per_epoch, num_ranks=1):
    """Builds the learning-rate tensor.

    Args:
        params: object with the learning-rate flags as attributes: learning_rate,
            learning_rate_decay_type, end_learning_rate, learning_rate_decay_factor,
            num_epochs_per_decay, warmup_steps, warmup_scheme, decay_scheme,
            stop_at_step, lr_scaling, allreduce_op, noam_hidden_size.
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
    check_schedule_name(decay_type)
    scheme = getattr(params, "decay_scheme", None)
    if scheme:
        _check("decay_scheme", scheme, DECAY_SCHEMES)
    warmup_steps = int(getattr(params, "warmup_steps", 0) or 0)
    schedule = SCHEDULES[decay_type]
    warmup = None
    if warmup_steps and not (schedule.has_warmup and not scheme):
        _check("warmup_scheme", params.warmup_scheme, tuple(WARMUPS))
        warmup = WARMUPS[params.warmup_scheme]
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
        else:
            lr = schedule.fn(base_lr, step, decay_step, warmup_steps, params, steps_per_epoch)
        if warmup is not None:
            lr = warmup(lr, step, warmup_steps)
        return tf.identity(tf.cast(lr, tf.float32), name="value")


def _luong_decay(base_lr, step, scheme, train_steps):
    """Halves base_lr `times` times, evenly over the last part of train_steps."""
    start_fraction, times = _LUONG[scheme]
    start = int(train_steps * start_fraction)
    interval = max((train_steps - start) // times, 1)
    num_halvings = tf.minimum(tf.floor(tf.maximum(step - start, 0.0) / interval), float(times))
    return base_lr * tf.pow(0.5, num_halvings)
