"""Evaluates an image classifier: top-1 and top-5 over a whole split.

Once:       python eval_image_classifiers.py --model_name=lenet --dataset_name=mnist \
                --dataset_dir=D --eval_split_name=test --checkpoint_path=TRAIN_DIR
Following:  add --follow to evaluate each new checkpoint of TRAIN_DIR as it appears, until
            --eval_timeout_secs pass without one.
Several ranks (mpirun / horovodrun) split the examples and sum the counts.

Every example of the split is counted exactly once (the last partial batch included).
"""

if __name__ == "__main__":
    # First, before TensorFlow loads: re-run this process on tcmalloc when it is installed
    # (faster CPU training; TFZOO_MALLOC=system opts out). See training/allocator.py.
    from training import allocator

    allocator.use_tcmalloc()

import json
import os

from absl import app, logging

import flags
from datasets import dataset_factory
from image_models import nets_factory
from slim_compat import tf
from training import checkpoints, distributed, evaluation, input_pipeline, precision, runtime

FLAGS = flags.FLAGS


def build_graph(dist):
    """The eval graph: dataset, network (is_training=False), counting ops, saver."""
    entry = nets_factory.get_entry(FLAGS.model_name)
    compute = precision.resolve_precision(FLAGS.precision, FLAGS.use_fp16)
    spec = dataset_factory.get_dataset(
        FLAGS.dataset_name,
        FLAGS.eval_split_name,
        FLAGS.dataset_dir,
        FLAGS.file_pattern,
        mock_num_classes=FLAGS.num_classes,
    )
    num_classes = (FLAGS.num_classes or spec.num_classes) - FLAGS.labels_offset
    dataset, _ = input_pipeline.build_dataset(
        spec,
        preprocessing_name=FLAGS.preprocessing_name or entry.preprocessing,
        image_size=FLAGS.train_image_size or entry.image_size,
        channels=nets_factory.input_channels(FLAGS.model_name),
        batch_size=FLAGS.eval_batch_size,
        is_training=False,
        rank=dist.rank,
        size=dist.size,
        labels_offset=FLAGS.labels_offset,
        num_preprocessing_threads=FLAGS.num_preprocessing_threads,
    )
    network_fn = nets_factory.get_network_fn(FLAGS.model_name, num_classes, is_training=False)
    ops = evaluation.build_eval_ops(dataset, network_fn, num_classes, dist, compute)
    if FLAGS.use_moving_average:
        # The shadows where the checkpoint has them (a --trainable_scopes run averages only
        # what it trains), the variables themselves elsewhere.
        saver = checkpoints.MovingAverageSaver(FLAGS.moving_average_decay or 0.9999)
    else:
        saver = tf.train.Saver(tf.global_variables())
    return ops, saver, spec


def evaluate_checkpoint(session, ops, saver, checkpoint, dist, summary_writer=None):
    saver.restore(session, checkpoint)
    metrics = evaluation.run_evaluation(session, ops)
    step = int(checkpoint.rsplit("-", 1)[-1]) if "-" in os.path.basename(checkpoint) else 0
    if dist.is_chief:
        logging.info(
            "%s: top-1 %.4f  top-5 %.4f  loss %.4f  over %d examples",
            checkpoint,
            metrics["top1"],
            metrics["top5"],
            metrics["loss"],
            metrics["count"],
        )
        print(json.dumps({"checkpoint": checkpoint, "step": step, **metrics}), flush=True)
        if summary_writer is not None:
            summary_writer.add_summary(
                tf.Summary(
                    value=[
                        tf.Summary.Value(tag=f"eval/{k}", simple_value=metrics[k])
                        for k in ("top1", "top5", "loss")
                    ]
                ),
                step,
            )
            summary_writer.flush()
    return metrics


def resolve(path):
    """A checkpoint prefix from a file prefix or a directory (its latest)."""
    if not path:
        raise ValueError("--checkpoint_path is required (a checkpoint or a training directory)")
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"No checkpoint in directory {path!r}")
        return latest
    if not tf.train.checkpoint_exists(path):
        raise FileNotFoundError(f"No checkpoint at {path!r} (expected {path}.index)")
    return path


def evaluate():
    dist = distributed.init(FLAGS)
    if FLAGS.follow and not os.path.isdir(FLAGS.checkpoint_path or ""):
        raise ValueError(
            f"--follow needs --checkpoint_path to be a directory, got {FLAGS.checkpoint_path!r}"
        )
    ops, saver, _ = build_graph(dist)
    writer = tf.summary.FileWriter(FLAGS.eval_dir) if FLAGS.eval_dir and dist.is_chief else None
    config = distributed.session_config(dist, FLAGS)
    with tf.Session(config=config) as session:
        session.run(tf.local_variables_initializer())
        if not FLAGS.follow:
            return evaluate_checkpoint(
                session, ops, saver, resolve(FLAGS.checkpoint_path), dist, writer
            )
        results = []
        for checkpoint in tf.train.checkpoints_iterator(
            FLAGS.checkpoint_path, min_interval_secs=1, timeout=FLAGS.eval_timeout_secs
        ):
            results.append(evaluate_checkpoint(session, ops, saver, checkpoint, dist, writer))
        return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    runtime.configure_tf_runtime()
    evaluate()


if __name__ == "__main__":
    app.run(main)
