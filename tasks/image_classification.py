"""The image-classification task: TF-Slim's networks, preprocessing and loss on the trainer.

Features are {"images": float32 [B, H, W, C] preprocessed, "labels": int64 [B]}. The
model is the network of --model_name (image_models/nets_factory.py) with the classes of
the dataset (--num_classes, else the dataset's, minus --labels_offset). The loss is
TF-Slim's: softmax cross-entropy with --label_smoothing, the auxiliary head's loss
(NetworkEntry.aux_loss_weight) when the network has one, and the regularisation losses.
Evaluation counts top-1 / top-5 hits (exact top-k, see `top_k_correct`) and sums the
cross-entropy, so every example of the split counts once over all ranks.

The functions below the task are the image pieces the scripts and the benchmark share:
`make_dataset` (the pipeline with the flags' knobs), `build_logits`,
`classification_loss`, `build_train_step` (the benchmark times this very step).
"""

import inspect

from datasets import dataset_factory
from image_models import nets_factory
from slim_compat import tf
from training import checkpoints, evaluation, input_pipeline, precision, task, trainer

# The generic pass over a split, re-exported beside this task's build_eval_ops.
run_evaluation = evaluation.run_evaluation


# --------------------------------------------------------------------- the pieces
def make_dataset(spec, entry, split_is_train, dist, batch_size, start_step=0, params=None):
    """The input pipeline of this rank for `spec`, with the flags' knobs: (dataset, plan).

    The dataset yields (images, labels) batches; `plan` says how the files were sharded
    (None for synthetic data).
    """
    if params is None:
        import flags

        params = flags.FLAGS
    train_size = params.train_image_size or entry.image_size
    return input_pipeline.build_dataset(
        spec,
        preprocessing_name=params.preprocessing_name or entry.preprocessing,
        image_size=train_size if split_is_train else (params.eval_image_size or train_size),
        channels=nets_factory.input_channels(params.model_name),
        batch_size=batch_size,
        is_training=split_is_train,
        rank=dist.rank,
        size=dist.size,
        seed=params.seed,
        labels_offset=params.labels_offset,
        shuffle_buffer_size=params.shuffle_buffer_size,
        num_readers=params.num_readers,
        num_preprocessing_threads=params.num_preprocessing_threads,
        num_parallel_batches=params.num_parallel_batches,
        prefetch_buffer_size=params.prefetch_buffer_size,
        use_caching=params.datasets_use_caching and split_is_train,
        start_step=start_step,
    )


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


def build_logits(network_fn, images, precision_name="fp32", reuse=None, **net_kwargs):
    """Builds the network in its precision scope and returns (fp32 logits, end_points).

    Args:
        network_fn: from nets_factory.get_network_fn.
        images: float32 batch [B, H, W, C].
        precision_name: 'fp32', 'fp16' or 'bf16'.
        reuse: True to share the variables of an earlier call (the eval tower).
        **net_kwargs: passed to the network (e.g. dropout_keep_prob).
    """
    with precision.model_scope(precision_name, reuse=reuse) as dtype:
        return _network_outputs(network_fn, images, dtype, **net_kwargs)


def _network_outputs(network_fn, images, dtype, **net_kwargs):
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


def top_k_correct(logits, labels, num_classes):
    """Counts of the batch's examples whose label is the top-1 / among the top-5 predictions.

    The predictions are the indices of tf.math.top_k, which breaks ties by the lower class
    index, so each example has exactly k predicted classes. (tf.nn.in_top_k counts a label
    tied with the k-th largest logit as correct: a net with constant logits would score 100%.)

    Returns:
        (top1, top5): float64 scalars; top-5 is top-all when there are fewer than 5 classes.
    """
    k = min(5, num_classes)
    _, predicted = tf.math.top_k(logits, k=k, sorted=True)
    hits = tf.equal(predicted, tf.cast(labels, predicted.dtype)[:, None])  # [B, k]
    top1 = tf.reduce_sum(tf.cast(hits[:, 0], tf.float64))
    top5 = tf.reduce_sum(tf.cast(tf.reduce_any(hits, axis=1), tf.float64))
    return top1, top5


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
    """The trainer's step (trainer.build_train_step) on this task's loss, for one batch.

    What scripts/benchmark.py times: the network in its precision, TF-Slim's loss and the
    trainer's update, exactly as training builds them.

    Returns:
        (trainer.TrainStep, total_loss, cross_entropy, accuracy).
    """
    net_kwargs = {}
    if getattr(params, "dropout_keep_prob", None) is not None:
        net_kwargs["dropout_keep_prob"] = params.dropout_keep_prob
    logits, end_points = build_logits(network_fn, images, compute, **net_kwargs)
    total_loss, cross_entropy = classification_loss(
        logits, end_points, labels, num_classes, params.label_smoothing, aux_loss_weight
    )
    step = trainer.build_train_step(params, total_loss, compute, dist, global_step, steps_per_epoch)
    return step, total_loss, cross_entropy, batch_accuracy(logits, labels)


def _as_features(images, labels):
    return {"images": images, "labels": labels}


def build_eval_ops(dataset, network_fn, num_classes, dist, precision_name="fp32", reuse=None):
    """Eval ops of `network_fn` on a dataset of (images, labels) batches (run_evaluation).

    The task's own statistics, for a network built outside the task (tests, tools).
    """
    eval_task = _GivenNetwork(network_fn, num_classes)
    return evaluation.build_eval_ops(
        eval_task, dataset.map(_as_features), None, dist, precision_name, reuse
    )


# ----------------------------------------------------------------------- the task
class ImageClassificationTask(task.Task):
    """Image classification with the networks of image_models/nets_factory.py."""

    name = "image_classification"
    family = "image"
    throughput_labels = {"examples": ("images_per_sec", "img/s")}

    def __init__(self):
        self._num_classes = None
        self._entry = None

    def check_params(self, params, dist):
        self._entry = nets_factory.get_entry(params.model_name)
        check_dropout_keep_prob(params.model_name, params.dropout_keep_prob)

    def _get_entry(self, params):
        if self._entry is None:
            self._entry = nets_factory.get_entry(params.model_name)
        return self._entry

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        entry = self._get_entry(params)
        if is_training:
            file_pattern = params.train_files or params.file_pattern
        else:
            # The eval script reads --file_pattern; evaluation during training, the split's own.
            file_pattern = getattr(params, "eval_file_pattern", None)
        spec = dataset_factory.get_dataset(
            params.dataset_name, split, params.dataset_dir, file_pattern,
            mock_num_classes=params.num_classes,
        )  # fmt: skip
        self._num_classes = (params.num_classes or spec.num_classes) - params.labels_offset
        dist = _Place(rank, size)
        dataset, plan = make_dataset(spec, entry, is_training, dist, batch_size, start_step, params)
        num_samples = spec.num_samples
        if is_training and params.num_sample_per_epoch:
            num_samples = params.num_sample_per_epoch
        where = plan.description if plan else f"synthetic data sharded over {size} rank(s)"
        return task.InputData(
            dataset.map(_as_features),
            num_samples,
            f"dataset {spec.name}/{spec.split}: {num_samples} examples, "
            f"{self._num_classes} classes; {where}",
            errors_named=lambda: dataset_factory.input_errors_named(spec),
        )

    def _network_fn(self, params, is_training):
        if not is_training:
            return nets_factory.get_network_fn(
                params.model_name, self._num_classes, is_training=False
            )
        return nets_factory.get_network_fn(
            params.model_name,
            self._num_classes,
            weight_decay=params.weight_decay,
            is_training=True,
            # Batch norm outside --trainable_scopes normalises with its (restored) statistics.
            freeze_batch_norm=(
                checkpoints.split_scopes(params.trainable_scopes)
                if params.freeze_batch_norm
                else None
            ),
        )

    def build_model(self, features, params, is_training, compute_dtype):
        net_kwargs = {}
        if is_training and getattr(params, "dropout_keep_prob", None) is not None:
            net_kwargs["dropout_keep_prob"] = params.dropout_keep_prob
        network_fn = self._network_fn(params, is_training)
        logits, end_points = _network_outputs(
            network_fn, features["images"], compute_dtype, **net_kwargs
        )
        outputs = {"logits": logits}
        if "AuxLogits" in end_points:
            outputs["AuxLogits"] = end_points["AuxLogits"]
        return outputs

    def build_losses(self, features, outputs, params):
        total, cross_entropy = classification_loss(
            outputs["logits"],
            outputs,
            features["labels"],
            self._num_classes,
            params.label_smoothing,
            self._get_entry(params).aux_loss_weight,
        )
        return task.Losses(total, {"cross_entropy": cross_entropy})

    def train_metrics(self, features, outputs):
        return {"accuracy": batch_accuracy(outputs["logits"], features["labels"])}

    def eval_statistics(self, features, outputs):
        logits, labels = outputs["logits"], features["labels"]
        top1, top5 = top_k_correct(logits, labels, self._num_classes)
        loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        )
        return {
            "top1": top1,
            "top5": top5,
            "loss": tf.cast(loss, tf.float64),
            "count": tf.cast(tf.shape(labels)[0], tf.float64),
        }

    def metrics_from_sums(self, sums):
        count = sums["count"]
        return {
            "top1": sums["top1"] / count,
            "top5": sums["top5"] / count,
            "loss": sums["loss"] / count,
            "count": int(count),
        }

    def format_metrics(self, metrics):
        return (
            f"top-1 {metrics['top1']:.4f}  top-5 {metrics['top5']:.4f}  loss {metrics['loss']:.4f}"
        )

    def batch_counts(self, features):
        return {"examples": tf.shape(features["labels"])[0]}

    def export_signature(self, params):
        from interchange import export

        num_classes = export.resolve_num_classes(
            params.num_classes, params.dataset_name, params.labels_offset, params.dataset_dir
        )
        entry = self._get_entry(params)
        size = params.eval_image_size or params.train_image_size or entry.image_size
        channels = export.input_channels(params.model_name, params.dataset_name)
        images = tf.placeholder(tf.float32, [None, size, size, channels], name="input")
        network_fn = nets_factory.get_network_fn(params.model_name, num_classes)
        logits, _ = network_fn(images)
        logits = tf.cast(logits, tf.float32)
        return task.ExportSignature(
            {"input": images}, {"logits": logits, "probabilities": tf.nn.softmax(logits)}
        )


class _GivenNetwork(ImageClassificationTask):
    """The task's evaluation for a network function given by the caller."""

    def __init__(self, network_fn, num_classes):
        super().__init__()
        self._given = network_fn
        self._num_classes = num_classes

    def build_model(self, features, params, is_training, compute_dtype):
        logits, _ = _network_outputs(self._given, features["images"], compute_dtype)
        return {"logits": logits}


class _Place:
    """A rank and a number of ranks, as make_dataset reads them from a Distributed."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


task.register_task(ImageClassificationTask.name, ImageClassificationTask)
