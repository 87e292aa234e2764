"""The trainer: one training loop for every task (training/task.py).

A task says what differs between model families: its inputs, model, losses and metrics.
The trainer does the rest, once, for every task. Reads top to bottom:

    Horovod -> resume point -> the task's inputs -> the task's model and losses in the
    precision scope -> optimizer, schedule, loss scaling, accumulation, allreduce, update
    -> restore rules -> hooks (NaN guards, log, eval, checkpoints, profiler) -> loop.

    python train_image_classifiers.py ...        (the image_classification task)
    python train_nlp_models.py --task=NAME ...   (and train_rec_models.py, train_graph_models.py)

A second run on the same --train_dir resumes from its last checkpoint.
"""

import collections
import contextlib
import math

from absl import app, logging

import flags
from slim_compat import tf
from training import (
    checkpoints,
    distributed,
    evaluation,
    hooks,
    input_pipeline,
    learning_rates,
    optimizers,
    precision,
    runtime,
)
from training import (
    task as task_lib,
)
from training import train_op as train_op_lib

FLAGS = flags.FLAGS

TrainStep = collections.namedtuple(
    "TrainStep",
    ["train_op", "step_after", "learning_rate", "loss_scale_optimizer", "update_finite"],
)
TrainStep.__doc__ = """The tensors of one training step (build_train_step).

train_op: run it to train one micro-step (one batch per rank; every
    --backward_passes_per_step-th micro-step also updates the weights and the global step).
step_after: the global step after this micro-step (fetch it with train_op).
learning_rate: the learning-rate tensor.
loss_scale_optimizer: the precision.LossScaleOptimizer for fp16, else None.
update_finite: False when this micro-step's update had inf/NaN gradients on some rank (the
    update was skipped); the same on every rank.
"""


class FlagsWith:
    """The flags with some values resolved for this run (e.g. stop_at_step from --num_epochs)."""

    def __init__(self, flag_values, **overrides):
        self._flags = flag_values
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._flags, name)


def resolve_last_step(params, steps_per_epoch_exact):
    """The global step at which training stops: --stop_at_step, else the end of --num_epochs.

    Args:
        params: the flags.
        steps_per_epoch_exact: updates per epoch as a float (examples / global batch, or
            batches per rank / accumulation steps); None when the task cannot say.
    """
    if params.num_epochs is not None and params.num_epochs <= 0:
        raise ValueError(f"--num_epochs must be > 0, got {params.num_epochs}")
    if params.num_epochs is None or _given(params, "stop_at_step"):
        return params.stop_at_step
    if steps_per_epoch_exact is None:
        raise ValueError(
            "--num_epochs needs the size of the training split, which this task does not "
            "know: give --stop_at_step instead"
        )
    return max(math.ceil(params.num_epochs * steps_per_epoch_exact), 1)


def _given(params, name):
    """Whether flag `name` was given (on the command line or in a flagfile)."""
    flag_values = params._flags if isinstance(params, FlagsWith) else params
    try:
        return flag_values[name].present
    except (TypeError, KeyError, AttributeError):
        return False


def _sparse_as_dense(task, params):
    value = getattr(params, "sparse_as_dense", None)
    return task.sparse_as_dense if value is None else bool(value)


def build_train_step(params, loss, compute, dist, global_step, steps_per_epoch, task=None):
    """The update of one micro-step on `loss`: schedule, optimizer, loss scaling, allreduce.

    Args:
        params: the flags: the learning-rate and optimizer flags, gradient_compression,
            allreduce_op, backward_passes_per_step, accumulation_reduction, loss_scale,
            loss_scale_growth_steps, trainable_scopes, max_gradient_norm,
            moving_average_decay, sparse_as_dense.
        loss: scalar fp32 loss of this rank's batch.
        compute: 'fp32', 'fp16' or 'bf16' (precision.resolve_precision).
        dist: a distributed.Distributed (reduces the gradients over ranks when launched).
        global_step: the global step variable.
        steps_per_epoch: optimizer updates per epoch, for the schedules.
        task: the task, for its sparse-gradient default (None: dense).

    Returns:
        a TrainStep.
    """
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
    sparse_as_dense = _sparse_as_dense(task, params) if task is not None else True
    # Horovod: the gradients, accumulated over micro-steps, are reduced over ranks once per
    # update; every rank applies or skips the same update (training/train_op.py).
    update = train_op_lib.build_update(
        loss,
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
        sparse_as_dense=sparse_as_dense,
    )
    return TrainStep(update.train_op, update.step_after, lr, loss_scale_opt, update.update_finite)


def print_model_statistics():
    total = 0
    for var in tf.trainable_variables():
        n = var.shape.num_elements()
        total += n
        print(f"{var.op.name:<80} {str(var.shape.as_list()):<22} {n:>12,}")
    print(f"Total trainable parameters: {total:,}")


def _shared_variables():
    """Every global variable but the rank-local ones (each rank saves its own)."""
    own = set(distributed.rank_local_variables())
    return [v for v in tf.global_variables() if v not in own]


def _nothing_to_train(dist, resume, last_step):
    if dist.is_chief:
        logging.info(
            "Nothing to train: %s is at step %d >= the last step %d",
            resume.checkpoint,
            resume.step,
            last_step,
        )
    return {
        "checkpoint": resume.checkpoint if dist.is_chief else None,
        "log": [],
        "eval": [],
        "best_eval": None,
        "rank": dist.rank,
        "size": dist.size,
    }


def train(task, params=None, extra_hooks=()):
    """Runs one training job of `task`; returns its checkpoint, log and eval results.

    Args:
        task: a training.task.Task.
        params: the flags (default: flags.FLAGS).
        extra_hooks: more SessionRunHooks, run after tfzoo's own (so after the broadcast).

    Returns:
        {"checkpoint": the last checkpoint (rank 0; None elsewhere), "log": [(step, values)]
        of the step log, "eval": [(step, metrics)] of evaluation during training,
        "best_eval": (step, metrics) of early stopping's best eval (None without), "rank",
        "size"}.
    """
    params = params if params is not None else FLAGS
    # ------------------------------------------------------------------ set-up
    # Horovod: initialise once; every rank learns its rank, size and local GPU.
    dist = distributed.init(params)
    if not dist.is_chief:
        logging.set_verbosity(logging.WARNING)  # Horovod: only rank 0 logs progress
    compute = precision.resolve_precision(params.precision, params.use_fp16)
    if not tf.config.list_physical_devices("GPU"):
        cpu_warning = precision.cpu_precision_warning(compute)
        if cpu_warning:
            logging.warning("%s", cpu_warning)
    flags.warn_pai_only_flags(dist.is_chief)
    run_hooks_named = flags.parse_hooks(params.hooks)
    task.check_params(params, dist)
    # Names first, so a typo fails before any graph is built.
    optimizers.check_name(params.optimizer)
    learning_rates.check_schedule_name(params.learning_rate_decay_type)
    if not 0 <= params.profile_at_task < dist.size:
        raise ValueError(
            f"--profile_at_task={params.profile_at_task} is not a rank of this run "
            f"(0..{dist.size - 1})"
        )
    k = params.backward_passes_per_step

    # ------------------------------------------------------------ resume point
    # Horovod: rank 0 alone reads (and cleans) train_dir, which it alone writes; every
    # rank gets the step and the checkpoint's shapes, so all seed alike and fail alike.
    resume = checkpoints.ResumePoint(None, 0, None)
    if dist.is_chief:
        resume = checkpoints.find_resume_point(params.train_dir)
    resume = checkpoints.ResumePoint(*dist.broadcast_object(tuple(resume), "resume_point"))
    # A resume does not replay the first steps' data order and augmentations.
    seed = input_pipeline.fold_step_into_seed(params.seed, resume.step)
    tf.set_random_seed(seed)

    # ----------------------------------------------------------------- inputs
    inputs = task.build_inputs(
        params,
        params.dataset_split_name,
        True,
        dist.rank,
        dist.size,
        params.batch_size,
        seed,
        resume.step,
    )
    # Horovod: an epoch is measured over the global batch of all ranks; an update (a global
    # step) consumes --backward_passes_per_step batches on every rank.
    global_batch = params.batch_size * dist.size * k
    if inputs.batches_per_epoch:
        exact = inputs.batches_per_epoch / k
    elif inputs.num_examples:
        exact = inputs.num_examples / global_batch
    else:
        exact = None
    steps_per_epoch = max(int(exact), 1) if exact else 1
    last_step = resolve_last_step(params, exact)
    if params.num_epochs is not None:
        logging.info(
            "--num_epochs=%g: training stops at step %d%s",
            params.num_epochs,
            last_step,
            " (--stop_at_step is given and wins)" if _given(params, "stop_at_step") else "",
        )
    if resume.checkpoint and resume.step >= last_step:
        return _nothing_to_train(dist, resume, last_step)
    params = FlagsWith(params, stop_at_step=last_step)
    if inputs.batches_per_epoch:
        # Token batches (or one full graph) hold no fixed number of examples: --batch_size
        # says nothing about them, the task's count of batches does.
        epoch_unit = f"{inputs.batches_per_epoch} batches per rank, {k} per step"
    else:
        epoch_unit = f"global batch {global_batch}"
    logging.info(
        "%s; %s steps per epoch (%s)",
        inputs.description,
        steps_per_epoch if exact else "unknown",
        epoch_unit,
    )
    features = tf.data.make_one_shot_iterator(inputs.dataset).get_next()

    # ------------------------------------------------------------ model, losses
    global_step = tf.train.get_or_create_global_step()
    # fp32 master weights read in the compute precision; embeddings cast after the lookup.
    with precision.model_scope(compute) as dtype:
        outputs = task.build_model(features, params, True, dtype)
    losses = task.build_losses(features, outputs, params)
    metrics = task.train_metrics(features, outputs)
    counts = task.batch_counts(features)

    # ------------------------------------------------------------------ update
    step = build_train_step(params, losses.total, compute, dist, global_step, steps_per_epoch, task)
    train_op, step_after = step.train_op, step.step_after
    lr, loss_scale_opt = step.learning_rate, step.loss_scale_optimizer
    if params.print_model_statistics and dist.is_chief:
        print_model_statistics()

    # ---------------------------------------------------------- restore rules
    init_fn = _finetune_init_fn(task, params, resume)
    saved = _shared_variables()
    if resume.checkpoint:
        # Every saved variable checked before the session restores: names and shapes.
        checkpoints.check_restorable(
            resume.checkpoint, saved, action="resume", shapes=resume.shapes
        )

    # ------------------------------------------------------------------- hooks
    saver = tf.train.Saver(
        var_list=saved, max_to_keep=params.keep_checkpoint_max, save_relative_paths=True
    )
    own_globals = [v for v in tf.global_variables() if v not in set(saved)]
    ready_for_local_init = {}
    if own_globals:
        # The optimizer slots of rank-local variables are global variables outside the
        # checkpoint: initialised with the local variables, then the task's hooks restore
        # this rank's own (rec_models/sharded_embedding.ShardCheckpointHook).
        for var in own_globals:
            if var not in tf.local_variables():
                tf.add_to_collection(tf.GraphKeys.LOCAL_VARIABLES, var)
        ready_for_local_init = {"ready_for_local_init_op": tf.report_uninitialized_variables(saved)}
    scaffold = tf.train.Scaffold(saver=saver, init_fn=init_fn, **ready_for_local_init)
    tf.summary.scalar("learning_rate", lr)
    tf.summary.scalar("losses/total_loss", losses.total)
    for name, part in losses.parts.items():
        tf.summary.scalar(f"losses/{name}", part)
    for name, value in metrics.items():
        tf.summary.scalar(f"{name}/train_batch", value)
    # Horovod: loss and metrics averaged over ranks, so every rank sees (and acts on) the same.
    mean_loss = dist.allreduce_mean(losses.total, name="mean_total_loss")
    log_tensors = {"step": step_after, "loss": mean_loss}
    for name, value in {**losses.parts, **metrics}.items():
        log_tensors[name] = dist.allreduce_mean(tf.cast(value, tf.float32), name=f"mean_{name}")
    log_tensors["lr"] = lr
    if loss_scale_opt is not None:
        with tf.control_dependencies([train_op]):  # read after this step's update
            log_tensors["loss_scale"] = tf.identity(loss_scale_opt.scale.read_value())
            log_tensors["skipped_steps"] = tf.identity(loss_scale_opt.skipped_steps.read_value())
        tf.summary.scalar("loss_scale", loss_scale_opt.scale)
    # Rank 0 keeps the newest checkpoint whose next loss was seen finite (NaN stops name it).
    good_checkpoints = hooks.LastGoodCheckpoint(params.train_dir) if dist.is_chief else None
    run_hooks = [
        # First: before any saver. Horovod: on the mean loss and the update's finiteness
        # agreed over ranks, so every rank stops at the same step.
        hooks.NanLossHook(
            mean_loss,
            step_after,
            update_finite=step.update_finite,
            stop_on_skipped_update=loss_scale_opt is None,
            good_checkpoints=good_checkpoints,
        ),
        tf.train.StopAtStepHook(last_step=last_step),
    ]
    broadcast = dist.broadcast_hook()  # Horovod: same start on every rank, after restore too
    if broadcast:
        run_hooks.append(broadcast)
    # Horovod: every rank checks the (identical) weights on rank 0's save steps, before it saves.
    own = set(distributed.rank_local_variables())
    weights_check = hooks.FiniteWeightsHook(
        [v for v in tf.trainable_variables() if v not in own],
        step_after,
        params.save_checkpoints_steps,
        global_step,
        good_checkpoints,
    )
    run_hooks.append(weights_check)
    eval_hook = None
    if params.eval_every_n_steps:
        eval_hook = make_eval_hook(
            task, params, compute, dist, step_after, global_step, saved, resume.checkpoint
        )
        run_hooks.append(eval_hook)
    logger = None
    if "LoggingTensorHook" in run_hooks_named:
        logger = hooks.StepLoggingHook(
            log_tensors,
            params.log_every_n_steps,
            global_batch,
            global_step,
            log=dist.is_chief,
            runs_per_step=k,
            counts=counts,
            count_labels=task.throughput_labels,
            dist=dist,
        )
        run_hooks.append(logger)
    if dist.is_chief and "CheckpointSaverHook" in run_hooks_named:
        # After the NaN guards in the list, so a step with a NaN loss is never saved.
        run_hooks.append(
            tf.train.CheckpointSaverHook(
                params.train_dir,
                save_steps=params.save_checkpoints_steps,
                scaffold=scaffold,
                listeners=[
                    hooks.FiniteWeightsListener(weights_check),  # the same check, in the saver
                    good_checkpoints,
                ],
            )
        )
    profiles = params.profile_every_n_steps and "ProfilerHook" in run_hooks_named
    if profiles and dist.rank == params.profile_at_task:  # Horovod: one rank writes traces
        run_hooks.append(
            tf.train.ProfilerHook(
                save_steps=params.profile_every_n_steps, output_dir=params.train_dir
            )
        )
    run_hooks.extend(task.training_hooks(params, dist))
    run_hooks.extend(extra_hooks)

    # -------------------------------------------------------------------- loop
    # Horovod: only rank 0 writes checkpoints and summaries; the others get weights
    # from rank 0's broadcast, also after a resume.
    is_chief = dist.is_chief
    if resume.checkpoint and dist.is_chief:
        logging.info(
            "Resuming from %s at step %d (data order and augmentation seeded for that step)",
            resume.checkpoint,
            resume.step,
        )
    errors_named = inputs.errors_named or contextlib.nullcontext
    with (
        tf.train.MonitoredTrainingSession(
            master="",
            is_chief=True,  # every rank initialises itself; rank 0's weights are then broadcast
            checkpoint_dir=params.train_dir if is_chief else None,
            scaffold=scaffold,
            hooks=run_hooks,
            save_checkpoint_steps=None,  # the CheckpointSaverHook above, after the NaN guard
            save_checkpoint_secs=None,
            save_summaries_steps=params.save_summaries_steps if is_chief else None,
            save_summaries_secs=None,
            log_step_count_steps=None,
            config=distributed.session_config(dist, params),
        ) as session,
        errors_named(),
    ):
        while not session.should_stop():
            session.run(train_op)
    latest = tf.train.latest_checkpoint(params.train_dir) if dist.is_chief else None
    if dist.is_chief:
        logging.info("Done: %s", latest)
    return {
        "checkpoint": latest,
        "log": logger.history if logger else [],
        "eval": eval_hook.results if eval_hook else [],
        # Early stopping: (step, metrics) of the best eval; its weights in TRAIN_DIR/best.
        "best_eval": eval_hook.best_eval() if eval_hook else None,
        "rank": dist.rank,
        "size": dist.size,
    }


def _finetune_init_fn(task, params, resume):
    """The restore of a finetune (--task_type=finetune), or None."""
    if params.task_type == "finetune" and resume.checkpoint:
        # As TF-Slim: a checkpoint in train_dir wins, so a restarted finetune continues.
        logging.warning(
            "--task_type=finetune: --train_dir %s already holds %s; resuming from it and "
            "ignoring the finetune checkpoint (--model_dir=%s --ckpt_file_name=%s)",
            params.train_dir,
            resume.checkpoint,
            params.model_dir,
            params.ckpt_file_name,
        )
        return None
    if params.task_type != "finetune":
        return None
    ckpt = checkpoints.resolve_checkpoint(params.model_dir, params.ckpt_file_name)
    exclude = checkpoints.split_scopes(params.checkpoint_exclude_scopes)
    exclude += [s for s in task.finetune_exclude_scopes(params) if s not in exclude]
    return checkpoints.finetune_init_fn(
        ckpt,
        ",".join(exclude),
        params.restore_all_variables,
        params.ignore_missing_vars,
    )


def make_eval_hook(
    task, params, compute, dist, step_after, global_step, var_list=None, resumed=False
):
    """Evaluation during training: the eval split through an is_training=False tower.

    With --early_stopping_metric rank 0 keeps the best eval's weights in TRAIN_DIR/best
    (hooks.BestCheckpoint); a resumed run starts from the best value recorded there.
    """
    inputs = task.build_inputs(
        params,
        params.eval_split_name,  # None: the task's held-out split
        False,
        dist.rank,
        dist.size,
        params.eval_batch_size,
        params.seed,
    )
    ops = evaluation.build_eval_ops(task, inputs.dataset, params, dist, compute, reuse=True)
    early_stopping = hooks.EarlyStopping.from_params(params)
    if early_stopping and resumed:
        # Horovod: rank 0 reads the best eval of the run so far; every rank stops alike.
        state = hooks.BestCheckpoint.read_state(params.train_dir) if dist.is_chief else None
        state = dist.broadcast_object(state, "best_eval")
        if state and (state["metric"], state["mode"]) == (
            early_stopping.metric,
            early_stopping.mode,
        ):
            early_stopping.best = (state["step"], state["value"])
            early_stopping.best_metrics = state["metrics"]
    return hooks.EvaluationHook(
        ops,
        params.eval_every_n_steps,
        step_after,
        global_step,
        summary_dir=params.train_dir,
        is_chief=dist.is_chief,
        split_name=params.eval_split_name or "the held-out split",
        errors_named=inputs.errors_named or contextlib.nullcontext,
        format_metrics=task.format_metrics,
        early_stopping=early_stopping,
        best_checkpoint=hooks.BestCheckpoint(params.train_dir, var_list),
    )


# ------------------------------------------------------------------ entry points
def define_task_flag(default, family=None):
    """Defines --task (this entry point's default) and the flags of the tasks it serves.

    Args:
        default: the default --task.
        family: the Task.family this entry point trains (None: every registered task).
    """
    from absl import flags as absl_flags

    import tasks  # noqa: F401  (registers every task)

    flags.define_flags()
    names = sorted(task_lib.TASKS) if family is None else task_lib.tasks_of_family(family)
    if "task" not in FLAGS:
        absl_flags.DEFINE_string(
            "task", default, f"Task to run, one of: {', '.join(names) or 'none registered yet'}."
        )
    for name in names:
        task_lib.TASKS[name].define_flags(flags)


def task_name(default):
    """--task when it was given, else this entry point's own default.

    The flag is defined once per process, with the default of whichever entry point
    defined it first (a test process imports several), so an entry point reads its own.
    """
    return FLAGS.task if FLAGS["task"].present else default


def main_for(family, default):
    """An absl main that trains the --task (default `default`), one of `family`'s tasks."""

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
        runtime.configure_tf_runtime()
        train(task_lib.get_task(task_name(default), family), FLAGS)

    return main
