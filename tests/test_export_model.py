"""export_model.py and import_onnx.py from the command line, on a checkpoint written by training.

The command lines run as subprocesses, several at a time (each spends most of its time
importing TensorFlow).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from slim_compat import tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(
    model_name="lenet",
    dataset_name="mock",
    batch_size=4,
    num_classes=10,
    log_every_n_steps=1,
    save_summaries_steps=1000,
)
DECAY = 0.5  # a short memory, so that 2 steps make the averages differ from the weights


def _run_all(commands):
    """Runs [script, *args] command lines in parallel; returns their CompletedProcess-likes."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    running = [
        subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for command in commands
    ]
    results = []
    for process in running:
        stdout, stderr = process.communicate(timeout=600)
        results.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
    return results


def _report(completed):
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _export_args(fmt, output, checkpoint, *extra):
    return [
        "export_model.py",
        "--model_name=lenet",
        "--num_classes=10",
        f"--format={fmt}",
        f"--output={output}",
        f"--checkpoint={checkpoint}",
        "--batch_size=3",
        *extra,
    ]


@pytest.mark.slow
def test_trained_checkpoint_exports_to_every_format(train, tmp_path):
    train_dir = str(tmp_path / "train")
    train(**TINY, stop_at_step=2, train_dir=train_dir, moving_average_decay=DECAY)
    frozen, saved, onnx_path = (
        str(tmp_path / n) for n in ("lenet.pb", "lenet_saved", "lenet.onnx")
    )
    results = _run_all(
        [
            _export_args("frozen_graph", frozen, train_dir, f"--moving_average_decay={DECAY}"),
            _export_args("saved_model", saved, train_dir),
            _export_args("onnx", onnx_path, train_dir, "--opset=15"),
        ]
    )
    reports = [_report(r) for r in results]
    for report, fmt, path in zip(
        reports, ("frozen_graph", "saved_model", "onnx"), (frozen, saved, onnx_path)
    ):
        print(report)
        assert report["format"] == fmt and report["output"] == path and os.path.exists(path)
        assert report["checkpoint"].endswith("model.ckpt-2")
        assert report["input"] == {
            "name": "input",
            "dtype": "float32",
            "shape": [None, 28, 28, 3],
            "preprocessing": "none (feed preprocessed images)",
        }
        assert report["outputs"] == {"logits": [None, 10], "probabilities": [None, 10]}
        parity = report["parity"]
        assert parity["max_abs_diff_logits"] <= 1e-4 * parity["max_abs_logits"]
        assert parity["max_abs_logits"] > 0
    assert reports[0]["moving_averages"] and not reports[1]["moving_averages"]
    assert reports[2]["opset"] == 15

    # The frozen graph holds the moving averages, the ONNX model the raw weights.
    from interchange import export

    images = np.random.RandomState(0).uniform(-1, 1, (2, 28, 28, 3)).astype(np.float32)
    expected = {}
    for decay in (DECAY, None):
        graph = export.build_inference_graph("lenet", 10, channels=3)
        with tf.Session(graph=graph.graph) as session:
            export.restore_weights(session, train_dir, decay)
            expected[decay] = export.run_tensorflow(session, graph, images)[0]
    assert not np.allclose(expected[DECAY], expected[None], atol=1e-3)
    np.testing.assert_allclose(
        export.run_frozen_graph(frozen, images)[0], expected[DECAY], atol=1e-4
    )
    np.testing.assert_allclose(export.run_onnx(onnx_path, images)[0], expected[None], atol=1e-4)

    # Errors name the bad value; the SavedModel serves in TF2 eager mode; the ONNX model
    # imports back (import_onnx.py compares it with ONNX Runtime and saves a checkpoint).
    eager_load = (
        "import sys, numpy as np, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
        "out = m.signatures['serving_default'](input=tf.constant(np.load(sys.argv[2]))); "
        "import json; print(json.dumps(out['logits'].numpy().tolist()))"
    )
    np.save(tmp_path / "images.npy", images)
    bad_format, no_checkpoint, eager, imported = _run_all(
        [
            _export_args("tflite", str(tmp_path / "x"), train_dir),
            _export_args("onnx", str(tmp_path / "y.onnx"), str(tmp_path / "nowhere")),
            ["-c", eager_load, saved, str(tmp_path / "images.npy")],
            [
                "import_onnx.py",
                f"--onnx_path={onnx_path}",
                f"--output={tmp_path / 'imported' / 'model.ckpt'}",
            ],
        ]
    )
    assert bad_format.returncode != 0
    assert (
        "--format='tflite' is not a format; expected one of: frozen_graph, saved_model, onnx"
        in bad_format.stderr
    )
    assert no_checkpoint.returncode != 0
    assert f"No checkpoint at {str(tmp_path / 'nowhere')!r}" in no_checkpoint.stderr
    assert eager.returncode == 0, eager.stderr[-3000:]
    eager_logits = np.array(json.loads(eager.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(eager_logits, expected[None], atol=1e-4)
    report = _report(imported)
    assert report["layout"] == "NHWC" and report["image_size"] == 28
    assert (
        report["parity_with_onnxruntime"]["max_abs_diff_logits"]
        <= 1e-4 * report["parity_with_onnxruntime"]["max_abs_logits"]
    )
    saved_names = dict(tf.train.list_variables(str(tmp_path / "imported" / "model.ckpt")))
    assert saved_names["onnx/LeNet/fc4/weights"] == [1024, 10]


def test_missing_flags_are_named(tmp_path, export_from_flags):
    """In-process: the checks that run before any graph is built."""
    with pytest.raises(ValueError, match="--format=None is not a format"):
        export_from_flags(output=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="--output is required"):
        export_from_flags(format="onnx")
    with pytest.raises(ValueError, match="--checkpoint is required"):
        export_from_flags(format="onnx", output=str(tmp_path / "a"))
    with pytest.raises(FileNotFoundError, match="No checkpoint in directory"):
        export_from_flags(format="onnx", output=str(tmp_path / "a"), checkpoint=str(tmp_path))


def test_import_onnx_registers_the_model_for_the_harness(tmp_path, monkeypatch):
    """import_onnx.py's steps in-process: check against ONNX Runtime, save, register, train."""
    from absl import flags as absl_flags

    import import_onnx
    import train_image_classifiers
    from image_models import nets_factory
    from interchange import export

    inference = export.build_inference_graph("lenet", 10, channels=3)
    with tf.Session(graph=inference.graph) as session:
        export.restore_weights(session)
        model = export.graph_def_to_onnx(export.freeze(session, inference))
    onnx_path = tmp_path / "lenet.onnx"
    export.write_onnx(model, str(onnx_path))
    monkeypatch.setattr(nets_factory, "NETWORKS", dict(nets_factory.NETWORKS))
    flag_values = dict(
        TINY,
        onnx_path=onnx_path,
        output=tmp_path / "imported" / "model.ckpt",
        preprocessing_name="lenet",
        learning_rate=1e-4,
        stop_at_step=2,
        train_dir=tmp_path / "train",
    )
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["import_onnx"] + [f"--{k}={v}" for k, v in flag_values.items()])
    try:
        with tf.Graph().as_default():
            report = import_onnx.check_and_save()
        import_onnx.register_model()
        assert absl_flags.FLAGS.model_name == import_onnx.MODEL_NAME
        with tf.Graph().as_default():
            result = train_image_classifiers.train()
    finally:
        absl_flags.FLAGS.unparse_flags()
    parity = report["parity_with_onnxruntime"]
    assert parity["max_abs_diff_logits"] <= 1e-4 * parity["max_abs_logits"]
    assert report["num_parameters"] == nets_factory.count_parameters("lenet", 10, 28)
    assert result["checkpoint"].endswith("model.ckpt-2")
    # Training started from the ONNX weights: step 2's weights are close to the saved import.
    imported = tf.train.load_variable(
        str(tmp_path / "imported" / "model.ckpt"), "onnx/LeNet/fc4/weights"
    )
    trained = tf.train.load_variable(result["checkpoint"], "onnx/LeNet/fc4/weights")
    assert imported.shape == trained.shape == (1024, 10)
    assert 0 < np.max(np.abs(trained - imported)) < 0.1 * np.max(np.abs(imported))
