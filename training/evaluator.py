"""Evaluation of a task's checkpoints: once, or following a training directory.

Used by eval_image_classifiers.py and eval_models.py (--task). Rank 0 alone looks at
--checkpoint_path and chooses each checkpoint (or decides to stop); the choice is
broadcast, so every rank restores the same checkpoint and all stop together. A checkpoint
that any rank fails to restore (deleted meanwhile, e.g. by the trainer's
--keep_checkpoint_max) is skipped by all of them. Every example of the split is counted
exactly once (the last partial batch included), and the metrics are the task's
(Task.metrics_from_sums), printed as one JSON line per checkpoint.
"""

import contextlib
import json
import os
import time

import numpy as np
from absl import logging

import flags
from slim_compat import tf
from training import checkpoints, distributed, evaluation, precision, trainer

FLAGS = flags.FLAGS

# What rank 0 tells every rank, each time: wait, evaluate a checkpoint, stop, or fail.
WAIT, EVALUATE, STOP, FAIL = 0, 1, 2, 3
_MAX_TEXT_BYTES = 4096  # a checkpoint path (PATH_MAX) or an error message, UTF-8
POLL_SECS = 1.0  # --follow: seconds between two looks at the directory


class ChiefDecisions:
    """Rank 0 decides, every rank learns the decision: a command and a text, broadcast.

    The text (a checkpoint path or an error message) travels as int32 UTF-8 bytes in a
    fixed-size vector, so one graph op serves every decision. Every rank calls `share`
    the same number of times; rank 0's arguments are the ones that count. Each call is
    one short collective, so no rank waits long inside Horovod while rank 0 polls.
    """

    def __init__(self, dist):
        self._dist = dist
        with tf.name_scope("chief_decisions"):
            self._feed = tf.placeholder(tf.int32, [1 + _MAX_TEXT_BYTES], name="decision")
            # Horovod: rank 0's decision reaches every rank.
            self._decision = dist.broadcast_from_chief(self._feed, name="chief_decision")
            self._outcome_feed = tf.placeholder(tf.float32, [], name="outcome")
            # Horovod: the worst outcome over ranks, so all ranks act on the same one.
            self._worst = dist.allreduce_max(self._outcome_feed, name="worst_outcome")

    def share(self, session, command=WAIT, text=""):
        """Returns rank 0's (command, text) on every rank."""
        feed = np.zeros([1 + _MAX_TEXT_BYTES], np.int32)
        if self._dist.is_chief:
            data = text.encode("utf-8")
            if len(data) > _MAX_TEXT_BYTES and command != FAIL:
                command = FAIL  # every rank fails alike rather than read a cut path
                text = f"checkpoint path longer than {_MAX_TEXT_BYTES} bytes: {text[:200]}..."
                data = text.encode("utf-8")
            data = data[:_MAX_TEXT_BYTES]
            feed[0] = command
            feed[1 : 1 + len(data)] = np.frombuffer(data, np.uint8)
        decision = session.run(self._decision, {self._feed: feed})
        data = bytes(decision[1:].astype(np.uint8)).rstrip(b"\0")
        return int(decision[0]), data.decode("utf-8", errors="replace")

    def worst(self, session, outcome):
        """The largest of every rank's `outcome` (a small non-negative int), on every rank."""
        return int(session.run(self._worst, {self._outcome_feed: float(outcome)}))


def build_graph(task, dist, params=None):
    """The eval graph of `task`: its eval split, its model (is_training=False), sums, saver.

    Returns:
        (EvalOps, saver, errors_named): errors_named is the task's context-manager factory
        that names a bad input file.
    """
    params = params if params is not None else FLAGS
    compute = precision.resolve_precision(params.precision, params.use_fp16)
    task.check_params(params, dist)
    # The eval script reads --file_pattern for the split it evaluates.
    params = trainer.FlagsWith(params, eval_file_pattern=params.file_pattern)
    inputs = task.build_inputs(
        params,
        params.eval_split_name,  # None: the task's held-out split
        False,
        dist.rank,
        dist.size,
        params.eval_batch_size,
        params.seed,
    )
    ops = evaluation.build_eval_ops(task, inputs.dataset, params, dist, compute)
    if params.use_moving_average:
        # The shadows where the checkpoint has them (a --trainable_scopes run averages only
        # what it trains), the variables themselves elsewhere.
        saver = checkpoints.MovingAverageSaver(params.moving_average_decay or 0.9999)
    else:
        own = set(distributed.rank_local_variables())
        saver = checkpoints.VariablesSaver(
            {v.op.name: v for v in tf.global_variables() if v not in own}
        )
    if distributed.rank_local_variables():
        # Rank 0's checkpoint does not hold them (a model-parallel table's shards): the
        # task restores each rank's own after every restore of the checkpoint.
        saver = _RankLocalRestore(saver, task, dist)
    return ops, saver, inputs.errors_named or contextlib.nullcontext


class _RankLocalRestore:
    """A saver's restore of a checkpoint followed by the task's restore of this rank's
    rank-local variables (Task.restore_rank_local_variables) of the same checkpoint."""

    def __init__(self, saver, task, dist):
        self._saver, self._task, self._dist = saver, task, dist

    def variables(self, checkpoint_path=None):
        return self._saver.variables(checkpoint_path)

    def restore(self, session, checkpoint_path):
        self._saver.restore(session, checkpoint_path)
        self._task.restore_rank_local_variables(
            session, checkpoint_path, self._dist.rank, self._dist.size
        )


RESTORED, DELETED, BROKEN = 0, 1, 2  # restore outcomes, worst last


def restore_on_every_rank(session, saver, checkpoint, decisions):
    """Restores `checkpoint` on every rank; returns None, or why it is gone.

    A checkpoint whose files were deleted after rank 0 chose it (the trainer's
    --keep_checkpoint_max) is gone for every rank alike: the returned error says so and the
    caller skips it. Any other failure (e.g. a checkpoint of another model) is raised on
    every rank. Either way no rank is left waiting alone in the evaluation's allreduce.
    """
    error, outcome = None, RESTORED
    try:
        # Saver.restore would load a 5-class head into a 10-class graph without a word.
        checkpoints.check_restorable(checkpoint, saver.variables(checkpoint), action="evaluate")
        saver.restore(session, checkpoint)
    except (ValueError, tf.errors.OpError) as e:
        error = e
        outcome = DELETED if not tf.train.checkpoint_exists(checkpoint) else BROKEN
    worst = decisions.worst(session, outcome)
    if worst == BROKEN:
        if outcome == BROKEN:
            raise error
        raise RuntimeError(f"Another rank could not restore {checkpoint}; see its error")
    if worst == DELETED:
        return error or FileNotFoundError(f"{checkpoint} was deleted before another rank read it")
    return None


def evaluate_checkpoint(session, ops, saver, checkpoint, dist, errors_named, summary_writer=None):
    """Evaluates a restored checkpoint; returns its metrics with 'checkpoint' and 'step'."""
    with errors_named():
        metrics = evaluation.run_evaluation(session, ops)
    step = int(checkpoint.rsplit("-", 1)[-1]) if "-" in os.path.basename(checkpoint) else 0
    metrics = {"checkpoint": checkpoint, "step": step, **metrics}
    if dist.is_chief:
        logging.info(
            "%s: %s  over %d examples",
            checkpoint,
            ops.task.format_metrics(metrics),
            metrics.get("count", 0),
        )
        print(json.dumps(metrics, default=_json_value), flush=True)
        if summary_writer is not None:
            summary_writer.add_summary(evaluation.metric_summary(metrics), step)
            summary_writer.flush()
    return metrics


def resolve(path):
    """A checkpoint prefix from a file prefix or a directory (its latest)."""
    if not path:
        raise ValueError("--checkpoint_path is required (a checkpoint or a training directory)")
    from interchange import export

    return export.resolve_checkpoint(path)


def evaluate_once(session, ops, saver, dist, errors_named, decisions, writer):
    """--checkpoint_path once: rank 0 resolves it (a directory: its latest checkpoint)."""
    command, text, error = EVALUATE, "", None
    if dist.is_chief:
        try:
            text = resolve(FLAGS.checkpoint_path)
        except (ValueError, FileNotFoundError) as e:
            command, text, error = FAIL, str(e), e
    # Horovod: rank 0's choice (or failure) reaches every rank, so none waits alone.
    command, text = decisions.share(session, command, text)
    if command == FAIL:
        if error is not None:
            raise error
        raise FileNotFoundError(f"rank 0 could not resolve --checkpoint_path: {text}")
    error = restore_on_every_rank(session, saver, text, decisions)
    if error is not None:
        raise FileNotFoundError(f"Cannot restore checkpoint {text}: {error}") from error
    return evaluate_checkpoint(session, ops, saver, text, dist, errors_named, writer)


def follow(session, ops, saver, dist, errors_named, decisions, writer):
    """--follow: each new checkpoint of the directory, until --eval_timeout_secs pass without one.

    Rank 0 looks every POLL_SECS and shares what to do: wait, evaluate the latest
    checkpoint (newer than the last one chosen) or stop. Returns the metrics of every
    evaluated checkpoint, in order; skipped checkpoints are logged, not returned.
    """
    results = []
    chosen = None
    deadline = time.monotonic() + FLAGS.eval_timeout_secs
    while True:
        command, text = WAIT, ""
        if dist.is_chief:
            latest = tf.train.latest_checkpoint(FLAGS.checkpoint_path)
            if latest is not None and latest != chosen:
                command, text = EVALUATE, latest
            elif time.monotonic() >= deadline:
                command = STOP
        # Horovod: every rank does what rank 0 decided.
        command, text = decisions.share(session, command, text)
        if command == FAIL:
            raise ValueError(text)
        if command == STOP:
            if dist.is_chief:
                logging.info(
                    "No new checkpoint in %s for %d s: done",
                    FLAGS.checkpoint_path,
                    FLAGS.eval_timeout_secs,
                )
            return results
        if command == WAIT:
            time.sleep(POLL_SECS)
            continue
        chosen = text
        error = restore_on_every_rank(session, saver, chosen, decisions)
        if error is not None:
            if dist.is_chief:
                logging.warning("Skipped %s: it could not be restored (%s)", chosen, error)
        else:
            results.append(
                evaluate_checkpoint(session, ops, saver, chosen, dist, errors_named, writer)
            )
        deadline = time.monotonic() + FLAGS.eval_timeout_secs


def _json_value(value):
    """numpy values of a metrics dict (e.g. per-class counts) as JSON."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def evaluate(task):
    """Evaluates --checkpoint_path once (metrics dict) or, with --follow, each new one (list)."""
    dist = distributed.init(FLAGS)
    flags.warn_pai_only_flags(dist.is_chief)
    if FLAGS.follow and not os.path.isdir(FLAGS.checkpoint_path or ""):
        raise ValueError(
            f"--follow needs --checkpoint_path to be a directory, got {FLAGS.checkpoint_path!r}"
        )
    ops, saver, errors_named = build_graph(task, dist)
    decisions = ChiefDecisions(dist)
    writer = tf.summary.FileWriter(FLAGS.eval_dir) if FLAGS.eval_dir and dist.is_chief else None
    config = distributed.session_config(dist, FLAGS)
    with tf.Session(config=config) as session:
        session.run(tf.local_variables_initializer())
        if FLAGS.follow:
            return follow(session, ops, saver, dist, errors_named, decisions, writer)
        return evaluate_once(session, ops, saver, dist, errors_named, decisions, writer)
