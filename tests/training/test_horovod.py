"""Horovod data-parallel training, launched for real with mpirun and horovodrun on this CPU.

Each test starts 2 ranks of tests/training/horovod_driver.py, which runs the real
train_image_classifiers.train() and saves every rank's weights at the start (after
init / restore / broadcast) and at the end. Every launch has a time bound, so a rank that
waits forever in an allreduce fails the test instead of hanging it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "tests", "training", "horovod_driver.py")
BIN = os.path.dirname(sys.executable)
LAUNCH_TIMEOUT = 400  # seconds; two TF processes on 2 busy cores start in ~30-60 s

# lenet without dropout, no shuffle, no lr scaling: 2 ranks x batch B must equal 1 x 2B.
EXACT = [
    "--model_name=lenet",
    "--num_classes=10",
    "--dropout_keep_prob=1.0",
    "--shuffle_buffer_size=1",
    "--optimizer=sgd",
    "--learning_rate=0.003",
    "--learning_rate_decay_type=fixed",
    "--lr_scaling=none",
    "--log_every_n_steps=1",
]


def launch(out_dir, flags, np_=2, launcher="mpirun", driver=DRIVER, env=None, check=True):
    """Runs `driver` on np_ ranks; returns (per-rank results, the CompletedProcess).

    env: more environment variables for every rank (the driver's TFZOO_TEST_* faults).
    check: assert a zero exit status; with check=False the run returns (None, proc).
    """
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(env or {}))
    if launcher == "mpirun":
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
        ]
        for name in extra_env_names(env):
            cmd += ["-x", name]
    elif launcher == "horovodrun":
        cmd = [os.path.join(BIN, "horovodrun"), "--gloo", "-np", str(np_), "-H", f"localhost:{np_}"]
    else:
        cmd = []
    cmd += [sys.executable, driver, out_dir] + flags
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT
    )
    if not check:
        return None, proc
    assert proc.returncode == 0, f"{launcher} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    ranks = []
    for r in range(np_):
        with open(os.path.join(out_dir, f"rank{r}.json")) as f:
            info = json.load(f)
        info["weights"] = dict(np.load(os.path.join(out_dir, f"rank{r}.npz")))
        ranks.append(info)
    return ranks, proc


def extra_env_names(env):
    return sorted(k for k in env if k.startswith("TFZOO_TEST_"))


def assert_same_weights(a, b, rtol=0.0, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def checkpoint_files(d):
    return (
        sorted(f for f in os.listdir(d) if f.startswith("model.ckpt")) if os.path.isdir(d) else []
    )


def test_mpirun_two_ranks_match_one_process_with_double_batch(tmp_path):
    steps = 5
    two, _ = launch(
        str(tmp_path / "two"),
        EXACT
        + ["--batch_size=4", f"--stop_at_step={steps}", f"--train_dir={tmp_path}/two/rank{{rank}}"],
    )
    one, _ = launch(
        str(tmp_path / "one"),
        EXACT + ["--batch_size=8", f"--stop_at_step={steps}", f"--train_dir={tmp_path}/one/rank0"],
        np_=1,
        launcher="none",
    )

    assert [r["size"] for r in two] == [2, 2] and one[0]["size"] == 1
    # Both ranks end with bit-identical weights (allreduced gradients, same update).
    assert_same_weights(two[0]["weights"], two[1]["weights"])
    # ... equal to one process on the union of their batches, up to float32 summation order.
    assert_same_weights(two[0]["weights"], one[0]["weights"], rtol=1e-4, atol=1e-6)
    # The logged loss is the mean over ranks: the same as the single process's, step by step.
    assert list(two[0]["losses"]) == [str(s) for s in range(1, steps + 1)]
    for step, loss in one[0]["losses"].items():
        assert two[0]["losses"][step] == pytest.approx(loss, rel=1e-4)
        assert two[1]["losses"][step] == two[0]["losses"][step]
    # Only rank 0 wrote checkpoints.
    assert checkpoint_files(str(tmp_path / "two" / "rank0"))
    assert checkpoint_files(str(tmp_path / "two" / "rank1")) == []
    assert two[1]["checkpoint"] is None


def test_horovodrun_gloo_two_ranks_identical_weights(tmp_path):
    ranks, _ = launch(
        str(tmp_path / "g"),
        EXACT + ["--batch_size=4", "--stop_at_step=3", f"--train_dir={tmp_path}/g/rank{{rank}}"],
        launcher="horovodrun",
    )
    assert [r["size"] for r in ranks] == [2, 2]
    assert_same_weights(ranks[0]["weights"], ranks[1]["weights"])
    start = {k: v for k, v in ranks[0]["weights"].items() if k.startswith("start/")}
    end = {
        k.replace("end/", "start/"): v
        for k, v in ranks[0]["weights"].items()
        if k.startswith("end/")
    }
    assert any(not np.array_equal(start[k], end[k]) for k in start)  # it did train


def test_resume_and_finetune_start_every_rank_from_restored_weights(tmp_path):
    from slim_compat import tf

    train_dir = str(tmp_path / "r" / "train")
    # Rank 0 writes checkpoint 3 into the shared train_dir.
    launch(
        str(tmp_path / "r1"),
        EXACT + ["--batch_size=4", "--stop_at_step=3", f"--train_dir={train_dir}"],
    )
    reader = tf.train.NewCheckpointReader(tf.train.latest_checkpoint(train_dir))
    saved = {
        k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith("LeNet")
    }

    # Resume on 2 ranks: both start from checkpoint 3 and go on to step 5.
    resumed, _ = launch(
        str(tmp_path / "r2"),
        EXACT + ["--batch_size=4", "--stop_at_step=5", f"--train_dir={train_dir}"],
    )
    for r in resumed:
        assert sorted(r["losses"]) == ["4", "5"]
        assert_same_weights({k: r["weights"][f"start/{k}"] for k in saved}, saved)

    # Finetune 10 -> 5 classes on 2 ranks: restored body and the broadcast new head agree.
    tuned, _ = launch(
        str(tmp_path / "ft"),
        EXACT[:1]
        + ["--num_classes=5"]
        + EXACT[2:]
        + [
            "--batch_size=4",
            "--stop_at_step=2",
            "--task_type=finetune",
            f"--model_dir={train_dir}",
            "--ckpt_file_name=model.ckpt-3",
            "--checkpoint_exclude_scopes=LeNet/fc4",
            f"--train_dir={tmp_path}/ft/rank{{rank}}",
        ],
    )
    starts = [{k[6:]: v for k, v in r["weights"].items() if k.startswith("start/")} for r in tuned]
    assert_same_weights(starts[0], starts[1])
    assert starts[0]["LeNet/fc4/weights"].shape == (1024, 5)
    for k in saved:
        if not k.startswith("LeNet/fc4"):
            np.testing.assert_array_equal(starts[1][k], saved[k], err_msg=k)


def test_finished_job_and_resume_mismatch_end_every_rank(tmp_path):
    # Rank 0 alone reads train_dir; every rank learns the resume step and checkpoint shapes
    # from it, so all ranks return (or fail) together instead of one waiting forever.
    train_dir = str(tmp_path / "train")
    flags = EXACT + ["--batch_size=4", f"--train_dir={train_dir}"]
    launch(str(tmp_path / "first"), flags + ["--stop_at_step=2"])
    before = sorted(os.listdir(train_dir))

    finished, _ = launch(str(tmp_path / "again"), flags + ["--stop_at_step=2"])
    assert [r["losses"] for r in finished] == [{}, {}]  # no step on any rank
    assert sorted(os.listdir(train_dir)) == before

    _, proc = launch(
        str(tmp_path / "other"),
        [f if f != "--num_classes=10" else "--num_classes=5" for f in flags] + ["--stop_at_step=4"],
        check=False,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert output.count(f"Cannot resume from {train_dir}/model.ckpt-2") >= 2  # both ranks
    assert "LeNet/fc4/weights: model [1024, 5] vs checkpoint [1024, 10]" in output


def test_uneven_files_and_split_never_hang_and_count_each_example_once(
    tmp_path, write_mnist_records
):
    # 3 train files for 2 ranks (example sharding), and a 37-example test split in 3 files.
    data = write_mnist_records({"train": 60, "test": 37}, num_shards=3)
    ranks, proc = launch(
        str(tmp_path / "u"),
        [
            "--model_name=lenet",
            "--dataset_name=mnist",
            f"--dataset_dir={data}",
            "--batch_size=8",
            "--stop_at_step=12",
            "--eval_every_n_steps=6",
            "--eval_split_name=test",
            "--eval_batch_size=8",
            "--learning_rate=0.003",
            "--log_every_n_steps=4",
            f"--train_dir={tmp_path}/u/rank{{rank}}",
        ],
    )
    assert "do not divide among 2 ranks" in proc.stderr  # the chosen scheme is logged
    for r in ranks:
        assert [s for s, _ in r["eval"]] == [6, 12]
        # Ranks read 19 and 18 examples; the allreduced count is the whole split, once.
        assert all(m["count"] == 37 for _, m in r["eval"])
    assert ranks[0]["eval"] == ranks[1]["eval"]
    assert_same_weights(ranks[0]["weights"], ranks[1]["weights"])


def end_weights(rank):
    return {k[4:]: v for k, v in rank["weights"].items() if k.startswith("end/")}


def start_weights(rank):
    return {k[6:]: v for k, v in rank["weights"].items() if k.startswith("start/")}


def assert_trained(rank):
    start, end = start_weights(rank), end_weights(rank)
    assert any(not np.array_equal(start[k], end[k]) for k in start if k.startswith("LeNet"))


@pytest.mark.parametrize("op", ["average", "sum", "adasum"])
def test_every_allreduce_op_trains_both_ranks_to_identical_weights(tmp_path, op):
    # Horovod 0.28.1's TF1 Adasum optimizer never communicated: ranks drifted apart.
    flags = [f for f in EXACT if not f.startswith("--lr_scaling")]
    ranks, proc = launch(
        str(tmp_path / op),
        flags
        + [
            "--batch_size=4",
            "--stop_at_step=3",
            f"--allreduce_op={op}",
            "--lr_scaling=linear",
            f"--train_dir={tmp_path}/{op}/rank{{rank}}",
        ],
    )
    assert_same_weights(end_weights(ranks[0]), end_weights(ranks[1]))
    assert_trained(ranks[0])
    # --lr_scaling=linear doubles the rate on 2 ranks for average only; sum and adasum warn.
    lrs = {v["lr"] for v in ranks[0]["log"].values()}
    if op == "average":
        assert lrs and all(lr == pytest.approx(0.006) for lr in lrs)
        assert "scales the learning rate only with --allreduce_op=average" not in proc.stderr
    else:
        assert lrs and all(lr == pytest.approx(0.003) for lr in lrs)
        assert f"only with --allreduce_op=average; with --allreduce_op={op}" in proc.stderr


@pytest.mark.parametrize("accumulation", [1, 2])
def test_fp16_overflow_on_one_rank_is_skipped_by_both(tmp_path, accumulation):
    # Rank 1's loss is 1e4 times larger on one run: its fp16 gradients overflow, rank 0's
    # do not. The other runs' losses are scaled by 1e-3 (lr x 1e3 compensates), so lenet's
    # gradients never overflow the default scale 2**15 by themselves. With accumulation
    # the overflow comes on the first micro-step of update 2, not its communication step.
    overflow_run = 1 if accumulation == 1 else 2
    ranks, _ = launch(
        str(tmp_path / "o"),
        [f for f in EXACT if not f.startswith("--learning_rate=")]
        + [
            "--learning_rate=3",
            "--precision=fp16",
            "--batch_size=4",
            "--stop_at_step=4",
            f"--backward_passes_per_step={accumulation}",
            f"--train_dir={tmp_path}/o/rank{{rank}}",
        ],
        env={
            "TFZOO_TEST_OVERFLOW": f"1:{overflow_run}",
            "TFZOO_TEST_LOSS_BASE": "1e-3",
            "TFZOO_TEST_LOSS_FACTOR": "1e4",
        },
    )
    for r in ranks:
        end = end_weights(r)
        # Update 2 skipped on both ranks, and the scale halved once, on both.
        assert end["loss_scale/skipped_steps"] == 1, r["rank"]
        assert end["loss_scale/scale"] == 2.0**14, r["rank"]
        steps = sorted(r["log"], key=int)
        assert steps == ["1", "2", "3", "4"]  # the global step counts updates
        assert [r["log"][s]["skipped_steps"] for s in steps] == [0, 1, 1, 1]
        assert [r["log"][s]["loss_scale"] for s in steps] == [2.0**15] + [2.0**14] * 3
        assert_trained(r)
    agreed = ("loss", "loss_scale", "skipped_steps")
    for s in ranks[0]["log"]:
        assert {k: ranks[0]["log"][s][k] for k in agreed} == {
            k: ranks[1]["log"][s][k] for k in agreed
        }
    assert_same_weights(end_weights(ranks[0]), end_weights(ranks[1]))


def test_accumulation_on_two_ranks_equals_one_process_on_the_whole_batch(tmp_path):
    # 2 ranks x 2 micro-steps x 4 examples, averaged: one update on the same 16 examples.
    two, _ = launch(
        str(tmp_path / "two"),
        EXACT
        + [
            "--batch_size=4",
            "--backward_passes_per_step=2",
            "--stop_at_step=3",
            f"--train_dir={tmp_path}/two/rank{{rank}}",
        ],
    )
    one, _ = launch(
        str(tmp_path / "one"),
        EXACT + ["--batch_size=16", "--stop_at_step=3", f"--train_dir={tmp_path}/one/rank0"],
        np_=1,
        launcher="none",
    )
    assert_same_weights(end_weights(two[0]), end_weights(two[1]))
    assert_same_weights(end_weights(two[0]), end_weights(one[0]), rtol=1e-4, atol=1e-6)
    assert sorted(two[0]["losses"], key=int) == ["1", "2", "3"]  # updates, not micro-steps


def checkpoint_step(path):
    return int(path.rsplit("-", 1)[1])


@pytest.mark.parametrize(
    "learning_rate, problem",
    [
        # Step 1 blows the weights up to ~1e20, still finite: checkpoint 1 is written, and
        # the loss it gives at step 2 is inf (the weight decay term overflows).
        ("1e20", "Loss is inf at step 2"),
        # Step 1 makes the weights inf: the weight check before the save stops both ranks.
        ("1e38", "Weights hold NaN/inf at step 1"),
    ],
)
def test_nan_stops_every_rank_and_names_a_checkpoint_that_resumes(tmp_path, learning_rate, problem):
    train_dir = str(tmp_path / "train")
    flags = [f for f in EXACT if not f.startswith("--learning_rate=")]
    _, proc = launch(
        str(tmp_path / "nan"),
        flags
        + [
            f"--learning_rate={learning_rate}",
            "--batch_size=4",
            "--stop_at_step=50",
            "--save_checkpoints_steps=1",
            f"--train_dir={train_dir}",
        ],
        check=False,
    )
    assert proc.returncode != 0
    messages = re.findall(
        rf"{re.escape(problem)}\b.*?training stopped.*?Last good checkpoint: (\S+?)\.?\s",
        proc.stderr,
    )
    named = {m for m in messages if os.path.isabs(m)}  # rank 0's
    assert len(named) == 1, proc.stderr[-3000:]
    (good,) = named
    assert tf_checkpoint_exists(good)
    # The named checkpoint is what auto-resume on this train_dir restores ...
    assert tf_latest_checkpoint(train_dir) == good

    # ... and resuming from it with a sane rate trains with a finite loss.
    start = checkpoint_step(good)
    ranks, _ = launch(
        str(tmp_path / "resume"),
        flags + ["--batch_size=4", f"--stop_at_step={start + 4}", f"--train_dir={train_dir}"],
        np_=1,
        launcher="none",
    )
    losses = ranks[0]["losses"]
    assert sorted(losses, key=int) == [str(s) for s in range(start + 1, start + 5)]
    assert all(np.isfinite(v) for v in losses.values())

    # Rank 1 stopped by itself at the same step (neither hung nor torn down by a Horovod
    # shutdown), and referred to rank 0's message.
    assert "named" in messages
    assert "Horovod has been shut down" not in proc.stderr
    if learning_rate == "1e20":
        # Checkpoint 1 holds finite weights whose next loss was inf: kept on disk, unnamed.
        assert start == 0
        assert tf_checkpoint_exists(os.path.join(train_dir, "model.ckpt-1"))


def test_a_killed_rank_ends_the_whole_job_quickly(tmp_path):
    out = tmp_path / "k"
    _, proc = launch(
        str(out),
        EXACT + ["--batch_size=4", "--stop_at_step=100000", f"--train_dir={out}/rank{{rank}}"],
        env={"TFZOO_TEST_KILL": "1:3"},
        check=False,
    )
    ended = time.time()
    assert proc.returncode != 0
    killed = float((out / "killed_at").read_text())
    assert ended - killed < 60, f"mpirun ran {ended - killed:.0f} s after rank 1 was killed"
    assert "signal 9" in proc.stdout + proc.stderr


def tf_checkpoint_exists(path):
    from slim_compat import tf

    return tf.train.checkpoint_exists(path)


def tf_latest_checkpoint(d):
    from slim_compat import tf

    return tf.train.latest_checkpoint(d)


@pytest.fixture(autouse=True)
def _need_launchers():
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun is not installed: scripts/setup.sh installs openmpi-bin")
