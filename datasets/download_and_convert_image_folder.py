"""Converts a folder of class sub-folders of JPEG / PNG images (already on disk) to tfrecords.

    source/
      cat/  a.jpg b.png ...
      dog/  c.jpeg ...

Each sub-folder is a class (labels 0..K-1 in sorted folder-name order, written to
labels.txt); every non-hidden file below it, at any depth, is an image of that class.
Files that are not readable images are skipped, counted and logged (or stop the run in
strict mode). The images are shuffled with a fixed seed and split into 'validation' (a
fraction of them) and 'train'. Also holds the folder scanning the flowers and ImageNet
converters share.
"""

import os

import numpy as np

from datasets import example_encoders, sharded_conversion

DEFAULT_NUM_SHARDS = 4
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SEED = 0


def _is_hidden(name):
    return name.startswith(".")


def list_class_folders(root):
    """Returns sorted [(class name, folder path)] of the sub-folders of root.

    Raises:
      FileNotFoundError: root does not exist.
      ValueError: root has no class folders, or two class names collide (they differ only
        in case or surrounding spaces) or a name contains a line break.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    classes = sorted(
        entry.name for entry in os.scandir(root) if entry.is_dir() and not _is_hidden(entry.name)
    )
    if not classes:
        raise ValueError(f"{root} has no class sub-folders (expected one folder per class)")
    seen = {}
    for name in classes:
        if "\n" in name or "\r" in name:
            raise ValueError(f"class folder name {name!r} in {root} contains a line break")
        key = name.strip().casefold()
        if key in seen:
            raise ValueError(
                f"duplicate class names in {root}: {seen[key]!r} and {name!r} name the same class"
            )
        seen[key] = name
    return [(name, os.path.join(root, name)) for name in classes]


def list_files(folder):
    """Sorted paths of every non-hidden file below folder.

    Raises:
      ValueError: the folder holds no file (an empty class folder).
    """
    paths = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not _is_hidden(d))
        paths.extend(os.path.join(directory, f) for f in files if not _is_hidden(f))
    if not paths:
        raise ValueError(f"class folder {folder} is empty: remove it or add its images")
    return sorted(paths)


def scan_class_folders(root, label_offset=0):
    """Lists (path, label) of every file in the class folders of root.

    Returns:
      (class names in label order, [(path, label)] sorted by path).
    """
    classes = list_class_folders(root)
    files = []
    for label, (_, folder) in enumerate(classes, start=label_offset):
        files.extend((path, label) for path in list_files(folder))
    return [name for name, _ in classes], sorted(files)


def _size_or_none(path):
    try:
        return os.path.getsize(path)
    except OSError:  # unreadable: the encoder will skip (or, in strict mode, report) it
        return None


def file_fingerprint(root, items):
    """A stable description of image-file items: paths relative to root, labels, sizes."""
    return sharded_conversion.fingerprint_of(
        [(os.path.relpath(item[0], root), item[1:], _size_or_none(item[0])) for item in items]
    )


def shuffled(items, seed):
    """items in a fixed pseudo-random order for the seed."""
    order = np.random.RandomState(seed).permutation(len(items))
    return [items[i] for i in order]


def convert(
    dataset_dir,
    source=None,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=2,
    seed=DEFAULT_SEED,
    validation_fraction=DEFAULT_VALIDATION_FRACTION,
    strict=False,
    overwrite=False,
    **_,
):
    """Converts the class folders of `source` into dataset_dir as 'image_folder' records.

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.
    """
    if not source:
        raise ValueError("image_folder needs --source, the folder of class sub-folders")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    class_names, files = scan_class_folders(source)
    items = shuffled([(path, label, None, None) for path, label in files], seed)
    num_validation = int(round(len(items) * validation_fraction))
    split_items = {"train": items[num_validation:], "validation": items[:num_validation]}
    labels_to_names = dict(enumerate(class_names))
    fingerprint = sharded_conversion.fingerprint_of(
        (file_fingerprint(source, items), seed, validation_fraction)
    )
    return sharded_conversion.convert_splits(
        dataset_dir,
        "image_folder",
        split_items,
        example_encoders.encode_image_file,
        num_shards,
        labels_to_names,
        fingerprint=fingerprint,
        num_workers=num_workers,
        strict=strict,
        overwrite=overwrite,
    )
