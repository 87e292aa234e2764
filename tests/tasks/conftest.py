"""Tiny BERT data written by the real converters: a synthetic corpus and a TSV task.

The corpus is learnable: each sentence counts up through the word list from a random
start (w7 w8 w9 ...), so a masked word is predictable from its neighbours; the
classification label is the start word's group (w0-w9 -> 0, w10-w19 -> 1, ...).
"""

import types

import numpy as np
import pytest

from datasets import create_pretraining_data
from datasets import download_and_convert_text_classification as text_classification

NUM_WORDS = 40
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEQ = 16
PREDICTIONS = 4


def _sentence(rng, length):
    start = int(rng.integers(0, NUM_WORDS))
    return [f"w{(start + k) % NUM_WORDS}" for k in range(length)], start


def write_bert_data(root, seed=0, seq=SEQ, documents=24, shards=2):
    """Writes vocab.txt, pretraining records (train, validation) and classifier records."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    vocab = root / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in SPECIALS + [f"w{i}" for i in range(NUM_WORDS)]))
    corpus = root / "corpus.txt"
    lines = []
    for _ in range(documents):
        for _ in range(int(rng.integers(4, 9))):
            lines.append(" ".join(_sentence(rng, int(rng.integers(3, 7)))[0]))
        lines.append("")
    corpus.write_text("\n".join(lines) + "\n")
    pretraining = root / "pretraining"
    create_pretraining_data.create_pretraining_data(
        [str(corpus)],
        str(vocab),
        str(pretraining),
        max_seq_length=seq,
        max_predictions_per_seq=PREDICTIONS,
        dupe_factor=3,
        validation_fraction=0.25,
        num_shards=shards,
        num_workers=1,
    )
    source = root / "tsv"
    source.mkdir()
    for split, count in (("train", 160), ("dev", 41)):
        rows = []
        for _ in range(count):
            words, start = _sentence(rng, int(rng.integers(3, 8)))
            rows.append(f"{' '.join(words)}\t{start * 4 // NUM_WORDS}")
        (source / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    classification = root / "classification"
    text_classification.convert(
        str(classification),
        source=str(source),
        vocab_file=str(vocab),
        max_seq_length=seq,
        num_shards=shards,
        num_workers=1,
    )
    return types.SimpleNamespace(
        root=root,
        vocab=str(vocab),
        corpus=str(corpus),
        pretraining=str(pretraining),
        classification=str(classification),
    )


@pytest.fixture(scope="session")
def bert_data(tmp_path_factory):
    """The tiny BERT data of write_bert_data, written once per test session."""
    return write_bert_data(tmp_path_factory.mktemp("bert_data"))


def bert_params(**overrides):
    """The flags a BERT task reads, at their defaults for a tiny run, as attributes."""
    values = dict(
        model_name="bert_tiny",
        bert_config_file=None,
        max_seq_length=None,
        init_checkpoint=None,
        dataset_dir=None,
        dropout_keep_prob=None,
        num_classes=None,
        label_smoothing=0.0,
        num_readers=4,
        shuffle_buffer_size=64,
    )
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.fixture(name="bert_params")
def bert_params_fixture():
    """bert_params (the function), for tests: conftest modules are not importable."""
    return bert_params


@pytest.fixture(name="write_bert_data")
def write_bert_data_fixture():
    """write_bert_data (the function), for data of another sequence length."""
    return write_bert_data
