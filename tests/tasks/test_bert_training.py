"""The BERT tasks through the shared trainer: two-phase pretraining, --init_checkpoint,
accumulation, 2 ranks == 1 process with the double batch, and the SavedModel / ONNX export."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from slim_compat import tf
from tests.training import test_horovod
from training import task as task_lib
from training import trainer

ROOT = test_horovod.ROOT
DRIVER = os.path.join(ROOT, "tests", "tasks", "bert_driver.py")
# Exact runs: no dropout, no shuffle, plain SGD at a fixed rate, no LR scaling by ranks.
EXACT = dict(
    model_name="bert_tiny",
    dropout_keep_prob=1.0,
    shuffle_buffer_size=1,
    num_readers=1,
    optimizer="sgd",
    learning_rate=0.5,
    learning_rate_decay_type="fixed",
    lr_scaling="none",
    log_every_n_steps=1,
    save_checkpoints_steps=1000,
)


def _argv(values):
    return [f"--{k}={v}" for k, v in values.items()]


def run(task_name, train_dir, extra_hooks=(), **flag_values):
    """trainer.train of a BERT task in-process with these flags; returns the result."""
    from absl import flags as absl_flags

    trainer.define_task_flag("bert_pretraining", "nlp")
    absl_flags.FLAGS.unparse_flags()
    values = dict(
        model_name="bert_tiny",
        optimizer="adamw",
        learning_rate=1e-3,
        learning_rate_decay_type="fixed",
        log_every_n_steps=1,
        save_checkpoints_steps=1000,
        train_dir=train_dir,
    )
    values.update(flag_values)
    absl_flags.FLAGS(["test"] + _argv(values))
    try:
        with tf.Graph().as_default():
            return trainer.train(
                task_lib.get_task(task_name, "nlp"), absl_flags.FLAGS, extra_hooks=extra_hooks
            )
    finally:
        absl_flags.FLAGS.unparse_flags()


def weights(checkpoint, prefix=""):
    reader = tf.train.load_checkpoint(checkpoint)
    return {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith(prefix) and "adam_" not in k
    }


@pytest.mark.slow
def test_two_phase_pretraining_seq16_then_seq32_resumes(bert_data, write_bert_data, tmp_path):
    """Phase 2 on seq-32 records continues the seq-16 phase-1 run in the same train_dir."""
    long_data = write_bert_data(tmp_path / "seq32", seed=1, seq=32)
    train_dir = str(tmp_path / "pretrain")
    # No decoupled weight decay, so a row without gradient stays exactly where it is.
    one = run(
        "bert_pretraining",
        train_dir,
        dataset_dir=bert_data.pretraining,
        batch_size=8,
        stop_at_step=3,
        decoupled_weight_decay=0.0,
    )
    phase1 = weights(one["checkpoint"])
    two = run(
        "bert_pretraining",
        train_dir,
        dataset_dir=long_data.pretraining,
        batch_size=4,
        stop_at_step=5,
        decoupled_weight_decay=0.0,
    )
    assert [s for s, _ in two["log"]] == [4, 5]  # resumed at step 3, not from scratch
    phase2 = weights(two["checkpoint"])
    assert phase2.keys() == phase1.keys()
    # The position table has max_position_embeddings rows in both phases (512).
    assert phase1["bert/embeddings/position_embeddings"].shape == (512, 128)
    # Rows 16-31 were untrained in phase 1 and are trained by the longer sequences now.
    moved = np.abs(
        phase2["bert/embeddings/position_embeddings"]
        - phase1["bert/embeddings/position_embeddings"]
    ).sum(1)
    # (A row moves only if a phase-2 batch reached that position: not always row 31.)
    assert (moved[16:31] > 0).sum() >= 8 and (moved[32:] == 0).all()
    assert np.isfinite(two["log"][-1][1]["masked_lm_loss"])


class StartWeights(tf.train.SessionRunHook):
    """The trainable weights right after every restore of the session's start."""

    def begin(self):
        self._vars = {v.op.name: v for v in tf.trainable_variables()}

    def after_create_session(self, session, coord):
        self.values = session.run(self._vars)


@pytest.mark.slow
def test_init_checkpoint_restores_the_encoder_not_the_head(bert_data, tmp_path):
    pre = run(
        "bert_pretraining",
        str(tmp_path / "pre"),
        dataset_dir=bert_data.pretraining,
        batch_size=8,
        stop_at_step=2,
    )
    encoder = weights(pre["checkpoint"], "bert/")
    start = StartWeights()  # after the trainer's hooks and the task's restore
    result = run(
        "sequence_classification",
        str(tmp_path / "cls"),
        extra_hooks=[start],
        dataset_dir=bert_data.classification,
        init_checkpoint=os.path.dirname(pre["checkpoint"]),
        checkpoint_exclude_scopes="bert/pooler",
        trainable_scopes="output_weights,output_bias",
        batch_size=8,
        stop_at_step=2,
    )
    restored = {k for k in encoder if np.array_equal(start.values[k], encoder[k])}
    assert restored == {k for k in encoder if not k.startswith("bert/pooler/")}
    assert not np.array_equal(
        start.values["bert/pooler/dense/kernel"], encoder["bert/pooler/dense/kernel"]
    )
    final = weights(result["checkpoint"])
    # --trainable_scopes: only the new head trains; the restored encoder stays as it was.
    assert all(np.array_equal(final[k], start.values[k]) for k in encoder)
    assert not np.array_equal(final["output_weights"], start.values["output_weights"])
    # A resumed run (the same flags, a later step) ignores --init_checkpoint.
    again = StartWeights()
    run(
        "sequence_classification",
        str(tmp_path / "cls"),
        extra_hooks=[again],
        dataset_dir=bert_data.classification,
        init_checkpoint=pre["checkpoint"],
        trainable_scopes="output_weights,output_bias",
        batch_size=8,
        stop_at_step=3,
    )
    np.testing.assert_array_equal(again.values["output_weights"], final["output_weights"])


def test_init_checkpoint_errors_are_clear(bert_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        run(
            "sequence_classification",
            str(tmp_path / "a"),
            dataset_dir=bert_data.classification,
            init_checkpoint=str(tmp_path),
            batch_size=8,
            stop_at_step=1,
        )
    with pytest.raises(ValueError, match="--init_checkpoint and --task_type=finetune"):
        run(
            "sequence_classification",
            str(tmp_path / "b"),
            dataset_dir=bert_data.classification,
            init_checkpoint=str(tmp_path),
            task_type="finetune",
            model_dir=str(tmp_path),
            batch_size=8,
            stop_at_step=1,
        )


def test_accumulating_two_micro_batches_equals_the_double_batch(bert_data, tmp_path):
    whole = run(
        "sequence_classification",
        str(tmp_path / "whole"),
        dataset_dir=bert_data.classification,
        batch_size=8,
        stop_at_step=3,
        **EXACT,
    )
    accumulated = run(
        "sequence_classification",
        str(tmp_path / "acc"),
        dataset_dir=bert_data.classification,
        batch_size=4,
        backward_passes_per_step=2,
        stop_at_step=3,
        **EXACT,
    )
    a, b = weights(whole["checkpoint"]), weights(accumulated["checkpoint"])
    start_moved = np.abs(a["output_weights"]).sum()
    assert start_moved > 0
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.slow
@pytest.mark.horovod
def test_mpirun_two_ranks_equal_one_process_with_the_double_batch(write_bert_data, tmp_path):
    # One shard: 2 ranks keep alternate records, whose union is the 1-process batch.
    data = write_bert_data(tmp_path / "data", seed=2, shards=1)
    common = dict(
        EXACT, task="sequence_classification", dataset_dir=data.classification, stop_at_step=3
    )
    two, _ = test_horovod.launch(
        str(tmp_path / "two"),
        _argv(dict(common, batch_size=4, train_dir=tmp_path / "two" / "train")),
        driver=DRIVER,
    )
    one, _ = test_horovod.launch(
        str(tmp_path / "one"),
        _argv(dict(common, batch_size=8, train_dir=tmp_path / "one" / "train")),
        np_=1,
        driver=DRIVER,
    )
    assert [r["size"] for r in two] == [2, 2]
    test_horovod.assert_same_weights(two[0]["weights"], two[1]["weights"])
    moved = np.abs(one[0]["weights"]["output_weights"]).sum()
    assert moved > 0
    test_horovod.assert_same_weights(two[0]["weights"], one[0]["weights"], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["saved_model", "onnx"])
def test_export_of_the_classifier_with_parity(bert_data, tmp_path, fmt):
    result = run(
        "sequence_classification",
        str(tmp_path / "cls"),
        dataset_dir=bert_data.classification,
        batch_size=8,
        stop_at_step=2,
    )
    out = tmp_path / ("cls.onnx" if fmt == "onnx" else "export")
    proc = subprocess.run(
        [
            sys.executable,
            "export_model.py",
            "--task=sequence_classification",
            "--model_name=bert_tiny",
            f"--dataset_dir={bert_data.classification}",
            f"--checkpoint={result['checkpoint']}",
            f"--format={fmt}",
            f"--output={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["format"] == fmt and os.path.exists(out)
    assert set(report["inputs"]) == {"input_ids", "input_mask", "segment_ids"}
    assert {"logits", "probabilities"} <= set(report["outputs"])
    assert report["max_abs_diff"]["logits"] < 1e-4


def test_onnx_export_of_the_classifier_runs_like_the_graph(bert_data, bert_params, tmp_path):
    """The encoder + classifier head as ONNX: named int inputs, logits and probabilities,
    parity with TensorFlow in ONNX Runtime, and the padding mask honoured."""
    import onnx

    from interchange import task_export

    result = run(
        "sequence_classification",
        str(tmp_path / "cls"),
        dataset_dir=bert_data.classification,
        batch_size=8,
        stop_at_step=2,
    )
    task = task_lib.get_task("sequence_classification", "nlp")
    params = bert_params(dataset_dir=bert_data.classification)
    path = str(tmp_path / "cls.onnx")
    report = task_export.export_task(
        task, params, result["checkpoint"], path, batch_size=3, fmt="onnx"
    )
    assert report["format"] == "onnx"
    assert report["max_abs_diff"]["logits"] < 1e-4
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["input_ids", "input_mask", "segment_ids"]
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.INT32}
    assert [o.name for o in model.graph.output] == ["logits", "probabilities"]
    # The trained head is in the file: the SavedModel of the same checkpoint agrees on a
    # new batch, and padding (input_mask 0) does not change a sequence's logits.
    rng = np.random.default_rng(7)
    mask = (np.arange(16)[None] < np.array([[16], [9], [4], [12]])).astype(np.int32)
    feeds = {
        "input_ids": rng.integers(5, 45, (4, 16)).astype(np.int32) * mask,
        "input_mask": mask,
        "segment_ids": (np.arange(16)[None] >= 3).astype(np.int32) * mask,
    }
    saved = str(tmp_path / "saved")
    task_export.export_task(task, params, result["checkpoint"], saved, batch_size=2)
    onnx_out = task_export.run_onnx(path, feeds)
    tf_out = task_export.run_saved_model(saved, feeds)
    np.testing.assert_allclose(onnx_out["logits"], tf_out["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(onnx_out["probabilities"].sum(-1), 1.0, rtol=1e-5)
    padded = dict(feeds, input_ids=np.where(feeds["input_mask"] > 0, feeds["input_ids"], 7))
    np.testing.assert_allclose(
        task_export.run_onnx(path, padded)["logits"], onnx_out["logits"], rtol=1e-4, atol=1e-5
    )
    assert np.abs(onnx_out["logits"] - onnx_out["logits"][:1]).max() > 0  # inputs matter


class ComputeDtypes(tf.train.SessionRunHook):
    """The dtypes the model's matmuls compute in and its trainable variables are stored in."""

    def begin(self):
        graph = tf.get_default_graph()
        self.matmuls = {
            op.get_attr("T")
            for op in graph.get_operations()
            if op.type in ("MatMul", "BatchMatMulV2") and not op.name.startswith("gradients")
        }
        self.variables = {v.op.name: v.dtype.base_dtype for v in tf.trainable_variables()}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("task_name", ["bert_pretraining", "sequence_classification"])
def test_low_precision_steps_keep_fp32_master_weights_and_learn(
    bert_data, tmp_path, task_name, precision
):
    """fp16 (dynamic loss scale) and bf16: low-precision matmuls, fp32 weights in the graph
    and the checkpoint, and the held-out loss below a fresh model's."""
    dtypes = ComputeDtypes()
    pretraining = task_name == "bert_pretraining"
    steps = 60 if pretraining else 20
    result = run(
        task_name,
        str(tmp_path / precision),
        extra_hooks=[dtypes],
        dataset_dir=bert_data.pretraining if pretraining else bert_data.classification,
        precision=precision,
        batch_size=16,
        stop_at_step=steps,
        learning_rate=2e-3 if pretraining else 5e-4,
        dropout_keep_prob=1.0,
        eval_every_n_steps=steps,
        eval_batch_size=64,
        num_readers=1,  # the same batches in every run
        shuffle_buffer_size=1,
    )
    low = tf.float16 if precision == "fp16" else tf.bfloat16
    assert low in dtypes.matmuls  # the encoder computes in the low precision
    assert set(dtypes.variables.values()) == {tf.float32}
    dtype_map = tf.train.load_checkpoint(result["checkpoint"]).get_variable_to_dtype_map()
    assert {dtype_map[name] for name in dtypes.variables} == {tf.float32}
    first, last = result["log"][0][1], result["log"][-1][1]
    assert all(np.isfinite(m["loss"]) for _, m in result["log"])
    if precision == "fp16":
        # The dynamic scale is logged and checkpointed; at most a few steps overflow.
        assert last["loss_scale"] >= 1.0 and last["skipped_steps"] <= 4
        assert dtype_map["loss_scale/scale"] == tf.float32
    (step, metrics) = result["eval"][-1]
    assert step == steps
    if pretraining:
        # A fresh model guesses uniformly over the 45 ids (its first loss); the trained
        # one does better on the held-out split.
        uniform = np.log(45)
        assert abs(first["masked_lm_loss"] - uniform) < 0.1
        assert metrics["masked_lm_loss"] < uniform - 0.05, metrics
    else:
        assert abs(first["loss"] - np.log(4)) < 0.15  # 4 labels, a fresh head
        assert metrics["loss"] < 0.8 * np.log(4), metrics
