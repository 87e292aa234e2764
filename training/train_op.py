"""The train op: gradients, accumulation, the reduction over ranks, the update, EMA.

One run of the train op is one micro-step: forward and backward on one batch per rank,
batch-norm statistics updated. With `accumulation_steps` = k > 1 the local gradients of k
micro-steps are summed in non-trainable local variables; the k-th micro-step is the
communication step: it divides the sum by k (`accumulation_reduction='mean'`, the default:
the update equals one step on k times the batch) or keeps it (`'sum'`), reduces it over
ranks ONCE, decides from it whether the update is finite, agreed over ranks, applies the
update or (with loss scaling) skips it, updates the loss scale and advances the global
step by one, then zeroes the accumulators. With k = 1 every micro-step is a communication step.

So the global step counts optimizer updates, applied or skipped, whatever k is: the
learning-rate schedules, --stop_at_step and the checkpoint and log steps are in updates,
and one update consumes k batches on every rank. Checkpoints are written between updates,
when the accumulators are empty, so they are local variables and are not saved.

Every rank takes the same decision: the reduced gradients are the same on every rank,
and their finiteness is still agreed by an allreduce (the minimum over ranks) before the
update and the loss scale depend on it.
"""

import collections

from slim_compat import tf
from training import distributed, precision

ACCUMULATION_REDUCTIONS = ("mean", "sum")

Update = collections.namedtuple("Update", ["train_op", "step_after", "update_finite"])
Update.__doc__ = """The tensors of one micro-step.

train_op: run it to train one micro-step.
step_after: the global step after this micro-step (fetch it with train_op).
update_finite: scalar bool, False when this micro-step's update had inf/NaN gradients on
    some rank (skipped with loss scaling; without it the run must stop, see NanLossHook);
    True on micro-steps that only accumulate. The same on every rank.
"""


def build_update(
    loss,
    optimizer,
    global_step,
    var_list,
    max_gradient_norm=None,
    moving_average_decay=None,
    dist=None,
    allreduce_op="average",
    gradient_compression="none",
    accumulation_steps=1,
    accumulation_reduction="mean",
    sparse_as_dense=False,
):
    """Builds one micro-step of training (see the module docstring).

    Args:
        loss: scalar fp32 loss of this rank's batch.
        optimizer: a tf.compat.v1 optimizer, or a precision.LossScaleOptimizer around one.
        global_step: incremented by one per update (also when a loss-scale skip happens).
        var_list: variables to train.
        max_gradient_norm: clip the reduced gradients to this global norm (None: no clipping).
        moving_average_decay: keep an ExponentialMovingAverage of var_list, updated with
            every applied update (None: off). Only the trained variables get shadows: a
            frozen variable's average is itself, and its shadow would start from the
            initializer's value (a finetune restores after initialisation). Eval and export
            restore the others as they are.
        dist: a distributed.Distributed (None: one process).
        allreduce_op: 'average', 'sum' or 'adasum' over ranks (distributed.REDUCTIONS).
        gradient_compression: 'none' or 'fp16' for the allreduce.
        accumulation_steps: micro-steps per update (--backward_passes_per_step), >= 1.
        accumulation_reduction: 'mean' or 'sum' of the accumulated micro-step gradients.
        sparse_as_dense: Horovod: allreduce IndexedSlices gradients as dense tensors instead
            of allgathering them (distributed.Distributed.reduce_gradients).

    Variables of the collection distributed.RANK_LOCAL_VARIABLES (the rows of a
    model-parallel table that this rank owns) keep their local gradient: no other rank
    holds them, so there is nothing to reduce.

    Returns:
        an Update.

    Raises:
        ValueError: no variable to train, a bad accumulation setting or reduction.
    """
    if not var_list:
        raise ValueError("No variable to train: check --trainable_scopes")
    if int(accumulation_steps) != accumulation_steps or accumulation_steps < 1:
        raise ValueError(
            f"--backward_passes_per_step must be an integer >= 1, got {accumulation_steps}"
        )
    if accumulation_reduction not in ACCUMULATION_REDUCTIONS:
        raise ValueError(
            f"Unknown accumulation_reduction {accumulation_reduction!r}; "
            f"expected one of: {', '.join(ACCUMULATION_REDUCTIONS)}"
        )
    dist = dist or distributed.Distributed(None)
    dist.check_reduction(allreduce_op, gradient_compression)
    accumulation_steps = int(accumulation_steps)

    grads_and_vars = optimizer.compute_gradients(loss, var_list=var_list)
    missing = [v.op.name for g, v in grads_and_vars if g is None]
    if missing:
        tf.logging.warning(
            "No gradient for %d variable(s): %s", len(missing), ", ".join(missing[:10])
        )
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    grads = [g for g, _ in grads_and_vars]
    variables = [v for _, v in grads_and_vars]

    own = set(distributed.rank_local_variables())
    shared = [i for i, v in enumerate(variables) if v not in own]

    def reduce_and_apply(local_grads, summarize):
        # Horovod: one reduction over ranks per update, of the gradients of shared variables.
        reduced = list(local_grads)
        for i, g in zip(
            shared,
            dist.reduce_gradients(
                [local_grads[i] for i in shared],
                allreduce_op,
                gradient_compression,
                sparse_as_dense,
            ),
            strict=True,
        ):
            reduced[i] = g
        finite_here = precision.all_finite(reduced)
        if dist.size > 1:
            finite_here = tf.logical_and(finite_here, precision.all_finite(local_grads))
        # Horovod: agreed over ranks, so every rank applies or skips the same update.
        finite = dist.all_ranks_true(finite_here, name="gradients_finite_on_all_ranks")
        if max_gradient_norm:
            reduced, global_norm = tf.clip_by_global_norm(reduced, max_gradient_norm)
            if summarize:  # a summary cannot live inside the accumulation cond
                tf.summary.scalar("global_norm", global_norm)
        return finite, _apply(optimizer, list(zip(reduced, variables)), finite, global_step, ema)

    ema = None
    if moving_average_decay:
        ema = tf.train.ExponentialMovingAverage(moving_average_decay, num_updates=global_step)

    # Batch-norm moving statistics update with every micro-step.
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    if accumulation_steps == 1:
        with tf.control_dependencies(update_ops):
            update_finite, apply = reduce_and_apply(grads, summarize=True)
        train = apply
    else:
        update_finite = _accumulate_then_update(
            grads,
            variables,
            update_ops,
            accumulation_steps,
            accumulation_reduction,
            lambda totals: reduce_and_apply(totals, summarize=False),
        )
        train = update_finite
    with tf.control_dependencies([train]):
        step_after = tf.identity(global_step.read_value(), name="step_after_update")
    return Update(tf.group(train, step_after, name="train_op"), step_after, update_finite)


def _apply(optimizer, grads_and_vars, finite, global_step, ema):
    """Applies the (reduced) gradients when `finite`, then the loss scale and the step."""
    loss_scale = optimizer if isinstance(optimizer, precision.LossScaleOptimizer) else None
    base = loss_scale.inner_optimizer if loss_scale else optimizer
    var_list = [v for _, v in grads_and_vars]

    def apply():
        op = base.apply_gradients(grads_and_vars)
        if ema is not None:
            with tf.control_dependencies([op]):
                op = ema.apply(var_list)
        return op

    if loss_scale is None:
        # Without loss scaling an inf/NaN gradient ends the run (NanLossHook stops every
        # rank on this very step, before any save): no cond, which with an element-wise
        # finiteness test cost ~20% of lenet's batch-4 step on this CPU.
        update = apply()
    else:
        update = precision.apply_if_finite(finite, apply)
    with tf.control_dependencies([update]):
        state = [tf.assign_add(global_step, 1)]
        if loss_scale is not None:
            loss_scale.last_step_finite = finite
            state.append(loss_scale.update_scale(finite))
    return tf.group(*state, name="update")


def _accumulate_then_update(grads, variables, update_ops, k, reduction, reduce_and_apply):
    """Adds this micro-step's gradients to the accumulators; every k-th, the update.

    Returns the update's agreed finiteness (True on accumulate-only micro-steps); running
    it runs the micro-step.
    """
    with tf.variable_scope("gradient_accumulation"):
        accumulators = [
            tf.Variable(
                tf.zeros(v.shape, _dtype(g)),
                trainable=False,
                collections=[tf.GraphKeys.LOCAL_VARIABLES],
                name=v.op.name.replace("/", "_"),
            )
            for g, v in zip(grads, variables, strict=True)
        ]
        micro_steps = tf.Variable(
            tf.constant(0, tf.int64),
            trainable=False,
            collections=[tf.GraphKeys.LOCAL_VARIABLES],
            name="micro_steps",
        )
    with tf.control_dependencies(update_ops):
        # IndexedSlices (embedding-like gradients) add into a dense accumulator row-wise.
        added = [
            acc.scatter_add(g) if isinstance(g, tf.IndexedSlices) else acc.assign_add(g)
            for acc, g in zip(accumulators, grads, strict=True)
        ]
    with tf.control_dependencies(added):
        count = micro_steps.assign_add(1)
    # The same on every rank: every rank starts at 0 and runs the same micro-steps.
    is_communication_step = tf.equal(count % k, 0)

    def communicate():
        with tf.control_dependencies([count]):
            totals = [acc.read_value() for acc in accumulators]
        if reduction == "mean":
            totals = [t / tf.cast(k, t.dtype) for t in totals]
        finite, apply = reduce_and_apply(totals)
        with tf.control_dependencies([apply]):
            reset = tf.group(*[acc.assign(tf.zeros_like(acc)) for acc in accumulators])
        with tf.control_dependencies([reset]):
            return tf.identity(finite)

    with tf.get_default_graph().as_default():  # slots stay in the graph (apply_if_finite)
        finite = tf.cond(is_communication_step, communicate, lambda: tf.constant(True))
    return finite


def _dtype(grad):
    return grad.values.dtype if isinstance(grad, tf.IndexedSlices) else grad.dtype
