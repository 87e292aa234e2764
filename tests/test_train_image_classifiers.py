"""End-to-end tests of train_image_classifiers.py on tiny runs: train, resume, finetune, bad input."""

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


def checkpoint_values(path):
    reader = tf.train.NewCheckpointReader(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def test_pretrain_writes_checkpoint_and_resumes(train, tmp_path):
    d = str(tmp_path / "run")
    first = train(**TINY, stop_at_step=3, train_dir=d)
    assert first["checkpoint"].endswith("model.ckpt-3")
    assert [step for step, _ in first["log"]] == [1, 2, 3]

    second = train(**TINY, stop_at_step=6, train_dir=d)
    # Resumed: the first step taken is 4, not 1.
    assert [step for step, _ in second["log"]] == [4, 5, 6]
    assert second["checkpoint"].endswith("model.ckpt-6")


def test_short_mock_run_lowers_the_loss(train, tmp_path):
    result = train(
        **dict(TINY, batch_size=16),
        stop_at_step=20,
        learning_rate=0.001,
        optimizer="sgd",
        train_dir=str(tmp_path / "r"),
        weight_decay=0.0,
        learning_rate_decay_type="fixed",
    )
    losses = [v["loss"] for _, v in result["log"]]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_finetune_across_class_counts(train, tmp_path):
    src = str(tmp_path / "ten")
    train(**TINY, stop_at_step=2, train_dir=src)
    pretrained = checkpoint_values(tf.train.latest_checkpoint(src))

    # 10 -> 5 classes without excluding the logits: the error names the variables.
    with pytest.raises(ValueError) as err:
        train(
            **dict(TINY, num_classes=5),
            stop_at_step=1,
            task_type="finetune",
            model_dir=src,
            train_dir=str(tmp_path / "bad"),
        )
    message = str(err.value)
    assert "LeNet/fc4/weights" in message and "[1024, 5]" in message and "[1024, 10]" in message
    assert "--checkpoint_exclude_scopes=LeNet/fc4" in message
    assert not os.path.exists(str(tmp_path / "bad" / "checkpoint"))

    # With the logits excluded and only them trained, the body keeps the pretrained weights.
    dst = str(tmp_path / "five")
    train(
        **dict(TINY, num_classes=5),
        stop_at_step=2,
        task_type="finetune",
        model_dir=src,
        checkpoint_exclude_scopes="LeNet/fc4",
        trainable_scopes="LeNet/fc4",
        train_dir=dst,
    )
    tuned = checkpoint_values(tf.train.latest_checkpoint(dst))
    assert tuned["LeNet/fc4/weights"].shape == (1024, 5)
    np.testing.assert_array_equal(tuned["LeNet/conv1/weights"], pretrained["LeNet/conv1/weights"])
    np.testing.assert_array_equal(tuned["LeNet/fc3/weights"], pretrained["LeNet/fc3/weights"])


def test_finetune_trains_restored_body_when_not_frozen(train, tmp_path):
    src = str(tmp_path / "src")
    train(**TINY, stop_at_step=2, train_dir=src)
    pretrained = checkpoint_values(tf.train.latest_checkpoint(src))
    dst = str(tmp_path / "dst")
    result = train(
        **TINY,
        stop_at_step=1,
        task_type="finetune",
        model_dir=src,
        ckpt_file_name="model.ckpt-2",
        train_dir=dst,
        learning_rate=0.0,
    )
    tuned = checkpoint_values(result["checkpoint"])
    # Learning rate 0: every restored variable equals the source checkpoint.
    for name in ("LeNet/conv1/weights", "LeNet/fc4/weights", "LeNet/fc4/biases"):
        np.testing.assert_array_equal(tuned[name], pretrained[name])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(train, tmp_path):
    import re

    from training.hooks import NanLossError

    d = str(tmp_path / "nan")
    train(**TINY, stop_at_step=2, train_dir=d)
    with pytest.raises(NanLossError) as err:
        train(
            **TINY,
            stop_at_step=50,
            train_dir=d,
            learning_rate=1e30,
            optimizer="sgd",
            learning_rate_decay_type="fixed",
            save_checkpoints_steps=1,
        )
    nan_step = int(re.search(r"at step (\d+)", str(err.value)).group(1))
    latest = tf.train.latest_checkpoint(d)
    assert f"Last good checkpoint: {latest}" in str(err.value)
    # Nothing at or after the NaN step was saved, and what was saved is finite.
    assert int(latest.rsplit("-", 1)[1]) < nan_step
    for name, value in checkpoint_values(latest).items():
        assert np.all(np.isfinite(value)), name


@pytest.mark.parametrize(
    "flags, match",
    [
        (dict(model_name="lenet5"), "Unknown model_name 'lenet5'.*lenet"),
        (dict(dataset_name="imagenet21k"), "imagenet21k.*mnist"),
        (dict(preprocessing_name="fancy"), "fancy.*inception"),
        (dict(dataset_name="mnist", dataset_dir="/nonexistent/mnist"), "/nonexistent/mnist"),
        # FastNN's --hooks: names of hook classes; StopAtStepHook is needed to end the run.
        (dict(hooks="StopAtStepHook,TimerHook"), "'TimerHook'.*LoggingTensorHook"),
        (dict(hooks="LoggingTensorHook"), "leaves out StopAtStepHook"),
        (dict(profile_at_task=1), r"--profile_at_task=1 .*\(0\.\.0\)"),
        (dict(num_epochs=0), "--num_epochs must be > 0"),
        # A net without dropout: the error names the nets that take the flag.
        (
            dict(model_name="resnet_v1_50", dropout_keep_prob=0.5),
            "'resnet_v1_50' has no dropout_keep_prob.*cifarnet.*lenet",
        ),
    ],
)
def test_bad_names_and_paths_are_clear_errors(train, tmp_path, flags, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        train(**dict(TINY, **flags), stop_at_step=1, train_dir=str(tmp_path / "x"))


def test_bad_optimizer_and_schedule_names_list_valid_ones(tmp_path):
    # absl validates enum flags: the message lists the valid values.
    for flag, bad, valid in [
        ("optimizer", "nadam", "momentum"),
        ("learning_rate_decay_type", "cosine", "polynomial"),
    ]:
        proc = subprocess.run(
            [
                sys.executable,
                "train_image_classifiers.py",
                f"--{flag}={bad}",
                f"--train_dir={tmp_path}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0
        assert bad in proc.stderr and valid in proc.stderr


def test_corrupt_tfrecord_is_named(train, tmp_path, write_mnist_records):
    d = write_mnist_records({"train": 40, "test": 10}, num_shards=2)
    bad = os.path.join(d, "mnist_train-00001-of-00002.tfrecord")
    data = open(bad, "rb").read()
    with open(bad, "wb") as f:
        f.write(data[:20] + b"garbage" * 10 + data[90:])
    with pytest.raises(RuntimeError, match="mnist_train-00001-of-00002.tfrecord"):
        train(
            **dict(TINY, dataset_name="mnist"),
            dataset_dir=d,
            stop_at_step=30,
            shuffle_buffer_size=1,
            train_dir=str(tmp_path / "c"),
        )


def test_misspelt_flag_is_an_error_and_flagfile_works(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train_image_classifiers.py", "--batch_sise=4", f"--train_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "batch_sise" in proc.stderr

    flagfile = tmp_path / "job.flags"
    flagfile.write_text(
        "--model_name=lenet\n--batch_size=2\n--num_classes=10\n--stop_at_step=2\n"
        f"--train_dir={tmp_path / 'ff'}\n--print_model_statistics\n"
    )
    proc = subprocess.run(
        [sys.executable, "train_image_classifiers.py", f"--flagfile={flagfile}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LeNet/conv1/weights" in proc.stdout and "Total trainable parameters" in proc.stdout
    assert tf.train.latest_checkpoint(str(tmp_path / "ff")).endswith("model.ckpt-2")


def test_eval_during_training_logs_accuracy(train, tmp_path, write_mnist_records):
    d = write_mnist_records({"train": 200, "test": 37})
    result = train(
        **dict(TINY, dataset_name="mnist", batch_size=20),
        dataset_dir=d,
        stop_at_step=60,
        eval_every_n_steps=30,
        eval_split_name="test",
        eval_batch_size=8,
        learning_rate=0.01,
        train_dir=str(tmp_path / "e"),
    )
    steps = [s for s, _ in result["eval"]]
    assert steps == [30, 60]
    for _, metrics in result["eval"]:
        assert metrics["count"] == 37  # 4 full batches of 8 + a partial batch of 5
    assert result["eval"][-1][1]["top1"] > 0.8  # the band position gives the label away


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_fp32_master_weights(train, tmp_path, precision):
    d = str(tmp_path / precision)
    result = train(
        **dict(TINY, model_name="cifarnet", batch_size=8),
        precision=precision,
        stop_at_step=12,
        learning_rate=0.01,
        weight_decay=0.0,
        train_dir=d,
    )
    values = checkpoint_values(result["checkpoint"])
    assert values["CifarNet/conv1/weights"].dtype == np.float32
    assert values["CifarNet/logits/weights"].dtype == np.float32
    losses = [v["loss"] for _, v in result["log"]]
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
    if precision == "fp16":
        # Dynamic loss scaling: the scale is logged and checkpointed with the run.
        assert all("loss_scale" in v and "skipped_steps" in v for _, v in result["log"])
        assert values["loss_scale/scale"] > 0


def test_use_fp16_alias_selects_fp16(train, tmp_path):
    result = train(**TINY, use_fp16=True, stop_at_step=2, train_dir=str(tmp_path / "alias"))
    assert "loss_scale" in result["log"][-1][1]


def test_in_training_eval_names_a_corrupt_eval_record(train, tmp_path, write_mnist_records):
    d = write_mnist_records({"train": 16, "test": 10}, num_shards=2)
    bad = os.path.join(d, "mnist_test-00001-of-00002.tfrecord")
    data = open(bad, "rb").read()
    with open(bad, "wb") as f:
        f.write(data[:20] + b"garbage" * 10 + data[90:])
    with pytest.raises(RuntimeError, match="split 'test': .*mnist_test-00001-of-00002.tfrecord"):
        train(
            **dict(TINY, dataset_name="mnist"),
            dataset_dir=d,
            stop_at_step=1,
            eval_every_n_steps=1,
            train_dir=str(tmp_path / "c"),
        )


def test_eval_during_training_defaults_to_the_held_out_split(train, tmp_path, write_mnist_records):
    # mnist has train and test only: with no --eval_split_name the test split is evaluated
    # at --eval_image_size (lenet's own 28 here, so the shared weights fit).
    d = write_mnist_records({"train": 16, "test": 11})
    result = train(
        **dict(TINY, dataset_name="mnist"),
        dataset_dir=d,
        stop_at_step=2,
        eval_every_n_steps=2,
        eval_batch_size=4,
        eval_image_size=28,
        train_dir=str(tmp_path / "h"),
    )
    assert [(s, m["count"]) for s, m in result["eval"]] == [(2, 11)]


def test_eval_image_size_sets_the_eval_input_only(tmp_path):
    from absl import flags as absl_flags

    import train_image_classifiers
    from datasets import dataset_factory
    from image_models import nets_factory
    from training import distributed

    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test", "--train_image_size=24", "--eval_image_size=40"])
    try:
        entry = nets_factory.get_entry("lenet")
        spec = dataset_factory.get_dataset("mock", "validation", mock_num_classes=10)
        dist = distributed.Distributed(None)
        with tf.Graph().as_default():
            train_ds, _ = train_image_classifiers.make_dataset(spec, entry, True, dist, 2)
            eval_ds, _ = train_image_classifiers.make_dataset(spec, entry, False, dist, 2)
            assert train_ds.element_spec[0].shape.as_list()[1:3] == [24, 24]
            assert eval_ds.element_spec[0].shape.as_list()[1:3] == [40, 40]
    finally:
        absl_flags.FLAGS.unparse_flags()


def test_num_epochs_sets_the_last_step_unless_stop_at_step_is_given(train, tmp_path):
    # mock train split: 12800 examples; 0.001 epochs at batch 4 = 12.8 -> step 4 ends it.
    # (ceil(0.001 * 12800 / 4) = 4 steps).
    result = train(**TINY, num_epochs=0.001, train_dir=str(tmp_path / "e"))
    assert [step for step, _ in result["log"]] == [1, 2, 3, 4]
    given = train(**TINY, num_epochs=0.001, stop_at_step=2, train_dir=str(tmp_path / "s"))
    assert [step for step, _ in given["log"]] == [1, 2]


def test_hooks_flag_turns_off_the_checkpoint_saver_and_the_step_log(train, tmp_path):
    d = str(tmp_path / "nosave")
    result = train(**TINY, stop_at_step=2, hooks="stopatstephook, LoggingTensorHook", train_dir=d)
    assert [step for step, _ in result["log"]] == [1, 2]
    assert result["checkpoint"] is None and not os.path.exists(os.path.join(d, "checkpoint"))
    quiet = train(**TINY, stop_at_step=2, hooks="StopAtStepHook", train_dir=str(tmp_path / "q"))
    assert quiet["log"] == [] and quiet["checkpoint"] is None


def test_log_device_placement_reaches_the_session_config():
    import types

    import flags
    from training import distributed

    defaults = {name: flags.FLAGS[name].default for name in flags.FLAGS}
    dist = distributed.Distributed(None)
    on = types.SimpleNamespace(**dict(defaults, log_device_placement=True))
    assert distributed.session_config(dist, on).log_device_placement
    assert not distributed.session_config(
        dist, types.SimpleNamespace(**defaults)
    ).log_device_placement


@pytest.mark.slow  # a subprocess: TensorFlow start-up plus a few lenet steps
def test_trains_from_a_fastnn_flagfile(tmp_path, write_mnist_records):
    # Every flag here is spelt as in FastNN's user guide (images/flags.py), with the local
    # run's --enable_paisoar=False; --train_files lists one shard (the other is corrupt, so
    # reading it would fail) and --num_epochs sets the last step.
    d = write_mnist_records({"train": 24, "test": 8}, num_shards=2)
    bad = os.path.join(d, "mnist_train-00001-of-00002.tfrecord")
    with open(bad, "r+b") as f:
        f.seek(20)
        f.write(b"garbage" * 10)
    train_dir = tmp_path / "fastnn"
    flagfile = tmp_path / "fastnn.flags"
    flagfile.write_text(
        "\n".join(
            [
                # dataset
                "--dataset_name=mnist",
                f"--dataset_dir={d}",
                "--num_sample_per_epoch=24",
                "--num_classes=10",
                "--train_files=mnist_train-00000-of-00002.tfrecord",
                # preprocessing
                "--preprocessing_name=lenet",
                "--shuffle_buffer_size=16",
                "--num_parallel_batches=2",
                "--prefetch_buffer_size=2",
                "--num_preprocessing_threads=2",
                "--datasets_use_caching=True",
                # model params
                "--task_type=pretrain",
                "--model_name=lenet",
                "--num_epochs=2",
                "--weight_decay=0.00004",
                "--max_gradient_norm=5.0",
                "--batch_size=8",
                # learning-rate tuning
                "--warmup_steps=0",
                "--warmup_scheme=t2t",
                "--learning_rate_decay_factor=0.94",
                "--learning_rate_decay_type=exponential",
                "--learning_rate=0.01",
                "--end_learning_rate=0.0001",
                # optimizer
                "--optimizer=rmsprop",
                "--adadelta_rho=0.95",
                "--adagrad_initial_accumulator_value=0.1",
                "--adam_beta1=0.9",
                "--adam_beta2=0.999",
                "--opt_epsilon=1.0",
                "--ftrl_learning_rate_power=-0.5",
                "--ftrl_initial_accumulator_value=0.1",
                "--ftrl_l1=0.0",
                "--ftrl_l2=0.0",
                "--momentum=0.9",
                "--rmsprop_momentum=0.9",
                "--rmsprop_decay=0.9",
                # logging
                "--log_loss_every_n_iters=2",
                "--profile_every_n_iters=0",
                "--profile_at_task=0",
                "--log_device_placement=False",
                "--print_model_statistics=False",
                "--hooks=StopAtStepHook,ProfilerHook,LoggingTensorHook,CheckpointSaverHook",
                # performance
                "--use_fp16=False",
                "--loss_scale=1.0",
                "--enable_paisoar=False",
                "--protocol=grpc",
                f"--train_dir={train_dir}",
            ]
        )
        + "\n"
    )
    proc = subprocess.run(
        [sys.executable, "train_image_classifiers.py", f"--flagfile={flagfile}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 2 epochs of 24 examples at batch 8 end at step 6; the step log every 2 steps.
    assert tf.train.latest_checkpoint(str(train_dir)).endswith("model.ckpt-6")
    import re

    assert re.findall(r"step (\d+): loss=", proc.stderr) == ["1", "2", "4", "6"]
    for name in ("enable_paisoar", "protocol"):
        warnings = [line for line in proc.stderr.splitlines() if f"--{name} is a PAI" in line]
        assert len(warnings) == 1, name


def test_profile_every_n_iters_alias_writes_traces_unless_the_hook_is_left_out(train, tmp_path):
    d = tmp_path / "prof"
    train(**TINY, stop_at_step=2, profile_every_n_iters=1, profile_at_task=0, train_dir=str(d))
    assert sorted(p.name for p in d.glob("timeline-*.json"))  # FastNN's name, our hook
    off = tmp_path / "off"
    train(
        **TINY,
        stop_at_step=2,
        profile_every_n_iters=1,
        hooks="StopAtStepHook,LoggingTensorHook,CheckpointSaverHook",
        train_dir=str(off),
    )
    assert not list(off.glob("timeline-*.json"))


# ------------------------------------------------------------ finetune restore rules
RESNET = dict(TINY, model_name="resnet20_cifar")  # batch norm after every convolution
BLOCK3_AND_LOGITS = "resnet20_cifar/block3,resnet20_cifar/logits"


def _statistics(values, scope=""):
    return {
        k: v
        for k, v in values.items()
        if k.startswith(scope) and k.endswith(("/moving_mean", "/moving_variance"))
    }


def test_finetune_restores_batch_norm_statistics_and_freeze_batch_norm_keeps_them(train, tmp_path):
    src = str(tmp_path / "src")
    train(**RESNET, stop_at_step=2, train_dir=src)
    pretrained = _statistics(checkpoint_values(tf.train.latest_checkpoint(src)))
    assert len(pretrained) == 38  # 19 batch norms
    finetune = dict(
        RESNET,
        stop_at_step=2,
        task_type="finetune",
        model_dir=src,
        trainable_scopes=BLOCK3_AND_LOGITS,
        learning_rate=0.1,
    )

    # Item 1: the statistics are restored. The checkpoint saved when the session starts
    # holds what the finetune restored; without --freeze_batch_norm they then follow the
    # finetune's batches.
    free = str(tmp_path / "free")
    train(**finetune, train_dir=free)
    restored = checkpoint_values(os.path.join(free, "model.ckpt-0"))
    trained = checkpoint_values(os.path.join(free, "model.ckpt-2"))
    for name, value in pretrained.items():
        assert not np.all(value == (1.0 if name.endswith("variance") else 0.0)), name
        np.testing.assert_array_equal(restored[name], value, err_msg=name)
        assert not np.array_equal(trained[name], value), name

    # --freeze_batch_norm: outside the trainable scopes they stay; inside they train.
    frozen = checkpoint_values(
        train(**finetune, freeze_batch_norm=True, train_dir=str(tmp_path / "f"))["checkpoint"]
    )
    for name, value in pretrained.items():
        if "/block3/" in name:
            assert not np.array_equal(frozen[name], value), name
        else:
            np.testing.assert_array_equal(frozen[name], value, err_msg=name)


def test_moving_averages_of_a_run_with_trainable_scopes_evaluate_and_export(
    train, evaluate, export_from_flags, tmp_path
):
    d = str(tmp_path / "ema")
    train(
        **TINY, stop_at_step=2, train_dir=d, moving_average_decay=0.5, trainable_scopes="LeNet/fc4"
    )
    saved = checkpoint_values(tf.train.latest_checkpoint(d))
    assert "LeNet/fc4/weights/ExponentialMovingAverage" in saved
    assert "LeNet/conv1/weights/ExponentialMovingAverage" not in saved  # frozen: no shadow
    flags = dict(
        model_name="lenet",
        dataset_name="mock",
        num_classes=10,
        eval_batch_size=128,
        checkpoint_path=d,
    )
    raw = evaluate(**flags)
    averaged = evaluate(**flags, use_moving_average=True, moving_average_decay=0.5)
    assert averaged["count"] == raw["count"] == 1280
    assert averaged["loss"] != raw["loss"]  # fc4's shadows, not its weights
    report = export_from_flags(
        model_name="lenet",
        num_classes=10,
        checkpoint=d,
        format="frozen_graph",
        output=str(tmp_path / "lenet.pb"),
        moving_average_decay=0.5,
    )
    assert report["moving_averages"] and os.path.exists(str(tmp_path / "lenet.pb"))


# ------------------------------------------------------------------------- resume
class BatchRecorder(tf.train.SessionRunHook):
    """Records the training images of every step."""

    def begin(self):
        self.batches = []
        self._images = tf.get_default_graph().get_tensor_by_name("IteratorGetNext:0")

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._images)

    def after_run(self, run_context, run_values):
        self.batches.append(run_values.results)


@pytest.fixture
def train_recording(train, monkeypatch):
    """train_recording(**flags) -> (the result, the images of each step)."""
    import train_image_classifiers

    real = train_image_classifiers.train

    def run(**flags):
        recorder = BatchRecorder()
        monkeypatch.setattr(train_image_classifiers, "train", lambda: real([recorder]))
        return train(**flags), recorder.batches

    return run


def test_a_resume_continues_the_data_stream_instead_of_replaying_it(train_recording, tmp_path):
    import shutil

    d = str(tmp_path / "run")
    _, first = train_recording(**TINY, stop_at_step=3, train_dir=d)
    shutil.copytree(d, str(tmp_path / "copy"))
    result, resumed = train_recording(**TINY, stop_at_step=6, train_dir=d)
    assert [step for step, _ in result["log"]] == [4, 5, 6]
    assert len(first) == len(resumed) == 3
    for a, b in zip(first, resumed):
        assert not np.array_equal(a, b)  # not epoch 1's first batches again
    # The same (seed, start step) gives the same stream.
    _, again = train_recording(**TINY, stop_at_step=6, train_dir=str(tmp_path / "copy"))
    for a, b in zip(resumed, again):
        np.testing.assert_array_equal(a, b)


def _snapshot(directory):
    return {
        name: (
            os.stat(os.path.join(directory, name)).st_size,
            os.stat(os.path.join(directory, name)).st_mtime_ns,
        )
        for name in os.listdir(directory)
    }


def test_rerunning_a_finished_job_trains_and_writes_nothing(train, tmp_path):
    d = str(tmp_path / "done")
    train(**TINY, stop_at_step=3, train_dir=d)
    before = _snapshot(d)
    for stop in (3, 2):
        result = train(**TINY, stop_at_step=stop, train_dir=d)
        assert result["log"] == [] and result["checkpoint"] == os.path.join(d, "model.ckpt-3")
        assert _snapshot(d) == before  # no checkpoint, events file or graph written


def test_finetune_on_a_train_dir_with_a_checkpoint_resumes_it(train, tmp_path, caplog):
    import logging
    import shutil

    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    train(**TINY, stop_at_step=2, train_dir=src)
    finetune = dict(TINY, task_type="finetune", model_dir=src, train_dir=dst)
    train(**finetune, stop_at_step=2)
    shutil.rmtree(src)  # the finetune checkpoint is not read again
    with caplog.at_level(logging.WARNING):
        result = train(**finetune, stop_at_step=3)
    assert [step for step, _ in result["log"]] == [3]
    assert f"--train_dir {dst} already holds {dst}/model.ckpt-2" in caplog.text
    assert "ignoring the finetune checkpoint" in caplog.text


def test_resume_with_other_shapes_names_the_variables(train, tmp_path):
    d = str(tmp_path / "r")
    train(**TINY, stop_at_step=2, train_dir=d)
    with pytest.raises(ValueError) as err:
        train(**dict(TINY, num_classes=5), stop_at_step=4, train_dir=d)
    message = str(err.value)
    assert f"Cannot resume from {d}/model.ckpt-2:" in message
    assert "LeNet/fc4/weights: model [1024, 5] vs checkpoint [1024, 10]" in message
    assert "LeNet/fc4/biases: model [5] vs checkpoint [10]" in message
    assert tf.train.latest_checkpoint(d).endswith("model.ckpt-2")


def test_resume_removes_what_a_killed_save_left(train, tmp_path):
    d = str(tmp_path / "killed")
    train(**TINY, stop_at_step=2, train_dir=d)
    complete = {name for name in os.listdir(d) if name.startswith("model.ckpt-2.")}
    # The names TF 2.21's Saver leaves when SIGKILLed during a save (see test_checkpoints).
    partial = [
        "model.ckpt-3.data-00000-of-00001.tempstate1779944103386750219",
        "model.ckpt-3.index.tempstate9116301741302347683",
        "checkpoint.tmp1b2c3d4e5f60718293a4b5c6d7e8f901",
        "model.ckpt-5.data-00000-of-00001",
    ]
    for name in partial:
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"\0" * 4096)
    os.makedirs(os.path.join(d, "model.ckpt-3_temp"))
    result = train(**TINY, stop_at_step=4, train_dir=d)
    assert [step for step, _ in result["log"]] == [3, 4]
    left = set(os.listdir(d))
    assert not left & set(partial + ["model.ckpt-3_temp"])
    assert complete <= left
