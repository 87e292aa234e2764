"""Exports a trained image classifier as a frozen graph, a SavedModel or an ONNX model.

    python export_model.py --model_name=resnet_v1_50 --checkpoint=TRAIN_DIR \
        --format=onnx --output=resnet_v1_50.onnx [--num_classes=1001] [--with_preprocessing]

--checkpoint is a checkpoint prefix or a training directory (its latest checkpoint). The
number of classes is --num_classes or the dataset's (--dataset_name), minus
--labels_offset, as in training. With --moving_average_decay (or --use_moving_average)
the exponential moving averages saved by training are exported instead of the raw
weights. The artefact has the input 'input' (float32 [batch, size, size, channels],
preprocessed images; with --with_preprocessing uint8 [batch, height, width, channels] of
any size, preprocessed in the graph) and the outputs 'logits' and 'probabilities'.
--format=saved_model writes a directory with the signature 'serving_default'.

Any other task (--task=NAME, with the flags of its training run) exports a SavedModel or
an ONNX model of its own signature (Task.export_signature: e.g. token ids in, decoded ids
out), checked the same way on the task's example batch (interchange/task_export.py).

After writing, the artefact is run (ONNX Runtime, tf.saved_model.load, or a fresh graph)
on a random batch of --batch_size images and compared with the TensorFlow graph; the
export fails when the logits differ by more than --tolerance times their largest
magnitude, or the probabilities by more than --tolerance (interchange/export.py). A JSON
line describing the artefact and the measured differences is printed last.
"""

import json

from absl import app
from absl import flags as absl_flags

import flags
from interchange import export, task_export
from slim_compat import tf
from training import runtime, task, trainer

FLAGS = flags.FLAGS


def _define_if_absent(kind, name, default, help_string, **kwargs):
    if name not in FLAGS:
        getattr(absl_flags, f"DEFINE_{kind}")(name, default, help_string, **kwargs)


def define_export_flags():
    """The export flags; the model, dataset and moving-average flags come from flags.py."""
    _define_if_absent(
        "string",
        "checkpoint",
        None,
        "Checkpoint prefix, or a training directory (its latest checkpoint), to export.",
    )
    _define_if_absent("string", "format", None, f"Artefact format: {' | '.join(export.FORMATS)}.")
    _define_if_absent(
        "string",
        "output",
        None,
        "Output file (frozen_graph: .pb, onnx: .onnx) or new directory (saved_model).",
    )
    _define_if_absent(
        "integer",
        "image_size",
        None,
        "Input side in pixels; default: --eval_image_size, else --train_image_size, else the "
        "model's default size.",
    )
    _define_if_absent("integer", "opset", export.DEFAULT_OPSET, "ONNX opset of --format=onnx.")
    _define_if_absent(
        "boolean",
        "with_preprocessing",
        False,
        "Take uint8 images of any size and "
        "apply the model's evaluation preprocessing inside the exported graph.",
    )
    _define_if_absent(
        "float",
        "tolerance",
        export.DEFAULT_TOLERANCE,
        "Parity tolerance: logits relative to their largest magnitude, probabilities absolute.",
    )


define_export_flags()
IMAGES = "image_classification"  # this script's default --task
trainer.define_task_flag(IMAGES)


def export_task_from_flags():
    """The SavedModel or ONNX model of --task (not image classification), by its signature."""
    if FLAGS.format not in task_export.FORMATS:
        raise ValueError(
            f"--task={trainer.task_name(IMAGES)} exports --format="
            f"{' | '.join(task_export.FORMATS)}, got --format={FLAGS.format!r}"
        )
    checkpoint = export.resolve_checkpoint(FLAGS.checkpoint)
    decay = FLAGS.moving_average_decay or (0.9999 if FLAGS.use_moving_average else None)
    return task_export.export_task(
        task.get_task(trainer.task_name(IMAGES)),
        FLAGS,
        checkpoint,
        FLAGS.output,
        moving_average_decay=decay,
        batch_size=FLAGS.batch_size,
        seed=FLAGS.seed,
        tolerance=FLAGS.tolerance,
        fmt=FLAGS.format,
        opset=FLAGS.opset,
    )


def export_from_flags():
    """Builds, restores, writes and checks the artefact the flags describe; returns the report."""
    if FLAGS.format not in export.FORMATS:
        raise ValueError(
            f"--format={FLAGS.format!r} is not a format; expected one of: "
            f"{', '.join(export.FORMATS)}"
        )
    if not FLAGS.output:
        raise ValueError("--output is required (a file, or a new directory for saved_model)")
    if not FLAGS.checkpoint:
        raise ValueError("--checkpoint is required (a checkpoint prefix or a training directory)")
    if trainer.task_name(IMAGES) != IMAGES:
        return export_task_from_flags()
    checkpoint = export.resolve_checkpoint(FLAGS.checkpoint)  # fails before any building
    num_classes = export.resolve_num_classes(
        FLAGS.num_classes, FLAGS.dataset_name, FLAGS.labels_offset, FLAGS.dataset_dir
    )
    inference_graph = export.build_inference_graph(
        FLAGS.model_name,
        num_classes,
        image_size=FLAGS.image_size or FLAGS.eval_image_size or FLAGS.train_image_size,
        channels=export.input_channels(FLAGS.model_name, FLAGS.dataset_name),
        with_preprocessing=FLAGS.with_preprocessing,
        preprocessing_name=FLAGS.preprocessing_name,
    )
    decay = FLAGS.moving_average_decay or (0.9999 if FLAGS.use_moving_average else None)
    with tf.Session(graph=inference_graph.graph) as session:
        export.restore_weights(session, checkpoint, decay)
        report = export.export(
            session,
            inference_graph,
            FLAGS.format,
            FLAGS.output,
            FLAGS.opset,
            FLAGS.tolerance,
            FLAGS.batch_size,
            seed=FLAGS.seed,
        )
    report["checkpoint"] = checkpoint
    report["moving_averages"] = bool(decay)
    return report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    runtime.configure_tf_runtime()
    report = export_from_flags()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    app.run(main)
