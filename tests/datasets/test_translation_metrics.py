"""Corpus BLEU / chrF from summed per-batch statistics equal sacrebleu's corpus scores."""

import numpy as np
import pytest
import sacrebleu

from datasets import translation_metrics

HYPS = [
    "the cat sat on the mat",
    "a dog barked loudly at night",
    "open the file",
    "Save all changes before closing?",
    "x",
]
REFS = [
    "the cat sat on a mat",
    "the dog barked at night",
    "open this file",
    "Save the changes before closing?",
    "nothing alike here",
]


def test_summed_batches_equal_the_corpus_score():
    parts = [
        translation_metrics.sentence_statistics(HYPS[:2], REFS[:2]),
        translation_metrics.sentence_statistics(HYPS[2:3], REFS[2:3]),
        translation_metrics.sentence_statistics(HYPS[3:], REFS[3:]),
        translation_metrics.sentence_statistics([], []),
    ]
    sums = {k: np.sum([p[k] for p in parts], 0) for k in translation_metrics.SPEC}
    scores = translation_metrics.scores_from_sums(sums)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score, abs=1e-9)
    # Corpus BLEU is not the mean of sentence BLEU.
    mean = np.mean([sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(HYPS, REFS)])
    assert abs(scores["bleu"] - mean) > 1.0


def test_statistics_shapes_and_perfect_score():
    stats = translation_metrics.sentence_statistics(REFS, REFS)
    assert {k: v.shape for k, v in stats.items()} == translation_metrics.SPEC
    scores = translation_metrics.scores_from_sums(stats)
    assert scores == pytest.approx({"bleu": 100.0, "chrf": 100.0})


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 hypotheses but 2 references"):
        translation_metrics.sentence_statistics(HYPS[:3], REFS[:2])
