"""The shared trainer on a task defined in the tests (toy_task.py): every trainer feature."""

import ast
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from slim_compat import tf
from tests.training import test_horovod, toy_task
from training import task as task_lib
from training import trainer

ROOT = test_horovod.ROOT
DRIVER = os.path.join(ROOT, "tests", "training", "task_driver.py")
TOY = dict(
    optimizer="sgd",
    learning_rate=0.05,
    learning_rate_decay_type="fixed",
    batch_size=8,
    log_every_n_steps=1,
    save_checkpoints_steps=100,
    stop_at_step=12,
)


def run(tmp_path, name="run", task=None, **flag_values):
    """trainer.train of the toy task in-process; returns (result, final weights, graph)."""
    from absl import flags as absl_flags

    import flags  # noqa: F401  (defines the flags)

    values = dict(TOY, train_dir=str(tmp_path / name), **flag_values)
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test"] + [f"--{k}={v}" for k, v in values.items()])
    try:
        with tf.Graph().as_default() as graph:
            result = trainer.train(task or toy_task.ToyRegression(), absl_flags.FLAGS)
    finally:
        absl_flags.FLAGS.unparse_flags()
    return result, weights_of(result["checkpoint"]), graph


def weights_of(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    return {k: reader.get_tensor(k) for k in ("toy/w", "toy/b", "toy/item_bias")}


def eval_mse(weights):
    return float(np.mean((toy_task.predict(weights, toy_task.EVAL) - toy_task.EVAL["y"]) ** 2))


def test_a_task_trains_in_one_process_with_its_losses_metrics_and_throughput(tmp_path):
    result, weights, graph = run(tmp_path, eval_every_n_steps=6, eval_batch_size=5)
    log = dict(result["log"])
    assert sorted(log) == list(range(1, 13))
    assert log[12]["loss"] < 0.5 * log[1]["loss"]
    # The task's loss parts and metrics are logged, and examples/s from the real counts.
    assert {"mse", "mean_abs_error", "lr"} <= log[1].keys()
    assert all(log[s]["examples_per_sec"] > 0 for s in range(2, 13))
    # Evaluation during training: the task's metric over every eval example, exactly.
    assert [(s, m["count"]) for s, m in result["eval"]] == [(6, 37), (12, 37)]
    assert result["eval"][-1][1]["mse"] == pytest.approx(eval_mse(weights), rel=1e-5)
    assert os.path.basename(result["checkpoint"]) == "model.ckpt-12"
    tags = set()
    for path in glob.glob(os.path.join(tmp_path, "run", "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"losses/mse", "mean_abs_error/train_batch", "eval/mse"} <= tags


def test_gradient_accumulation_equals_one_step_on_the_whole_batch(tmp_path):
    _, whole, _ = run(tmp_path, "whole", batch_size=8, stop_at_step=5)
    result, accumulated, _ = run(
        tmp_path, "accumulated", batch_size=4, backward_passes_per_step=2, stop_at_step=5
    )
    assert os.path.basename(result["checkpoint"]) == "model.ckpt-5"  # steps count updates
    for name in whole:
        np.testing.assert_allclose(accumulated[name], whole[name], rtol=1e-5, atol=1e-6)


class _TokenBatchedToy(toy_task.ToyRegression):
    """The toy task announcing its epoch in batches, as token batching does."""

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        data = super().build_inputs(params, split, is_training, rank, size, batch_size, seed)
        return data._replace(batches_per_epoch=7) if is_training else data


def test_the_epoch_log_line_counts_batches_when_the_task_does_not_batch_examples(tmp_path, caplog):
    caplog.set_level("INFO")
    info = dict(stop_at_step=1, backward_passes_per_step=2, verbosity=0)  # the line is INFO
    run(tmp_path, "examples", **info)
    assert "steps per epoch (global batch 16)" in caplog.text  # 8 x 1 rank x 2 passes
    caplog.clear()
    run(tmp_path, "tokens", task=_TokenBatchedToy(), **info)
    # 7 batches per rank, 2 a step: 3 steps; --batch_size (8) is no batch of this task.
    assert "; 3 steps per epoch (7 batches per rank, 2 per step)" in caplog.text
    assert "global batch" not in caplog.text


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    _, straight, _ = run(tmp_path, "straight", stop_at_step=6)
    run(tmp_path, "resumed", stop_at_step=3)
    second, resumed, _ = run(tmp_path, "resumed", stop_at_step=6)
    assert [s for s, _ in second["log"]] == [4, 5, 6]
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-6, atol=1e-7)


def test_fp16_keeps_fp32_weights_casts_looked_up_rows_only_and_scales_the_loss(tmp_path):
    result, weights, graph = run(tmp_path, precision="fp16", loss_scale="dynamic")
    log = dict(result["log"])
    assert log[12]["loss"] < 0.5 * log[1]["loss"]
    # The first steps' scaled gradients overflow fp16: skipped, the scale halved each time.
    skipped = log[12]["skipped_steps"]
    assert skipped >= 1 and log[12]["loss_scale"] == 2.0**15 / 2**skipped
    model = {v.op.name: v for v in graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)}
    assert all(v.dtype.base_dtype == tf.float32 for v in model.values())
    # The embedding table is never cast whole: only the gathered rows are.
    table_shape = [toy_task.NUM_ITEMS, 1]
    casts_of_table = [
        op.name
        for op in graph.get_operations()
        if op.type == "Cast" and op.inputs[0].shape.as_list() == table_shape
    ]
    assert casts_of_table == []
    assert any(op.type == "Cast" and "w/cast" in op.name for op in graph.get_operations())
    assert all(np.isfinite(v).all() for v in weights.values())


def test_early_stopping_stops_when_the_metric_stops_improving(tmp_path):
    result, _, _ = run(
        tmp_path,
        learning_rate=0.0,
        stop_at_step=20,
        eval_every_n_steps=1,
        eval_batch_size=8,
        early_stopping_metric="mse",
        early_stopping_mode="min",
        early_stopping_patience=2,
    )
    # Steps 1 (best), 2 and 3 (no better): stop after step 3.
    assert [s for s, _ in result["eval"]] == [1, 2, 3]
    assert os.path.basename(result["checkpoint"]) == "model.ckpt-3"


def test_early_stopping_keeps_the_best_evals_weights_also_across_a_resume(tmp_path):
    # The mse falls every step; scored as if higher were better, the best eval is the
    # first: its weights, not the last, are kept in TRAIN_DIR/best with its metrics.
    stopping = dict(
        eval_every_n_steps=1,
        eval_batch_size=8,
        early_stopping_metric="mse",
        early_stopping_mode="max",
        early_stopping_patience=2,
    )
    result, last, _ = run(tmp_path, stop_at_step=20, **stopping)
    assert [s for s, _ in result["eval"]] == [1, 2, 3]
    best_dir = tmp_path / "run" / "best"
    best_path = tf.train.latest_checkpoint(str(best_dir))
    assert os.path.basename(best_path) == "model.ckpt-1"
    best = weights_of(best_path)
    step, metrics = result["best_eval"]
    assert step == 1 and metrics == result["eval"][0][1]
    assert eval_mse(best) == pytest.approx(metrics["mse"], rel=1e-5)
    assert eval_mse(last) < eval_mse(best)  # the last weights are another model
    with open(best_dir / "best_eval.json") as f:
        state = json.load(f)
    assert (state["step"], state["metric"], state["checkpoint"]) == (1, "mse", "model.ckpt-1")
    assert state["value"] == pytest.approx(metrics["mse"])
    # A resumed run starts from the recorded best: its evals (steps 4, 5) do not beat it.
    resumed, _, _ = run(tmp_path, stop_at_step=20, **stopping)
    assert [s for s, _ in resumed["eval"]] == [4, 5]
    assert resumed["best_eval"][0] == 1
    assert resumed["best_eval"][1]["mse"] == pytest.approx(metrics["mse"])
    assert os.path.basename(tf.train.latest_checkpoint(str(best_dir))) == "model.ckpt-1"


def test_early_stopping_on_an_unknown_metric_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"early_stopping_metric='bleu'.*expected one of: mse"):
        run(tmp_path, stop_at_step=2, eval_every_n_steps=1, early_stopping_metric="bleu")


def test_the_export_takes_the_task_signature(tmp_path):
    from interchange import task_export

    result, weights, _ = run(tmp_path, stop_at_step=4)
    task = toy_task.ToyRegression()
    out = str(tmp_path / "saved")
    report = task_export.export_task(task, None, result["checkpoint"], out, batch_size=3)
    assert report["inputs"] == {"x": ["float32", [None, 4]], "item": ["int64", [None]]}
    assert report["outputs"] == ["prediction"]
    feeds = {"x": toy_task.EVAL["x"][:5], "item": toy_task.EVAL["item"][:5]}
    served = task_export.run_saved_model(out, feeds)["prediction"]
    expected = toy_task.predict(weights, {k: v[:5] for k, v in toy_task.EVAL.items()})
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def _launch(out_dir, flag_values, np_):
    flags = [f"--{k}={v}" for k, v in dict(TOY, **flag_values).items()]
    if np_ == 1:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
        os.makedirs(out_dir, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, DRIVER, out_dir] + flags,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=test_horovod.LAUNCH_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(os.path.join(out_dir, "rank0.json")) as f:
            info = json.load(f)
        info["weights"] = dict(np.load(os.path.join(out_dir, "rank0.npz")))
        return [info]
    ranks, _ = test_horovod.launch(out_dir, flags, np_=np_, driver=DRIVER)
    return ranks


@pytest.mark.horovod
@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_double_batch_and_evaluate_exactly(tmp_path):
    # The same learning rate: 2 ranks at batch b are one process at batch 2b.
    common = dict(stop_at_step=6, eval_every_n_steps=6, eval_batch_size=5, lr_scaling="none")
    (one,) = _launch(str(tmp_path / "one"), dict(common, batch_size=8, train_dir=tmp_path / "a"), 1)
    ranks = _launch(str(tmp_path / "two"), dict(common, batch_size=4, train_dir=tmp_path / "b"), 2)
    for r in ranks:
        test_horovod.assert_same_weights(r["weights"], one["weights"], rtol=1e-5, atol=1e-6)
        # Each rank evaluates its share; the sums over ranks count every example once.
        assert r["eval"] == ranks[0]["eval"]
        assert r["eval"][0][1]["count"] == toy_task.EVAL_SIZE
    weights = {k[len("end/") :]: v for k, v in one["weights"].items()}
    assert ranks[0]["eval"][0][1]["mse"] == pytest.approx(eval_mse(weights), rel=1e-5)
    assert one["eval"][0][1]["mse"] == pytest.approx(ranks[0]["eval"][0][1]["mse"], rel=1e-5)
    # Throughput sums the examples of both ranks: the same units, both runs.
    assert "examples_per_sec" in ranks[0]["log"]["6"]


@pytest.mark.horovod
@pytest.mark.slow
def test_rank_local_variables_are_neither_broadcast_nor_reduced_nor_in_the_checkpoint(tmp_path):
    flags = [f"--{k}={v}" for k, v in dict(TOY, stop_at_step=4, train_dir=tmp_path / "t").items()]
    ranks, _ = test_horovod.launch(
        str(tmp_path / "out"), flags, np_=2, driver=DRIVER, env={"TFZOO_TEST_RANK_LOCAL": "1"}
    )
    first, second = (r["weights"] for r in ranks)
    # The shared weights: rank 0's at the start, then the same averaged updates.
    for name in ("end/toy/w", "end/toy/b"):
        np.testing.assert_array_equal(first[name], second[name])
    # Each rank's table: its own start (rank + 1), its own batches' gradients.
    assert not np.allclose(first["end/toy/item_bias"], second["end/toy/item_bias"])
    assert np.abs(second["end/toy/item_bias"] - 2.0).max() < 1.0
    saved = dict(tf.train.list_variables(ranks[0]["checkpoint"]))
    assert "toy/w" in saved and "toy/item_bias" not in saved


def test_the_generic_evaluator_reports_the_task_metrics_of_a_checkpoint(tmp_path):
    from absl import flags as absl_flags

    from training import evaluator

    result, weights, _ = run(tmp_path, stop_at_step=4)
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test", f"--checkpoint_path={tmp_path / 'run'}", "--eval_batch_size=6"])
    try:
        with tf.Graph().as_default():
            metrics = evaluator.evaluate(toy_task.ToyRegression())
    finally:
        absl_flags.FLAGS.unparse_flags()
    assert metrics["checkpoint"] == result["checkpoint"] and metrics["step"] == 4
    assert metrics["count"] == toy_task.EVAL_SIZE
    assert metrics["mse"] == pytest.approx(eval_mse(weights), rel=1e-5)


@pytest.mark.parametrize(
    "script, family",
    [
        ("train_nlp_models.py", "nlp"),
        ("train_rec_models.py", "rec"),
        ("train_graph_models.py", "graph"),
    ],
)
def test_each_entry_point_names_its_valid_tasks_for_an_unknown_one(script, family, tmp_path):
    import tasks  # noqa: F401  (registers every task, as the entry points do)

    proc = subprocess.run(
        [sys.executable, script, "--task=no_such_task", f"--train_dir={tmp_path}"],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFZOO_MALLOC="system"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert __import__(script[: -len(".py")]).FAMILY == family
    valid = task_lib.tasks_of_family(family)
    expected = (
        f"expected one of: {', '.join(valid)}" if valid else f"no {family} task is registered"
    )
    assert "Unknown task 'no_such_task'" in proc.stderr and expected in proc.stderr


def test_no_function_of_the_trainer_takes_images_labels_or_num_classes():
    offenders = []
    for path in sorted(glob.glob(os.path.join(ROOT, "training", "*.py"))):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                names = {a.arg for a in args} & {"images", "labels", "num_classes"}
                if names:
                    offenders.append(f"{os.path.basename(path)}:{node.name}({', '.join(names)})")
    assert offenders == []


def test_get_task_lists_the_registered_names():
    with pytest.raises(ValueError, match=r"Unknown task 'nope'; expected one of: .*toy_regression"):
        task_lib.get_task("nope")
    assert isinstance(task_lib.get_task("toy_regression"), toy_task.ToyRegression)
    # An entry point serves one family: the image task is not valid for another.
    with pytest.raises(ValueError, match=r"Unknown task 'toy_regression'; expected one of: image_"):
        task_lib.get_task("toy_regression", family="image")


def test_eval_and_export_refuse_a_task_that_cannot_restore_its_rank_local_variables(tmp_path):
    from absl import flags as absl_flags

    from interchange import task_export
    from training import evaluator

    class RankLocalEverywhere(toy_task.ToyRankLocal):
        def build_model(self, features, params, is_training, compute_dtype):
            self._rank = 0
            outputs = super().build_model(features, params, True, compute_dtype)
            return outputs

    result, _, _ = run(tmp_path, stop_at_step=2)
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test", f"--checkpoint_path={tmp_path / 'run'}"])
    try:
        with tf.Graph().as_default():
            with pytest.raises(ValueError, match=r"rank-local variable.*toy/item_bias"):
                evaluator.evaluate(RankLocalEverywhere())
    finally:
        absl_flags.FLAGS.unparse_flags()
    with pytest.raises(ValueError, match=r"rank-local variables.*toy/item_bias"):
        task_export.export_task(
            RankLocalEverywhere(), None, result["checkpoint"], str(tmp_path / "saved")
        )
