"""The translation task under mpirun: 2 ranks equal one process with the double batch.

The records are written directly: every pair has the same length, so a batch of B
sentences holds B * L target tokens on any rank, and the mean over tokens of the double
batch is the mean of the two ranks' means (what Horovod's averaged gradients compute).
Dropout 0, no shuffle, one train shard: 2 ranks take every other example of it (the
input pipeline's example sharding), one process all of them in the same order.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datasets import dataset_factory, translation
from preprocessing import sentencepiece_bpe
from slim_compat import tf

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.path.join(HERE, "translation_driver.py")
LENGTH = 6


def _write_dataset(directory, vocab_size=300):
    os.makedirs(directory)
    words = "open save close file window folder document new old print page all".split()
    rng = np.random.default_rng(0)
    text = [" ".join(rng.choice(words, 5)) for _ in range(200)]
    sentencepiece_bpe.train_bpe(text, os.path.join(directory, "spm"), vocab_size=vocab_size)
    shards = {"train": 1, "test": 1}
    sizes = {}
    for split, count in shards.items():
        n = 0
        for shard in range(count):
            name = translation.FILE_PATTERN.format(split=split).replace(
                "*", f"{shard:05d}-of-{count:05d}"
            )
            with tf.io.TFRecordWriter(os.path.join(directory, name)) as writer:
                for _ in range(64):
                    ids = list(rng.integers(4, vocab_size, LENGTH - 1)) + [translation.EOS_ID]
                    target = list(reversed(ids[:-1])) + [translation.EOS_ID]
                    writer.write(translation.encode_example(ids, target).SerializeToString())
                    n += 1
        sizes[split] = n
    with open(os.path.join(directory, dataset_factory.SPLIT_SIZES_FILENAME), "w") as f:
        json.dump(sizes, f)


def _launch(out_dir, flags, np_):
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    cmd = [sys.executable, DRIVER, out_dir] + flags
    if np_ > 1:
        cmd = [
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            # More ranks than free cores: a rank waiting in a collective yields its core.
            "--mca",
            "mpi_yield_when_idle",
            "1",
            "-np",
            str(np_),
            "-x",
            "TF_CPP_MIN_LOG_LEVEL",
            "-x",
            "PYTHONPATH",
        ] + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = []
    for rank in range(np_):
        with open(os.path.join(out_dir, f"rank{rank}.json")) as f:
            info = json.load(f)
        info["weights"] = dict(np.load(os.path.join(out_dir, f"rank{rank}.npz")))
        results.append(info)
    return results


def test_two_ranks_equal_one_process_with_the_double_batch(tmp_path):
    data = str(tmp_path / "data")
    _write_dataset(data)
    common = [
        f"--dataset_dir={data}",
        "--model_name=transformer_tiny",
        "--model_hparams=dropout=0.0,attention_dropout=0.0,relu_dropout=0.0",
        "--batch_tokens=0",
        "--shuffle_buffer_size=1",
        "--optimizer=sgd",
        "--learning_rate=0.5",
        "--learning_rate_decay_type=fixed",
        "--lr_scaling=none",
        "--log_every_n_steps=1",
        "--stop_at_step=4",
    ]
    two = _launch(
        str(tmp_path / "two"), common + ["--batch_size=4", f"--train_dir={tmp_path}/b"], 2
    )
    (one,) = _launch(
        str(tmp_path / "one"), common + ["--batch_size=8", f"--train_dir={tmp_path}/a"], 1
    )
    assert [r["size"] for r in two] == [2, 2] and one["size"] == 1
    names = sorted(one["weights"])
    assert "transformer/embeddings/shared_weights" in names
    for name in names:
        np.testing.assert_array_equal(two[0]["weights"][name], two[1]["weights"][name])
        np.testing.assert_allclose(
            two[0]["weights"][name], one["weights"][name], rtol=1e-4, atol=1e-6, err_msg=name
        )
    # The weights moved (the comparison is not of two initial states).
    start = two[0]["log"]
    assert start["1"]["loss"] > start["4"]["loss"]
    for step, values in one["log"].items():
        assert two[0]["log"][step]["loss"] == pytest.approx(values["loss"], rel=1e-4)
    np.testing.assert_array_equal(one["weights"]["transformer/embeddings/shared_weights"][0], 0.0)
