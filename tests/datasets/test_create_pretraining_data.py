"""Tests for datasets/create_pretraining_data.py: google's pretraining records from raw text.

The corpus the tests write makes every instance checkable: each word is one vocabulary
token named after its place, d{document}s{sentence}w{word} (every third word followed by
a "##q" piece), so a record tells which document and sentences its A and B came from.
"""

import json
import os
import random

import numpy as np
import pytest

from datasets import create_pretraining_data as cpd
from preprocessing import bert_tokenization
from slim_compat import tf

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##q"]
PAD, UNK, CLS, SEP, MASK, SUFFIX = range(len(SPECIALS))


def _corpus(num_documents, seed):
    """[(document, [sentence words])] of words d{d}s{s}w{k}, every third one with '##q'."""
    rng = np.random.RandomState(seed)
    documents = []
    for d in range(num_documents):
        sentences = []
        for s in range(rng.randint(8, 30)):
            sentences.append([f"d{d}s{s}w{k}" for k in range(rng.randint(3, 13))])
        documents.append(sentences)
    return documents


def _write_corpus(folder, num_documents=20, seed=0):
    """Writes corpus.txt and vocab.txt; returns (corpus path, vocab path, documents)."""
    documents = _corpus(num_documents, seed)
    words = [w for document in documents for sentence in document for w in sentence]
    os.makedirs(folder, exist_ok=True)
    vocab_file = os.path.join(folder, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in SPECIALS + words))
    corpus_file = os.path.join(folder, "corpus.txt")
    with open(corpus_file, "w", encoding="utf-8") as f:
        f.write("\n  \n")  # leading blank lines: no empty document
        for document in documents:
            for sentence in document:
                f.write(
                    " ".join(
                        w + ("q" if int(w.rsplit("w", 1)[1]) % 3 == 0 else "") for w in sentence
                    )
                )
                f.write("\n")
            f.write("\n\n")  # two blank lines are still one document break
    return corpus_file, vocab_file, documents


def _read_records(output_dir, split="train"):
    """Every record of a split as {feature: (kind, list)}."""
    files = sorted(
        os.path.join(output_dir, f)
        for f in os.listdir(output_dir)
        if f.startswith(f"{cpd.NAME}_{split}-") and f.endswith(".tfrecord")
    )
    records = []
    for path in files:
        for serialized in tf.compat.v1.io.tf_record_iterator(path):
            example = tf.train.Example.FromString(serialized)
            records.append(
                {
                    key: (
                        feature.WhichOneof("kind"),
                        list(getattr(feature, feature.WhichOneof("kind")).value),
                    )
                    for key, feature in example.features.feature.items()
                }
            )
    return records


def _values(record):
    return {key: np.array(values) for key, (_, values) in record.items()}


def _place(token_id, id_to_word):
    """(document, sentence, word) of a word token, None for '##q' and the special tokens."""
    if token_id <= SUFFIX:
        return None
    word = id_to_word[token_id]
    d, rest = word[1:].split("s")
    s, k = rest.split("w")
    return int(d), int(s), int(k)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="module")
def id_to_word(corpus):
    vocab = bert_tokenization.load_vocab(corpus[1])
    return {i: t for t, i in vocab.items()}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, corpus):
    """Records of max_seq_length 64 / 10 predictions, dupe_factor 3, in one process."""
    corpus_file, vocab_file, _ = corpus
    output_dir = str(tmp_path_factory.mktemp("records"))
    split_sizes, stats = cpd.create_pretraining_data(
        corpus_file, vocab_file, output_dir, max_seq_length=64, max_predictions_per_seq=10,
        dupe_factor=3, short_seq_prob=0.3, random_seed=7, num_shards=3, num_workers=1,
    )  # fmt: skip
    return output_dir, split_sizes, stats, _read_records(output_dir)


def _restore(values):
    """input_ids with the original token at every masked position."""
    original = values["input_ids"].copy()
    real = values["masked_lm_weights"] > 0
    original[values["masked_lm_positions"][real]] = values["masked_lm_ids"][real]
    return original


def test_features_dtypes_and_shapes_are_googles(small_run):
    output_dir, split_sizes, stats, records = small_run
    assert split_sizes == {"train": len(records)} and len(records) > 50
    with open(os.path.join(output_dir, "split_sizes.json")) as f:
        assert json.load(f) == {"train": len(records)}
    with open(os.path.join(output_dir, "labels.txt")) as f:
        assert f.read() == "0:is_next\n1:random_next\n"
    with open(os.path.join(output_dir, cpd.METADATA_FILENAME)) as f:
        metadata = json.load(f)
    assert metadata["max_seq_length"] == 64 and metadata["max_predictions_per_seq"] == 10
    assert stats["train"]["documents"] == 20 and metadata["corpus"] == stats
    lengths = {
        "input_ids": 64, "input_mask": 64, "segment_ids": 64, "masked_lm_positions": 10,
        "masked_lm_ids": 10, "masked_lm_weights": 10, "next_sentence_labels": 1,
    }  # fmt: skip
    for record in records:
        assert set(record) == set(cpd.FEATURE_KEYS)
        for key, (kind, values) in record.items():
            assert kind == ("float_list" if key == "masked_lm_weights" else "int64_list"), key
            assert len(values) == lengths[key], key
    # The parsing spec the tasks use reads them with those shapes.
    path = os.path.join(
        output_dir, sorted(f for f in os.listdir(output_dir) if f.endswith(".tfrecord"))[0]
    )
    with tf.Graph().as_default():
        serialized = tf.constant(list(tf.compat.v1.io.tf_record_iterator(path)))
        parsed = tf.io.parse_example(serialized, cpd.feature_spec(64, 10))
        with tf.compat.v1.Session() as session:
            parsed = session.run(parsed)
    assert (
        parsed["input_ids"].shape[1:] == (64,) and parsed["masked_lm_weights"].dtype == np.float32
    )
    assert parsed["next_sentence_labels"].shape[1:] == (1,)


def test_every_instance_is_a_consistent_google_pair(small_run, id_to_word):
    _, _, _, records = small_run
    labels = []
    for record in records:
        v = _values(record)
        n = int(v["input_mask"].sum())
        assert 5 <= n <= 64
        assert (v["input_mask"][:n] == 1).all() and (v["input_mask"][n:] == 0).all()
        assert (v["input_ids"][n:] == 0).all() and (v["segment_ids"][n:] == 0).all()
        original = _restore(v)[:n]
        seps = np.flatnonzero(original == SEP)
        assert original[0] == CLS and len(seps) == 2 and seps[1] == n - 1 and 1 < seps[0] < n - 2
        a, b = original[1 : seps[0]], original[seps[0] + 1 : n - 1]
        # segment 0: [CLS] A [SEP]; segment 1: B [SEP]
        assert (v["segment_ids"][: seps[0] + 1] == 0).all() and (
            v["segment_ids"][seps[0] + 1 : n] == 1
        ).all()
        # masked LM: sorted real positions first, inside the tokens, never [CLS] / [SEP],
        # as many as google's rule asks (no whole-word masking here)
        k = int(v["masked_lm_weights"].sum())
        assert set(v["masked_lm_weights"].tolist()) <= {0.0, 1.0}
        assert (v["masked_lm_weights"][:k] == 1).all() and (v["masked_lm_weights"][k:] == 0).all()
        positions = v["masked_lm_positions"][:k]
        assert k == min(10, max(1, int(round(n * 0.15))))
        assert (np.diff(positions) > 0).all() and positions.max() < n and positions.min() > 0
        assert not set(positions.tolist()) & {0, int(seps[0]), n - 1}
        assert (v["masked_lm_positions"][k:] == 0).all() and (v["masked_lm_ids"][k:] == 0).all()
        assert (v["masked_lm_ids"][:k] == original[positions]).all()
        # next sentence: B follows A in its document, or comes from another document
        label = int(v["next_sentence_labels"][0])
        labels.append(label)
        places_a = [p for p in (_place(t, id_to_word) for t in a) if p]
        places_b = [p for p in (_place(t, id_to_word) for t in b) if p]
        assert places_b, "B has a word"
        for places in (places_a, places_b):
            assert len({p[0] for p in places}) <= 1  # one document per side
            assert places == sorted(places) and len(set(places)) == len(places)  # in order
        if places_a:
            if label == 0:
                assert places_a[0][0] == places_b[0][0]
                assert places_a[-1][1] < places_b[0][1]  # B starts at a later sentence
            else:
                assert places_a[0][0] != places_b[0][0]
    assert 0 < sum(labels) < len(labels)


def test_truncation_drops_only_ends():
    rng = random.Random(3)
    for _ in range(200):
        a, b = list(range(rng.randint(1, 40))), list(range(100, 100 + rng.randint(1, 40)))
        kept_a, kept_b = list(a), list(b)
        cpd.truncate_seq_pair(kept_a, kept_b, 20, rng)
        assert len(kept_a) + len(kept_b) <= 20 and kept_a and kept_b
        for kept, whole in ((kept_a, a), (kept_b, b)):
            start = whole.index(kept[0])
            assert whole[start : start + len(kept)] == kept  # a contiguous middle part


def test_masking_rates_are_googles(tmp_path, corpus):
    corpus_file, vocab_file, _ = corpus
    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path), dupe_factor=20, random_seed=1, num_workers=1
    )
    records = [_values(r) for r in _read_records(str(tmp_path))]
    tokens = sum(int(v["input_mask"].sum()) for v in records)
    real = [v["masked_lm_weights"] > 0 for v in records]
    predicted = np.concatenate(
        [v["input_ids"][v["masked_lm_positions"][r]] for v, r in zip(records, real)]
    )
    originals = np.concatenate([v["masked_lm_ids"][r] for v, r in zip(records, real)])
    assert len(predicted) > 4000
    assert 0.14 < len(predicted) / tokens < 0.16  # masked_lm_prob, rounded per record
    masked = np.mean(predicted == MASK)
    kept = np.mean(predicted == originals)
    replaced = predicted[(predicted != MASK) & (predicted != originals)]
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.02
    assert abs(len(replaced) / len(predicted) - 0.1) < 0.02
    # Random replacements are uniform over the whole vocabulary (specials included).
    size = len(bert_tokenization.load_vocab(vocab_file))
    expected_distinct = size * (1 - np.exp(-len(replaced) / size))
    assert abs(len(set(replaced.tolist())) / expected_distinct - 1) < 0.05
    assert abs(replaced.mean() / ((size - 1) / 2) - 1) < 0.05
    labels = np.array([v["next_sentence_labels"][0] for v in records])
    assert 0.4 < labels.mean() < 0.65  # half random, plus every one-sentence chunk


def test_short_seq_prob_shortens_sequences(tmp_path, corpus):
    corpus_file, vocab_file, _ = corpus
    mean_length = {}
    for short_seq_prob in (0.0, 1.0):
        output_dir = str(tmp_path / str(short_seq_prob))
        cpd.create_pretraining_data(
            corpus_file, vocab_file, output_dir, dupe_factor=3, short_seq_prob=short_seq_prob,
            num_workers=1,
        )  # fmt: skip
        lengths = [sum(r["input_mask"][1]) for r in _read_records(output_dir)]
        mean_length[short_seq_prob] = np.mean(lengths)
        assert max(lengths) == 128
    # Targets uniform in [2, 125] instead of 125: far shorter on average.
    assert mean_length[1.0] < 0.75 * mean_length[0.0]


def test_whole_word_masking_masks_every_piece(tmp_path, corpus, small_run):
    corpus_file, vocab_file, _ = corpus

    def split_words(records):
        """(words masked whole, words masked in part) over all records."""
        whole = partial = 0
        for v in map(_values, records):
            original = _restore(v)
            masked = set(v["masked_lm_positions"][v["masked_lm_weights"] > 0].tolist())
            for i in np.flatnonzero(original == SUFFIX):
                # google's rule: a piece belongs to the nearest token before it that is not
                # [CLS] / [SEP] (a B cut at its front continues the last word of A).
                before = [j for j in range(i) if original[j] not in (CLS, SEP)]
                if not before:
                    continue
                covered = (before[-1] in masked) + (i in masked)
                whole += covered == 2
                partial += covered == 1
        return whole, partial

    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path), max_seq_length=64, max_predictions_per_seq=10,
        dupe_factor=3, do_whole_word_mask=True, num_workers=1,
    )  # fmt: skip
    whole, partial = split_words(_read_records(str(tmp_path)))
    assert whole > 20 and partial == 0
    assert split_words(small_run[3])[1] > 20  # without the option, pieces are masked alone


def test_same_seed_same_bytes_and_stale_shards_are_refused(tmp_path, corpus):
    corpus_file, vocab_file, _ = corpus
    options = dict(
        max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=2, num_workers=1
    )

    def shards(folder):
        return {
            f: open(os.path.join(folder, f), "rb").read()
            for f in os.listdir(folder)
            if f.endswith(".tfrecord")
        }

    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path / "a"), random_seed=5, **options
    )
    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path / "b"), random_seed=5, **options
    )
    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path / "c"), random_seed=6, **options
    )
    assert len(shards(tmp_path / "a")) == 2 and shards(tmp_path / "a") == shards(tmp_path / "b")
    assert shards(tmp_path / "a") != shards(tmp_path / "c")
    # Resumable: a re-run after an interruption (one shard and split_sizes.json missing)
    # keeps the complete shards and writes the missing one identically.
    written = shards(tmp_path / "a")
    first, second = sorted(written)
    mtime = os.stat(tmp_path / "a" / first).st_mtime_ns
    os.remove(tmp_path / "a" / second)
    os.remove(tmp_path / "a" / "split_sizes.json")
    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path / "a"), random_seed=5, **options
    )
    assert shards(tmp_path / "a") == written
    assert os.stat(tmp_path / "a" / first).st_mtime_ns == mtime
    assert os.path.exists(tmp_path / "a" / "split_sizes.json")
    # A re-run with other options does not mix its shards with the old ones.
    with pytest.raises(ValueError, match="--overwrite"):
        cpd.create_pretraining_data(
            corpus_file,
            vocab_file,
            str(tmp_path / "a"),
            random_seed=5,
            masked_lm_prob=0.3,
            **options,
        )
    cpd.create_pretraining_data(
        corpus_file,
        vocab_file,
        str(tmp_path / "a"),
        random_seed=5,
        masked_lm_prob=0.3,
        overwrite=True,
        **options,
    )
    assert shards(tmp_path / "a") != shards(tmp_path / "b")


def test_validation_split_holds_out_whole_documents(tmp_path, corpus, id_to_word):
    corpus_file, vocab_file, _ = corpus
    split_sizes, stats = cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path), max_seq_length=64, max_predictions_per_seq=10,
        dupe_factor=2, validation_fraction=0.25, num_workers=1,
    )  # fmt: skip
    assert stats["validation"]["documents"] == 5 and stats["train"]["documents"] == 15

    def documents(split):
        found = set()
        for v in map(_values, _read_records(str(tmp_path), split)):
            found |= {
                p[0] for p in (_place(t, id_to_word) for t in _restore(v)[v["input_mask"] > 0]) if p
            }
        return found

    train, validation = documents("train"), documents("validation")
    assert len(validation) == 5 and len(train) == 15 and not train & validation
    assert set(split_sizes) == {"train", "validation"}


def test_bad_input_is_a_clear_error(tmp_path, corpus):
    corpus_file, vocab_file, _ = corpus
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n", encoding="utf-8")
    controls = tmp_path / "controls.txt"
    controls.write_text("\x00\x07\n\n\x01\n", encoding="utf-8")
    for path in (blank, controls):
        with pytest.raises(ValueError, match=f"no document .* in {path}"):
            cpd.create_pretraining_data(str(path), vocab_file, str(tmp_path / "out"), num_workers=1)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        cpd.create_pretraining_data(
            str(tmp_path / "missing.txt"), vocab_file, str(tmp_path / "out")
        )
    bad_vocab = tmp_path / "vocab_without_mask.txt"
    bad_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nword\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab_without_mask.txt lacks .*\[MASK\]"):
        cpd.create_pretraining_data(corpus_file, str(bad_vocab), str(tmp_path / "out"))
    for option, value in [("max_seq_length", 4), ("masked_lm_prob", 0.0), ("dupe_factor", 0),
                          ("short_seq_prob", 1.5), ("validation_fraction", 1.0),
                          ("max_predictions_per_seq", 0)]:  # fmt: skip
        with pytest.raises(ValueError, match=f"{option} must be .*got {value}"):
            cpd.create_pretraining_data(
                corpus_file, vocab_file, str(tmp_path / "out"), **{option: value}
            )
    one_document = tmp_path / "one.txt"
    one_document.write_text("d0s0w1 d0s0w2\nd0s1w1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="validation_fraction 0.6 of 1 document.* leaves none"):
        cpd.create_pretraining_data(
            str(one_document), vocab_file, str(tmp_path / "out"), validation_fraction=0.6
        )
    assert not os.path.exists(tmp_path / "out" / "split_sizes.json")


def test_command_line(tmp_path, corpus, capsys):
    corpus_file, vocab_file, _ = corpus
    argv = [f"--input_file={corpus_file}", f"--vocab_file={vocab_file}", f"--output_dir={tmp_path}",
            "--max_seq_length=32", "--max_predictions_per_seq=4", "--dupe_factor=1",
            "--num_workers=1", "--do_whole_word_mask=true"]  # fmt: skip
    assert cpd.main(argv) == 0
    out = capsys.readouterr().out
    records = _read_records(str(tmp_path))
    assert f"wrote {len(records)} train records" in out and "from 20 documents" in out
    assert len(records[0]["input_ids"][1]) == 32 and len(records[0]["masked_lm_ids"][1]) == 4
    assert (
        cpd.main(
            [
                f"--input_file={tmp_path}/nothing*.txt",
                f"--vocab_file={vocab_file}",
                f"--output_dir={tmp_path}",
            ]
        )
        == 1
    )
    assert "nothing*.txt" in capsys.readouterr().err


def test_parallel_workers_write_the_same_records(tmp_path, corpus):
    # Tokenization and shard writing in two spawned processes give the bytes of one.
    corpus_file, vocab_file, _ = corpus
    options = dict(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, num_shards=4)
    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path / "one"), num_workers=1, **options
    )
    cpd.create_pretraining_data(
        corpus_file, vocab_file, str(tmp_path / "two"), num_workers=2, **options
    )
    names = sorted(f for f in os.listdir(tmp_path / "one") if f.endswith(".tfrecord"))
    assert len(names) == 4
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
