"""THE map from dataset name to dataset module, and `get_dataset()` that describes one split.

A dataset module keeps its facts as constants at the top: SPLITS_TO_SIZES, NUM_CLASSES,
IMAGE_SHAPE (a hint), CHANNELS, FILE_PATTERN ('{split}' is filled in) and LABELS_TO_NAMES,
plus `parse_fn(serialized_example) -> (image uint8 [H, W, C], label int64)`. Adding a
dataset is one module in this folder and one line in `DATASETS`.

The converters (`download_and_convert_data.py`) write, beside the tfrecords,
`split_sizes.json` ({"train": N, ...}) and `labels.txt` ("id:name" lines); when present
they override the module's defaults, so a converted subset (e.g. scikit-learn's digits
written as 'mnist') reports its real sizes.

    spec = dataset_factory.get_dataset("cifar10", "train", "/data/cifar10")
    dataset = tf.data.TFRecordDataset(spec.files).map(spec.parse_fn)
"""

import collections
import contextlib
import json
import os
import re

from datasets import cifar10, cifar100, flowers, image_folder, imagenet, mnist, mock
from training import tf_startup

tf2 = tf_startup.import_tensorflow()

DATASETS = {
    "mock": mock,
    "mnist": mnist,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "flowers": flowers,
    "imagenet": imagenet,
    "image_folder": image_folder,
}

# The split evaluated when none is named: the first of these that the dataset has.
HELD_OUT_SPLITS = ("validation", "test")

SPLIT_SIZES_FILENAME = "split_sizes.json"
LABELS_FILENAME = "labels.txt"

# Shard files are named {name}_{split}-{index:05d}-of-{count:05d}.tfrecord.
_SHARD_NAME_RE = re.compile(r"-(\d{5})-of-(\d{5})\.tfrecord$")

DatasetSpec = collections.namedtuple(
    "DatasetSpec",
    [
        "name",
        "split",
        "files",
        "num_samples",
        "num_classes",
        "parse_fn",
        "labels_to_names",
        "synthetic",
    ],
)
DatasetSpec.__doc__ = """One split of one dataset: what to read and how to parse it.

name: dataset name (a key of DATASETS).
split: split name, e.g. 'train'.
files: sorted list of tfrecord paths ([] for the synthetic 'mock' set).
num_samples: number of examples in the split.
num_classes: number of logits a classifier of this dataset needs.
parse_fn: serialized tf.train.Example -> (image uint8 [H, W, C], label int64 scalar);
  None for 'mock' (use mock.synthetic_dataset).
labels_to_names: dict int -> class name ({} if unknown).
synthetic: True only for 'mock'.
"""


def shard_filename(name, split, index, num_shards):
    """The file name of one shard: {name}_{split}-{index:05d}-of-{num_shards:05d}.tfrecord."""
    return f"{name}_{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def read_labels_file(path):
    """Reads a TF-Slim labels file of "id:name" lines into {id: name}.

    Raises:
      ValueError: a line is not "integer:name" or an id repeats (names the file and line).
    """
    labels_to_names = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            label, sep, name = line.partition(":")
            if not sep or not label.strip().lstrip("-").isdigit():
                raise ValueError(f"{path}:{line_number}: expected an 'id:name' line, got {line!r}")
            label = int(label)
            if label in labels_to_names:
                raise ValueError(f"{path}:{line_number}: label id {label} appears twice")
            labels_to_names[label] = name
    return labels_to_names


def write_labels_file(labels_to_names, path):
    """Writes {id: name} as sorted "id:name" lines (TF-Slim's labels.txt)."""
    with open(path, "w", encoding="utf-8") as f:
        for label in sorted(labels_to_names):
            f.write(f"{label}:{labels_to_names[label]}\n")


def read_split_sizes(path):
    """Reads split_sizes.json into {split: int}, checking its shape (names the file)."""
    try:
        with open(path, encoding="utf-8") as f:
            sizes = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(sizes, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in sizes.items()
    ):
        raise ValueError(
            f"{path} must hold an object of split name -> non-negative integer, got {sizes!r}"
        )
    return sizes


def check_shards_complete(files, pattern):
    """Raises ValueError if standard-named shards show that some shards are missing."""
    totals = {}
    indices = set()
    for path in files:
        match = _SHARD_NAME_RE.search(os.path.basename(path))
        if not match:
            return  # not our naming scheme: nothing to check against
        index, total = int(match.group(1)), int(match.group(2))
        totals.setdefault(total, []).append(path)
        indices.add(index)
    if len(totals) > 1:
        raise ValueError(
            f"files matching {pattern} come from conversions with different shard counts "
            f"{sorted(totals)}; remove the stale ones"
        )
    if totals:
        (total,) = totals
        missing = sorted(set(range(total)) - indices)
        if missing:
            raise ValueError(
                f"{len(missing)} of {total} shards matching {pattern} are missing "
                f"(indices {missing[:10]}{'...' if len(missing) > 10 else ''}): the conversion "
                "did not finish; re-run download_and_convert_data.py to complete it"
            )


def _splits_to_sizes(name, module, dataset_dir):
    """{split: size} of a dataset: its split_sizes.json when present, else the module's."""
    split_sizes_path = os.path.join(dataset_dir, SPLIT_SIZES_FILENAME)
    if os.path.exists(split_sizes_path):
        return read_split_sizes(split_sizes_path)
    if module.SPLITS_TO_SIZES:
        return dict(module.SPLITS_TO_SIZES)
    raise FileNotFoundError(
        f"dataset {name!r} has no default split sizes and {split_sizes_path} does not "
        "exist; write it with download_and_convert_data.py"
    )


def _held_out_split(name, splits):
    for split in HELD_OUT_SPLITS:
        if split in splits:
            return split
    raise ValueError(
        f"Dataset {name!r} has no held-out split ({' or '.join(HELD_OUT_SPLITS)}); its splits: "
        f"{sorted(splits)}. Name the split to evaluate with --eval_split_name"
    )


def _glob_files(dataset_dir, pattern):
    """Files of a comma-separated list of globs / names, relative to dataset_dir unless absolute.

    Raises:
      FileNotFoundError: naming the first entry of the list that matches no file.
    """
    files = set()
    for entry in (p.strip() for p in pattern.split(",")):
        if not entry:
            continue
        matched = tf2.io.gfile.glob(os.path.join(dataset_dir, entry))
        if not matched:
            raise FileNotFoundError(f"no file matches {entry!r} in {dataset_dir!r}")
        files.update(matched)
    return sorted(files)


def get_dataset(name, split, dataset_dir=None, file_pattern=None, mock_num_classes=None):
    """Describes one split of one dataset.

    Args:
      name: a key of DATASETS.
      split: a split of that dataset, e.g. 'train', 'test' or 'validation'; None for its
        held-out split: 'validation' when it has one, else 'test' (HELD_OUT_SPLITS).
      dataset_dir: folder holding the tfrecords (ignored for 'mock').
      file_pattern: glob of the tfrecords, relative to dataset_dir unless absolute;
        '{split}' is replaced by the split. A comma-separated list of globs or file names
        (FastNN's --train_files) reads the files of all of them. Defaults to the module's
        FILE_PATTERN.
      mock_num_classes: for 'mock' only, how many classes to synthesize (default
        mock.NUM_CLASSES); ignored for real datasets, whose class count is a fact.

    Returns:
      a DatasetSpec.

    Raises:
      ValueError: unknown dataset or split (or no held-out split when split is None),
        malformed split_sizes.json / labels.txt, or an incomplete set of shards.
      FileNotFoundError: dataset_dir is missing, no file matches the pattern, or
        image_folder lacks its labels.txt / split_sizes.json.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid names: {sorted(DATASETS)}")
    module = DATASETS[name]

    if module is mock:
        if split is None:
            split = _held_out_split(name, mock.SPLITS_TO_SIZES)
        if split not in mock.SPLITS_TO_SIZES:
            raise ValueError(
                f"Unknown split {split!r} for dataset 'mock'; valid splits: "
                f"{sorted(mock.SPLITS_TO_SIZES)}"
            )
        return DatasetSpec(
            name=name,
            split=split,
            files=[],
            num_samples=mock.SPLITS_TO_SIZES[split],
            num_classes=mock_num_classes or mock.NUM_CLASSES,
            parse_fn=None,
            labels_to_names={},
            synthetic=True,
        )

    if not dataset_dir:
        raise FileNotFoundError(f"dataset {name!r} needs --dataset_dir (got {dataset_dir!r})")
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"dataset_dir {dataset_dir!r} of dataset {name!r} does not exist")

    splits_to_sizes = _splits_to_sizes(name, module, dataset_dir)
    if split is None:
        split = _held_out_split(name, splits_to_sizes)
    if split not in splits_to_sizes:
        raise ValueError(
            f"Unknown split {split!r} for dataset {name!r}; valid splits: {sorted(splits_to_sizes)}"
        )

    labels_path = os.path.join(dataset_dir, LABELS_FILENAME)
    if os.path.exists(labels_path):
        labels_to_names = read_labels_file(labels_path)
    else:
        labels_to_names = dict(module.LABELS_TO_NAMES)
    num_classes = module.NUM_CLASSES
    if num_classes is None:
        if not os.path.exists(labels_path):
            raise FileNotFoundError(
                f"dataset {name!r} takes its number of classes from {labels_path}, which "
                "does not exist; write it with download_and_convert_data.py"
            )
        num_classes = len(labels_to_names)

    pattern = (file_pattern or module.FILE_PATTERN).replace("{split}", split)
    full_pattern = os.path.join(dataset_dir, pattern)
    if "," in pattern:
        files = _glob_files(dataset_dir, pattern)
    else:
        files = sorted(tf2.io.gfile.glob(full_pattern))
    if not files:
        raise FileNotFoundError(
            f"no file matches the pattern {pattern!r} in {dataset_dir!r} "
            f"(dataset {name!r}, split {split!r})"
        )
    if "," not in pattern and any(c in pattern for c in "*?["):
        # One glob stands for the whole split; a list of names is the user's own choice.
        check_shards_complete(files, full_pattern)

    return DatasetSpec(
        name=name,
        split=split,
        files=files,
        num_samples=splits_to_sizes[split],
        num_classes=num_classes,
        parse_fn=module.parse_fn,
        labels_to_names=labels_to_names,
        synthetic=False,
    )


@contextlib.contextmanager
def input_errors_named(spec):
    """Turns an unreadable-record error while reading `spec` into one naming the bad file(s).

    Training wraps its loop in it with the train split's spec; evaluation (the eval script
    and the eval during training) with the eval split's, so the files searched are the
    ones that were being read.
    """
    try:
        yield
    except tf2.errors.DataLossError as e:
        bad = find_corrupt_tfrecords(spec.files)
        names = "; ".join(f"{path}: {msg}" for path, msg in bad) or "(no single file fails alone)"
        raise RuntimeError(
            f"Corrupt tfrecord data in dataset {spec.name!r}, split {spec.split!r}: {names}"
        ) from e
    except tf2.errors.InvalidArgumentError as e:
        # The message, without the Python traceback of where the failing op was defined
        # (whose file names could contain "image" themselves).
        text = "\n".join(
            line for line in str(e).splitlines() if not line.startswith("    File ")
        ).lower()
        if "decode" in text or "image" in text:
            raise RuntimeError(
                f"An image in dataset {spec.name!r}, split {spec.split!r} (files "
                f"{', '.join(spec.files[:5])}{' ...' if len(spec.files) > 5 else ''}) cannot "
                f"be decoded: {e.message}"
            ) from e
        raise


def find_corrupt_tfrecords(files):
    """Reads every record of every file and reports the files that fail.

    The training loop calls it after a DataLossError to name the bad file.

    Args:
      files: iterable of tfrecord paths.

    Returns:
      list of (path, error message), one per unreadable file, in the order given.
    """
    corrupt = []
    for path in files:
        try:
            for _ in tf2.compat.v1.io.tf_record_iterator(path):
                pass
        except (tf2.errors.OpError, OSError) as e:
            message = getattr(e, "message", None) or str(e)
            corrupt.append((path, message))
    return corrupt
