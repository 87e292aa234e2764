"""The Criteo converter: dense log transform, train-split vocabularies with OOV, hashing, splits."""

import json
import math
import os

import numpy as np
import pytest

from datasets import criteo, download_and_convert_criteo, download_and_convert_data
from training import tf_startup

tf2 = tf_startup.import_tensorflow()


def _line(label, dense, sparse):
    return "\t".join([str(label), *dense, *sparse]) + "\n"


def _rows(count, seed=0):
    """(label, dense strings, sparse strings): empty fields, negatives, frequent and rare
    values. C1 is 'aa' in 2 of 3 lines, else a value seen once; C2 is always empty."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(count):
        dense = [str(int(v)) for v in rng.integers(-3, 50, size=criteo.NUM_DENSE)]
        dense[0] = ""  # missing
        dense[1] = "-2"  # negative: clipped to 0
        sparse = [f"{int(v):08x}" for v in rng.integers(0, 4, size=criteo.NUM_SPARSE)]
        sparse[0] = "aa" if n % 3 else f"{1000 + n:x}"
        sparse[1] = ""
        rows.append((int(rng.integers(0, 2)), dense, sparse))
    return rows


def _write(path, rows):
    with open(path, "w") as f:
        f.write("".join(_line(*r) for r in rows))
    return str(path)


def _read(dataset_dir, split):
    pattern = os.path.join(dataset_dir, criteo.FILE_PATTERN.format(split=split))
    records = []
    for path in sorted(tf2.io.gfile.glob(pattern)):
        for raw in tf2.compat.v1.io.tf_record_iterator(path):
            f = tf2.train.Example.FromString(raw).features.feature
            records.append(
                (
                    f["label"].float_list.value[0],
                    list(f["dense"].float_list.value),
                    list(f["sparse"].int64_list.value),
                )
            )
    return records


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("criteo")
    rows = _rows(28)
    source = _write(root / "train.txt", rows)
    dataset_dir = str(root / "records")
    split_sizes, _ = download_and_convert_data.convert_dataset(
        "criteo",
        dataset_dir,
        num_shards=2,
        source=source,
        min_count=3,
        heldout_fraction=0.25,
        num_workers=1,
    )
    return dataset_dir, rows, split_sizes


def test_round_trip_dense_labels_and_line_order_split(converted):
    dataset_dir, rows, split_sizes = converted
    assert split_sizes == {"train": 21, "validation": 3, "test": 4}
    records = {split: _read(dataset_dir, split) for split in split_sizes}
    ordered = records["train"] + records["validation"] + records["test"]
    assert len(ordered) == len(rows)
    for (label, dense, _), (want_label, want_dense, _) in zip(ordered, rows, strict=True):
        assert label == want_label
        want = [math.log1p(max(int(v), 0)) if v else 0.0 for v in want_dense]
        np.testing.assert_allclose(dense, want, rtol=1e-6)
        assert dense[0] == 0.0 and dense[1] == 0.0  # missing, and -2 clipped


def test_vocabulary_from_train_with_min_count_and_oov(converted):
    dataset_dir, rows, _ = converted
    metadata = criteo.read_metadata(dataset_dir)
    sizes, offsets = metadata["field_sizes"], metadata["offsets"]
    assert offsets == [sum(sizes[:f]) for f in range(criteo.NUM_SPARSE)]
    assert metadata["num_rows"] == sum(sizes)
    with open(os.path.join(dataset_dir, criteo.VOCABULARY_DIRNAME, "C1.txt")) as f:
        c1 = [line.rstrip("\n").split("\t") for line in f]
    assert c1 == [["aa", "14"]]  # 14 of the 21 train lines; singletons below min_count
    with open(os.path.join(dataset_dir, criteo.VOCABULARY_DIRNAME, "C2.txt")) as f:
        assert f.read() == "\t21\n"  # the empty value is a value of its own
    assert sizes[0] == 2 and sizes[1] == 2
    records = _read(dataset_dir, "train") + _read(dataset_dir, "validation")
    records += _read(dataset_dir, "test")
    for (_, _, sparse), (_, _, raw) in zip(records, rows, strict=True):
        assert sparse[0] == (1 if raw[0] == "aa" else criteo.OOV_ID)
        assert sparse[1] == offsets[1] + 1
        for f in range(criteo.NUM_SPARSE):
            assert offsets[f] <= sparse[f] < offsets[f] + sizes[f]


def test_vocabulary_counts_only_the_train_split(tmp_path):
    """A value frequent only in the held-out files gets the OOV id there."""
    train = _rows(6)
    held_out = _rows(4, seed=1)
    for _, _, sparse in held_out:
        sparse[2] = "beef"
    paths = {
        "train": _write(tmp_path / "train.txt", train),
        "validation": _write(tmp_path / "val.txt", held_out),
    }
    dataset_dir = str(tmp_path / "out")
    split_sizes, _ = download_and_convert_criteo.convert(
        dataset_dir,
        source=",".join(f"{k}={v}" for k, v in paths.items()),
        min_count=1,
        num_workers=1,
    )
    assert split_sizes == {"train": 6, "validation": 4}
    offsets = criteo.read_metadata(dataset_dir)["offsets"]
    assert all(s[2] == offsets[2] + criteo.OOV_ID for _, _, s in _read(dataset_dir, "validation"))
    assert all(s[2] != offsets[2] for _, _, s in _read(dataset_dir, "train"))  # min_count 1


def test_hash_buckets(tmp_path):
    rows = _rows(10)
    dataset_dir = str(tmp_path / "out")
    download_and_convert_criteo.convert(
        dataset_dir,
        source=_write(tmp_path / "t.txt", rows),
        hash_buckets=7,
        heldout_fraction=0.0,
        num_workers=1,
    )
    metadata = criteo.read_metadata(dataset_dir)
    assert metadata["field_sizes"] == [7] * criteo.NUM_SPARSE and metadata["num_rows"] == 182
    assert not os.path.exists(os.path.join(dataset_dir, criteo.VOCABULARY_DIRNAME))
    records = _read(dataset_dir, "train")
    for (_, _, sparse), (_, _, raw) in zip(records, rows, strict=True):
        want = [7 * f + download_and_convert_criteo.hash_id(f, v, 7) for f, v in enumerate(raw)]
        assert sparse == want
    # Same value, different fields: independent hashes (the field name is hashed too).
    assert len({download_and_convert_criteo.hash_id(f, "aa", 1000) for f in range(26)}) > 20


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f[:-1], "expected 40 tab-separated fields"),
        (lambda f: f[:3] + ["1.5"] + f[4:], "I3 must be an integer or empty, got '1.5'"),
        (lambda f: ["2"] + f[1:], "label must be 0 or 1"),
        (lambda f: f[:14] + ["zz"] + f[15:], "C1 must be a hex string or empty"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, edit, message):
    rows = _rows(3)
    lines = [_line(*r) for r in rows]
    fields = lines[2].rstrip("\n").split("\t")
    lines[2] = "\t".join(edit(fields)) + "\n"
    source = tmp_path / "train.txt"
    source.write_text("".join(lines))
    with pytest.raises(ValueError, match=f"{source}:3: {message}"):
        download_and_convert_criteo.convert(str(tmp_path / "out"), source=str(source))


def test_parsed_by_the_reader(converted):
    dataset_dir, _, split_sizes = converted
    with tf2.Graph().as_default():
        batch = tf2.compat.v1.data.make_one_shot_iterator(
            criteo.split_dataset(dataset_dir, "train", batch_size=64)
        ).get_next()
        with tf2.compat.v1.Session() as session:
            values = session.run(batch)
    assert values["dense"].shape == (split_sizes["train"], 13)
    assert values["sparse"].shape == (split_sizes["train"], 26)
    assert values["label"].shape == (split_sizes["train"], 1)
    with open(os.path.join(dataset_dir, criteo.METADATA_FILENAME)) as f:
        assert json.load(f)["min_count"] == 3


def test_cli_options_reach_the_converter(tmp_path, capsys):
    """--hash_buckets, --min_count and --heldout_fraction from the CLI."""
    source = _write(tmp_path / "train.txt", _rows(10))
    dataset_dir = str(tmp_path / "out")
    argv = ["--dataset_name=criteo", f"--dataset_dir={dataset_dir}", f"--source={source}"]
    argv.append("--num_workers=1")  # a spawned worker pool costs seconds here
    assert download_and_convert_data.main([*argv, "--heldout_fraction=0.2", "--min_count=2"]) == 0
    assert "test 1, train 8, validation 1" in capsys.readouterr().out
    assert criteo.read_metadata(dataset_dir)["min_count"] == 2
    assert download_and_convert_data.main([*argv, "--hash_buckets=5", "--overwrite"]) == 0
    assert criteo.read_metadata(dataset_dir)["field_sizes"] == [5] * criteo.NUM_SPARSE


def test_min_count_keeps_a_value_seen_exactly_min_count_times(tmp_path):
    rows = _rows(6)
    for n, (_, _, sparse) in enumerate(rows):
        sparse[3] = ["c0", "c0", "c1", "d0", "d0", "d0"][n]
    dataset_dir = str(tmp_path / "out")
    download_and_convert_criteo.convert(
        dataset_dir,
        source=_write(tmp_path / "t.txt", rows),
        min_count=2,
        heldout_fraction=0.0,
        num_workers=1,
    )
    with open(os.path.join(dataset_dir, criteo.VOCABULARY_DIRNAME, "C4.txt")) as f:
        assert f.read() == "d0\t3\nc0\t2\n"  # by falling count; c1 (once) is OOV
    offset = criteo.read_metadata(dataset_dir)["offsets"][3]
    ids = [s[3] - offset for _, _, s in _read(dataset_dir, "train")]
    assert ids == [2, 2, criteo.OOV_ID, 1, 1, 1]
