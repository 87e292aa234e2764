"""Converts the CIFAR-10 / CIFAR-100 python-pickle archives (already on disk) to tfrecords.

Reads `cifar-10-python.tar.gz` or `cifar-100-python.tar.gz` as published (pickled dicts
whose 'data' is [N, 3072] uint8 in channel-major order) without unpacking it, and writes
PNG-encoded 32x32x3 records named cifar10_* / cifar100_* (CIFAR-100 with its 100 fine
labels), labels.txt with the archive's class names, and split_sizes.json.

The pickles are read with an unpickler that accepts only the handful of numpy and builtin
names such a file needs, so a tampered archive cannot run code.
"""

import hashlib
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from datasets import example_encoders, sharded_conversion

ARCHIVES = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "splits": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "meta": "batches.meta",
        "names_key": "label_names",
        "labels_key": "labels",
        "num_classes": 10,
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "splits": {"train": ["train"], "test": ["test"]},
        "meta": "meta",
        "names_key": "fine_label_names",
        "labels_key": "fine_labels",
        "num_classes": 100,
    },
}
IMAGE_SIZE = 32
DEFAULT_NUM_SHARDS = 2

# What the published pickles (numpy arrays pickled by Python 2) and numpy 1.x / 2.x pickles
# of the same data may reference. Nothing else can be loaded.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")
        return super().find_class(module, name)


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _load_member(archive, tar, folder, member_name):
    """Unpickles one member of the archive into a dict with str keys."""
    path = f"{folder}/{member_name}"
    try:
        member = tar.getmember(path)
    except KeyError:
        raise ValueError(
            f"{archive} has no member {path!r}: is it the right CIFAR archive?"
        ) from None
    data = tar.extractfile(member).read()
    try:
        loaded = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{archive}: member {path!r} is not a CIFAR pickle ({e})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{archive}: member {path!r} holds {type(loaded).__name__}, not a dict")
    return {_text(k): v for k, v in loaded.items()}


def load_archive(archive, name):
    """Reads a CIFAR archive.

    Args:
      archive: path of the .tar.gz file.
      name: 'cifar10' or 'cifar100'.

    Returns:
      (labels_to_names, {split: (images uint8 [N, 32, 32, 3], labels int64 [N])}).

    Raises:
      FileNotFoundError: the archive does not exist.
      ValueError: the archive is truncated or corrupt, lacks a member, or holds bad data.
    """
    layout = ARCHIVES[name]
    if not os.path.exists(archive):
        raise FileNotFoundError(f"{name} archive {archive} does not exist")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            meta = _load_member(archive, tar, layout["folder"], layout["meta"])
            if layout["names_key"] not in meta:
                raise ValueError(f"{archive}: {layout['meta']} has no {layout['names_key']!r}")
            names = [_text(n) for n in meta[layout["names_key"]]]
            splits = {}
            for split, members in layout["splits"].items():
                images, labels = [], []
                for member_name in members:
                    batch = _load_member(archive, tar, layout["folder"], member_name)
                    if "data" not in batch or layout["labels_key"] not in batch:
                        raise ValueError(
                            f"{archive}: {member_name} lacks 'data' or {layout['labels_key']!r}"
                        )
                    data = np.asarray(batch["data"], dtype=np.uint8)
                    if data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE:
                        raise ValueError(
                            f"{archive}: {member_name} data has shape {data.shape}, "
                            f"expected [N, {3 * IMAGE_SIZE * IMAGE_SIZE}]"
                        )
                    member_labels = np.asarray(batch[layout["labels_key"]], dtype=np.int64)
                    if len(member_labels) != len(data):
                        raise ValueError(
                            f"{archive}: {member_name} has {len(data)} images and "
                            f"{len(member_labels)} labels"
                        )
                    # Rows are channel-major (1024 red, 1024 green, 1024 blue): to HWC.
                    images.append(data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1))
                    labels.append(member_labels)
                splits[split] = (np.concatenate(images), np.concatenate(labels))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(
            f"{archive} is not a complete {name} archive ({type(e).__name__}: {e})"
        ) from None

    if len(names) != layout["num_classes"]:
        raise ValueError(f"{archive} names {len(names)} classes, expected {layout['num_classes']}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{archive} has duplicate class names: {duplicates}")
    for split, (_, labels) in splits.items():
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(
                f"{archive}: {split} labels run {labels.min()}..{labels.max()}, "
                f"expected 0..{len(names) - 1}"
            )
    return dict(enumerate(names)), splits


def convert(
    dataset_dir,
    source=None,
    name="cifar10",
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=2,
    overwrite=False,
    **_,
):
    """Converts the archive `source` (default dataset_dir/<published name>) into dataset_dir.

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.
    """
    if name not in ARCHIVES:
        raise ValueError(f"Unknown CIFAR dataset {name!r}; valid names: {sorted(ARCHIVES)}")
    archive = source or os.path.join(dataset_dir, ARCHIVES[name]["archive"])
    labels_to_names, splits = load_archive(archive, name)
    digest = hashlib.sha256()
    split_items = {}
    for split, (images, labels) in splits.items():
        digest.update(split.encode() + images.tobytes() + labels.tobytes())
        split_items[split] = [(images[i], int(labels[i])) for i in range(len(images))]
    return sharded_conversion.convert_splits(
        dataset_dir,
        name,
        split_items,
        example_encoders.encode_pixels,
        num_shards,
        labels_to_names,
        fingerprint=digest.hexdigest(),
        num_workers=num_workers,
        overwrite=overwrite,
    )
