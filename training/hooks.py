"""Session hooks of the training loop: step log with img/s, NaN guards, evaluation.

The NaN guards stop every rank together: they act on values that are the same on every
rank (the loss averaged over ranks, the update's finiteness agreed over ranks, weights
that every rank holds identically), on the same steps.
"""

import contextlib
import json
import math
import os
import time

from absl import logging

from slim_compat import tf
from training import distributed, evaluation


class NanLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped without saving."""


class StepLoggingHook(tf.train.SessionRunHook):
    """Every N steps logs step, loss, the task's metrics, learning rate and throughput.

    The tensors are fetched only on logging steps, so the other steps pay nothing. With
    Horovod the loss and metrics are averages over ranks (an allreduce), so EVERY rank
    runs this hook and fetches on the same steps; only the rank with `log=True` prints.
    With `runs_per_step` = k > 1 (gradient accumulation) the global step advances on every
    k-th run only; the hook logs on those runs, with the loss of the last micro-batch.

    Throughput: with `counts` (the task's batch_counts: unit -> scalar tensor of this
    rank's batch, e.g. examples and tokens) every run's real counts are added up, summed
    over ranks on the log steps and divided by the time between two logs: a unit per
    second for each unit ("examples_per_sec", shown "examples/s"; `count_labels` renames,
    e.g. examples -> ("images_per_sec", "img/s")). Without counts, a fixed
    `global_batch_size` of examples per update is assumed.
    """

    def __init__(
        self,
        tensors,
        every_n_steps,
        global_batch_size,
        global_step,
        log=True,
        runs_per_step=1,
        counts=None,
        count_labels=None,
        dist=None,
    ):
        self._tensors = tensors  # name -> tensor; must include 'step' (read after the update)
        self._every_n = max(1, int(every_n_steps))
        self._global_batch = global_batch_size  # examples of one update, all ranks
        self._global_step = global_step
        self._log = log
        self._runs_per_step = max(1, int(runs_per_step))
        self._units = list(counts or {})
        labels = count_labels or {}
        self._labels = [labels.get(u, (f"{u}_per_sec", f"{u}/s")) for u in self._units]
        self._counts = None
        self._summed = None
        if self._units:
            self._counts = tf.cast(tf.stack([counts[u] for u in self._units]), tf.float64)
            self._count_feed = tf.placeholder(tf.float64, [len(self._units)], "counted")
            # Horovod: the counts of every rank since the last log, on the log steps only.
            self._summed = (dist or distributed.Distributed(None)).allreduce_sum(
                self._count_feed, name="counted_over_ranks"
            )
        self._counted = None
        self._start_step = None
        self._runs = 0
        self._last = None  # (time, step) of the previous log
        self.history = []  # (step, values dict) of every logged step

    def after_create_session(self, session, coord):
        self._start_step = int(session.run(self._global_step))
        self._runs = 0
        self._counted = [0.0] * len(self._units)

    def _logs(self, step):
        return self._last is None or step % self._every_n == 0

    def _next_run_updates(self):
        return (self._runs + 1) % self._runs_per_step == 0

    def before_run(self, run_context):
        step = self._start_step + (self._runs + 1) // self._runs_per_step
        fetches = {}
        if self._counts is not None:
            fetches["counts"] = self._counts
        if self._next_run_updates() and self._logs(step):
            fetches["log"] = self._tensors
        return tf.train.SessionRunArgs(fetches) if fetches else None

    def after_run(self, run_context, run_values):
        self._runs += 1
        results = run_values.results or {}
        if "counts" in results:
            self._counted = [a + b for a, b in zip(self._counted, results["counts"], strict=True)]
        if "log" not in results:
            return
        values = dict(results["log"])
        step = int(values["step"])
        now = time.perf_counter()
        rates = {}
        if self._counts is not None:
            # Horovod: every rank runs this on the same log steps.
            total = run_context.session.run(self._summed, {self._count_feed: self._counted})
            self._counted = [0.0] * len(self._units)
            if self._last is not None and step > self._last[1]:
                for (key, shown), n in zip(self._labels, total, strict=True):
                    rates[key, shown] = n / (now - self._last[0])
        elif self._last is not None and step > self._last[1]:
            rate = (step - self._last[1]) * self._global_batch / (now - self._last[0])
            rates["images_per_sec", "img/s"] = rate
        for (key, _), rate in rates.items():
            values[key] = rate
        self._last = (now, step)
        self.history.append((step, values))
        if self._log:
            parts = [f"{k}={values[k]:.4g}" for k in self._tensors if k != "step"]
            shown = "".join(f"  {rate:.1f} {unit}" for (_, unit), rate in rates.items())
            logging.info("step %d: %s%s", step, "  ".join(parts), shown)


_ADVICE = "Try a lower --learning_rate, --max_gradient_norm, or --precision=fp32."


class LastGoodCheckpoint(tf.train.CheckpointSaverListener):
    """Knows the newest checkpoint of train_dir whose next loss was seen finite.

    A checkpoint written at step N can already hold weights whose loss at step N+1 is
    NaN/inf (weights blown up but finite), so a checkpoint counts as good only once the
    loss computed from it was finite: NanLossHook calls `loss_was_finite` after every
    finite loss. The record is the checkpoint state file `good_checkpoint` beside the
    Saver's `checkpoint` (tf.train.get_checkpoint_state(train_dir, 'good_checkpoint')), so
    it survives resumes. When a run stops on a NaN, `point_resume_at_it` makes the Saver's
    state name the good checkpoint, so auto-resume restores it; no file is deleted.
    Rank 0 alone (it writes the checkpoints) holds one.
    """

    STATE_FILE = "good_checkpoint"

    def __init__(self, train_dir):
        self._dir = train_dir
        self._pending = None  # saved, its next loss not seen yet

    def after_save(self, session, global_step_value):
        self._pending = tf.train.latest_checkpoint(self._dir)

    def loss_was_finite(self):
        """The loss computed from the last saved weights was finite: they are good."""
        if self._pending:
            good = os.path.relpath(self._pending, self._dir)
            tf.train.update_checkpoint_state(
                self._dir, good, all_model_checkpoint_paths=[good], latest_filename=self.STATE_FILE
            )
            self._pending = None

    def path(self):
        """The last good checkpoint still on disk, or None."""
        state = tf.train.get_checkpoint_state(self._dir, latest_filename=self.STATE_FILE)
        if state is None or not tf.train.checkpoint_exists(state.model_checkpoint_path):
            return None
        return state.model_checkpoint_path

    def point_resume_at_it(self):
        """Makes train_dir's `checkpoint` state name the good checkpoint; returns it (or None).

        The later, bad checkpoints stay on disk and in the state's list.
        """
        good = self.path()
        if good is None:
            return None
        state = tf.train.get_checkpoint_state(self._dir)
        # The state lists the latest last: the good one moves to the end.
        paths = [p for p in (state.all_model_checkpoint_paths if state else []) if p != good]
        paths.append(good)
        tf.train.update_checkpoint_state(
            self._dir,
            os.path.relpath(good, self._dir),
            all_model_checkpoint_paths=[os.path.relpath(p, self._dir) for p in paths],
        )
        return good


def _stop(problem, good_checkpoints, train_dir=None):
    """The NanLossError to raise on every rank; rank 0 first points resume at the good one."""
    if good_checkpoints is None and train_dir:
        last = tf.train.latest_checkpoint(train_dir) or "none yet"
    elif good_checkpoints is None:
        last = "named in rank 0's message"
    else:
        last = good_checkpoints.point_resume_at_it()
        last = f"{last} (a resume on this --train_dir starts from it)" if last else "none yet"
    error = NanLossError(
        f"{problem}: training stopped on every rank, nothing saved for this step. "
        f"Last good checkpoint: {last}. {_ADVICE}"
    )
    logging.error("%s", error)
    return error


class NanLossHook(tf.train.SessionRunHook):
    """Stops the run when the loss is NaN/inf, BEFORE any saver of this step runs.

    Put it first in the hook list: hooks' after_run are called in order, so raising here
    keeps the checkpoint saver from writing the broken weights. `loss` must be the loss
    averaged over ranks (an allreduce every step), so a NaN on any rank stops every rank at
    the same step and none is left waiting in an allreduce. Without loss scaling
    (`stop_on_skipped_update`), an update whose gradients were inf/NaN on some rank
    (`update_finite`, agreed over ranks) stops the run too, before its weights are saved.
    """

    def __init__(
        self,
        loss,
        step,
        train_dir=None,
        update_finite=None,
        stop_on_skipped_update=False,
        good_checkpoints=None,
    ):
        self._train_dir = train_dir  # named in the message when no good_checkpoints is kept
        self._fetches = {"loss": loss, "step": step}
        if update_finite is not None:
            self._fetches["update_finite"] = update_finite
        self._stop_on_skip = stop_on_skipped_update
        self._good = good_checkpoints

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._fetches)

    def after_run(self, run_context, run_values):
        loss, step = run_values.results["loss"], run_values.results["step"]
        if not math.isfinite(loss):
            raise _stop(f"Loss is {loss} at step {step}", self._good, self._train_dir)
        if self._good is not None:
            self._good.loss_was_finite()
        if self._stop_on_skip and not run_values.results.get("update_finite", True):
            raise _stop(
                f"Gradients hold NaN/inf at step {step} on at least one rank (loss {loss:.4g})",
                self._good,
                self._train_dir,
            )


class FiniteWeightsHook(tf.train.SessionRunHook):
    """Stops every rank when the trainable weights hold NaN/inf, checked before each save.

    Every rank runs it on the same steps (those where the checkpoint saver of rank 0
    saves: every `every_n_steps` from the start step, and at the end) on weights that are
    the same on every rank, so all ranks stop together and none is left in an allreduce.
    Put it before the saver in the hook list.
    """

    def __init__(self, variables, step, every_n_steps, global_step, good_checkpoints=None):
        self._step = step
        self._every_n = int(every_n_steps)
        self._global_step = global_step
        self.good_checkpoints = good_checkpoints
        self._last = None
        with tf.name_scope("finite_weights_check"):
            self.finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])

    def after_create_session(self, session, coord):
        self._last = int(session.run(self._global_step))  # after the broadcast hook

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._step)

    def after_run(self, run_context, run_values):
        step = int(run_values.results)
        if self._every_n and step >= self._last + self._every_n:
            self._check(run_context.session, step)

    def end(self, session):
        step = int(session.run(self._global_step))
        if step != self._last:
            self._check(session, step)

    def _check(self, session, step):
        self._last = step
        if not session.run(self.finite):
            raise _stop(f"Weights hold NaN/inf at step {step}", self.good_checkpoints)


class FiniteWeightsListener(tf.train.CheckpointSaverListener):
    """The saver's own guard: refuses to write a checkpoint whose weights hold NaN or inf.

    FiniteWeightsHook checks on the save steps before the saver runs; this listener runs
    the same check (the hook's op) inside the saver itself, for the saves the hook's step
    schedule does not see, and stops the same way, naming the last good checkpoint.
    """

    def __init__(self, weights_hook):
        self._hook = weights_hook

    def before_save(self, session, global_step_value):
        if not session.run(self._hook.finite):
            raise _stop(
                f"Weights hold NaN/inf at step {global_step_value}", self._hook.good_checkpoints
            )


class EarlyStopping:
    """Stops training when an eval metric has not improved for `patience` evaluations.

    `metric` must be a key of the task's metrics; `mode` 'max' (accuracy, BLEU, AUC) or
    'min' (loss). Every rank sees the same metrics (an allreduce), so all stop together.
    """

    MODES = ("max", "min")

    def __init__(self, metric, patience=10, mode="max"):
        if mode not in self.MODES:
            raise ValueError(
                f"--early_stopping_mode={mode!r}; expected one of: {', '.join(self.MODES)}"
            )
        if int(patience) < 1:
            raise ValueError(f"--early_stopping_patience must be >= 1, got {patience}")
        self.metric, self.patience, self.mode = metric, int(patience), mode
        self.best = None  # (step, value)
        self.best_metrics = None  # every metric of the best evaluation
        self.bad_evaluations = 0

    @classmethod
    def from_params(cls, params):
        """The early stopping the flags ask for, or None."""
        metric = getattr(params, "early_stopping_metric", None)
        if not metric:
            return None
        return cls(metric, params.early_stopping_patience, params.early_stopping_mode)

    def improved_at(self, step):
        """Whether the evaluation at `step` set the best value so far."""
        return self.best is not None and self.best[0] == step

    def should_stop(self, step, metrics):
        """Records one evaluation; True when training should stop."""
        if self.metric not in metrics:
            raise ValueError(
                f"--early_stopping_metric={self.metric!r} is not a metric of this task; "
                f"expected one of: {', '.join(k for k in metrics if k != 'count')}"
            )
        value = float(metrics[self.metric])
        better = self.best is None or (
            value > self.best[1] if self.mode == "max" else value < self.best[1]
        )
        if better:
            self.best, self.bad_evaluations = (step, value), 0
            self.best_metrics = dict(metrics)
            return False
        self.bad_evaluations += 1
        return self.bad_evaluations >= self.patience


class BestCheckpoint:
    """Rank 0 keeps the weights of early stopping's best evaluation in TRAIN_DIR/best.

    Early stopping ends a run some evaluations after its best one, so the run's last
    checkpoint (the resume point) is not the model whose metrics the run reports. Like
    the GCN examples of PyG, which report the test accuracy of the epoch with the best
    validation accuracy, tfzoo keeps that model: `TRAIN_DIR/best/model.ckpt-STEP` (one,
    replaced on each improvement) and `best_eval.json` (step, metric, value and all the
    eval's metrics). `eval_models.py` / `export_model.py --checkpoint_path=TRAIN_DIR/best`
    read it like any training directory.
    """

    DIR = "best"
    STATE = "best_eval.json"

    def __init__(self, train_dir, var_list=None):
        self.directory = os.path.join(train_dir, self.DIR)
        self._var_list = var_list
        self._saver = None
        self.path = None  # the checkpoint saved last

    def begin(self):
        """Builds the saver (before the graph is finalised)."""
        self._saver = tf.train.Saver(
            var_list=self._var_list, max_to_keep=1, save_relative_paths=True, name="best_saver"
        )

    def save(self, session, step, early_stopping, metrics):
        """Saves the weights evaluated at `step` (early stopping's best) with their metrics."""
        os.makedirs(self.directory, exist_ok=True)
        self.path = self._saver.save(
            session, os.path.join(self.directory, "model.ckpt"), global_step=step
        )
        state = {
            "step": int(step),
            "metric": early_stopping.metric,
            "mode": early_stopping.mode,
            "value": float(metrics[early_stopping.metric]),
            "checkpoint": os.path.basename(self.path),
            "metrics": {k: float(v) for k, v in metrics.items()},
        }
        partial = os.path.join(self.directory, self.STATE + ".tmp")
        with open(partial, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(partial, os.path.join(self.directory, self.STATE))

    @classmethod
    def read_state(cls, train_dir):
        """best_eval.json of train_dir as a dict, or None when there is none."""
        path = os.path.join(train_dir, cls.DIR, cls.STATE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)


class EvaluationHook(tf.train.SessionRunHook):
    """Every N steps evaluates the whole eval split and logs the task's metrics.

    Every rank runs it at the same step (the totals are an allreduce); rank 0 logs and
    writes the summaries (eval/<metric>). `errors_named` (a context-manager factory, e.g.
    dataset_factory.input_errors_named bound to the eval split) turns a read error of the
    eval pass into one naming the eval split's bad file. With `early_stopping` (an
    EarlyStopping) the run stops once its metric stops improving, and `best_checkpoint`
    (a BestCheckpoint) keeps the weights of its best evaluation (rank 0 saves them).
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
        format_metrics=None,
        early_stopping=None,
        best_checkpoint=None,
    ):
        self._ops = eval_ops
        self._every_n = int(every_n_steps)
        self._step = step_after_update  # read after this step's update
        self._global_step = global_step
        self._summary_dir = summary_dir
        self._is_chief = is_chief
        self._split = split_name
        self._errors_named = errors_named
        self._format = format_metrics or eval_ops.task.format_metrics
        self.early_stopping = early_stopping
        self.best_checkpoint = best_checkpoint if early_stopping and is_chief else None
        self._writer = None
        self._last_step = None
        self._seen_step = None  # the step after the previous run
        self.results = []  # (step, metrics dict)

    def begin(self):
        if self._summary_dir and self._is_chief:
            self._writer = tf.summary.FileWriterCache.get(self._summary_dir)
        if self.best_checkpoint:
            self.best_checkpoint.begin()

    def after_create_session(self, session, coord):
        self._seen_step = int(session.run(self._global_step))  # after the broadcast hook

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(self._step)

    def after_run(self, run_context, run_values):
        step = int(run_values.results)
        # With gradient accumulation the step holds for several runs: evaluate once.
        if step != self._seen_step and step % self._every_n == 0:
            metrics = self._evaluate(run_context.session, step)
            if self._track(run_context.session, step, metrics):
                if self._is_chief:
                    best_step, best = self.early_stopping.best
                    logging.info(
                        "Early stopping at step %d: %s has not improved for %d evaluations "
                        "(best %.4f at step %d)",
                        step,
                        self.early_stopping.metric,
                        self.early_stopping.patience,
                        best,
                        best_step,
                    )
                run_context.request_stop()
        self._seen_step = step

    def end(self, session):
        step = int(session.run(self._global_step))
        if step != self._last_step and step % self._every_n != 0:
            # The final weights, unless just evaluated; they may be the best.
            self._track(session, step, self._evaluate(session, step))
        if self.early_stopping and self.early_stopping.best and self._is_chief:
            best_step, best = self.early_stopping.best
            logging.info(
                "Best eval: %s = %.4f at step %d%s",
                self.early_stopping.metric,
                best,
                best_step,
                f", weights in {self.best_checkpoint.path}" if self.best_checkpoint else "",
            )

    def best_eval(self):
        """(step, metrics) of early stopping's best evaluation (a resumed run's too), or None."""
        if not (self.early_stopping and self.early_stopping.best):
            return None
        return self.early_stopping.best[0], self.early_stopping.best_metrics

    def _track(self, session, step, metrics):
        """Early stopping's bookkeeping of one eval (the best weights saved); True: stop."""
        if not self.early_stopping:
            return False
        stop = self.early_stopping.should_stop(step, metrics)
        if self.best_checkpoint and self.early_stopping.improved_at(step):
            self.best_checkpoint.save(session, step, self.early_stopping, metrics)
        return stop

    def _evaluate(self, session, step):
        with self._errors_named():
            metrics = evaluation.run_evaluation(session, self._ops)
        self._last_step = step
        self.results.append((step, metrics))
        if self._is_chief:
            logging.info(
                "eval at step %d on %s (%d examples): %s",
                step,
                self._split,
                metrics.get("count", 0),
                self._format(metrics),
            )
        if self._writer:
            self._writer.add_summary(evaluation.metric_summary(metrics), step)
            self._writer.flush()
        return metrics
