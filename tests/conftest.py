"""Test-wide set-up: graph mode (as in the entry points) and quiet TensorFlow logs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

from slim_compat import tf  # noqa: E402
from training import runtime  # noqa: E402

runtime.configure_tf_runtime()  # graph mode, TF1 tensor semantics, as the entry points
tf.logging.set_verbosity(tf.logging.ERROR)


@pytest.fixture
def graph():
    """A fresh default graph for one test."""
    with tf.Graph().as_default() as g:
        yield g


def run_entry_point(module, function, **flag_values):
    """Runs `module.function()` in-process with these flags (others at their defaults)."""
    from absl import flags as absl_flags

    import flags  # noqa: F401  (defines the flags)

    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test"] + [f"--{k}={v}" for k, v in flag_values.items()])
    try:
        with tf.Graph().as_default():
            return getattr(module, function)()
    finally:
        absl_flags.FLAGS.unparse_flags()


@pytest.fixture
def train():
    """train(**flags) -> the result dict of train_image_classifiers.train()."""
    import train_image_classifiers

    return lambda **flags: run_entry_point(train_image_classifiers, "train", **flags)


@pytest.fixture
def evaluate():
    """evaluate(**flags) -> the metrics of eval_image_classifiers.evaluate()."""
    import eval_image_classifiers

    return lambda **flags: run_entry_point(eval_image_classifiers, "evaluate", **flags)


@pytest.fixture
def export_from_flags():
    """export_from_flags(**flags) -> the report of export_model.export_from_flags()."""
    import export_model

    return lambda **flags: run_entry_point(export_model, "export_from_flags", **flags)


@pytest.fixture
def write_mnist_records(tmp_path):
    """write_mnist_records(sizes={'train': n, 'test': m}, num_shards=1) -> dataset_dir.

    Tiny MNIST-format tfrecords whose label is readable from the image (a bright band at
    row label * 2), so a short run can learn them.
    """
    import json

    import numpy as np

    from datasets import dataset_factory, example_encoders

    def write(sizes, num_shards=1, seed=0, directory=None):
        out = directory or tmp_path / "mnist"
        out.mkdir(parents=True, exist_ok=True)
        rng = np.random.RandomState(seed)
        for split, n in sizes.items():
            examples = []
            for i in range(n):
                label = i % 10
                pixels = rng.randint(0, 60, size=(28, 28, 1)).astype(np.uint8)
                pixels[label * 2 + 4 : label * 2 + 6, :, 0] = 250
                examples.append(example_encoders.encode_pixels((pixels, label)))
            for shard in range(num_shards):
                path = out / dataset_factory.shard_filename("mnist", split, shard, num_shards)
                with tf.io.TFRecordWriter(str(path)) as w:
                    for ex in examples[shard::num_shards]:
                        w.write(ex.SerializeToString())
        (out / "split_sizes.json").write_text(json.dumps(sizes))
        return str(out)

    return write
