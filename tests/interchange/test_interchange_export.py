"""Export of every registered network to ONNX (and a sample to SavedModel / frozen graph).

Parity rule (interchange/export.py): the exported artefact and the TensorFlow graph run
on the same random batch; max |logits diff| must be <= TOLERANCE * max |logits| and
max |probabilities diff| <= TOLERANCE. Freshly initialized weights are used, with every
constant-initialized variable (biases, batch-norm statistics) randomized so that dropping
one would show. Each net runs at a small input size that it still builds at and with
NUM_CLASSES logits, to keep the file within a few minutes.
"""

import numpy as np
import pytest

from image_models import nets_factory
from interchange import export
from preprocessing import preprocessing_factory
from slim_compat import tf

TOLERANCE = 1e-4
NUM_CLASSES = 10

SMALL_SIZE = 28  # each net runs at this size, or at its entry's min_image_size if larger


def build_small(name, **graph_kwargs):
    """The inference graph of `name` at its small size."""
    size = max(nets_factory.get_entry(name).min_image_size, SMALL_SIZE)
    channels = graph_kwargs.pop("channels", export.input_channels(name))
    return export.build_inference_graph(name, NUM_CLASSES, size, channels, **graph_kwargs)


def _registry():
    """Every registered net, marked slow where its entry says so (graph building and
    tf2onnx's transpose optimizer, whose cost grows with the square of the node count,
    dominate; for 100M+ parameter nets also ONNX Runtime's set-up and the weight copies)."""
    return [
        pytest.param(name, marks=pytest.mark.slow) if entry.slow else name
        for name, entry in sorted(nets_factory.NETWORKS.items())
    ]


def _export(name, fmt, path, perturb, **graph_kwargs):
    inference = build_small(name, **graph_kwargs)
    with tf.Session(graph=inference.graph) as session:
        export.restore_weights(session)
        perturb(session)
        report = export.export(session, inference, fmt, str(path), tolerance=TOLERANCE)
    parity = report["parity"]
    print(
        f"{name} {fmt} at {inference.image_size}px: max |logits diff| "
        f"{parity['max_abs_diff_logits']:.3g} (max |logits| {parity['max_abs_logits']:.3g}), "
        f"max |probabilities diff| {parity['max_abs_diff_probabilities']:.3g}"
    )
    return report


def _check(report):
    parity = report["parity"]
    assert parity["max_abs_logits"] > 0  # an all-zero output would make parity vacuous
    assert parity["max_abs_diff_logits"] <= TOLERANCE * parity["max_abs_logits"]
    assert parity["max_abs_diff_probabilities"] <= TOLERANCE


@pytest.mark.parametrize("name", _registry())
def test_onnx_export_matches_tensorflow(name, tmp_path, perturb_constant_variables):
    report = _export(name, "onnx", tmp_path / f"{name}.onnx", perturb_constant_variables)
    _check(report)
    assert report["outputs"] == {
        "logits": [None, NUM_CLASSES],
        "probabilities": [None, NUM_CLASSES],
    }


SAVED_MODEL_SAMPLE = ("lenet", "cifarnet", "mobilenet_v1_025", "resnet20_cifar", "inception_v1")


@pytest.mark.parametrize("name", [n for n in SAVED_MODEL_SAMPLE if n in nets_factory.NETWORKS])
def test_saved_model_and_frozen_graph_match_tensorflow(name, tmp_path, perturb_constant_variables):
    _check(_export(name, "saved_model", tmp_path / "saved", perturb_constant_variables))
    _check(_export(name, "frozen_graph", tmp_path / "frozen.pb", perturb_constant_variables))


@pytest.mark.parametrize("preprocessing", sorted(preprocessing_factory.PREPROCESSINGS))
def test_in_graph_preprocessing_is_the_eval_preprocessing(preprocessing, graph):
    """preprocess_batch computes, on a batch, what the factory's eval function computes per image."""
    size = 28
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (3, 41, 37, 3)).astype(np.uint8)
    batch = export.preprocess_batch(tf.constant(images), preprocessing, size)
    per_image_fn = preprocessing_factory.get_preprocessing(preprocessing, is_training=False)
    per_image = tf.stack([per_image_fn(tf.constant(image), size, size) for image in images])
    with tf.Session() as session:
        batch_value, per_image_value = session.run([batch, per_image])
    assert batch_value.shape == (3, size, size, 3)
    scale = np.max(np.abs(per_image_value))
    np.testing.assert_allclose(batch_value, per_image_value, atol=1e-5 * scale)


@pytest.mark.parametrize("preprocessing", sorted(preprocessing_factory.PREPROCESSINGS))
def test_onnx_export_with_preprocessing(preprocessing, tmp_path, perturb_constant_variables):
    """uint8 images of another size in, the model's outputs out: ONNX Runtime agrees."""
    report = _export(
        "lenet",
        "onnx",
        tmp_path / "lenet.onnx",
        perturb_constant_variables,
        channels=3,
        with_preprocessing=True,
        preprocessing_name=preprocessing,
    )
    _check(report)
    assert report["input"] == {
        "name": "input",
        "dtype": "uint8",
        "shape": [None, None, None, 3],
        "preprocessing": preprocessing,
    }


def test_saved_model_with_preprocessing(tmp_path, perturb_constant_variables):
    _check(
        _export(
            "cifarnet",
            "saved_model",
            tmp_path / "saved",
            perturb_constant_variables,
            with_preprocessing=True,
        )
    )


def test_parity_failure_reports_the_differences(graph, tmp_path, monkeypatch):
    logits = np.array([[100.0, -50.0], [3.0, 2.0]])
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    report = export.check_parity((logits, probabilities), (logits + 0.009, probabilities), 1e-4)
    assert report.max_abs_diff_logits == pytest.approx(0.009) and report.max_abs_logits == 100.0
    with pytest.raises(export.ParityError, match=r"max \|logits diff\| = 0.011 \(allowed 0.01 = "):
        export.check_parity((logits, probabilities), (logits + 0.011, probabilities), 1e-4)
    with pytest.raises(
        export.ParityError, match=r"max \|probabilities diff\| = 0.001 \(allowed 0.0001\)"
    ):
        export.check_parity((logits, probabilities), (logits, probabilities + 0.001), 1e-4)

    # export() checks what it wrote: a runtime that computes something else fails it.
    inference = export.build_inference_graph("lenet", NUM_CLASSES, channels=1)
    real_run_onnx = export.run_onnx
    monkeypatch.setattr(
        export, "run_onnx", lambda m, x: tuple(v * 1.01 for v in real_run_onnx(m, x))
    )
    with tf.Session(graph=inference.graph) as session:
        export.restore_weights(session)
        with pytest.raises(export.ParityError, match="onnx .*differs from TensorFlow"):
            export.export(session, inference, "onnx", str(tmp_path / "m.onnx"))
        with pytest.raises(
            ValueError,
            match="Unknown export format 'tflite'; expected one of: "
            "frozen_graph, saved_model, onnx",
        ):
            export.export(session, inference, "tflite", str(tmp_path / "m.tflite"))
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "file").write_text("x")
        with pytest.raises(FileExistsError, match="taken.* exists and is not empty"):
            export.export(session, inference, "saved_model", str(tmp_path / "taken"))


def test_checkpoint_mismatches_are_named(tmp_path):
    with tf.Graph().as_default():
        images = tf.zeros([1, 28, 28, 1])
        nets_factory.get_network_fn("lenet", 10)(images)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            prefix = tf.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    inference = export.build_inference_graph("lenet", 5, channels=1)
    with tf.Session(graph=inference.graph) as session:
        with pytest.raises(
            ValueError,
            match=r"with 5 logits: 2 of another shape \(check --num_"
            r"classes.*LeNet/fc4/weights \(checkpoint \[1024, 10\], "
            r"model \[1024, 5\]\)",
        ):
            export.restore_weights(session, prefix)
    inference = export.build_inference_graph("lenet", 10, channels=1)
    with tf.Session(graph=inference.graph) as session:
        with pytest.raises(ValueError, match="no moving averages"):
            export.restore_weights(session, str(tmp_path), moving_average_decay=0.99)
        assert export.restore_weights(session, str(tmp_path)) == prefix
    with pytest.raises(FileNotFoundError, match="No checkpoint at .*nowhere"):
        export.resolve_checkpoint(str(tmp_path / "nowhere"))


def test_num_classes_and_channels_follow_the_dataset():
    assert export.resolve_num_classes(None, "mock") == 1000
    assert export.resolve_num_classes(None, "imagenet", labels_offset=1) == 1000
    assert export.resolve_num_classes(7, "imagenet") == 7
    assert export.input_channels("lenet", "mnist") == 1
    assert export.input_channels("lenet", "mock") == 3
    assert export.input_channels("resnet_v1_50", "mnist") == 3
    with pytest.raises(ValueError, match="Unknown dataset_name 'nope'"):
        export.resolve_num_classes(None, "nope")
