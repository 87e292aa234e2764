"""A task's metrics over a whole split, each example counted exactly once, summed over ranks.

The eval tower reads an ordered, example-sharded, non-repeating dataset whose last batch
may be partial. Per batch, the task's sufficient statistics (Task.eval_statistics: correct
counts, loss sums, histograms) accumulate in local variables, and its host statistics
(Task.eval_host_statistics, computed in Python from fetched tensors, e.g. BLEU's n-gram
counts of detokenised text) accumulate in numpy. At the end both are summed over ranks
with ONE allreduce of a single float64 vector, so every rank reports the same figures, and
the task turns the totals into its metrics (Task.metrics_from_sums). Ranks may run
different numbers of batches (uneven shards): only the final sum is a collective, so none
waits on another mid-pass.
"""

import collections

import numpy as np

from slim_compat import tf
from training import precision as precision_lib

EvalOps = collections.namedtuple(
    "EvalOps", ["reset", "update", "totals", "host_feed", "host_fetches", "layout", "task"]
)
EvalOps.__doc__ = """The ops of one evaluation pass (build_eval_ops; run with run_evaluation).

reset: re-initialises the iterator and zeroes the sums. update: one batch.
totals: float64 vector of every statistic summed over ranks (graph sums, then host sums).
host_feed: placeholder of the host sums of this rank. host_fetches: tensors of one batch
    for the task's host statistics ({} when it has none).
layout: [(name, shape, is_host)] in the order of `totals`. task: whose metrics these are.
"""


def build_eval_ops(task, dataset, params, dist, precision="fp32", reuse=None):
    """Builds the ops of one evaluation pass of `task`.

    Args:
        task: a training.task.Task.
        dataset: its batched eval dataset of feature dicts (one ordered pass).
        params: the parsed flags.
        dist: training.distributed.Distributed.
        precision: compute precision of the model.
        reuse: True when the training tower already made the variables.

    Returns:
        EvalOps: run `reset` once, `update` until OutOfRangeError, then `totals`.
    """
    with tf.name_scope("eval"):
        iterator = tf.data.make_initializable_iterator(dataset)
        features = iterator.get_next()
        with precision_lib.model_scope(precision, reuse=reuse) as dtype:
            outputs = task.build_model(features, params, False, dtype)
        statistics = task.eval_statistics(features, outputs)
        host_fetches = task.eval_host_fetches(features, outputs)
        host_spec = task.host_statistics_spec(params)
        layout, sums, adds = [], [], []
        with tf.variable_scope("eval_statistics"):
            for name, value in statistics.items():
                value = tf.cast(value, tf.float64)
                if not value.shape.is_fully_defined():
                    raise ValueError(
                        f"eval statistic {name!r} of task {task.name!r} has shape "
                        f"{value.shape}; every statistic needs a static shape"
                    )
                total = tf.Variable(
                    tf.zeros(value.shape, tf.float64),
                    trainable=False,
                    collections=[tf.GraphKeys.LOCAL_VARIABLES],
                    name=name,
                )
                layout.append((name, tuple(value.shape.as_list()), False))
                sums.append(total)
                adds.append(tf.assign_add(total, value))
        for name, shape in host_spec.items():
            layout.append((name, tuple(shape), True))
        host_size = sum(int(np.prod(s)) for _, s, host in layout if host)
        host_feed = tf.placeholder(tf.float64, [host_size], name="host_statistics")
        reset = tf.group(iterator.initializer, *[s.initializer for s in sums])
        update = tf.group(*adds)
        local = tf.concat([tf.reshape(s.read_value(), [-1]) for s in sums] + [host_feed], 0)
        # Horovod: one allreduce of every statistic, after the whole pass of every rank.
        totals = dist.allreduce_sum(local, name="eval_totals")
    return EvalOps(reset, update, totals, host_feed, host_fetches, layout, task)


def _unflatten(vector, layout):
    sums, offset = {}, 0
    for name, shape, _ in layout:
        n = int(np.prod(shape))
        value = vector[offset : offset + n].reshape(shape)
        sums[name] = float(value) if shape == () else value
        offset += n
    return sums


def run_evaluation(session, ops):
    """Runs one full pass; returns the task's metrics dict over every rank's shard.

    Raises:
        ValueError: no example was read (the task's "count" statistic is 0), or the task
            finds its totals undefined.
    """
    session.run(ops.reset)
    host_layout = [(n, s) for n, s, host in ops.layout if host]
    host = {n: np.zeros(s, np.float64) for n, s in host_layout}
    while True:
        try:
            if ops.host_fetches:
                _, fetched = session.run([ops.update, ops.host_fetches])
                for name, value in ops.task.eval_host_statistics(fetched).items():
                    host[name] += np.asarray(value, np.float64)
            else:
                session.run(ops.update)
        except tf.errors.OutOfRangeError:
            break
    flat = [host[n].reshape(-1) for n, _ in host_layout]
    feed = np.concatenate(flat) if flat else np.zeros([0], np.float64)
    sums = _unflatten(session.run(ops.totals, {ops.host_feed: feed}), ops.layout)
    if "count" in sums and sums["count"] == 0:
        raise ValueError("The evaluation split is empty: no example was read")
    return ops.task.metrics_from_sums(sums)


def metric_summary(metrics):
    """A tf.Summary of every metric but the example count, tagged eval/<name>."""
    return tf.Summary(
        value=[
            tf.Summary.Value(tag=f"eval/{k}", simple_value=float(v))
            for k, v in metrics.items()
            if k != "count" and np.ndim(v) == 0
        ]
    )
