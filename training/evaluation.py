"""Top-1 / top-5 over a whole split, each example counted exactly once, summed over ranks.

The eval tower reads an ordered, example-sharded, non-repeating dataset whose last batch
may be partial. Per batch, correct counts accumulate in local variables; at the end the
totals are summed over ranks with one allreduce, so every rank reports the same figures.
Ranks may run different numbers of batches (uneven shards): only the final sum is a
collective, so none waits on another mid-pass.
"""

import collections

from slim_compat import tf
from training import classifier

EvalOps = collections.namedtuple("EvalOps", ["reset", "update", "totals"])


def top_k_correct(logits, labels, num_classes):
    """Counts of the batch's examples whose label is the top-1 / among the top-5 predictions.

    The predictions are the indices of tf.math.top_k, which breaks ties by the lower class
    index, so each example has exactly k predicted classes. (tf.nn.in_top_k counts a label
    tied with the k-th largest logit as correct: a net with constant logits would score 100%.)

    Returns:
        (top1, top5): float64 scalars; top-5 is top-all when there are fewer than 5 classes.
    """
    k = min(5, num_classes)
    _, predicted = tf.math.top_k(logits, k=k, sorted=True)
    hits = tf.equal(predicted, tf.cast(labels, predicted.dtype)[:, None])  # [B, k]
    top1 = tf.reduce_sum(tf.cast(hits[:, 0], tf.float64))
    top5 = tf.reduce_sum(tf.cast(tf.reduce_any(hits, axis=1), tf.float64))
    return top1, top5


def build_eval_ops(dataset, network_fn, num_classes, dist, precision="fp32", reuse=None):
    """Builds the ops of one evaluation pass.

    Args:
        dataset: batched eval dataset of (images, labels).
        network_fn: nets_factory network fn built with is_training=False.
        num_classes: number of logits.
        dist: training.distributed.Distributed.
        precision: compute precision of the network.
        reuse: True when the training tower already made the variables.

    Returns:
        EvalOps: run `reset` once, `update` until OutOfRangeError, then `totals`.
    """
    with tf.name_scope("eval"):
        iterator = tf.data.make_initializable_iterator(dataset)
        images, labels = iterator.get_next()
        logits, _ = classifier.build_logits(network_fn, images, precision, reuse=reuse)
        top1, top5 = top_k_correct(logits, labels, num_classes)
        loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        )
        count = tf.cast(tf.shape(labels)[0], tf.float64)
        batch = tf.stack([top1, top5, tf.cast(loss, tf.float64), count])
        sums = tf.get_variable(
            "eval_sums",
            initializer=tf.zeros([4], tf.float64),
            trainable=False,
            collections=[tf.GraphKeys.LOCAL_VARIABLES],
        )
        reset = tf.group(iterator.initializer, sums.initializer)
        update = tf.assign_add(sums, batch)
        totals = dist.allreduce_sum(tf.identity(sums), name="eval_totals")
    return EvalOps(reset, update, totals)


def run_evaluation(session, ops):
    """Runs one full pass; returns {'top1', 'top5', 'loss', 'count'} over every rank's shard."""
    session.run(ops.reset)
    while True:
        try:
            session.run(ops.update)
        except tf.errors.OutOfRangeError:
            break
    top1, top5, loss, count = session.run(ops.totals)
    if count == 0:
        raise ValueError("The evaluation split is empty: no example was read")
    return {"top1": top1 / count, "top5": top5 / count, "loss": loss / count, "count": int(count)}
