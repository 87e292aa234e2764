"""The recommendation tasks through the public commands: train_rec_models.py (one process and
2 ranks with a model-parallel table, resumed), eval_models.py and export_model.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rec_synthetic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]


def _run(args, ranks=None):
    cmd = [sys.executable] + args
    if ranks:
        cmd = MPIRUN + ["-np", str(ranks), "-x", "TF_CPP_MIN_LOG_LEVEL", "-x", "PYTHONPATH"] + cmd
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _json_line(output):
    """The JSON result an eval / export command prints last."""
    return json.loads(next(ln for ln in reversed(output.splitlines()) if ln.startswith('{"')))


@pytest.mark.slow
def test_ncf_trains_evaluates_and_exports_through_the_public_commands(tmp_path):
    source = rec_synthetic.latent_factor_ratings(tmp_path / "ratings.dat")
    data = str(tmp_path / "ml")
    _run(
        [
            "datasets/download_and_convert_data.py",
            "--dataset_name=movielens",
            f"--source={source}",
            f"--dataset_dir={data}",
        ]
    )
    run = str(tmp_path / "run")
    log = _run(
        [
            "train_rec_models.py",
            "--task=ncf",
            "--model_name=neumf",
            f"--dataset_dir={data}",
            "--optimizer=adam",
            "--opt_epsilon=1e-8",
            "--learning_rate=0.005",
            "--batch_size=256",
            "--weight_decay=0",
            "--stop_at_step=300",
            "--eval_every_n_steps=300",
            f"--train_dir={run}",
        ]
    )
    assert "examples/s" in log
    out = _run(
        [
            "eval_models.py",
            "--task=ncf",
            "--model_name=neumf",
            f"--dataset_dir={data}",
            f"--checkpoint_path={run}",
        ]
    )
    metrics = _json_line(out)
    # Measured 0.77 (popularity: 0.18 on this data, test_recommendation.py).
    assert metrics["count"] == 100 and metrics["hr@10"] > 0.5, metrics
    out = _run(
        [
            "export_model.py",
            "--task=ncf",
            "--model_name=neumf",
            f"--dataset_dir={data}",
            f"--checkpoint={run}",
            f"--output={tmp_path / 'export'}",
            "--format=saved_model",
        ]
    )
    export = _json_line(out)
    assert export["max_abs_diff"]["probability"] < 1e-5


@pytest.mark.slow
@pytest.mark.horovod
def test_two_ranks_train_a_model_parallel_deepfm_resume_and_evaluate_exactly(tmp_path):
    source = rec_synthetic.interaction_clicks(tmp_path / "train.txt", num_lines=3000)
    data = str(tmp_path / "criteo")
    _run(
        [
            "datasets/download_and_convert_data.py",
            "--dataset_name=criteo",
            f"--source={source}",
            f"--dataset_dir={data}",
            "--min_count=1",
            "--num_shards=2",
        ]
    )
    with open(os.path.join(data, "criteo.json")) as f:
        validation = json.load(f)["split_sizes"]["validation"]
    run = tmp_path / "run"
    flags = [
        "train_rec_models.py",
        "--task=ctr",
        "--model_name=deepfm",
        f"--dataset_dir={data}",
        "--embedding_dim=8",
        "--ctr_hidden_units=32,32,32",
        "--optimizer=adagrad",
        "--learning_rate=0.05",
        "--weight_decay=0",
        "--batch_size=64",
        "--model_parallel_embeddings",
        "--min_sharded_rows=10",
        "--save_checkpoints_steps=5",
        "--eval_every_n_steps=10",
        f"--train_dir={run}",
    ]
    first = _run(flags + ["--stop_at_step=10"], ranks=2)
    second = _run(flags + ["--stop_at_step=20"], ranks=2)
    assert "Resuming from" in second and "model.ckpt-10" in second
    for log in (first, second):
        # Every validation impression counted once over the ranks (padding has weight 0).
        assert f"count {validation}" in log, log[-3000:]
    for rank in range(2):
        shards = os.listdir(run / "embedding_shards" / f"rank{rank}-of-2")
        assert {"model.ckpt-10.index", "model.ckpt-20.index"} <= set(shards)
    # Rank 0's checkpoint holds the shared weights, not the shards.
    from slim_compat import tf

    saved = dict(tf.train.list_variables(str(run)))
    assert "deep/tower/layer_0/kernel" in saved and "embedding/shard" not in saved
    # Nor the shards' optimizer slots: each rank saves its own accumulator with its rows.
    assert not [name for name in saved if "/shard" in name], sorted(saved)
    for rank in range(2):
        own = dict(tf.train.list_variables(str(run / "embedding_shards" / f"rank{rank}-of-2")))
        assert {"embedding/shard", "embedding/shard/Adagrad"} <= set(own), sorted(own)
    trained = _eval_line(second, 20)
    common = [
        "--task=ctr",
        "--model_name=deepfm",
        f"--dataset_dir={data}",
        "--embedding_dim=8",
        "--ctr_hidden_units=32,32,32",
        "--model_parallel_embeddings",
        "--min_sharded_rows=10",
    ]
    # The checkpoint evaluated under mpirun with the training's ranks (each its own shard)
    # and in one process (the shards gathered): the training's own eval at step 20.
    for ranks in (2, None):
        metrics = _json_line(
            _run(["eval_models.py"] + common + [f"--checkpoint_path={run}"], ranks=ranks)
        )
        assert metrics["count"] == validation, metrics
        # The log prints 4 decimals.
        assert abs(metrics["auc"] - trained["auc"]) < 2e-4, (ranks, metrics, trained)
        assert abs(metrics["logloss"] - trained["logloss"]) < 2e-4, (ranks, metrics, trained)
    export = _json_line(
        _run(
            ["export_model.py"]
            + common
            + [f"--checkpoint={run}", f"--output={tmp_path / 'export'}", "--format=saved_model"]
        )
    )
    assert export["max_abs_diff"]["probability"] < 1e-5, export
    # The serving model holds the whole table: every rank's rows in one variable.
    from rec_models import sharded_embedding

    with open(os.path.join(data, "criteo.json")) as f:
        num_rows = json.load(f)["num_rows"]
    whole = sharded_embedding.assemble_table(str(run), "embedding", 2, num_rows, step=20)
    exported = tf.train.load_variable(
        str(tmp_path / "export" / "variables" / "variables"), "embedding"
    )
    np.testing.assert_array_equal(exported, whole)


def _eval_line(log, step):
    """The metrics the trainer's eval during training logged at `step`."""
    for line in log.splitlines():
        if "auc " in line and "logloss " in line and f"step {step}" in line:
            words = line.replace(":", " ").split()
            return {k: float(words[words.index(k) + 1]) for k in ("auc", "logloss")}
    raise AssertionError(f"no eval line of step {step} in:\n{log[-3000:]}")
