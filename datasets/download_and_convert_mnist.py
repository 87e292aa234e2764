"""Converts MNIST's four idx `.gz` files (already on disk: nothing is downloaded) to tfrecords.

Expects, in `source` (default: the dataset_dir itself), the files as published:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

and writes PNG-encoded 28x28x1 records named mnist_{train,test}-*.tfrecord, labels.txt and
split_sizes.json (see sharded_conversion).
"""

import gzip
import hashlib
import os
import zlib

import numpy as np

from datasets import example_encoders, mnist, sharded_conversion

IDX_FILENAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
DEFAULT_NUM_SHARDS = 2


def read_idx_gz(path, expected_magic):
    """Reads a gzip-compressed idx file of unsigned bytes into a numpy array.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not complete gzip, or not an idx file of the expected kind.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"MNIST file {path} does not exist")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is not a complete gzip file ({type(e).__name__}: {e})") from None
    if len(data) < 4:
        raise ValueError(f"{path} is too short for an idx header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path} has idx magic number {magic}, expected {expected_magic} "
            f"({'images' if expected_magic == IDX_IMAGES_MAGIC else 'labels'})"
        )
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{path} is truncated inside its idx header")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(shape))
    payload = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    if payload.size != expected:
        raise ValueError(
            f"{path} holds {payload.size} bytes of data, expected {expected} for shape {shape}: "
            "the file is truncated or corrupt"
        )
    return payload.reshape(shape)


def load_split(source, split):
    """Returns (images uint8 [N, 28, 28], labels uint8 [N]) of one split."""
    images_name, labels_name = IDX_FILENAMES[split]
    images = read_idx_gz(os.path.join(source, images_name), IDX_IMAGES_MAGIC)
    labels = read_idx_gz(os.path.join(source, labels_name), IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_name} holds {len(images)} images but {labels_name} holds {len(labels)} labels"
        )
    if labels.size and labels.max() >= mnist.NUM_CLASSES:
        raise ValueError(f"{labels_name} holds label {labels.max()}, expected 0..9")
    return images, labels


def convert_arrays(
    dataset_dir, split_arrays, num_shards, num_workers, strict=False, overwrite=False
):
    """Writes {split: (images [N, H, W(, C)], labels [N])} as MNIST-named records."""
    digest = hashlib.sha256()
    split_items = {}
    for split, (images, labels) in split_arrays.items():
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.ndim == 3:
            images = images[..., None]
        digest.update(split.encode() + images.tobytes() + np.asarray(labels, np.int64).tobytes())
        split_items[split] = [(images[i], int(labels[i])) for i in range(len(images))]
    return sharded_conversion.convert_splits(
        dataset_dir,
        "mnist",
        split_items,
        example_encoders.encode_pixels,
        num_shards,
        mnist.LABELS_TO_NAMES,
        fingerprint=digest.hexdigest(),
        num_workers=num_workers,
        strict=strict,
        overwrite=overwrite,
    )


def convert(
    dataset_dir, source=None, num_shards=DEFAULT_NUM_SHARDS, num_workers=2, overwrite=False, **_
):
    """Converts the idx files in `source` (default dataset_dir) into dataset_dir.

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.
    """
    source = source or dataset_dir
    split_arrays = {split: load_split(source, split) for split in IDX_FILENAMES}
    return convert_arrays(dataset_dir, split_arrays, num_shards, num_workers, overwrite=overwrite)
