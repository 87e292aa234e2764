"""Mixed precision: fp32 master weights, fp16/bf16 compute, loss scaling with skip on overflow.

The recipe (Micikevicius et al. 2018, "Mixed Precision Training"): variables are stored
in fp32; the network computes in the low precision through a custom getter that casts each
trainable variable on read; logits are cast back to fp32 for the loss; for fp16 the loss is
multiplied by a scale before the gradients are taken and the gradients divided by it after,
so small gradients do not underflow. A dynamic scale halves (and the update is skipped) when
a gradient is inf/NaN, and doubles after `growth_steps` good steps. bf16 has fp32's exponent
range, so it needs no scaling. slim's fused batch norm keeps its parameters and moving
statistics in fp32 for low-precision inputs.
"""

import contextlib
import math

from slim_compat import tf
from training import hardware

PRECISIONS = {"fp32": tf.float32, "fp16": tf.float16, "bf16": tf.bfloat16}


def cpu_precision_warning(precision, flags=None):
    """Why `precision` may be slower than fp32 on this CPU, or None.

    Used when no GPU is visible: bf16 pays on CPUs with AVX512-BF16 or AMX (measured 1.5x
    fp32 for resnet_v1_50 on such a machine); on others it is emulated and slower.
    """
    if precision not in hardware.NATIVE_CPU_FLAGS:
        return None
    flags = hardware.cpu_flags() if flags is None else flags
    if not flags or precision in hardware.native_cpu_precisions(flags):
        return None
    needed = " or ".join(hardware.NATIVE_CPU_FLAGS[precision])
    return (
        f"--precision={precision} on a CPU without {needed}: "
        f"{precision} arithmetic is emulated here and usually slower than fp32"
    )


def resolve_precision(precision, use_fp16=False):
    """The precision name, honouring FastNN's --use_fp16 alias."""
    if use_fp16:
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"--use_fp16 conflicts with --precision={precision}")
        return "fp16"
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}"
        )
    return precision


def master_weights_getter(compute_dtype):
    """A variable-scope custom getter: store in fp32, read in `compute_dtype`."""

    # TF calls a lone custom getter with keyword arguments, the next getter as `getter=`.
    def custom_getter(getter, name, shape=None, dtype=None, trainable=True, **kwargs):
        low = dtype is not None and tf.as_dtype(dtype).base_dtype == compute_dtype
        storage = tf.float32 if low else dtype
        var = getter(name, shape=shape, dtype=storage, trainable=trainable, **kwargs)
        if low:
            return tf.cast(var, compute_dtype, name=name.split("/")[-1] + "/cast")
        return var

    return custom_getter


@contextlib.contextmanager
def model_scope(precision="fp32", reuse=None):
    """The scope every model is built in: fp32 master weights read in the compute precision.

    With fp16/bf16 the variables of the model are created in fp32 and cast on each read
    (master_weights_getter); embedding tables stay fp32 and are cast after the lookup
    (embedding_lookup). On CPU, dense layers' input gradients avoid a slow kernel
    (training/cpu_kernels.py).

    Args:
        precision: 'fp32', 'fp16' or 'bf16'.
        reuse: True to share the variables of an earlier call (an eval tower).

    Yields:
        the compute dtype (tf.float32, tf.float16 or tf.bfloat16).
    """
    from training import cpu_kernels

    dtype = PRECISIONS[resolve_precision(precision)]
    getter = master_weights_getter(dtype) if dtype != tf.float32 else None
    with (
        tf.variable_scope(tf.get_variable_scope(), reuse=reuse, custom_getter=getter),
        cpu_kernels.faster_cpu_gradients(),
    ):
        yield dtype


def embedding_lookup(table, ids, dtype=tf.float32, name=None):
    """Rows `ids` of an fp32 embedding table, cast to the compute `dtype` after the gather.

    The master-weights getter casts a variable whose requested dtype is the compute dtype
    on every read; an embedding table created in fp32 (tf.get_variable's default) is left
    alone, and this lookup casts only the gathered rows, so a step never casts (or keeps a
    half-precision copy of) the whole table, and its gradient stays IndexedSlices in fp32.
    """
    rows = tf.nn.embedding_lookup(table, ids, name=name)
    return rows if rows.dtype == dtype else tf.cast(rows, dtype)


def parse_loss_scale(value):
    """'dynamic' or a positive number (as a string or a float) -> 'dynamic' or float."""
    if isinstance(value, str) and value.strip().lower() == "dynamic":
        return "dynamic"
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Bad loss_scale {value!r}; expected 'dynamic' or a positive number"
        ) from None
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"Bad loss_scale {value!r}; expected 'dynamic' or a positive number")
    return scale


def all_finite(grads):
    """A scalar bool: every value of every gradient (dense or IndexedSlices) is finite.

    Computed as the finiteness of the sum of all values: an inf or NaN anywhere makes the
    sum inf or NaN, and one fp32 reduction costs less than an element-wise test. Finite
    values whose sum overflows fp32 (a gradient beyond ~1e38) count as an overflow too.
    """
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None]
    if not values:
        return tf.constant(True)
    return tf.math.is_finite(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in values]))


def apply_if_finite(finite, apply_fn):
    """Runs the update `apply_fn()` builds only when `finite`; returns the op.

    The optimizer creates its slots inside the cond branch, under init_scope, which lifts
    them to the innermost graph explicitly entered, else to the context TF started in:
    eager, when eager execution was disabled after TF was first used (the entry points
    under app.run). Entering the graph keeps the slots in it.
    """
    with tf.get_default_graph().as_default():
        return tf.cond(finite, lambda: tf.group(apply_fn()), tf.no_op)


class LossScaleOptimizer(tf.train.Optimizer):
    """Wraps an optimizer with loss scaling; skips the update when a gradient overflows.

    With several ranks, training/train_op.py reduces the gradients over ranks first and
    passes `finite` agreed over ranks to apply_gradients, so every rank skips the same
    steps and keeps the same scale.

    The global step advances on skipped steps too, so step counts and the data each rank
    consumes stay aligned. Two variables record the state: `loss_scale/scale` and
    `loss_scale/skipped_steps` (checkpointed, so a resumed run keeps its scale).
    """

    def __init__(
        self,
        optimizer,
        loss_scale="dynamic",
        growth_steps=2000,
        initial_scale=2.0**15,
        name="LossScaleOptimizer",
    ):
        super().__init__(use_locking=False, name=name)
        self._optimizer = optimizer
        self._dynamic = loss_scale == "dynamic"
        self._growth_steps = int(growth_steps)
        with tf.variable_scope("loss_scale"):
            initial = initial_scale if self._dynamic else float(loss_scale)
            self.scale = tf.get_variable(
                "scale", initializer=tf.constant(initial, tf.float32), trainable=False
            )
            self.good_steps = tf.get_variable(
                "good_steps", initializer=tf.constant(0, tf.int64), trainable=False
            )
            self.skipped_steps = tf.get_variable(
                "skipped_steps", initializer=tf.constant(0, tf.int64), trainable=False
            )
        self.last_step_finite = None

    def compute_gradients(self, loss, var_list=None, **kwargs):
        scaled = loss * tf.cast(self.scale, loss.dtype)
        grads_and_vars = self._optimizer.compute_gradients(scaled, var_list=var_list, **kwargs)
        inv = 1.0 / self.scale
        out = []
        for g, v in grads_and_vars:
            if g is None:
                out.append((g, v))
            elif isinstance(g, tf.IndexedSlices):
                out.append(
                    (
                        tf.IndexedSlices(
                            g.values * tf.cast(inv, g.values.dtype), g.indices, g.dense_shape
                        ),
                        v,
                    )
                )
            else:
                out.append((g * tf.cast(inv, g.dtype), v))
        return out

    def apply_gradients(self, grads_and_vars, global_step=None, name=None, finite=None):
        """Applies the update unless a gradient is inf/NaN; then updates the scale.

        Args:
            grads_and_vars: the unscaled gradients (as reduced over ranks).
            global_step: incremented by one, on a skipped step too.
            name: of the returned op.
            finite: a scalar bool saying the gradients are finite, agreed over ranks by the
                caller (training/train_op.py); None: computed here from `grads_and_vars`.
        """
        grads_and_vars = list(grads_and_vars)
        if finite is None:
            finite = all_finite([g for g, _ in grads_and_vars])
        self.last_step_finite = finite
        update = apply_if_finite(finite, lambda: self._optimizer.apply_gradients(grads_and_vars))
        with tf.control_dependencies([update]):
            state = [self.update_scale(finite)]
            if global_step is not None:
                state.append(tf.assign_add(global_step, 1))
        return tf.group(*state, name=name or "loss_scaled_update")

    @property
    def inner_optimizer(self):
        """The wrapped optimizer, which applies the unscaled gradients."""
        return self._optimizer

    def update_scale(self, finite):
        """The op counting a skip and halving / growing the scale after this update.

        `finite` must be the same on every rank (all ranks then keep the same scale).
        """
        return self._update_scale(finite)

    def _update_scale(self, finite):
        skipped = tf.assign_add(self.skipped_steps, tf.cast(tf.logical_not(finite), tf.int64))
        if not self._dynamic:
            return skipped
        grow = tf.logical_and(finite, self.good_steps + 1 >= self._growth_steps)
        new_scale = tf.where(
            finite, tf.where(grow, self.scale * 2.0, self.scale), tf.maximum(self.scale * 0.5, 1.0)
        )
        new_good = tf.where(
            tf.logical_and(finite, tf.logical_not(grow)),
            self.good_steps + 1,
            tf.zeros_like(self.good_steps),
        )
        return tf.group(
            skipped, tf.assign(self.scale, new_scale), tf.assign(self.good_steps, new_good)
        )

    # Optimizer API needed by slim / the hooks.
    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._optimizer.variables()

    def _apply_dense(self, grad, var):  # pragma: no cover - apply_gradients is overridden
        raise NotImplementedError

    def _resource_apply_dense(self, grad, handle):  # pragma: no cover
        raise NotImplementedError
