"""Trains an image classifier: pretrain from scratch or finetune a checkpoint.

One process:            python train_image_classifiers.py --model_name=resnet_v1_50 --train_dir=D
Several ranks:          mpirun -np 2 python train_image_classifiers.py ...   (or horovodrun -np 2)
From a flagfile:        python train_image_classifiers.py --flagfile=job.flags

A second run on the same --train_dir resumes from its last checkpoint. Reads top to
bottom: flags -> Horovod -> dataset -> network -> loss_fn -> optimizer -> hooks -> loop.
"""

if __name__ == "__main__":
    # First, before TensorFlow loads: re-run this process on tcmalloc when it is installed
    # (faster CPU training; TFZOO_MALLOC=system opts out). See training/allocator.py.
    from training import allocator

    allocator.use_tcmalloc()

import inspect
import math

from absl import app, logging

import flags
from datasets import dataset_factory
from image_models import nets_factory
from slim_compat import tf
from training import (
    checkpoints,
    distributed,
    evaluation,
    hooks,
    input_pipeline,
    precision,
    runtime,
    train_step,
)

FLAGS = flags.FLAGS


def make_dataset(spec, entry, split_is_train, dist, batch_size, start_step=0):
    """The input pipeline of this rank for `spec`, with the flags' knobs."""
    train_size = FLAGS.train_image_size or entry.image_size
    return input_pipeline.build_dataset(
        spec,
        preprocessing_name=FLAGS.preprocessing_name or entry.preprocessing,
        image_size=train_size if split_is_train else (FLAGS.eval_image_size or train_size),
        channels=nets_factory.input_channels(FLAGS.model_name),
        batch_size=batch_size,
        is_training=split_is_train,
        rank=dist.rank,
        size=dist.size,
        seed=FLAGS.seed,
        labels_offset=FLAGS.labels_offset,
        shuffle_buffer_size=FLAGS.shuffle_buffer_size,
        num_readers=FLAGS.num_readers,
        num_preprocessing_threads=FLAGS.num_preprocessing_threads,
        num_parallel_batches=FLAGS.num_parallel_batches,
        prefetch_buffer_size=FLAGS.prefetch_buffer_size,
        use_caching=FLAGS.datasets_use_caching and split_is_train,
        start_step=start_step,
    )


def print_model_statistics():
    total = 0
    for var in tf.trainable_variables():
        n = var.shape.num_elements()
        total += n
        print(f"{var.op.name:<80} {str(var.shape.as_list()):<22} {n:>12,}")
    print(f"Total trainable parameters: {total:,}")


def check_dropout_keep_prob(model_name, keep_prob):
    """Raises ValueError when --dropout_keep_prob is set for a network without that argument."""
    if keep_prob is None:
        return

    def accepts(entry):
        return "dropout_keep_prob" in inspect.signature(entry.fn).parameters

    if not accepts(nets_factory.get_entry(model_name)):
        takers = sorted(name for name, entry in nets_factory.NETWORKS.items() if accepts(entry))
        raise ValueError(
            f"--dropout_keep_prob={keep_prob} is set but model {model_name!r} has no "
            f"dropout_keep_prob argument; the networks that take it: {', '.join(takers)}"
        )


def resolve_last_step(num_samples, global_batch):
    """The global step at which training stops: --stop_at_step, else the end of --num_epochs.

    --num_epochs counts epochs of the train split over the global batch; the last step is
    the first one at which that many epochs of examples have been read.
    """
    if FLAGS.num_epochs is not None and FLAGS.num_epochs <= 0:
        raise ValueError(f"--num_epochs must be > 0, got {FLAGS.num_epochs}")
    if FLAGS.num_epochs is None or FLAGS["stop_at_step"].present:
        return FLAGS.stop_at_step
    return max(math.ceil(FLAGS.num_epochs * num_samples / global_batch), 1)


class _FlagsWith:
    """FLAGS with some values resolved for this run (e.g. stop_at_step from --num_epochs)."""

    def __init__(self, flag_values, **overrides):
        self._flags = flag_values
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._flags, name)


def train(extra_hooks=()):
    """Runs one training job from FLAGS; returns its checkpoint, log and eval results.

    Args:
        extra_hooks: more SessionRunHooks, run after tfzoo's own (so after the broadcast).
    """
    # ------------------------------------------------------------------ set-up
    # Horovod: initialise once; every rank learns its rank, size and local GPU.
    dist = distributed.init(FLAGS)
    if not dist.is_chief:
        logging.set_verbosity(logging.WARNING)  # Horovod: only rank 0 logs progress
    compute = precision.resolve_precision(FLAGS.precision, FLAGS.use_fp16)
    if not tf.config.list_physical_devices("GPU"):
        cpu_warning = precision.cpu_precision_warning(compute)
        if cpu_warning:
            logging.warning("%s", cpu_warning)
    entry = nets_factory.get_entry(FLAGS.model_name)
    flags.warn_pai_only_flags(dist.is_chief)
    run_hooks_named = flags.parse_hooks(FLAGS.hooks)
    check_dropout_keep_prob(FLAGS.model_name, FLAGS.dropout_keep_prob)
    if not 0 <= FLAGS.profile_at_task < dist.size:
        raise ValueError(
            f"--profile_at_task={FLAGS.profile_at_task} is not a rank of this run (0..{dist.size - 1})"
        )

    # ----------------------------------------------------------------- dataset
    spec = dataset_factory.get_dataset(
        FLAGS.dataset_name,
        FLAGS.dataset_split_name,
        FLAGS.dataset_dir,
        FLAGS.train_files or FLAGS.file_pattern,
        mock_num_classes=FLAGS.num_classes,
    )
    num_classes = (FLAGS.num_classes or spec.num_classes) - FLAGS.labels_offset
    num_samples = FLAGS.num_sample_per_epoch or spec.num_samples
    # Horovod: an epoch is measured over the global batch of all ranks; an update (a global
    # step) consumes --backward_passes_per_step batches on every rank.
    global_batch = FLAGS.batch_size * dist.size * FLAGS.backward_passes_per_step
    steps_per_epoch = max(num_samples // global_batch, 1)
    last_step = resolve_last_step(num_samples, global_batch)
    if FLAGS.num_epochs is not None:
        logging.info(
            "--num_epochs=%g: training stops at step %d%s",
            FLAGS.num_epochs,
            last_step,
            " (--stop_at_step is given and wins)" if FLAGS["stop_at_step"].present else "",
        )
    params = _FlagsWith(FLAGS, stop_at_step=last_step)

    # ------------------------------------------------------------ resume point
    # Horovod: rank 0 alone reads (and cleans) train_dir, which it alone writes; every
    # rank gets the step and the checkpoint's shapes, so all seed alike and fail alike.
    resume = checkpoints.ResumePoint(None, 0, None)
    if dist.is_chief:
        resume = checkpoints.find_resume_point(FLAGS.train_dir)
    resume = checkpoints.ResumePoint(*dist.broadcast_object(tuple(resume), "resume_point"))
    if resume.checkpoint and resume.step >= last_step:
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
            "rank": dist.rank,
            "size": dist.size,
        }
    # A resume does not replay the first steps' data order and augmentations.
    tf.set_random_seed(input_pipeline.fold_step_into_seed(FLAGS.seed, resume.step))
    train_ds, plan = make_dataset(spec, entry, True, dist, FLAGS.batch_size, resume.step)
    logging.info(
        "dataset %s/%s: %d examples, %d classes, %d steps per epoch at global batch %d; %s",
        spec.name,
        spec.split,
        num_samples,
        num_classes,
        steps_per_epoch,
        global_batch,
        plan.description if plan else f"synthetic data sharded over {dist.size} rank(s)",
    )
    images, labels = tf.data.make_one_shot_iterator(train_ds).get_next()

    # ----------------------------------------------------------------- network
    global_step = tf.train.get_or_create_global_step()
    network_fn = nets_factory.get_network_fn(
        FLAGS.model_name,
        num_classes,
        weight_decay=FLAGS.weight_decay,
        is_training=True,
        # Batch norm outside --trainable_scopes normalises with its (restored) statistics.
        freeze_batch_norm=(
            checkpoints.split_scopes(FLAGS.trainable_scopes) if FLAGS.freeze_batch_norm else None
        ),
    )

    # ------------------------------------------------------ loss_fn, optimizer
    # training/train_step.py: the network in its precision, TF-Slim's loss, the optimizer
    # (Horovod: allreduce, LR scaled by the ranks; loss scaling around it for fp16), the update.
    # scripts/benchmark.py times this same step.
    step = train_step.build_train_step(
        params,
        network_fn,
        images,
        labels,
        num_classes,
        compute,
        dist,
        global_step,
        steps_per_epoch,
        entry.aux_loss_weight,
    )
    train_op, step_after = step.train_op, step.step_after
    total_loss, cross_entropy, accuracy = step.total_loss, step.cross_entropy, step.accuracy
    lr, loss_scale_opt = step.learning_rate, step.loss_scale_optimizer
    if FLAGS.print_model_statistics and dist.is_chief:
        print_model_statistics()

    # ---------------------------------------------------------- restore rules
    init_fn = None
    if FLAGS.task_type == "finetune" and resume.checkpoint:
        # As TF-Slim: a checkpoint in train_dir wins, so a restarted finetune continues.
        logging.warning(
            "--task_type=finetune: --train_dir %s already holds %s; resuming from it and "
            "ignoring the finetune checkpoint (--model_dir=%s --ckpt_file_name=%s)",
            FLAGS.train_dir,
            resume.checkpoint,
            FLAGS.model_dir,
            FLAGS.ckpt_file_name,
        )
    elif FLAGS.task_type == "finetune":
        ckpt = checkpoints.resolve_checkpoint(FLAGS.model_dir, FLAGS.ckpt_file_name)
        init_fn = checkpoints.finetune_init_fn(
            ckpt,
            FLAGS.checkpoint_exclude_scopes,
            FLAGS.restore_all_variables,
            FLAGS.ignore_missing_vars,
        )
    if resume.checkpoint:
        # Every saved variable checked before the session restores: names and shapes.
        checkpoints.check_restorable(
            resume.checkpoint, tf.global_variables(), action="resume", shapes=resume.shapes
        )

    # ------------------------------------------------------------------- hooks
    saver = tf.train.Saver(max_to_keep=FLAGS.keep_checkpoint_max, save_relative_paths=True)
    scaffold = tf.train.Scaffold(saver=saver, init_fn=init_fn)
    tf.summary.scalar("learning_rate", lr)
    tf.summary.scalar("losses/total_loss", total_loss)
    tf.summary.scalar("losses/cross_entropy", cross_entropy)
    tf.summary.scalar("accuracy/train_batch", accuracy)
    # Horovod: loss and accuracy averaged over ranks, so every rank sees (and acts on) the same.
    mean_loss = dist.allreduce_mean(total_loss, name="mean_total_loss")
    log_tensors = {
        "step": step_after,
        "loss": mean_loss,
        "accuracy": dist.allreduce_mean(accuracy, name="mean_accuracy"),
        "lr": lr,
    }
    if loss_scale_opt is not None:
        with tf.control_dependencies([train_op]):  # read after this step's update
            log_tensors["loss_scale"] = tf.identity(loss_scale_opt.scale.read_value())
            log_tensors["skipped_steps"] = tf.identity(loss_scale_opt.skipped_steps.read_value())
        tf.summary.scalar("loss_scale", loss_scale_opt.scale)
    # Rank 0 keeps the newest checkpoint whose next loss was seen finite (NaN stops name it).
    good_checkpoints = hooks.LastGoodCheckpoint(FLAGS.train_dir) if dist.is_chief else None
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
    weights_check = hooks.FiniteWeightsHook(
        tf.trainable_variables(),
        step_after,
        FLAGS.save_checkpoints_steps,
        global_step,
        good_checkpoints,
    )
    run_hooks.append(weights_check)
    eval_hook = None
    if FLAGS.eval_every_n_steps:
        eval_hook = make_eval_hook(entry, num_classes, compute, dist, step_after, global_step)
        run_hooks.append(eval_hook)
    logger = None
    if "LoggingTensorHook" in run_hooks_named:
        logger = hooks.StepLoggingHook(
            log_tensors,
            FLAGS.log_every_n_steps,
            global_batch,
            global_step,
            log=dist.is_chief,
            runs_per_step=FLAGS.backward_passes_per_step,
        )
        run_hooks.append(logger)
    if dist.is_chief and "CheckpointSaverHook" in run_hooks_named:
        # After the NaN guards in the list, so a step with a NaN loss is never saved.
        run_hooks.append(
            tf.train.CheckpointSaverHook(
                FLAGS.train_dir,
                save_steps=FLAGS.save_checkpoints_steps,
                scaffold=scaffold,
                listeners=[
                    hooks.FiniteWeightsListener(weights_check),  # the same check, in the saver
                    good_checkpoints,
                ],
            )
        )
    profiles = FLAGS.profile_every_n_steps and "ProfilerHook" in run_hooks_named
    if profiles and dist.rank == FLAGS.profile_at_task:  # Horovod: one rank writes traces
        run_hooks.append(
            tf.train.ProfilerHook(
                save_steps=FLAGS.profile_every_n_steps, output_dir=FLAGS.train_dir
            )
        )
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
    with (
        tf.train.MonitoredTrainingSession(
            master="",
            is_chief=True,  # every rank initialises itself; rank 0's weights are then broadcast
            checkpoint_dir=FLAGS.train_dir if is_chief else None,
            scaffold=scaffold,
            hooks=run_hooks,
            save_checkpoint_steps=None,  # the CheckpointSaverHook above, after the NaN guard
            save_checkpoint_secs=None,
            save_summaries_steps=FLAGS.save_summaries_steps if is_chief else None,
            save_summaries_secs=None,
            log_step_count_steps=None,
            config=distributed.session_config(dist, FLAGS),
        ) as session,
        dataset_factory.input_errors_named(spec),
    ):
        while not session.should_stop():
            session.run(train_op)
    latest = tf.train.latest_checkpoint(FLAGS.train_dir) if dist.is_chief else None
    if dist.is_chief:
        logging.info("Done: %s", latest)
    return {
        "checkpoint": latest,
        "log": logger.history if logger else [],
        "eval": eval_hook.results if eval_hook else [],
        "rank": dist.rank,
        "size": dist.size,
    }


def make_eval_hook(entry, num_classes, compute, dist, step_after, global_step):
    """Evaluation during training: the eval split through an is_training=False tower."""
    spec = dataset_factory.get_dataset(
        FLAGS.dataset_name,
        FLAGS.eval_split_name,  # None: the dataset's held-out split
        FLAGS.dataset_dir,
        None,
        mock_num_classes=FLAGS.num_classes,
    )
    eval_ds, _ = make_dataset(spec, entry, False, dist, FLAGS.eval_batch_size)
    eval_net = nets_factory.get_network_fn(FLAGS.model_name, num_classes, is_training=False)
    ops = evaluation.build_eval_ops(eval_ds, eval_net, num_classes, dist, compute, reuse=True)
    return hooks.EvaluationHook(
        ops,
        FLAGS.eval_every_n_steps,
        step_after,
        global_step,
        summary_dir=FLAGS.train_dir,
        is_chief=dist.is_chief,
        split_name=spec.split,
        errors_named=lambda: dataset_factory.input_errors_named(spec),
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    runtime.configure_tf_runtime()
    train()


if __name__ == "__main__":
    app.run(main)
