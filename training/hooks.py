"""Session hooks of the training loop: step log with img/s, NaN guard, evaluation, profiler."""

import contextlib
import math
import time

from absl import logging

from slim_compat import tf
from training import evaluation


class NanLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped without saving."""


class StepLoggingHook(tf.train.SessionRunHook):
    """Every N steps logs step, loss, batch accuracy, learning rate and images per second.

    The tensors are fetched only on logging steps, so the other steps pay nothing. With
    Horovod the loss and accuracy are averages over ranks (an allreduce), so EVERY rank
    runs this hook and fetches on the same steps; only the rank with `log=True` prints.
    Images per second counts the global batch, measured between two logs.
    """

    def __init__(self, tensors, every_n_steps, global_batch_size, global_step, log=True):
        self._tensors = tensors  # name -> tensor; must include 'step' (read after the update)
        self._every_n = max(1, int(every_n_steps))
        self._global_batch = global_batch_size
        self._global_step = global_step
        self._log = log
        self._next_step = None
        self._last = None  # (time, step) of the previous log
        self.history = []  # (step, values dict) of every logged step

    def after_create_session(self, session, coord):
        self._next_step = int(session.run(self._global_step)) + 1

    def _logs(self, step):
        return self._last is None or step % self._every_n == 0

    def before_run(self, run_context):
        if self._logs(self._next_step):
            return tf.train.SessionRunArgs(self._tensors)
        return None

    def after_run(self, run_context, run_values):
        step = self._next_step
        self._next_step += 1
        if run_values.results is None:
            return
        values = dict(run_values.results)
        step = int(values["step"])
        now = time.perf_counter()
        rate = ""
        if self._last is not None and step > self._last[1]:
            values["images_per_sec"] = (
                (step - self._last[1]) * self._global_batch / (now - self._last[0])
            )
            rate = f"  {values['images_per_sec']:.1f} img/s"
        self._last = (now, step)
        self.history.append((step, values))
        if self._log:
            parts = [f"{k}={values[k]:.4g}" for k in self._tensors if k != "step"]
            logging.info("step %d: %s%s", step, "  ".join(parts), rate)


class NanLossHook(tf.train.SessionRunHook):
    """Stops the run when the loss is NaN/inf, BEFORE any saver of this step runs.

    Put it first in the hook list: hooks' after_run are called in order, so raising here
    keeps the checkpoint saver from writing the broken weights; the last good checkpoint
    stays the latest one in train_dir.
    """

    def __init__(self, loss, step, train_dir):
        self._loss = loss
        self._step = step
        self._train_dir = train_dir

    def before_run(self, run_context):
        return tf.train.SessionRunArgs([self._loss, self._step])

    def after_run(self, run_context, run_values):
        loss, step = run_values.results
        if not math.isfinite(loss):
            last = tf.train.latest_checkpoint(self._train_dir) if self._train_dir else None
            raise NanLossError(
                f"Loss is {loss} at step {step}: training stopped, nothing saved for this step. "
                f"Last good checkpoint: {last or 'none yet'}. Try a lower --learning_rate, "
                f"--max_gradient_norm, or --precision=fp32."
            )


class FiniteWeightsListener(tf.train.CheckpointSaverListener):
    """Refuses to write a checkpoint whose weights hold NaN or inf.

    The loss of step N+1 is the first to show that update N broke the weights, so a
    checkpoint written at step N could already hold them. This check runs only at save
    time, on every trainable variable.
    """

    def __init__(self, variables, train_dir):
        self._train_dir = train_dir
        with tf.name_scope("finite_weights_check"):
            self._finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])

    def before_save(self, session, global_step_value):
        if not session.run(self._finite):
            last = tf.train.latest_checkpoint(self._train_dir)
            raise NanLossError(
                f"Weights hold NaN/inf at step {global_step_value}: not saved, training stopped. "
                f"Last good checkpoint: {last or 'none yet'}. Try a lower --learning_rate, "
                f"--max_gradient_norm, or --precision=fp32."
            )


class EvaluationHook(tf.train.SessionRunHook):
    """Every N steps evaluates the whole eval split and logs top-1 / top-5.

    Every rank runs it at the same step (the totals are an allreduce); rank 0 logs and
    writes the summary. `errors_named` (a context-manager factory, e.g.
    dataset_factory.input_errors_named bound to the eval split) turns a read error of the
    eval pass into one naming the eval split's bad file.
    """

    def __init__(
        self,
        eval_ops,
        every_n_steps,
        step_after_update,
        global_step,
        summary_dir=None,
        is_chief=True,
        split_name="validation",
        errors_named=contextlib.nullcontext,
    ):
        self._ops = eval_ops
        self._every_n = int(every_n_steps)
        self._step = step_after_update  # read after this step's update
        self._global_step = global_step
        self._summary_dir = summary_dir
        self._is_chief = is_chief
        self._split = split_name
        self._errors_named = errors_named
        self._writer = None
        self._last_step = None
        self.results = []  # (step, metrics dict)

    def begin(self):
        if self._summary_dir and self._is_chief:
            self._writer = tf.summary.FileWriterCache.get(self._summary_dir)

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._step)

    def after_run(self, run_context, run_values):
        step = int(run_values.results)
        if step % self._every_n == 0:
            self._evaluate(run_context.session, step)

    def end(self, session):
        step = int(session.run(self._global_step))
        if step != self._last_step and step % self._every_n != 0:
            self._evaluate(session, step)  # the final weights, unless just evaluated

    def _evaluate(self, session, step):
        with self._errors_named():
            metrics = evaluation.run_evaluation(session, self._ops)
        self._last_step = step
        self.results.append((step, metrics))
        if self._is_chief:
            logging.info(
                "eval at step %d on %s (%d examples): top-1 %.4f  top-5 %.4f  loss %.4f",
                step,
                self._split,
                metrics["count"],
                metrics["top1"],
                metrics["top5"],
                metrics["loss"],
            )
        if self._writer:
            summary = tf.Summary(
                value=[
                    tf.Summary.Value(tag=f"eval/{k}", simple_value=metrics[k])
                    for k in ("top1", "top5", "loss")
                ]
            )
            self._writer.add_summary(summary, step)
            self._writer.flush()
