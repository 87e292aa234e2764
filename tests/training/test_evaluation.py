"""Tests of training/evaluation.py: exact top-1 / top-5 / loss / count over a whole split."""

import numpy as np
import pytest

from slim_compat import tf
from tasks import image_classification as evaluation
from training import distributed

NUM_CLASSES = 7


def logits_network(images):
    """A fake network_fn: the 'image' IS the logits vector, so the test controls the outputs."""
    return tf.reshape(images, [-1, NUM_CLASSES]), {}


def make_split(num_examples, seed=0):
    """Logits with distinct values, and labels whose rank among them is i % NUM_CLASSES.

    Example i's label is the class with the (i % 7)-th largest logit, so top-1 holds for
    i % 7 == 0 and top-5 for i % 7 < 5.
    """
    rng = np.random.RandomState(seed)
    logits = np.stack([rng.permutation(NUM_CLASSES) for _ in range(num_examples)])
    logits = (logits * 1.5 - 4.0).astype(np.float32)  # distinct, exact in bf16 too
    order = np.argsort(-logits, axis=1)
    labels = np.array([order[i, i % NUM_CLASSES] for i in range(num_examples)], np.int64)
    return logits, labels


def mean_cross_entropy(logits, labels):
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def evaluate(logits, labels, batch_size, precision="fp32", passes=1):
    dataset = tf.data.Dataset.from_tensor_slices(
        (logits.reshape(-1, 1, 1, NUM_CLASSES), labels)
    ).batch(batch_size)
    ops = evaluation.build_eval_ops(
        dataset, logits_network, NUM_CLASSES, distributed.Distributed(None), precision
    )
    with tf.Session() as session:
        session.run(tf.local_variables_initializer())
        return [evaluation.run_evaluation(session, ops) for _ in range(passes)]


def test_exact_metrics_with_a_partial_last_batch(graph):
    logits, labels = make_split(11)  # batches of 4, 4 and 3
    (metrics,) = evaluate(logits, labels, batch_size=4)
    assert metrics["count"] == 11
    # Ranks 0..6, 0..3: top-1 for ranks 0 (twice); top-5 for ranks 0..4 (5) and 0..3 (4).
    assert metrics["top1"] == 2 / 11
    assert metrics["top5"] == 9 / 11
    assert metrics["loss"] == pytest.approx(mean_cross_entropy(logits, labels), rel=1e-5)


def test_a_second_pass_starts_from_zero(graph):
    logits, labels = make_split(9, seed=1)
    first, second = evaluate(logits, labels, batch_size=2, passes=2)
    assert first == second
    assert first["count"] == 9 and first["top1"] == 2 / 9 and first["top5"] == 7 / 9


def test_batch_larger_than_the_split(graph):
    logits, labels = make_split(3, seed=2)
    (metrics,) = evaluate(logits, labels, batch_size=50)
    assert metrics["count"] == 3 and metrics["top1"] == 1 / 3 and metrics["top5"] == 1.0


def test_bf16_network_gives_the_same_counts(graph):
    logits, labels = make_split(11)
    (metrics,) = evaluate(logits, labels, batch_size=4, precision="bf16")
    assert metrics["count"] == 11 and metrics["top1"] == 2 / 11 and metrics["top5"] == 9 / 11
    assert metrics["loss"] == pytest.approx(mean_cross_entropy(logits, labels), rel=1e-2)


def test_top5_with_fewer_than_five_classes_is_everything(graph):
    def three_classes(images):
        return tf.reshape(images, [-1, 3]), {}

    dataset = tf.data.Dataset.from_tensor_slices(
        (np.eye(3, dtype=np.float32).reshape(3, 1, 1, 3), np.array([0, 2, 2], np.int64))
    ).batch(2)
    ops = evaluation.build_eval_ops(dataset, three_classes, 3, distributed.Distributed(None))
    with tf.Session() as session:
        session.run(tf.local_variables_initializer())
        metrics = evaluation.run_evaluation(session, ops)
    assert metrics["count"] == 3 and metrics["top1"] == 2 / 3 and metrics["top5"] == 1.0


def test_empty_split_is_an_error(graph):
    logits = np.zeros([0, NUM_CLASSES], np.float32)
    labels = np.zeros([0], np.int64)
    with pytest.raises(ValueError, match="empty"):
        evaluate(logits, labels, batch_size=4)


def test_constant_logits_score_chance_not_everything(graph):
    # Every class ties: the top-k predictions are classes 0..k-1 (ties go to the lower
    # index), so only labels 0 (top-1) and 0..4 (top-5) count, once each class appears.
    logits = np.zeros([14, NUM_CLASSES], np.float32)
    labels = np.arange(14, dtype=np.int64) % NUM_CLASSES
    (metrics,) = evaluate(logits, labels, batch_size=4)
    assert metrics["count"] == 14
    assert metrics["top1"] == 2 / 14
    assert metrics["top5"] == 10 / 14


def test_a_tie_with_the_kth_logit_is_decided_by_index(graph):
    # Classes 2 and 5 tie for the largest logit: top-1 is class 2 (the lower index) alone.
    logits = np.tile(np.array([0, 0, 3, 0, 0, 3, 0], np.float32), [2, 1])
    labels = np.array([2, 5], np.int64)
    (metrics,) = evaluate(logits, labels, batch_size=2)
    assert metrics["top1"] == 1 / 2 and metrics["top5"] == 1.0
