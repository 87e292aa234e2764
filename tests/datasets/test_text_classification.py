"""Tests for datasets/download_and_convert_text_classification.py: TSV -> classifier records."""

import json
import os

import numpy as np
import pytest

from datasets import dataset_factory, download_and_convert_data
from datasets import download_and_convert_text_classification as tc
from slim_compat import tf

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog",
         "ran", "##s", ",", ".", "a", "b"]  # fmt: skip
ID = {t: i for i, t in enumerate(VOCAB)}


def _write(folder, name, text):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@pytest.fixture
def source(tmp_path):
    folder = str(tmp_path / "source")
    _write(
        folder, "train.tsv", "The cat sat.\t10\nthe dog\tThe cats ran, on a mat\t2\n\nDogs sat\t2\n"
    )
    _write(folder, "dev.tsv", "a cat\tb dog\t10\n")
    return folder, _write(str(tmp_path), "vocab.txt", "".join(t + "\n" for t in VOCAB))


def _records(dataset_dir, split):
    files = sorted(
        os.path.join(dataset_dir, f)
        for f in os.listdir(dataset_dir)
        if f.startswith(f"{tc.NAME}_{split}-") and f.endswith(".tfrecord")
    )
    out = []
    for path in files:
        for serialized in tf.compat.v1.io.tf_record_iterator(path):
            example = tf.train.Example.FromString(serialized)
            out.append({k: list(f.int64_list.value) for k, f in example.features.feature.items()})
    return out


def _ids(*tokens):
    return [ID[t] for t in tokens]


def test_round_trip(tmp_path, source):
    folder, vocab_file = source
    dataset_dir = str(tmp_path / "records")
    split_sizes, skipped = tc.convert(
        dataset_dir, folder, vocab_file, max_seq_length=12, num_workers=1
    )
    assert split_sizes == {"train": 3, "dev": 1} and not skipped
    # Labels in numeric order ("2" before "10"), from train.tsv.
    assert dataset_factory.read_labels_file(os.path.join(dataset_dir, "labels.txt")) == {
        0: "2",
        1: "10",
    }
    assert (
        dataset_factory.read_split_sizes(os.path.join(dataset_dir, "split_sizes.json"))
        == split_sizes
    )
    with open(os.path.join(dataset_dir, tc.METADATA_FILENAME)) as f:
        metadata = json.load(f)
    assert metadata["num_labels"] == 2 and metadata["vocab_size"] == len(VOCAB)
    assert metadata["max_seq_length"] == 12

    train = _records(dataset_dir, "train")
    assert [set(r) for r in train] == [set(tc.FEATURE_KEYS)] * 3
    single = _ids("[CLS]", "the", "cat", "sat", ".", "[SEP]")
    assert train[0]["input_ids"] == single + [0] * 6
    assert train[0]["input_mask"] == [1] * 6 + [0] * 6
    assert train[0]["segment_ids"] == [0] * 12
    assert train[0]["label_ids"] == [1] and train[0]["is_real_example"] == [1]
    # A pair: [CLS] A [SEP] B [SEP], B (the longer) loses tokens at its end to fit 12.
    a = _ids("the", "dog")
    b = _ids("the", "cat", "##s", "ran", ",", "on", "a")  # "mat" dropped
    assert train[1]["input_ids"] == _ids("[CLS]") + a + _ids("[SEP]") + b + _ids("[SEP]")
    assert train[1]["segment_ids"] == [0] * 4 + [1] * 8
    assert train[1]["input_mask"] == [1] * 12
    assert train[1]["label_ids"] == [0]
    assert train[2]["input_ids"][:5] == _ids("[CLS]", "dog", "##s", "sat", "[SEP]")
    dev = _records(dataset_dir, "dev")
    assert dev[0]["input_ids"][:7] == _ids("[CLS]", "a", "cat", "[SEP]", "b", "dog", "[SEP]")
    assert dev[0]["segment_ids"][:8] == [0, 0, 0, 0, 1, 1, 1, 0]

    # The parsing spec the task uses reads them.
    with tf.Graph().as_default():
        files = [
            os.path.join(dataset_dir, f) for f in sorted(os.listdir(dataset_dir)) if "_train-" in f
        ]
        serialized = tf.constant([s for p in files for s in tf.compat.v1.io.tf_record_iterator(p)])
        parsed = tf.io.parse_example(serialized, tc.feature_spec(12))
        with tf.compat.v1.Session() as session:
            parsed = session.run(parsed)
    assert parsed["input_ids"].shape == (3, 12) and parsed["label_ids"].shape == (3, 1)
    np.testing.assert_array_equal(parsed["label_ids"][:, 0], [1, 0, 0])


def test_through_the_dispatcher(tmp_path, source, capsys):
    folder, vocab_file = source
    argv = ["--dataset_name=text_classification", f"--dataset_dir={tmp_path / 'out'}",
            f"--source={folder}", f"--vocab_file={vocab_file}", "--max_seq_length=8",
            "--num_workers=1", "--do_lower_case=false"]  # fmt: skip
    assert download_and_convert_data.main(argv) == 0
    assert "dev 1, train 3" in capsys.readouterr().out
    train = _records(str(tmp_path / "out"), "train")
    assert len(train[0]["input_ids"]) == 8
    assert train[0]["input_ids"][1] == ID["[UNK]"]  # cased: "The" is not in the vocabulary


@pytest.mark.parametrize(
    "train, dev, message",
    [
        ("good\t1\ntoo\tmany\tfields\there\n", None, "train.tsv:2: expected .* got 4"),
        ("no label here\n", None, "train.tsv:1: expected .* got 1"),
        ("text\t \n", None, "train.tsv:1: empty label"),
        ("\t1\n", None, "train.tsv:1: empty text"),
        (
            "a\t1\n\nb\t2\n",
            "a\t1\nb\t3\n",
            r"dev.tsv:2: label '3' does not appear in .*train.tsv; its labels: \['1', '2'\]",
        ),
        ("\n\n", None, "train.tsv holds no example"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, source, train, dev, message):
    _, vocab_file = source
    folder = str(tmp_path / "bad")
    _write(folder, "train.tsv", train)
    if dev is not None:
        _write(folder, "dev.tsv", dev)
    with pytest.raises(ValueError, match=message):
        tc.convert(str(tmp_path / "out"), folder, vocab_file, num_workers=1)
    assert not os.path.exists(tmp_path / "out" / "split_sizes.json")


def test_missing_inputs(tmp_path, source):
    folder, vocab_file = source
    with pytest.raises(FileNotFoundError, match="needs --vocab_file"):
        tc.convert(str(tmp_path / "out"), folder)
    with pytest.raises(FileNotFoundError, match="needs --source"):
        tc.convert(str(tmp_path / "out"), None, vocab_file)
    only_dev = str(tmp_path / "only_dev")
    _write(only_dev, "dev.tsv", "a\t1\n")
    with pytest.raises(FileNotFoundError, match=r"no train.tsv \(found \['dev'\]\)"):
        tc.convert(str(tmp_path / "out"), only_dev, vocab_file)
    bad_vocab = _write(str(tmp_path), "bad_vocab.txt", "[PAD]\n[UNK]\nthe\n")
    with pytest.raises(ValueError, match=r"bad_vocab.txt lacks .*\[CLS\], \[SEP\], \[MASK\]"):
        tc.convert(str(tmp_path / "out"), folder, bad_vocab)


def test_header_lines_and_byte_order_marks(tmp_path):
    """GLUE-style files: a header row names the columns, a spreadsheet's BOM starts the file."""
    header = "sentence\tlabel\n"
    train = _write(str(tmp_path), "train.tsv", "\ufeff" + header + "the cat\tpos\na dog\tneg\n")
    rows = tc.read_tsv(train)
    assert [(a, label) for a, _, label, _ in rows] == [("the cat", "pos"), ("a dog", "neg")]
    assert [n for *_, n in rows] == [2, 3]  # line numbers still count the header
    # 'auto' keeps a first line whose label is a real one: another line has it too ...
    same = _write(str(tmp_path), "same.tsv", "the cat\tlabel\na dog\tlabel\n")
    assert len(tc.read_tsv(same)) == 2
    # ... or it is not a column name; 'false' keeps a header-like line, 'true' drops any.
    plain = _write(str(tmp_path), "plain.tsv", "the cat\tpos\na dog\tneg\n")
    assert len(tc.read_tsv(plain)) == 2 and len(tc.read_tsv(plain, "true")) == 1
    assert len(tc.read_tsv(train, "false")) == 3
    with pytest.raises(ValueError, match="--tsv_header='maybe'; expected one of: auto, true"):
        tc.read_tsv(train, "maybe")


def test_a_header_is_not_a_class_through_the_dispatcher(tmp_path):
    folder = str(tmp_path / "source")
    _write(folder, "train.tsv", "text\tlabel\nthe cat sat\tanimal-2\n, .\tpunct\n")
    _write(folder, "dev.tsv", "text\tlabel\na dog\tanimal-2\n")
    vocab_file = _write(str(tmp_path), "vocab.txt", "".join(t + "\n" for t in VOCAB))
    dataset_dir = str(tmp_path / "records")
    download_and_convert_data.main(
        [
            "--dataset_name=text_classification",
            f"--dataset_dir={dataset_dir}",
            f"--source={folder}",
            f"--vocab_file={vocab_file}",
            "--max_seq_length=8",
            "--num_shards=1",
            "--num_workers=1",
        ]
    )
    with open(os.path.join(dataset_dir, "labels.txt")) as f:
        assert f.read().split() == ["0:animal-2", "1:punct"]
    assert [r["label_ids"] for r in _records(dataset_dir, "dev")] == [[0]]
    assert _records(dataset_dir, "dev")[0]["input_ids"][:4] == _ids("[CLS]", "a", "dog", "[SEP]")
