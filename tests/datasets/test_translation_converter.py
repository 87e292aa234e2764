"""Tests of the translation converters: parallel text / gettext catalogs -> token-id tfrecords.

Round trip: text -> tfrecords -> translation.parse_fn -> BpeTokenizer.decode == the
normalised text. Also: bad lines named with file and line, strict mode, splits given by
the input or by the source hash, resuming and stale output, the command line.
"""

import json
import os
import subprocess
import sys

import pytest

from datasets import (
    dataset_factory,
    download_and_convert_data,
    download_and_convert_translation,
    parallel_text,
    translation,
)
from preprocessing import sentencepiece_bpe
from slim_compat import tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO_ROOT, "datasets", "download_and_convert_data.py")
VOCAB = 300  # enough for these tiny texts (4 reserved ids + 256 bytes + characters + merges)

EN = "open save close the file window folder document new old print page all".split()
DE = "öffnen speichern schließen die Datei Fenster Ordner Dokument neu alt drucken".split()


def _pairs(n, offset=0):
    """n distinct (English, German) sentence pairs."""
    pairs = []
    for i in range(offset, offset + n):
        en = " ".join(EN[(i * k + k) % len(EN)] for k in (1, 2, 3)) + f" {i}"
        de = " ".join(DE[(i * k + k) % len(DE)] for k in (1, 2, 3)) + f" {i}"
        pairs.append((en, de))
    return pairs


def _read_records(dataset_dir, split):
    """[(inputs ids, targets ids)] of one converted split, through translation.parse_fn."""
    spec = translation.get_split(str(dataset_dir), split)
    with tf.Graph().as_default():
        dataset = tf.data.TFRecordDataset(spec.files).map(translation.parse_fn)
        features = tf.data.make_one_shot_iterator(dataset).get_next()
        records = []
        with tf.Session() as sess:
            while True:
                try:
                    values = sess.run(features)
                except tf.errors.OutOfRangeError:
                    break
                assert values["inputs"].dtype.name == "int64"
                records.append((list(values["inputs"]), list(values["targets"])))
    return spec, records


def _decoded(dataset_dir, split):
    spec, records = _read_records(dataset_dir, split)
    tokenizer = sentencepiece_bpe.BpeTokenizer(spec.spm_model_path)
    for inputs, targets in records:
        assert inputs[-1] == translation.EOS_ID and targets[-1] == translation.EOS_ID
    return [(tokenizer.decode(i), tokenizer.decode(t)) for i, t in records]


def _output_files(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def _convert(out, source, **kwargs):
    kwargs.setdefault("num_workers", 1)
    kwargs.setdefault("vocab_size", VOCAB)
    return download_and_convert_translation.convert(str(out), source=str(source), **kwargs)


def test_tsv_round_trip_split_by_source_hash(tmp_path):
    pairs = _pairs(60)
    # Text to normalise: runs of spaces, a tab-free NBSP, a ligature, CRLF line ends.
    raw = [(f"  {en.replace(' ', '  ', 1)} ", f"{de}\u00a0ﬁ") for en, de in pairs]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_bytes("".join(f"{en}\t{de}\r\n" for en, de in raw).encode("utf-8"))
    out = tmp_path / "records"
    sizes, skipped = _convert(out, tsv, dev_fraction=0.2, test_fraction=0.2)
    assert skipped == []

    expected = [
        (parallel_text.normalise_text(en), parallel_text.normalise_text(de)) for en, de in raw
    ]
    assert expected[0][1].endswith(" fi")
    by_split = parallel_text.split_by_source_hash(expected, 0.2, 0.2)
    assert sizes == {split: len(by_split[split]) for split in by_split if by_split[split]}
    assert sizes["dev"] > 0 and sizes["test"] > 0 and sum(sizes.values()) == 60
    decoded = {split: _decoded(out, split) for split in sizes}
    for split in sizes:
        assert decoded[split] == by_split[split]  # same pairs, same stable order
    assert set.isdisjoint(*({s for s, _ in decoded[split]} for split in ("train", "dev")))

    files = set(os.listdir(out))
    assert {"spm.model", "spm.vocab", "split_sizes.json", "translation_info.json"} <= files
    assert "labels.txt" not in files  # no classes
    info = json.loads((out / "translation_info.json").read_text())
    assert info["vocab_size"] == VOCAB and info["eos_id"] == 3 and info["split_by"] == "source hash"
    assert json.loads((out / "split_sizes.json").read_text()) == sizes


def test_file_pair_and_folder_of_splits(tmp_path):
    train, dev = _pairs(30), _pairs(5, offset=100)
    src, tgt = tmp_path / "train.en", tmp_path / "train.de"
    src.write_text("".join(en + "\n" for en, _ in train), encoding="utf-8")
    tgt.write_text("".join(de + "\n" for _, de in train), encoding="utf-8")
    out = tmp_path / "pair_records"
    sizes, _ = _convert(out, f"{src},{tgt}", dev_fraction=0.0, test_fraction=0.0)
    assert sizes == {"train": 30}
    assert sorted(_decoded(out, "train")) == sorted(train)

    # A folder keeps its own splits (train as a file pair, dev as a TSV; no test).
    (tmp_path / "dev.tsv").write_text("".join(f"{en}\t{de}\n" for en, de in dev), encoding="utf-8")
    folder_out = tmp_path / "folder_records"
    sizes, _ = _convert(folder_out, tmp_path, language="de")
    assert sizes == {"train": 30, "dev": 5}
    assert _decoded(folder_out, "train") == train and _decoded(folder_out, "dev") == dev
    with pytest.raises(ValueError, match=r"Unknown split 'test'.*\['dev', 'train'\]"):
        translation.get_split(str(folder_out), "test")
    with pytest.raises(ValueError, match="give --language"):
        _convert(tmp_path / "x", tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"holds train.de but not train.fr: the train split"
    ):
        _convert(tmp_path / "x", tmp_path, source_language="fr", language="de")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no train split: expected train.tsv or train.en"):
        _convert(tmp_path / "x", empty, language="de")


def _write_bad_tsv(path):
    good = _pairs(20)
    lines = [f"{en}\t{de}".encode() for en, de in good]
    lines[2] = b"a line without any tab at all"  # line 3
    lines[5] = b"one\ttab\ttoo many"  # line 6
    lines[8] = b"\ttarget without source"  # line 9
    lines[11] = b"source without target\t   "  # line 12
    lines[14] = b"bad \xff\xfe bytes\tschlecht"  # line 15
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {3, 6, 9, 12, 15}


def test_bad_lines_are_named_skipped_or_fatal_when_strict(tmp_path):
    tsv = tmp_path / "bad.tsv"
    bad_numbers = _write_bad_tsv(tsv)
    out = tmp_path / "records"
    sizes, skipped = _convert(out, tsv, dev_fraction=0.0, test_fraction=0.0)
    assert sizes == {"train": 15}
    assert [int(s.split(":")[1]) for s in skipped] == sorted(bad_numbers)
    assert all(s.startswith(f"{tsv}:") for s in skipped)
    reasons = " | ".join(skipped)
    for words in ("found 0", "found 2", "empty source side", "empty target side", "not UTF-8"):
        assert words in reasons
    assert json.loads((out / "translation_info.json").read_text())["bad_lines"] == 5

    strict_out = tmp_path / "strict"
    with pytest.raises(ValueError, match=rf"{tsv}:3: expected one tab.*strict"):
        _convert(strict_out, tsv, strict=True)
    assert not strict_out.exists() or os.listdir(strict_out) == []

    # A file pair of different lengths: the unmatched lines are named.
    src, tgt = tmp_path / "s.txt", tmp_path / "t.txt"
    src.write_text("".join(f"{en}\n" for en, _ in _pairs(6)), encoding="utf-8")
    tgt.write_text("".join(f"{de}\n" for _, de in _pairs(4)) + "\n", encoding="utf-8")
    pairs, bad = parallel_text.read_file_pair(str(src), str(tgt))
    assert len(pairs) == 4
    assert [str(b) for b in bad] == [
        f"{tgt}:5: empty target side",
        f"{src}:6: no matching line in {tgt} ({src} has 6 lines, {tgt} 5)",
    ]
    with pytest.raises(ValueError, match=rf"{src}:6: no matching line in {tgt}"):
        parallel_text.read_file_pair(str(src), str(tgt), strict=True)


def test_rerun_resumes_reuses_the_model_and_refuses_stale_output(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{en}\t{de}\n" for en, de in _pairs(80)), encoding="utf-8")
    out = tmp_path / "records"
    _convert(out, tsv, num_shards=4, test_fraction=0.1)
    finished = _output_files(out)
    model_mtime = os.stat(out / "spm.model").st_mtime_ns

    # An interrupted run: split_sizes.json not yet written, a shard missing, a partial one.
    os.remove(out / "split_sizes.json")
    os.remove(out / "translation_train-00002-of-00004.tfrecord")
    (out / "translation_train-00003-of-00004.tfrecord.partial").write_bytes(b"half")
    shard0_mtime = os.stat(out / "translation_train-00000-of-00004.tfrecord").st_mtime_ns
    _convert(out, tsv, num_shards=4, test_fraction=0.1)
    assert _output_files(out) == finished  # byte-identical, nothing partial left
    assert os.stat(out / "spm.model").st_mtime_ns == model_mtime  # the model was reused
    assert os.stat(out / "translation_train-00000-of-00004.tfrecord").st_mtime_ns == shard0_mtime

    # Other options: refused without --overwrite, replaced with it.
    with pytest.raises(
        ValueError, match="spm.model trained on other input or options.*--overwrite"
    ):
        _convert(out, tsv, num_shards=4, test_fraction=0.1, vocab_size=VOCAB + 10)
    assert (out / "spm.model").read_bytes() == finished["spm.model"]
    _convert(out, tsv, num_shards=4, test_fraction=0.1, vocab_size=VOCAB + 10, overwrite=True)
    assert (out / "spm.model").read_bytes() != finished["spm.model"]
    assert sentencepiece_bpe.BpeTokenizer(str(out / "spm.model")).vocab_size == VOCAB + 10


def test_gettext_converter_and_dispatcher(tmp_path, write_mo):
    locale = tmp_path / "locale"
    pairs = _pairs(40)
    write_mo(str(locale / "de" / "LC_MESSAGES" / "app.mo"), pairs + [("%s short", "%s kurz")])
    out = tmp_path / "gettext_de"
    sizes, skipped = download_and_convert_data.convert_dataset(
        "gettext",
        str(out),
        source=str(locale),
        language="de",
        vocab_size=VOCAB,
        num_workers=1,
        dev_fraction=0.1,
        test_fraction=0.1,
    )
    assert skipped == [] and sum(sizes.values()) == 40
    decoded = [pair for split in sizes for pair in _decoded(out, split)]
    assert sorted(decoded) == sorted(pairs)
    info = json.loads((out / "translation_info.json").read_text())
    assert info["converter"] == "gettext" and info["dropped"]["placeholder"] == 1
    assert dataset_factory.read_split_sizes(str(out / "split_sizes.json")) == sizes
    with pytest.raises(ValueError, match="gettext needs --language"):
        download_and_convert_data.convert_dataset("gettext", str(out), source=str(locale))
    with pytest.raises(ValueError, match="Unknown dataset_name.*'gettext'.*'translation'"):
        download_and_convert_data.convert_dataset("gettxt", str(out))


@pytest.mark.slow
def test_command_line_translation(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_bytes(b"".join(f"{en}\t{de}\n".encode() for en, de in _pairs(30)) + b"no tab\n")
    out = tmp_path / "records"
    process = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--dataset_name=translation",
            f"--dataset_dir={out}",
            f"--source={tsv}",
            f"--vocab_size={VOCAB}",
            "--num_workers=1",
        ],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert (
        "wrote translation to" in process.stdout and "skipped 1 unreadable input" in process.stdout
    )
    assert f"{tsv}:31: expected one tab" in process.stderr
    strict = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--dataset_name=translation",
            f"--dataset_dir={out}_strict",
            f"--source={tsv}",
            "--strict",
        ],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert strict.returncode == 1 and f"error: {tsv}:31: expected one tab" in strict.stderr
    assert "Traceback" not in strict.stderr
