"""Converts TSV files of labelled text (already on disk) to BERT classifier tfrecords.

    source/
      train.tsv   text TAB label            (one example per line, no header)
      dev.tsv     text TAB text_b TAB label (a sentence pair)
      test.tsv    ...

Every `*.tsv` file in --source is a split named after it; train.tsv is required. The
labels are those of train.tsv (ids 0..K-1 in sorted order, numerically when all are
integers), written to labels.txt; a dev or test label train.tsv lacks is an error, as is
a line with another number of fields or an empty text or label (each names the file and
line). Blank lines are skipped, and so is a header line (--tsv_header: 'auto' takes the
first line for one when its label field is a column name such as 'label' or 'class'
that no other line of the file has as its label; 'true' / 'false' say so). A UTF-8
byte-order mark (files saved by spreadsheets) is ignored. Each example is tokenized with a google vocab.txt as
google-research/bert's run_classifier does ([CLS] A [SEP] or [CLS] A [SEP] B [SEP],
a pair truncated from the end of its longer side) and stored with its features:

    input_ids        int64 [max_seq_length]  0-padded
    input_mask       int64 [max_seq_length]  1 on tokens
    segment_ids      int64 [max_seq_length]  0 for [CLS] A [SEP], 1 for B [SEP]
    label_ids        int64 [1]
    is_real_example  int64 [1]  always 1 (google's reader expects it; it pads TPU batches)

    python datasets/download_and_convert_data.py --dataset_name=text_classification \\
        --source=data/man/classification --vocab_file=data/vocab.txt \\
        --dataset_dir=data/man_sections
"""

import collections
import functools
import importlib
import os

from datasets import sharded_conversion
from preprocessing import bert_tokenization

tf2 = sharded_conversion.tf2

NAME = "text_classification"
METADATA_FILENAME = "text_classification.json"
DEFAULT_NUM_SHARDS = 4
DEFAULT_MAX_SEQ_LENGTH = 128
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids", "label_ids", "is_real_example")

ClassifierOptions = collections.namedtuple("ClassifierOptions", ["tokenizer", "max_seq_length"])


def feature_spec(max_seq_length=DEFAULT_MAX_SEQ_LENGTH):
    """The tf.io parsing spec of one record (google's run_classifier name_to_features)."""
    return {
        "input_ids": tf2.io.FixedLenFeature([max_seq_length], tf2.int64),
        "input_mask": tf2.io.FixedLenFeature([max_seq_length], tf2.int64),
        "segment_ids": tf2.io.FixedLenFeature([max_seq_length], tf2.int64),
        "label_ids": tf2.io.FixedLenFeature([1], tf2.int64),
        "is_real_example": tf2.io.FixedLenFeature([1], tf2.int64),
    }


#: Label-column names a header line has in its last field (compared lower-cased).
HEADER_LABEL_NAMES = (
    "label",
    "labels",
    "label_id",
    "class",
    "category",
    "target",
    "y",
    "gold_label",
    "sentiment",
)
HEADER_CHOICES = ("auto", "true", "false")


def _is_header(lines, header):
    """Whether the first (line number, line) of a file is a header, by --tsv_header."""
    header = str(header).lower()
    if header not in HEADER_CHOICES:
        raise ValueError(f"--tsv_header={header!r}; expected one of: {', '.join(HEADER_CHOICES)}")
    if header != "auto" or not lines:
        return header == "true" and bool(lines)
    label = lines[0][1].split("\t")[-1].strip()
    others = {line.split("\t")[-1].strip() for _, line in lines[1:]}
    return label.lower() in HEADER_LABEL_NAMES and label not in others


def read_tsv(path, header="auto"):
    """Reads one split: [(text_a, text_b or None, label string, line number)].

    Args:
      path: the TSV file.
      header: 'auto', 'true' or 'false': whether the first line names the columns (see
        the module docstring).

    Raises:
      ValueError: a line without 2 or 3 tab-separated fields, or with an empty text or
        label (names the file and line).
    """
    examples = []
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not text
        lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(f, start=1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if _is_header(lines, header):
        lines = lines[1:]
    for line_number, line in lines:
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise ValueError(
                f"{path}:{line_number}: expected 'text<TAB>label' or "
                f"'text<TAB>text_b<TAB>label', got {len(fields)} tab-separated field(s): "
                f"{line[:80]!r}"
            )
        label = fields[-1].strip()
        texts = [t.strip() for t in fields[:-1]]
        if not label:
            raise ValueError(f"{path}:{line_number}: empty label")
        if not all(texts):
            raise ValueError(f"{path}:{line_number}: empty text field")
        examples.append((texts[0], texts[1] if len(texts) == 2 else None, label, line_number))
    return examples


def sorted_labels(labels):
    """Label strings in id order: numeric order when all are integers, else text order."""
    labels = set(labels)
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _truncate_pair(tokens_a, tokens_b, max_length):
    """Pops the last token of the longer side until both fit (google's run_classifier)."""
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def encode_example(options, item):
    """(text_a, text_b or None, label id) -> a classifier tf.train.Example.

    The encode_fn of sharded_conversion (bound to options with functools.partial).
    """
    text_a, text_b, label_id = item
    tokenizer, max_seq_length = options
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b is not None else None
    if tokens_b is not None:
        _truncate_pair(tokens_a, tokens_b, max_seq_length - 3)  # [CLS] A [SEP] B [SEP]
    else:
        tokens_a = tokens_a[: max_seq_length - 2]  # [CLS] A [SEP]
    tokens = [bert_tokenization.CLS_TOKEN, *tokens_a, bert_tokenization.SEP_TOKEN]
    segment_ids = [0] * len(tokens)
    if tokens_b is not None:
        tokens += [*tokens_b, bert_tokenization.SEP_TOKEN]
        segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    pad = [0] * (max_seq_length - len(input_ids))

    def ints(values):
        return tf2.train.Feature(int64_list=tf2.train.Int64List(value=values))

    features = {
        "input_ids": ints(input_ids + pad),
        "input_mask": ints([1] * len(input_ids) + pad),
        "segment_ids": ints(segment_ids + pad),
        "label_ids": ints([label_id]),
        "is_real_example": ints([1]),
    }
    return tf2.train.Example(features=tf2.train.Features(feature=features))


def list_split_files(source):
    """{split: path} of the *.tsv files in source.

    Raises:
      FileNotFoundError: source is not a folder or has no train.tsv.
    """
    if not source or not os.path.isdir(source):
        raise FileNotFoundError(
            f"text_classification needs --source, a folder of train.tsv (and dev.tsv, "
            f"test.tsv ...); got {source!r}"
        )
    files = {
        name[: -len(".tsv")]: os.path.join(source, name)
        for name in sorted(os.listdir(source))
        if name.endswith(".tsv") and not name.startswith(".")
    }
    if "train" not in files:
        raise FileNotFoundError(
            f"{source} has no train.tsv (found {sorted(files) or 'no .tsv file'}); the labels "
            "come from train.tsv"
        )
    return files


def convert(
    dataset_dir,
    source=None,
    vocab_file=None,
    do_lower_case=True,
    max_seq_length=DEFAULT_MAX_SEQ_LENGTH,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=2,
    overwrite=False,
    tsv_header="auto",
    **_,
):
    """Converts the TSV splits of `source` into dataset_dir as 'text_classification' records.

    Also writes text_classification.json: max_seq_length, vocab_file, do_lower_case,
    vocab_size and num_labels, what a classifier of these records needs.

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.

    Raises:
      FileNotFoundError: no source folder, train.tsv or vocab_file.
      ValueError: a bad line or label (names file and line), a bad vocabulary, an empty
        train.tsv, or max_seq_length < 3.
    """
    if not vocab_file:
        raise FileNotFoundError("text_classification needs --vocab_file, a google vocab.txt")
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be >= 3 ([CLS] A [SEP]), got {max_seq_length}")
    tokenizer = bert_tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    files = list_split_files(source)
    examples = {split: read_tsv(path, tsv_header) for split, path in files.items()}
    if not examples["train"]:
        raise ValueError(f"{files['train']} holds no example (expected text<TAB>label lines)")
    names = sorted_labels(example[2] for example in examples["train"])
    label_ids = {name: i for i, name in enumerate(names)}
    split_items = {}
    for split, split_examples in examples.items():
        items = []
        for text_a, text_b, label, line_number in split_examples:
            if label not in label_ids:
                raise ValueError(
                    f"{files[split]}:{line_number}: label {label!r} does not appear in "
                    f"{files['train']}; its labels: {names}"
                )
            items.append((text_a, text_b, label_ids[label]))
        split_items[split] = items
    os.makedirs(dataset_dir, exist_ok=True)
    metadata = {
        "max_seq_length": max_seq_length,
        "vocab_file": os.path.abspath(vocab_file),
        "do_lower_case": do_lower_case,
        "vocab_size": tokenizer.vocab_size,
        "num_labels": len(names),
        "source": os.path.abspath(source),
    }
    sharded_conversion.atomic_write_json(os.path.join(dataset_dir, METADATA_FILENAME), metadata)
    fingerprint = sharded_conversion.fingerprint_of(
        (
            split_items,
            sharded_conversion.fingerprint_of(sorted(tokenizer.vocab.items())),
            do_lower_case,
            max_seq_length,
        )
    )
    module = importlib.import_module("datasets.download_and_convert_text_classification")
    return sharded_conversion.convert_splits(
        dataset_dir,
        NAME,
        split_items,
        functools.partial(module.encode_example, ClassifierOptions(tokenizer, max_seq_length)),
        num_shards,
        dict(enumerate(names)),
        fingerprint=fingerprint,
        num_workers=num_workers,
        strict=True,
        overwrite=overwrite,
    )
