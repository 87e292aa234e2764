"""Tests of training/hooks.py's NaN guards: what stops a run, which checkpoint is good."""

import os

import pytest

from slim_compat import tf
from training import hooks


def run_once(hook):
    """One MonitoredSession run of a no-op train step with `hook`."""
    train_op = tf.no_op()
    with tf.train.MonitoredSession(hooks=[hook]) as session:
        session.run(train_op)


@pytest.mark.parametrize("stop_on_skipped_update, stops", [(True, True), (False, False)])
def test_an_inf_gradient_stops_the_run_unless_loss_scaling_skips_it(
    graph, stop_on_skipped_update, stops
):
    finite = tf.constant(False)
    hook = hooks.NanLossHook(
        tf.constant(2.5),
        tf.constant(7, tf.int64),
        update_finite=finite,
        stop_on_skipped_update=stop_on_skipped_update,
    )
    if stops:
        with pytest.raises(hooks.NanLossError, match="Gradients hold NaN/inf at step 7"):
            run_once(hook)
    else:
        run_once(hook)


def save(session, saver, train_dir, step):
    return saver.save(session, os.path.join(train_dir, "model.ckpt"), global_step=step)


def test_a_checkpoint_is_good_once_its_next_loss_was_finite(graph, tmp_path):
    train_dir = str(tmp_path)
    tf.get_variable("w", initializer=[1.0])
    saver = tf.train.Saver(max_to_keep=5, save_relative_paths=True)
    good = hooks.LastGoodCheckpoint(train_dir)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        first = save(session, saver, train_dir, 0)
        good.after_save(session, 0)
        assert good.path() is None  # saved, its next loss not seen yet
        good.loss_was_finite()
        assert good.path() == first
        second = save(session, saver, train_dir, 1)
        good.after_save(session, 1)
        good.loss_was_finite()
        third = save(session, saver, train_dir, 2)  # its next loss will be NaN
        good.after_save(session, 2)
    assert good.path() == second
    assert tf.train.latest_checkpoint(train_dir) == third
    # The NaN stop points auto-resume at the good one; nothing is deleted.
    assert good.point_resume_at_it() == second
    assert tf.train.latest_checkpoint(train_dir) == second
    state = tf.train.get_checkpoint_state(train_dir)
    assert list(state.all_model_checkpoint_paths) == [first, third, second]
    assert all(tf.train.checkpoint_exists(p) for p in (first, second, third))
    # A later run with the same train_dir still knows it.
    assert hooks.LastGoodCheckpoint(train_dir).path() == second


def test_no_good_checkpoint_leaves_the_state_alone(graph, tmp_path):
    tf.get_variable("w", initializer=[1.0])
    saver = tf.train.Saver()
    good = hooks.LastGoodCheckpoint(str(tmp_path))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        only = save(session, saver, str(tmp_path), 0)
        good.after_save(session, 0)
    assert good.point_resume_at_it() is None
    assert tf.train.latest_checkpoint(str(tmp_path)) == only
