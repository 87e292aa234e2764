"""Every flag of tfzoo, in named groups, with defaults and help.

The groups and most names follow FastNN's user guide (dataset, preprocessing, model,
learning rate, optimizer, logging, performance) so a FastNN flagfile keeps working; the
groups after them are what tfzoo adds (checkpoints and finetuning, evaluation, precision,
distributed training). `--flagfile=path` reads flags from a file, one `--name=value` a line.
A misspelt flag name is an error (absl rejects unknown flags). Every flag of the tables
in FastNN's user guide is accepted: FastNN's renamed ones (`log_loss_every_n_iters`,
`profile_every_n_iters`) as aliases, and the PAI-only ones (`PAI_ONLY_FLAGS`) with a
warning that they do nothing here.

Entry points import this module for its side effect of defining the flags and read them
through `flags.FLAGS`:

    import flags
    FLAGS = flags.FLAGS
"""

from absl import flags as absl_flags
from absl import logging

FLAGS = absl_flags.FLAGS

# FastNN flags that configure Alibaba PAI's distribution layer (PAISoar) and its gRPC
# transport; Horovod replaces both, so these are accepted and do nothing here.
PAI_ONLY_FLAGS = ("enable_paisoar", "protocol")

# FastNN's --hooks names (case-insensitive) -> what each turns on here.
HOOK_NAMES = {
    "stopatstephook": "StopAtStepHook",
    "profilerhook": "ProfilerHook",
    "loggingtensorhook": "LoggingTensorHook",
    "checkpointsaverhook": "CheckpointSaverHook",
}

_defined = False


def pai_only_flags_given():
    """Names of the PAI-only flags given on the command line or in a flagfile."""
    return [name for name in PAI_ONLY_FLAGS if FLAGS[name].present]


def warn_pai_only_flags(log=True):
    """Logs one warning line per PAI-only flag given (when `log`: rank 0 only)."""
    for name in pai_only_flags_given():
        if log:
            logging.warning("--%s is a PAI (PAISoar) flag: accepted, does nothing here", name)


def parse_hooks(value):
    """The set of canonical hook names in a --hooks value (comma-separated, any case).

    Raises:
        ValueError: an unknown hook name (lists the valid ones), or StopAtStepHook left out.
    """
    names = set()
    for name in (n.strip() for n in (value or "").split(",")):
        if not name:
            continue
        if name.lower() not in HOOK_NAMES:
            raise ValueError(
                f"Unknown hook {name!r} in --hooks={value!r}; valid names: "
                f"{', '.join(HOOK_NAMES.values())}"
            )
        names.add(HOOK_NAMES[name.lower()])
    if "StopAtStepHook" not in names:
        raise ValueError(
            f"--hooks={value!r} leaves out StopAtStepHook: the training data repeats forever, "
            "so the run would never end; keep StopAtStepHook in --hooks"
        )
    return names


def define_flags():
    """Defines every flag once (safe to call again)."""
    global _defined
    if _defined:
        return
    _defined = True
    f = absl_flags

    # ------------------------------------------------------------------ dataset
    f.DEFINE_string(
        "dataset_name",
        "mock",
        "Dataset name in datasets/dataset_factory.py "
        "(mock, mnist, cifar10, cifar100, flowers, imagenet, image_folder).",
    )
    f.DEFINE_string(
        "dataset_dir", None, "Directory of the dataset's tfrecords (not needed for mock)."
    )
    f.DEFINE_string("dataset_split_name", "train", "Split to train on.")
    f.DEFINE_string(
        "file_pattern",
        None,
        "Glob of the split's tfrecords inside dataset_dir; "
        "default: the dataset module's '{name}_{split}-*.tfrecord'.",
    )
    f.DEFINE_integer("num_classes", None, "Number of classes; default: the dataset's.")
    f.DEFINE_integer(
        "labels_offset",
        0,
        "Subtracted from every label, e.g. 1 to train a "
        "1000-class net on 1001-class ImageNet records (background = 0).",
    )
    f.DEFINE_string(
        "train_files",
        None,
        "FastNN: comma-separated tfrecord names or globs of the training split, relative "
        "to dataset_dir unless absolute, e.g. 'a.tfrecord,b.tfrecord'; overrides "
        "--file_pattern for training.",
    )
    f.DEFINE_integer(
        "num_sample_per_epoch",
        None,
        "Examples in one epoch of the train split; "
        "default: the size recorded by the converter or the dataset module.",
    )

    # ------------------------------------------------------------ preprocessing
    f.DEFINE_string(
        "preprocessing_name",
        None,
        "Preprocessing in preprocessing_factory "
        "(lenet, cifarnet, vgg, inception); default: the model's.",
    )
    f.DEFINE_integer("train_image_size", None, "Input size in pixels; default: the model's.")
    f.DEFINE_integer(
        "eval_image_size",
        None,
        "Input size in pixels of evaluation (the eval script, eval during training, export); "
        "default: --train_image_size, else the model's.",
    )
    f.DEFINE_integer("shuffle_buffer_size", 1024, "Examples in the shuffle buffer.")
    f.DEFINE_integer(
        "num_parallel_batches", None, "Batches assembled in parallel; default AUTOTUNE."
    )
    f.DEFINE_integer("prefetch_buffer_size", None, "Batches prefetched; default AUTOTUNE.")
    f.DEFINE_integer(
        "num_preprocessing_threads", None, "Parallel parse+preprocess calls; default AUTOTUNE."
    )
    f.DEFINE_integer("num_readers", 4, "Files read in parallel (interleave cycle length).")
    f.DEFINE_boolean(
        "datasets_use_caching",
        False,
        "Cache the compressed tfrecord records (before decoding) of this rank in memory "
        "after the first epoch; they are decoded and augmented anew every epoch.",
    )
    f.DEFINE_integer("seed", 0, "Seed of the graph-level random ops and the shuffle.")

    # -------------------------------------------------------------- model params
    f.DEFINE_string("model_name", "lenet", "Network in image_models/nets_factory.py.")
    f.DEFINE_integer("batch_size", 32, "Examples per step per rank.")
    f.DEFINE_float(
        "num_epochs",
        None,
        "Train until the step that completes this many epochs of the train split over the "
        "global batch (all ranks); ignored when --stop_at_step is given.",
    )
    f.DEFINE_float("weight_decay", 0.00004, "L2 regularisation of the weights.")
    f.DEFINE_float(
        "dropout_keep_prob",
        None,
        "Keep probability of the network's dropout "
        "layers when training; default: the network's own (1.0 turns dropout off).",
    )
    f.DEFINE_float("label_smoothing", 0.0, "Label smoothing of the cross-entropy, in [0, 1).")
    f.DEFINE_float(
        "moving_average_decay",
        None,
        "If set, keep an exponential moving average of "
        "the trained weights (saved beside them; eval and export can use it).",
    )
    f.DEFINE_enum(
        "task_type",
        "pretrain",
        ["pretrain", "finetune"],
        "pretrain: from scratch; finetune: restore --model_dir/--ckpt_file_name first.",
    )

    # ---------------------------------------------------- checkpoints / finetune
    f.DEFINE_string(
        "train_dir",
        "/tmp/tfzoo_train",
        "Where checkpoints and summaries go; a "
        "second run on the same directory resumes from its last checkpoint.",
    )
    f.DEFINE_string("model_dir", None, "Directory of the checkpoint to finetune from.")
    f.DEFINE_string(
        "ckpt_file_name",
        None,
        "Checkpoint prefix inside model_dir (e.g. "
        "resnet_v1_50.ckpt); default: the latest checkpoint in model_dir.",
    )
    f.DEFINE_string(
        "checkpoint_exclude_scopes",
        None,
        "Comma-separated scopes NOT restored when "
        "finetuning, e.g. resnet_v1_50/logits for a different num_classes.",
    )
    f.DEFINE_string(
        "trainable_scopes",
        None,
        "Comma-separated scopes to train; the rest frozen. Default: all trainable variables.",
    )
    f.DEFINE_boolean(
        "ignore_missing_vars",
        False,
        "When finetuning, skip variables that the checkpoint lacks instead of failing.",
    )
    f.DEFINE_boolean(
        "restore_all_variables",
        False,
        "When finetuning, restore every global variable (but the optimizer slots, "
        "global step, loss scale and moving averages), not only the model variables.",
    )
    f.DEFINE_boolean(
        "freeze_batch_norm",
        False,
        "Batch norm outside --trainable_scopes runs in inference mode: it normalises with "
        "its moving statistics and does not update them (for frozen-body finetunes); "
        "without --trainable_scopes, every batch norm.",
    )

    # ----------------------------------------------------- learning-rate tuning
    f.DEFINE_float("learning_rate", 0.01, "Initial learning rate (per rank before scaling).")
    f.DEFINE_string(
        "learning_rate_decay_type",
        "exponential",
        "How the learning rate decays, a schedule of training/learning_rates.py SCHEDULES: "
        "fixed, exponential, polynomial, linear, inverse_sqrt, noam, or one a task "
        "registers. linear = to --end_learning_rate at --stop_at_step; inverse_sqrt and "
        "noam warm up over --warmup_steps by themselves.",
    )
    f.DEFINE_float("end_learning_rate", 0.0001, "Final learning rate of polynomial decay.")
    f.DEFINE_float("learning_rate_decay_factor", 0.94, "Exponential decay factor.")
    f.DEFINE_float(
        "num_epochs_per_decay",
        2.0,
        "Epochs between exponential decays / length of polynomial decay.",
    )
    f.DEFINE_integer("warmup_steps", 0, "Steps of warmup from 1% of the rate to the full rate.")
    f.DEFINE_enum(
        "warmup_scheme",
        "t2t",
        ["t2t", "linear"],
        "Warmup shape: t2t = exponential from 1%; linear = from 0 (google's BERT).",
    )
    f.DEFINE_integer(
        "noam_hidden_size",
        512,
        "noam schedule: the model width d in lr * d^-0.5 * min(step^-0.5, step * warmup^-1.5).",
    )
    f.DEFINE_enum(
        "decay_scheme",
        None,
        ["luong234", "luong5", "luong10"],
        "Step decay by halving (overrides learning_rate_decay_type): luong234 = 4 "
        "halvings over the last third of training; luong5 / luong10 = 5 / 10 "
        "halvings over the second half.",
    )
    f.DEFINE_integer(
        "stop_at_step",
        100,
        "Global step at which training stops; default: 100, or the step ending --num_epochs.",
    )
    f.DEFINE_enum(
        "lr_scaling",
        "linear",
        ["linear", "none"],
        "How the learning rate scales with the number of Horovod ranks: linear = times the "
        "ranks, with --allreduce_op=average only (sum and adasum warn and do not scale).",
    )

    # ---------------------------------------------------------------- optimizer
    f.DEFINE_string(
        "optimizer",
        "momentum",
        "Optimizer of training/optimizers.py OPTIMIZERS: adadelta, adagrad, adam, ftrl, "
        "momentum, sgd, rmsprop, adamw, adamweightdecay (FastNN's name for adamw), lamb, or "
        "one a task registers.",
    )
    f.DEFINE_float("adadelta_rho", 0.95, "Adadelta decay rate.")
    f.DEFINE_float("adagrad_initial_accumulator_value", 0.1, "Adagrad starting accumulator.")
    f.DEFINE_float("adam_beta1", 0.9, "Adam first-moment decay.")
    f.DEFINE_float("adam_beta2", 0.999, "Adam second-moment decay.")
    f.DEFINE_float("opt_epsilon", 1.0, "Epsilon of adadelta, adam and rmsprop.")
    f.DEFINE_float("ftrl_learning_rate_power", -0.5, "FTRL learning-rate power (<= 0).")
    f.DEFINE_float("ftrl_initial_accumulator_value", 0.1, "FTRL starting accumulator.")
    f.DEFINE_float("ftrl_l1", 0.0, "FTRL L1 regularisation.")
    f.DEFINE_float("ftrl_l2", 0.0, "FTRL L2 regularisation.")
    f.DEFINE_float("momentum", 0.9, "Momentum of the momentum optimizer.")
    f.DEFINE_float("rmsprop_momentum", 0.9, "RMSProp momentum.")
    f.DEFINE_float("rmsprop_decay", 0.9, "RMSProp decay of the squared-gradient average.")
    f.DEFINE_float(
        "decoupled_weight_decay",
        0.01,
        "adamw / lamb: weight decay added to the update, not the loss (google's "
        "weight_decay_rate); 0 turns it off.",
    )
    f.DEFINE_string(
        "decoupled_weight_decay_exclude",
        "LayerNorm,layer_norm,bias",
        "adamw / lamb: comma-separated regular expressions; variables whose name matches one get no weight "
        "decay (and, for lamb, no trust ratio).",
    )
    f.DEFINE_float("adamw_epsilon", 1e-6, "Epsilon of adamw and lamb (google's BERT: 1e-6).")
    f.DEFINE_float("max_gradient_norm", None, "Clip gradients by this global norm.")

    # ------------------------------------------------------------------ logging
    f.DEFINE_integer(
        "log_every_n_steps",
        10,
        "Log loss, accuracy, learning rate and img/s "
        "every N steps (FastNN: log_loss_every_n_iters).",
    )
    f.DEFINE_integer(
        "save_checkpoints_steps", 1000, "Write a checkpoint every N steps (and always at the end)."
    )
    f.DEFINE_integer("save_summaries_steps", 100, "Write TensorBoard summaries every N steps.")
    f.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept in train_dir.")
    f.DEFINE_integer(
        "profile_every_n_steps",
        0,
        "Write a Chrome trace every N steps (0: off) (FastNN: profile_every_n_iters).",
    )
    f.DEFINE_integer("profile_at_task", 0, "Rank that writes the Chrome traces.")
    f.DEFINE_boolean(
        "log_device_placement", False, "Log the device of every op (TF's log_device_placement)."
    )
    f.DEFINE_string(
        "hooks",
        "StopAtStepHook,ProfilerHook,LoggingTensorHook,CheckpointSaverHook",
        "FastNN: comma-separated training hooks to run (any case), of StopAtStepHook "
        "(required), ProfilerHook, LoggingTensorHook (the step log), CheckpointSaverHook; "
        "the NaN guard, the Horovod broadcast and the eval always run.",
    )
    f.DEFINE_boolean(
        "tf_startup_logs",
        False,
        "Show TensorFlow's C++ start-up banners, hidden by default on machines without a GPU "
        "(also TFZOO_TF_LOGS=1; read from the command line before TensorFlow loads).",
    )
    f.DEFINE_boolean(
        "print_model_statistics",
        False,
        "Print every trainable variable with its "
        "shape and the total parameter count before training.",
    )

    # --------------------------------------------------------------- evaluation
    f.DEFINE_integer(
        "eval_every_n_steps",
        0,
        "Evaluate on --eval_split_name every N training steps and log the task's metrics "
        "(image classification: top-1/top-5; 0: never).",
    )
    f.DEFINE_string(
        "early_stopping_metric",
        None,
        "Stop training when this eval metric (a key of the task's metrics, e.g. "
        "val_accuracy) has not improved for --early_stopping_patience evaluations; "
        "needs --eval_every_n_steps. Default: no early stopping.",
    )
    f.DEFINE_integer(
        "early_stopping_patience", 10, "Evaluations without improvement before early stopping."
    )
    f.DEFINE_enum(
        "early_stopping_mode",
        "max",
        ["max", "min"],
        "Whether --early_stopping_metric improves upwards (accuracy, BLEU) or downwards (loss).",
    )
    f.DEFINE_string(
        "eval_split_name",
        None,
        "Split evaluated during training and by eval_image_classifiers.py; default: the "
        "dataset's held-out split (validation, else test).",
    )
    f.DEFINE_integer("eval_batch_size", 100, "Examples per evaluation batch per rank.")
    f.DEFINE_string("checkpoint_path", None, "eval: a checkpoint file or a directory (latest).")
    f.DEFINE_string("eval_dir", None, "eval: where evaluation summaries go.")
    f.DEFINE_boolean(
        "follow",
        False,
        "eval: keep evaluating each new checkpoint of "
        "--checkpoint_path until --eval_timeout_secs pass without one.",
    )
    f.DEFINE_integer(
        "eval_timeout_secs",
        600,
        "eval --follow: stop after this many seconds without a new checkpoint.",
    )
    f.DEFINE_boolean("use_moving_average", False, "eval: evaluate the moving-average weights.")

    # ------------------------------------------------------- precision / speed
    f.DEFINE_enum(
        "precision",
        "fp32",
        ["fp32", "fp16", "bf16"],
        "Compute precision; weights stay fp32 (master weights), logits and loss are fp32.",
    )
    f.DEFINE_boolean("use_fp16", False, "FastNN's switch: the same as --precision=fp16.")
    f.DEFINE_string("loss_scale", "dynamic", "fp16 loss scale: a number (static) or 'dynamic'.")
    f.DEFINE_integer(
        "loss_scale_growth_steps", 2000, "Dynamic loss scale: good steps before the scale doubles."
    )
    f.DEFINE_integer("inter_op_parallelism_threads", 0, "TF inter-op threads (0: TF's choice).")
    f.DEFINE_integer("intra_op_parallelism_threads", 0, "TF intra-op threads (0: TF's choice).")
    f.DEFINE_boolean(
        "enable_paisoar", False, "FastNN's PAISoar switch: PAI only, does nothing here (Horovod)."
    )
    f.DEFINE_string(
        "protocol", "grpc", "FastNN's PAI transport (grpc, grpc+verbs): does nothing here."
    )

    # -------------------------------------------------------------- distributed
    f.DEFINE_enum(
        "gradient_compression", "none", ["none", "fp16"], "Horovod allreduce compression."
    )
    f.DEFINE_enum(
        "allreduce_op",
        "average",
        ["average", "sum", "adasum"],
        "How the gradients combine over Horovod ranks: average (mean), sum, or adasum "
        "(Adaptive Summation; a power-of-2 number of ranks).",
    )
    f.DEFINE_integer(
        "backward_passes_per_step",
        1,
        "Micro-steps (batches per rank) whose gradients accumulate into one update, with "
        "or without Horovod; the global step counts updates.",
    )
    f.DEFINE_enum(
        "accumulation_reduction",
        "mean",
        ["mean", "sum"],
        "How the --backward_passes_per_step micro-step gradients combine: mean (as one "
        "step on a k times larger batch) or sum.",
    )
    f.DEFINE_integer(
        "fusion_threshold_mb",
        None,
        "Horovod tensor fusion buffer in MB (HOROVOD_FUSION_THRESHOLD).",
    )
    f.DEFINE_float("cycle_time_ms", None, "Horovod cycle time in ms (HOROVOD_CYCLE_TIME).")
    f.DEFINE_boolean(
        "sparse_as_dense",
        None,
        "Horovod: reduce embedding (IndexedSlices) gradients as dense tensors with an "
        "allreduce (true) or allgather their rows (false). Default: the task's (dense for "
        "images and text, allgather for recommendation tables).",
    )

    # ------------------------------------------------------ FastNN's other names
    f.DEFINE_alias("log_loss_every_n_iters", "log_every_n_steps")
    f.DEFINE_alias("profile_every_n_iters", "profile_every_n_steps")


define_flags()
