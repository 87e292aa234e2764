"""Recommendation metrics against scikit-learn and a direct numpy computation."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from datasets import rec_metrics


def _direct_hr_ndcg(scores, k):
    """Sort each row (a tie with the positive ranks it lower) and look for column 0."""
    hits, ndcgs = [], []
    for row in scores:
        # lexsort: by score descending, the positive last among equal scores.
        order = np.lexsort((np.arange(len(row)) == 0, -row))
        rank = int(np.flatnonzero(order == 0)[0])
        hits.append(float(rank < k))
        ndcgs.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return np.mean(hits), np.mean(ndcgs)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_hr_and_ndcg_match_a_direct_sort(k):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(300, 100))
    scores[:, 0] += 1.5  # a better-than-chance model
    scores[:10] = np.round(scores[:10])  # ties
    hits, ndcg = rec_metrics.hit_rate_and_ndcg(scores, k)
    want_hr, want_ndcg = _direct_hr_ndcg(scores, k)
    assert 0.0 < want_hr < 1.0
    np.testing.assert_allclose([hits.mean(), ndcg.mean()], [want_hr, want_ndcg], rtol=1e-12)
    # Summed over two "ranks", the same figures.
    a = rec_metrics.hit_rate_and_ndcg_sums(scores[:120], k)
    b = rec_metrics.hit_rate_and_ndcg_sums(scores[120:], k)
    total = [x + y for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose([total[0] / total[2], total[1] / total[2]], [want_hr, want_ndcg])


def test_constant_scores_score_no_hit():
    hits, ndcg = rec_metrics.hit_rate_and_ndcg(np.zeros((4, 100)), k=10)
    assert hits.sum() == 0 and ndcg.sum() == 0


def test_histogram_auc_and_logloss_match_sklearn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=20000)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(size=20000) + labels)))
    exact = roc_auc_score(labels, scores)
    assert rec_metrics.exact_auc(scores, labels) == pytest.approx(exact, abs=1e-12)
    # Per-rank histograms, summed.
    halves = [
        rec_metrics.score_histograms(scores[s], labels[s])
        for s in (slice(0, 7000), slice(7000, None))
    ]
    positives = halves[0][0] + halves[1][0]
    negatives = halves[0][1] + halves[1][1]
    approx = rec_metrics.auc_from_histograms(positives, negatives)
    bound = rec_metrics.auc_histogram_error_bound(positives, negatives)
    assert abs(approx - exact) <= bound < 1e-4
    assert abs(approx - exact) > 0 or bound == 0
    # Coarse buckets: the error grows but stays within its bound.
    coarse = rec_metrics.score_histograms(scores, labels, num_buckets=16)
    coarse_error = abs(rec_metrics.auc_from_histograms(*coarse) - exact)
    assert 1e-4 < coarse_error <= rec_metrics.auc_histogram_error_bound(*coarse)

    total, count = rec_metrics.logloss_sums(scores[:5000], labels[:5000])
    rest, rest_count = rec_metrics.logloss_sums(scores[5000:], labels[5000:])
    assert (total + rest) / (count + rest_count) == pytest.approx(log_loss(labels, scores))


def test_exact_auc_with_ties_matches_sklearn():
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    scores = np.array([0.1, 0.5, 0.5, 0.5, 0.9, 0.2, 0.9, 0.3])
    assert rec_metrics.exact_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_bad_labels_and_one_class():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        rec_metrics.score_histograms([0.5], [2])
    positives, negatives = rec_metrics.score_histograms([0.2, 0.4], [1, 1])
    assert np.isnan(rec_metrics.auc_from_histograms(positives, negatives))
