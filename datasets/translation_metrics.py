"""Corpus BLEU and chrF (sacrebleu) from per-sentence sufficient statistics that add up.

Corpus BLEU is not an average of sentence scores: it is computed from the n-gram match
counts, n-gram totals and lengths summed over the corpus; chrF likewise from summed
character n-gram statistics. sacrebleu 2.6.0 exposes both halves on its metric objects:
`_extract_corpus_statistics(hypotheses, [references])` returns one list of integers per
sentence (BLEU: hypothesis length, reference length, 4 match counts, 4 totals; chrF: 3
numbers per character n-gram order), and `_compute_score_from_stats(summed)` turns the
sums into the corpus score. So each evaluation batch (on each rank) contributes integer
vectors, the trainer sums them over batches and ranks, and the score of the sums equals
`corpus_score` of the whole split (tests/datasets/test_translation_metrics.py).

    stats = translation_metrics.sentence_statistics(hypotheses, references)  # per batch
    scores = translation_metrics.scores_from_sums(summed)  # {"bleu": .., "chrf": ..}
"""

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

BLEU_KEY = "bleu_statistics"
CHRF_KEY = "chrf_statistics"
# sacrebleu's defaults: 4-gram BLEU with the 13a tokenizer and exponential smoothing;
# chrF2 with 6 character orders, 0 word orders.
_BLEU = BLEU()
_CHRF = CHRF()
BLEU_SIZE = 2 + 2 * _BLEU.max_ngram_order
CHRF_SIZE = 3 * (_CHRF.char_order + _CHRF.word_order)
SPEC = {BLEU_KEY: (BLEU_SIZE,), CHRF_KEY: (CHRF_SIZE,)}


def sentence_statistics(hypotheses, references):
    """{BLEU_KEY: int64 [BLEU_SIZE], CHRF_KEY: int64 [CHRF_SIZE]}: the sums over these pairs.

    Args:
        hypotheses: list of detokenised output sentences.
        references: list of reference sentences, one per hypothesis.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: one each expected"
        )
    if not hypotheses:
        return {k: np.zeros(shape, np.int64) for k, shape in SPEC.items()}
    bleu = np.asarray(_BLEU._extract_corpus_statistics(hypotheses, [references]), np.int64)
    chrf = np.asarray(_CHRF._extract_corpus_statistics(hypotheses, [references]), np.int64)
    return {BLEU_KEY: bleu.sum(0), CHRF_KEY: chrf.sum(0)}


def scores_from_sums(sums):
    """{"bleu": corpus BLEU, "chrf": corpus chrF2} (0-100) from summed statistics."""
    bleu = _BLEU._compute_score_from_stats(np.asarray(sums[BLEU_KEY]).astype(np.int64).tolist())
    chrf = _CHRF._compute_score_from_stats(np.asarray(sums[CHRF_KEY]).astype(np.int64).tolist())
    return {"bleu": float(bleu.score), "chrf": float(chrf.score)}


def signatures():
    """sacrebleu's signature strings of the two metrics (for reports)."""
    return {"bleu": str(_BLEU.get_signature()), "chrf": str(_CHRF.get_signature())}


def corpus_scores(hypotheses, references):
    """{"bleu", "chrf"} of a whole corpus at once (the same as summing per batch)."""
    return scores_from_sums(sentence_statistics(hypotheses, references))
