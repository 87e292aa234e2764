"""End-to-end tests of eval_image_classifiers.py on a tiny lenet trained on tiny MNIST records."""

import json
import os
import time

import pytest

TRAIN = dict(
    model_name="lenet",
    dataset_name="mnist",
    batch_size=20,
    learning_rate=0.01,
    log_every_n_steps=10,
    save_summaries_steps=1000,
    eval_split_name="test",
    eval_batch_size=8,
)
EVAL = dict(model_name="lenet", dataset_name="mnist", eval_split_name="test", eval_batch_size=8)


@pytest.mark.slow  # trains for 20 steps and builds the eval graph three times
def test_one_shot_and_follow_match_the_in_training_eval(
    train, evaluate, write_mnist_records, tmp_path, capsys
):
    dataset_dir = write_mnist_records({"train": 100, "test": 37})
    train_dir = str(tmp_path / "run")
    result = train(
        **TRAIN,
        dataset_dir=dataset_dir,
        train_dir=train_dir,
        stop_at_step=20,
        eval_every_n_steps=10,
        save_checkpoints_steps=10,
    )
    in_training = dict(result["eval"])
    assert sorted(in_training) == [10, 20]
    assert result["checkpoint"] == os.path.join(train_dir, "model.ckpt-20")
    capsys.readouterr()

    # A directory: its latest checkpoint, over every example of the split once.
    latest = evaluate(**EVAL, dataset_dir=dataset_dir, checkpoint_path=train_dir)
    assert latest["count"] == 37  # 4 batches of 8 and a partial batch of 5
    for key in ("top1", "top5"):
        assert 0.0 <= latest[key] <= 1.0
        assert latest[key] == in_training[20][key]  # same weights, same examples
    assert latest["top5"] >= latest["top1"]
    assert latest["loss"] == pytest.approx(in_training[20]["loss"], rel=1e-4)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["checkpoint"] == result["checkpoint"] and printed["step"] == 20
    assert printed["count"] == 37 and printed["top1"] == latest["top1"]

    # A file prefix: that checkpoint, not the latest.
    earlier = evaluate(
        **EVAL, dataset_dir=dataset_dir, checkpoint_path=os.path.join(train_dir, "model.ckpt-10")
    )
    assert earlier["count"] == 37
    assert earlier["top1"] == in_training[10]["top1"]
    assert earlier["loss"] == pytest.approx(in_training[10]["loss"], rel=1e-4)
    assert earlier["loss"] != latest["loss"]  # really a different checkpoint

    # --follow: evaluates what is there, then gives up after the timeout and returns a list.
    followed = evaluate(
        **EVAL,
        dataset_dir=dataset_dir,
        checkpoint_path=train_dir,
        follow=True,
        eval_timeout_secs=2,
    )
    assert isinstance(followed, list) and len(followed) >= 1
    assert followed[-1] == latest


def test_missing_checkpoint_is_named(evaluate, write_mnist_records, tmp_path):
    dataset_dir = write_mnist_records({"test": 5})
    missing = str(tmp_path / "nowhere" / "model.ckpt-5")
    with pytest.raises(FileNotFoundError, match=missing):
        evaluate(**EVAL, dataset_dir=dataset_dir, checkpoint_path=missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"No checkpoint in directory.*{empty}"):
        evaluate(**EVAL, dataset_dir=dataset_dir, checkpoint_path=str(empty))


def test_follow_needs_a_directory(evaluate, tmp_path):
    prefix = str(tmp_path / "model.ckpt-3")
    with pytest.raises(ValueError, match=f"--follow.*{prefix}"):
        evaluate(**EVAL, dataset_dir=str(tmp_path), checkpoint_path=prefix, follow=True)


def test_held_out_split_by_default_and_a_corrupt_record_is_named(
    train, evaluate, write_mnist_records, tmp_path
):
    dataset_dir = write_mnist_records({"train": 16, "test": 13}, num_shards=2)
    train_dir = str(tmp_path / "run")
    train(**dict(TRAIN, batch_size=4), dataset_dir=dataset_dir, train_dir=train_dir, stop_at_step=1)
    flags = dict(EVAL, dataset_dir=dataset_dir, checkpoint_path=train_dir)
    del flags["eval_split_name"]
    # mnist has no validation split: its test split is the held-out one.
    metrics = evaluate(**flags)
    assert metrics["count"] == 13 and metrics["step"] == 1

    bad = os.path.join(dataset_dir, "mnist_test-00001-of-00002.tfrecord")
    with open(bad, "r+b") as f:
        f.seek(20)
        f.write(b"garbage" * 10)
    with pytest.raises(RuntimeError, match="split 'test': .*mnist_test-00001-of-00002.tfrecord"):
        evaluate(**flags)


def test_eval_image_size_is_the_eval_input_size():
    from absl import flags as absl_flags

    import eval_image_classifiers
    from slim_compat import tf
    from training import distributed

    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test", "--num_classes=10", "--train_image_size=24", "--eval_image_size=36"])
    try:
        with tf.Graph().as_default() as graph:
            eval_image_classifiers.build_graph(distributed.Distributed(None))
            images = graph.get_tensor_by_name("eval/IteratorGetNext:0")
            assert images.shape.as_list()[1:3] == [36, 36]
    finally:
        absl_flags.FLAGS.unparse_flags()


@pytest.mark.slow
@pytest.mark.horovod
def test_follow_on_two_ranks_agrees_on_each_checkpoint_and_skips_a_deleted_one(
    train, evaluate, write_mnist_records, tmp_path
):
    import shutil
    import threading

    from slim_compat import tf
    from tests.training.test_horovod import launch

    dataset_dir = write_mnist_records({"train": 16, "test": 13}, num_shards=2)
    train_dir = str(tmp_path / "run")
    train(
        **dict(TRAIN, batch_size=4),
        dataset_dir=dataset_dir,
        train_dir=train_dir,
        stop_at_step=2,
        save_checkpoints_steps=1,
    )
    first, second = (os.path.join(train_dir, f"model.ckpt-{s}") for s in (1, 2))
    expected = evaluate(**EVAL, dataset_dir=dataset_dir, checkpoint_path=second)
    # The directory starts with checkpoint 1 only; checkpoint 2 waits aside.
    staged = tmp_path / "staged"
    staged.mkdir()
    for name in os.listdir(train_dir):
        if name.startswith("model.ckpt-2."):
            shutil.move(os.path.join(train_dir, name), staged / name)
    tf.train.update_checkpoint_state(train_dir, first, [first])

    out = tmp_path / "eval"
    out.mkdir()
    (out / "hold_first_restore").write_text("")

    def trainer_moves_on():
        # Once rank 0 has chosen checkpoint 1 (and before it reads it), checkpoint 1 is
        # deleted and checkpoint 2 appears, as keep_checkpoint_max does to a slow evaluator.
        deadline = time.monotonic() + 300
        while not (out / "restoring").exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        for name in os.listdir(train_dir):
            if name.startswith("model.ckpt-1."):
                os.remove(os.path.join(train_dir, name))
        for name in os.listdir(staged):
            shutil.move(staged / name, os.path.join(train_dir, name))
        tf.train.update_checkpoint_state(train_dir, second, [second])
        (out / "go").write_text("")

    mover = threading.Thread(target=trainer_moves_on, daemon=True)
    mover.start()
    ranks, proc = launch(
        str(out),
        [f"--{k}={v}" for k, v in EVAL.items()]
        + [
            f"--dataset_dir={dataset_dir}",
            f"--checkpoint_path={train_dir}",
            "--follow",
            "--eval_timeout_secs=3",
        ],
        driver=os.path.join(os.path.dirname(os.path.abspath(__file__)), "eval_horovod_driver.py"),
    )
    mover.join(timeout=5)
    assert (out / "restoring").read_text() == first  # rank 0 did choose checkpoint 1 first
    assert f"Skipped {first}" in proc.stderr
    # Both ranks skipped checkpoint 1, evaluated checkpoint 2 alike, and stopped together.
    assert [r["size"] for r in ranks] == [2, 2]
    assert ranks[0]["results"] == ranks[1]["results"]
    (result,) = ranks[0]["results"]
    assert result["checkpoint"] == second and result["step"] == 2
    assert result["count"] == 13  # 7 + 6 examples on the two ranks, summed
    assert result["top1"] == expected["top1"] and result["top5"] == expected["top5"]
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_follow_raises_on_a_checkpoint_that_exists_but_does_not_fit(train, evaluate, tmp_path):
    # Only a checkpoint deleted before its restore is skipped: one of another model (here
    # 5 classes for a 10-class eval) is an error, not a silent skip until the timeout.
    train_dir = str(tmp_path / "five")
    train(
        model_name="lenet",
        dataset_name="mock",
        num_classes=5,
        batch_size=4,
        stop_at_step=1,
        train_dir=train_dir,
    )
    with pytest.raises(
        ValueError, match=r"LeNet/fc4/weights: model \[1024, 10\] vs checkpoint \[1024, 5\]"
    ):
        evaluate(
            model_name="lenet",
            dataset_name="mock",
            num_classes=10,
            checkpoint_path=train_dir,
            follow=True,
            eval_timeout_secs=1,
        )
