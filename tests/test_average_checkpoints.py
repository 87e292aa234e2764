"""scripts/average_checkpoints.py: the mean of the last N checkpoints, restorable as a model."""

import importlib.util
import os

import numpy as np
import pytest

from slim_compat import tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "average_checkpoints", os.path.join(ROOT, "scripts", "average_checkpoints.py")
)
average_checkpoints = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(average_checkpoints)


def _train_dir(path, values):
    """Checkpoints of a weight w [2, 3] and global_step, one per value."""
    with tf.Graph().as_default():
        w = tf.get_variable("model/w", [2, 3])
        step = tf.train.get_or_create_global_step()
        assign = tf.assign(w, tf.placeholder(tf.float32, [2, 3]))
        saver = tf.train.Saver(max_to_keep=10)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for i, value in enumerate(values):
                session.run([assign, tf.assign(step, 100 * (i + 1))], {assign.op.inputs[1]: value})
                saver.save(session, os.path.join(path, "model.ckpt"), global_step=100 * (i + 1))


def test_last_n_averaged_and_restorable(tmp_path):
    values = [np.full([2, 3], v, np.float32) for v in (1.0, 2.0, 4.0, 9.0)]
    _train_dir(str(tmp_path), values)
    out = str(tmp_path / "avg" / "model.ckpt")
    average_checkpoints.main(["--train_dir", str(tmp_path), "--num_last", "3", "--output", out])
    reader = tf.train.load_checkpoint(out)
    np.testing.assert_allclose(reader.get_tensor("model/w"), np.full([2, 3], 5.0))
    assert reader.get_tensor("global_step") == 400  # from the newest, not averaged
    with tf.Graph().as_default():
        w = tf.get_variable("model/w", [2, 3])
        with tf.Session() as session:
            tf.train.Saver([w]).restore(session, out)
            np.testing.assert_allclose(session.run(w), 5.0)


def test_too_few_checkpoints_and_mismatched_models_are_refused(tmp_path):
    _train_dir(str(tmp_path / "a"), [np.ones([2, 3], np.float32)] * 2)
    with pytest.raises(ValueError, match="keeps 2 checkpoints, fewer than --num_last=3"):
        average_checkpoints.last_checkpoints(str(tmp_path / "a"), 3)
    with tf.Graph().as_default():
        tf.get_variable("model/other", [1])
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            other = tf.train.Saver().save(session, str(tmp_path / "b" / "x.ckpt"))
    first = average_checkpoints.last_checkpoints(str(tmp_path / "a"), 1)[0]
    with pytest.raises(ValueError, match="only checkpoints of one model"):
        average_checkpoints.average([other, first])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        average_checkpoints.last_checkpoints(str(tmp_path / "empty"), 1)
