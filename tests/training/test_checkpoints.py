"""Tests of training/checkpoints.py: scopes, what a finetune restores and trains, the checks."""

import os

import numpy as np
import pytest

from slim_compat import tf
from training import checkpoints


def build_net(num_classes=10, extra=False, hidden=4, moving_average=False):
    """A two-layer 'Net' with an optimizer, a global step and loss-scale state.

    Net's variables are model variables, as slim.model_variable makes them; Other's
    trainable variable is not one (a net built without slim).
    """
    with tf.variable_scope("Net"):
        w1 = tf.get_variable("conv1/weights", [3, hidden], initializer=tf.ones_initializer())
        b1 = tf.get_variable("conv1/biases", [hidden], initializer=tf.zeros_initializer())
        bn = tf.get_variable(
            "conv1/BatchNorm/moving_mean",
            [hidden],
            initializer=tf.ones_initializer(),
            trainable=False,
        )
        w2 = tf.get_variable("logits/weights", [hidden, num_classes])
        tf.get_variable("logits/biases", [num_classes], initializer=tf.zeros_initializer())
        if extra:
            tf.get_variable("extra/weights", [2, 2])
    for var in tf.global_variables("Net/"):
        tf.add_to_collection(tf.GraphKeys.MODEL_VARIABLES, var)
    with tf.variable_scope("Other"):
        tf.get_variable("head/weights", [2])
    tf.train.get_or_create_global_step()
    with tf.variable_scope("loss_scale"):
        tf.get_variable("scale", initializer=1.0, trainable=False)
    loss = tf.reduce_sum(tf.matmul(tf.ones([1, 3]), w1) + b1 + bn) + tf.reduce_sum(w2)
    tf.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
    if moving_average:
        tf.train.ExponentialMovingAverage(0.9).apply([w1, w2])


def names(variables):
    return sorted(v.op.name for v in variables)


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint of build_net() with 10 classes; returns its prefix."""
    with tf.Graph().as_default():
        build_net()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return tf.train.Saver().save(session, str(tmp_path / "pre" / "model.ckpt"), 7)


@pytest.mark.parametrize(
    "scopes, want",
    [
        (None, []),
        ("", []),
        ("a", ["a"]),
        ("a, b/c", ["a", "b/c"]),
        (" a ,, b/ ,", ["a", "b/"]),
    ],
)
def test_split_scopes(scopes, want):
    assert checkpoints.split_scopes(scopes) == want


def test_variables_to_restore_are_the_model_variables(graph):
    # TF-Slim's rule: the model variables, batch-norm statistics included, and never the
    # optimizer slots, global step, loss scale or moving-average shadows.
    build_net(moving_average=True)
    assert names(checkpoints.variables_to_restore()) == [
        "Net/conv1/BatchNorm/moving_mean",
        "Net/conv1/biases",
        "Net/conv1/weights",
        "Net/logits/biases",
        "Net/logits/weights",
        "Other/head/weights",  # trainable though not a model variable: restored too
    ]
    all_names = names(tf.global_variables())
    assert "Net/conv1/weights/ExponentialMovingAverage" in all_names
    assert "Net/conv1/weights/Momentum" in all_names


def test_exclude_scopes_match_whole_scope_names(graph):
    build_net()
    got = names(checkpoints.variables_to_restore("Net/logits, Other"))
    assert got == ["Net/conv1/BatchNorm/moving_mean", "Net/conv1/biases", "Net/conv1/weights"]
    # 'Net/conv' is not a scope of 'Net/conv1/...': nothing excluded by it.
    assert len(checkpoints.variables_to_restore("Net/conv")) == 6
    assert len(checkpoints.variables_to_restore("Net/conv1/")) == 3


def test_restore_all_adds_statistics_but_never_optimizer_state(graph):
    build_net(moving_average=True)
    got = names(checkpoints.variables_to_restore("Net/logits", restore_all=True))
    assert got == [
        "Net/conv1/BatchNorm/moving_mean",
        "Net/conv1/biases",
        "Net/conv1/weights",
        "Other/head/weights",
    ]
    all_names = names(tf.global_variables())
    assert "global_step" in all_names and "loss_scale/scale" in all_names
    assert any(n.endswith("/Momentum") for n in all_names)


def test_check_restorable_accepts_a_matching_model(graph, checkpoint):
    build_net()
    restore = checkpoints.check_restorable(checkpoint, checkpoints.variables_to_restore())
    assert sorted(restore) == names(checkpoints.variables_to_restore())
    assert all(restore[key].op.name == key for key in restore)


def test_mismatched_shapes_are_named_with_both_shapes(graph, checkpoint):
    build_net(num_classes=5)
    with pytest.raises(ValueError) as err:
        checkpoints.check_restorable(checkpoint, checkpoints.variables_to_restore())
    message = str(err.value)
    assert checkpoint in message
    assert "Net/logits/weights: model [4, 5] vs checkpoint [4, 10]" in message
    assert "Net/logits/biases: model [5] vs checkpoint [10]" in message
    assert "2 variable(s) have a different shape" in message
    assert "--checkpoint_exclude_scopes=Net/logits" in message
    assert "conv1" not in message  # matching variables are not reported


def test_missing_variables_are_named_and_ignore_missing_drops_them(graph, checkpoint):
    build_net(extra=True)
    variables = checkpoints.variables_to_restore()
    with pytest.raises(ValueError) as err:
        checkpoints.check_restorable(checkpoint, variables)
    message = str(err.value)
    assert "1 variable(s) are not in the checkpoint" in message
    assert "Net/extra/weights" in message
    assert "--checkpoint_exclude_scopes=Net/extra" in message
    assert "--ignore_missing_vars" in message

    restore = checkpoints.check_restorable(checkpoint, variables, ignore_missing_vars=True)
    assert "Net/extra/weights" not in restore
    assert sorted(restore) == sorted(n for n in names(variables) if n != "Net/extra/weights")


def test_mismatch_and_missing_together(graph, checkpoint):
    build_net(num_classes=3, extra=True)
    with pytest.raises(ValueError) as err:
        checkpoints.check_restorable(
            checkpoint, checkpoints.variables_to_restore(), ignore_missing_vars=True
        )
    message = str(err.value)
    # ignore_missing_vars does not excuse a shape mismatch.
    assert "Net/logits/weights: model [4, 3] vs checkpoint [4, 10]" in message
    assert "Net/extra" not in message


def test_finetune_init_fn_restores_the_checked_variables(graph, checkpoint):
    build_net(num_classes=5)
    with pytest.raises(ValueError, match="Net/logits/weights"):
        checkpoints.finetune_init_fn(checkpoint)
    init_fn = checkpoints.finetune_init_fn(checkpoint, exclude_scopes="Net/logits")
    weights = tf.global_variables("Net/conv1/weights")[0]
    mean = tf.global_variables("Net/conv1/BatchNorm/moving_mean")[0]
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run([weights.assign(tf.zeros_like(weights)), mean.assign(tf.zeros_like(mean))])
        init_fn(None, session)
        np.testing.assert_array_equal(session.run(weights), np.ones([3, 4]))
        np.testing.assert_array_equal(session.run(mean), np.ones([4]))  # statistics too
        assert session.run(tf.train.get_global_step()) == 0  # the step is not restored


def test_variables_to_train(graph):
    build_net()
    assert names(checkpoints.variables_to_train()) == names(tf.trainable_variables())
    assert names(checkpoints.variables_to_train("Net/logits")) == [
        "Net/logits/biases",
        "Net/logits/weights",
    ]
    # Overlapping scopes list each variable once.
    got = checkpoints.variables_to_train("Net/logits, Net/logits/weights, Other")
    assert names(got) == ["Net/logits/biases", "Net/logits/weights", "Other/head/weights"]
    assert len(got) == 3


def test_unknown_trainable_scope_is_named(graph):
    build_net()
    with pytest.raises(ValueError) as err:
        checkpoints.variables_to_train("Net/logits,Net/fc9")
    message = str(err.value)
    assert "'Net/fc9'" in message and "Net, Other" in message


def test_resolve_checkpoint(checkpoint, tmp_path):
    model_dir = str(tmp_path / "pre")
    assert checkpoints.resolve_checkpoint(model_dir) == checkpoint
    assert checkpoints.resolve_checkpoint(model_dir, "model.ckpt-7") == checkpoint


def test_resolve_checkpoint_errors_name_the_path(checkpoint, tmp_path):
    model_dir = str(tmp_path / "pre")
    with pytest.raises(FileNotFoundError, match="model.ckpt-8"):
        checkpoints.resolve_checkpoint(model_dir, "model.ckpt-8")
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=missing):
        checkpoints.resolve_checkpoint(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=str(empty)):
        checkpoints.resolve_checkpoint(str(empty))
    with pytest.raises(ValueError, match="--model_dir"):
        checkpoints.resolve_checkpoint(None)


def test_resume_mismatch_names_the_variables_like_a_finetune(graph, checkpoint):
    build_net(num_classes=5)
    with pytest.raises(ValueError) as err:
        checkpoints.check_restorable(checkpoint, tf.global_variables(), action="resume")
    message = str(err.value)
    assert message.startswith(f"Cannot resume from {checkpoint}:")
    assert "Net/logits/weights: model [4, 5] vs checkpoint [4, 10]" in message
    assert "Net/logits/weights/Momentum: model [4, 5] vs checkpoint [4, 10]" in message
    assert "--train_dir" in message and "--checkpoint_exclude_scopes" not in message


# What TF 2.21's Saver leaves when the process is SIGKILLed during a save (reproduced with a
# 256 MB variable: the data file being written), and the other names its writes pass by.
PARTIAL_SAVE_FILES = [
    "model.ckpt-9.data-00000-of-00001.tempstate1779944103386750219",
    "model.ckpt-9.index.tempstate9116301741302347683",
    "checkpoint.tmp1b2c3d4e5f60718293a4b5c6d7e8f901",
    "model.ckpt-9.meta.tmp0123456789abcdef0123456789abcdef",
    "model.ckpt-8.data-00000-of-00001",  # renamed into place, killed before its index
]


def _leave_partial_saves(directory):
    for name in PARTIAL_SAVE_FILES:
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"\0" * 1024)
    sharded = os.path.join(directory, "model.ckpt-9_temp")
    os.makedirs(sharded)
    with open(os.path.join(sharded, "part-00000-of-00002.data-00000-of-00001.tempstate12"), "wb"):
        pass


def test_remove_partial_saves_keeps_every_complete_checkpoint(checkpoint):
    train_dir = os.path.dirname(checkpoint)
    complete = sorted(os.listdir(train_dir))  # model.ckpt-7.{data,index,meta}, checkpoint
    _leave_partial_saves(train_dir)
    removed = checkpoints.remove_partial_saves(train_dir)
    assert sorted(os.path.basename(p) for p in removed) == sorted(
        PARTIAL_SAVE_FILES + ["model.ckpt-9_temp"]
    )
    assert sorted(os.listdir(train_dir)) == complete
    assert tf.train.latest_checkpoint(train_dir) == checkpoint
    # The step is the saved global_step (0: this file was saved as '-7' by hand).
    assert checkpoints.checkpoint_step(checkpoint) == 0
    assert checkpoints.remove_partial_saves(train_dir) == []


def test_moving_averages_fall_back_to_the_variable_without_a_shadow(tmp_path):
    # Trained with shadows of Net/logits only (--trainable_scopes): a reader of the
    # averages restores the shadow where there is one and the variable elsewhere.
    with tf.Graph().as_default():
        build_net()
        logits = tf.global_variables("Net/logits/weights")[0]
        ema = tf.train.ExponentialMovingAverage(0.5)
        ema.apply([logits])
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            shadow = ema.average(logits)
            session.run(shadow.assign(tf.fill(shadow.shape, 3.0)))
            path = tf.train.Saver().save(session, str(tmp_path / "ema" / "model.ckpt"), 1)
    with tf.Graph().as_default():
        build_net()
        var_map = checkpoints.moving_average_variables_to_restore(path, 0.5)
        assert var_map["Net/logits/weights/ExponentialMovingAverage"].op.name == (
            "Net/logits/weights"
        )
        assert var_map["Net/conv1/weights"].op.name == "Net/conv1/weights"
        weights = tf.global_variables("Net/logits/weights")[0]
        with tf.Session() as session:
            checkpoints.MovingAverageSaver(0.5).restore(session, path)
            np.testing.assert_array_equal(session.run(weights), np.full([4, 10], 3.0))
            np.testing.assert_array_equal(
                session.run(tf.global_variables("Net/conv1/weights")[0]), np.ones([3, 4])
            )


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "lamb"])
def test_restore_all_never_restores_adam_like_optimizer_state(graph, params, optimizer):
    from training import optimizers

    with tf.variable_scope("Net"):
        weights = tf.get_variable("dense/kernel", [3, 2])
    optimizers.configure_optimizer(optimizer, 0.1, params()).minimize(tf.reduce_sum(weights))
    assert len(tf.global_variables()) > 1  # the moments (and beta powers) exist
    assert names(checkpoints.variables_to_restore(restore_all=True)) == ["Net/dense/kernel"]
