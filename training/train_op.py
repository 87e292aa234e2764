"""The train op: gradients, optional clipping, the update, batch-norm statistics, EMA."""

from slim_compat import tf


def build_train_op(
    loss, optimizer, global_step, var_list, max_gradient_norm=None, moving_average_decay=None
):
    """Builds one optimizer step.

    Args:
        loss: scalar fp32 loss.
        optimizer: a tf.compat.v1 optimizer, possibly wrapped (loss scale, Horovod).
        global_step: incremented by one per step (also when a loss-scale skip happens).
        var_list: variables to train.
        max_gradient_norm: clip the gradients to this global norm (None: no clipping).
        moving_average_decay: keep an ExponentialMovingAverage of var_list (None: off).
            Only the trained variables get shadows: a frozen variable's average is itself,
            and its shadow would start from the initializer's value (a finetune restores
            after initialisation). Eval and export restore the others as they are.

    Returns:
        (train_op, step_after): run train_op to train; fetch step_after with it to read the
        global step after this step's update (deterministic, unlike reading the variable).
    """
    if not var_list:
        raise ValueError("No variable to train: check --trainable_scopes")
    grads_and_vars = optimizer.compute_gradients(loss, var_list=var_list)
    missing = [v.op.name for g, v in grads_and_vars if g is None]
    if missing:
        tf.logging.warning(
            "No gradient for %d variable(s): %s", len(missing), ", ".join(missing[:10])
        )
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    if max_gradient_norm:
        grads, variables = zip(*grads_and_vars)
        grads, global_norm = tf.clip_by_global_norm(grads, max_gradient_norm)
        tf.summary.scalar("global_norm", global_norm)
        grads_and_vars = list(zip(grads, variables))

    # Batch-norm moving statistics update with every step.
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        apply = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
    if moving_average_decay:
        ema = tf.train.ExponentialMovingAverage(moving_average_decay, num_updates=global_step)
        with tf.control_dependencies([apply]):
            apply = ema.apply(var_list)
    with tf.control_dependencies([apply]):
        step_after = tf.identity(global_step.read_value(), name="step_after_update")
    return tf.group(apply, step_after, name="train_op"), step_after
