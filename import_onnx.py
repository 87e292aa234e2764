"""Imports an ONNX image classifier into TensorFlow, checks it, and evaluates or trains it.

Convert, compare with ONNX Runtime on a random batch, save the weights as a checkpoint:
    python import_onnx.py --onnx_path=model.onnx --output=/ckpt/model.ckpt

Finetune it with the training harness (every train_image_classifiers.py flag applies; the
model is registered as 'onnx_model', and training starts from the ONNX weights):
    python import_onnx.py --onnx_path=model.onnx --run=train --preprocessing_name=inception \
        --dataset_name=flowers --dataset_dir=D --num_classes=5 --train_dir=T

Evaluate it (the imported weights, or --checkpoint_path from a finetune):
    python import_onnx.py --onnx_path=model.onnx --run=eval --preprocessing_name=inception \
        --dataset_name=flowers --dataset_dir=D --eval_split_name=validation

The converter (interchange/onnx_import.py) supports the common vision ops; a model with
others is refused with one error listing them. The image input is NCHW (ONNX's layout)
or NHWC (models exported from TensorFlow), detected from its shape unless --onnx_layout
says. The parity check fails when the logits differ from ONNX Runtime's by more than
--tolerance times their largest magnitude (interchange/export.py's rule).
"""

import contextlib
import json
import os
import tempfile

import numpy as np
from absl import app
from absl import flags as absl_flags

import flags
from interchange import export, onnx_import
from slim_compat import tf
from training import runtime

FLAGS = flags.FLAGS
MODEL_NAME = "onnx_model"  # the name an imported model is registered under for --run


def _define_if_absent(kind, name, default, help_string, **kwargs):
    if name not in FLAGS:
        getattr(absl_flags, f"DEFINE_{kind}")(name, default, help_string, **kwargs)


def define_import_flags():
    """The import flags; the harness's flags come from flags.py."""
    _define_if_absent("string", "onnx_path", None, "ONNX model to import.")
    _define_if_absent(
        "string",
        "onnx_layout",
        None,
        "Image input layout, NCHW or NHWC; default: detected from the input shape.",
    )
    _define_if_absent("string", "onnx_output", None, "The logits output; default: the first.")
    _define_if_absent("string", "onnx_scope", "onnx", "Variable scope of the imported weights.")
    _define_if_absent(
        "string", "output", None, "Write the imported weights to this checkpoint prefix."
    )
    if "run" not in FLAGS:
        absl_flags.DEFINE_enum(
            "run",
            "none",
            ["none", "train", "eval"],
            "Then: nothing, train (train_image_classifiers) or eval (eval_image_classifiers).",
        )
    _define_if_absent(
        "float",
        "tolerance",
        export.DEFAULT_TOLERANCE,
        "Parity tolerance: logits relative to their largest magnitude, probabilities absolute.",
    )


define_import_flags()


def _network_fn():
    return onnx_import.network_fn_from_onnx(
        FLAGS.onnx_path, output_name=FLAGS.onnx_output, layout=FLAGS.onnx_layout
    )


def check_and_save(batch_size=2, seed=0):
    """Imports the model, compares it with ONNX Runtime, saves a checkpoint if asked."""
    model = onnx_import.load_model(FLAGS.onnx_path)
    network_fn = _network_fn()
    size = FLAGS.train_image_size or network_fn.default_image_size
    info = onnx_import.image_input(model, None)
    layout = FLAGS.onnx_layout or onnx_import.input_layout(model)
    dims = onnx_import.static_dims(info)
    channels = dims[1] if layout == "NCHW" else dims[3]
    if not size or not channels:
        raise ValueError(
            f"The ONNX input has no static size / channels ({dims}): pass --train_image_size"
        )
    images = np.random.RandomState(seed).uniform(-1, 1, (batch_size, size, size, channels))
    images = images.astype(np.float32)
    onnx_images = images.transpose(0, 3, 1, 2) if layout == "NCHW" else images
    import onnxruntime

    ort_session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    output_name = FLAGS.onnx_output or model.graph.output[0].name
    reference = ort_session.run([output_name], {info.name: onnx_images})[0]
    with tf.Graph().as_default():
        logits, _ = network_fn(tf.constant(images), is_training=False, scope=FLAGS.onnx_scope)
        variables = tf.global_variables()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            imported = session.run(logits)
            if FLAGS.output:
                os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
                tf.train.Saver(variables).save(session, FLAGS.output, write_meta_graph=False)
    # The probabilities of both sides are the softmax of their logits.
    report = export.check_parity(
        (reference, _softmax(reference)),
        (imported, _softmax(imported)),
        FLAGS.tolerance,
        what=f"imported {FLAGS.onnx_path}",
    )
    return {
        "onnx_path": FLAGS.onnx_path,
        "layout": layout,
        "image_size": size,
        "channels": channels,
        "num_variables": len(variables),
        "num_parameters": int(sum(v.shape.num_elements() for v in variables)),
        "checkpoint": FLAGS.output,
        "parity_with_onnxruntime": report._asdict(),
    }


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def register_model():
    """Registers the ONNX model in nets_factory as MODEL_NAME and points --model_name at it."""
    from image_models import nets_factory

    if not FLAGS.preprocessing_name:
        raise ValueError(
            "--preprocessing_name is required with --run=train|eval: the preprocessing the "
            "ONNX model expects (lenet, cifarnet, vgg or inception)"
        )
    network_fn = _network_fn()
    scope = FLAGS.onnx_scope

    def imported_network(images, num_classes=None, is_training=True, **kwargs):
        return network_fn(images, num_classes, is_training, scope=scope, **kwargs)

    size = FLAGS.train_image_size or network_fn.default_image_size
    nets_factory.NETWORKS[MODEL_NAME] = nets_factory.NetworkEntry(
        imported_network,
        onnx_import.onnx_arg_scope,
        size,
        FLAGS.preprocessing_name,
        channels=network_fn.input_channels,  # the ONNX input's (None: the data's own)
    )
    FLAGS.model_name = MODEL_NAME


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    if not FLAGS.onnx_path:
        raise app.UsageError("--onnx_path is required")
    runtime.configure_tf_runtime()
    with contextlib.ExitStack() as cleanup:
        if FLAGS.run == "eval" and not FLAGS.checkpoint_path and not FLAGS.output:
            # Evaluating the ONNX weights themselves: they go through a temporary checkpoint.
            scratch = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="tfzoo_onnx_"))
            FLAGS.output = os.path.join(scratch, "imported.ckpt")
        print(json.dumps(check_and_save(seed=FLAGS.seed)), flush=True)
        if FLAGS.run == "none":
            return
        register_model()
        if FLAGS.run == "train":
            import train_image_classifiers

            train_image_classifiers.train()
        else:
            import eval_image_classifiers

            FLAGS.checkpoint_path = FLAGS.checkpoint_path or FLAGS.output
            eval_image_classifiers.evaluate()


if __name__ == "__main__":
    app.run(main)
