"""Converts a local copy of ImageNet ILSVRC-2012 (already unpacked on disk) to tfrecords.

Expects in `source`:

    train/<wnid>/*.JPEG          one folder per synset (1000 for the full set)
    validation/*.JPEG            the validation images, flat (or in <wnid>/ folders)
    validation_labels.txt        (or imagenet_2012_validation_synset_labels.txt) for a flat
                                 validation folder: either one wnid per line, for the
                                 validation files in sorted name order (the published
                                 ground-truth layout), or "<file name> <wnid>" lines
    imagenet_metadata.txt        optional "<wnid>\\t<human-readable name>" lines
    imagenet_2012_bounding_boxes.csv  optional "<file name>,xmin,ymin,xmax,ymax" lines,
                                 normalized coordinates, any number per image

Labels follow TF-Slim: synsets in sorted wnid order get labels 1..1000 and 0 is the
background class, so labels.txt has 1001 lines. Each record also carries the class name
('image/class/text') and its boxes. The JPEG bytes are stored unchanged (CMYK JPEGs and
other formats are re-encoded as PNG). Train images are shuffled with a fixed seed.
"""

import collections
import os

from datasets import (
    download_and_convert_image_folder,
    example_encoders,
    imagenet,
    sharded_conversion,
)

TRAIN_FOLDER = "train"
VALIDATION_FOLDER = "validation"
VALIDATION_LABEL_FILENAMES = ("validation_labels.txt", "imagenet_2012_validation_synset_labels.txt")
METADATA_FILENAME = "imagenet_metadata.txt"
BOUNDING_BOXES_FILENAME = "imagenet_2012_bounding_boxes.csv"
BACKGROUND_NAME = "background"
DEFAULT_NUM_SHARDS = {"train": 1024, "validation": 128}  # as TF-Slim
DEFAULT_SEED = 0


def read_metadata(path):
    """{wnid: human-readable name} from imagenet_metadata.txt ({} if the file is absent)."""
    names = {}
    if not os.path.exists(path):
        return names
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            wnid, sep, name = line.rstrip("\n").partition("\t")
            if not sep:
                raise ValueError(f"{path}:{line_number}: expected '<wnid>\\t<name>', got {line!r}")
            names[wnid.strip()] = name.strip()
    return names


def read_bounding_boxes(path):
    """{file name: [(xmin, ymin, xmax, ymax)]} from the boxes CSV ({} if it is absent)."""
    boxes = collections.defaultdict(list)
    if not os.path.exists(path):
        return boxes
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            try:
                coords = tuple(float(p) for p in parts[1:])
            except ValueError:
                coords = ()
            if len(coords) != 4 or not all(0.0 <= c <= 1.0 for c in coords):
                raise ValueError(
                    f"{path}:{line_number}: expected '<file>,xmin,ymin,xmax,ymax' with "
                    f"coordinates in [0, 1], got {line.strip()!r}"
                )
            boxes[parts[0]].append(coords)
    return boxes


def _find_validation_labels(source, validation_labels):
    if validation_labels:
        if not os.path.exists(validation_labels):
            raise FileNotFoundError(f"validation labels file {validation_labels} does not exist")
        return validation_labels
    for folder in (source, os.path.join(source, VALIDATION_FOLDER)):
        for filename in VALIDATION_LABEL_FILENAMES:
            path = os.path.join(folder, filename)
            if os.path.exists(path):
                return path
    raise FileNotFoundError(
        f"no validation labels file ({' or '.join(VALIDATION_LABEL_FILENAMES)}) in {source}"
    )


def read_validation_labels(labels_path, validation_dir):
    """[(path, wnid)] of the flat validation folder, from its labels file.

    Raises:
      ValueError: the file's lines do not match the folder's files one to one.
    """
    files = sorted(
        f
        for f in os.listdir(validation_dir)
        if not f.startswith(".")
        and f not in VALIDATION_LABEL_FILENAMES
        and os.path.isfile(os.path.join(validation_dir, f))
    )
    if not files:
        raise ValueError(f"validation folder {validation_dir} is empty")
    with open(labels_path, encoding="utf-8") as f:
        lines = [line.split() for line in f if line.strip()]
    if all(len(parts) == 1 for parts in lines):  # one wnid per sorted file
        if len(lines) != len(files):
            raise ValueError(
                f"{labels_path} has {len(lines)} labels but {validation_dir} has {len(files)} "
                "files; one wnid per line is expected for the files in sorted name order"
            )
        return [(os.path.join(validation_dir, f), p[0]) for f, p in zip(files, lines, strict=True)]
    if not all(len(parts) == 2 for parts in lines):
        raise ValueError(
            f"{labels_path}: expected lines of '<wnid>' or of '<file name> <wnid>', not a mix"
        )
    wnid_of_file = dict(lines)
    missing = [f for f in files if f not in wnid_of_file]
    if missing:
        raise ValueError(f"{labels_path} has no label for {len(missing)} files, e.g. {missing[:3]}")
    return [(os.path.join(validation_dir, f), wnid_of_file[f]) for f in files]


def convert(
    dataset_dir,
    source=None,
    num_shards=None,
    num_workers=2,
    seed=DEFAULT_SEED,
    validation_labels=None,
    strict=False,
    overwrite=False,
    **_,
):
    """Converts the ImageNet folders in `source` (default dataset_dir) into dataset_dir.

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.
    """
    source = source or dataset_dir
    train_dir = os.path.join(source, TRAIN_FOLDER)
    validation_dir = os.path.join(source, VALIDATION_FOLDER)
    for folder in (train_dir, validation_dir):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"ImageNet folder {folder} does not exist")

    wnids, train_files = download_and_convert_image_folder.scan_class_folders(
        train_dir, label_offset=imagenet.LABELS_OFFSET
    )
    if len(wnids) > imagenet.NUM_CLASSES - imagenet.LABELS_OFFSET:
        raise ValueError(
            f"{train_dir} has {len(wnids)} class folders, more than ImageNet's "
            f"{imagenet.NUM_CLASSES - imagenet.LABELS_OFFSET}"
        )
    label_of_wnid = {wnid: label for label, wnid in enumerate(wnids, imagenet.LABELS_OFFSET)}

    has_class_folders = any(
        entry.is_dir() and not entry.name.startswith(".") for entry in os.scandir(validation_dir)
    )
    if has_class_folders:
        val_wnids, val_files = download_and_convert_image_folder.scan_class_folders(validation_dir)
        validation = [(path, val_wnids[label]) for path, label in val_files]
    else:
        labels_path = _find_validation_labels(source, validation_labels)
        validation = read_validation_labels(labels_path, validation_dir)
    unknown = sorted({wnid for _, wnid in validation} - set(label_of_wnid))
    if unknown:
        raise ValueError(
            f"validation labels name synsets with no train folder in {train_dir}: {unknown[:5]}"
        )

    human_names = read_metadata(os.path.join(source, METADATA_FILENAME))
    boxes = read_bounding_boxes(os.path.join(source, BOUNDING_BOXES_FILENAME))
    labels_to_names = {0: BACKGROUND_NAME}
    for wnid, label in label_of_wnid.items():
        labels_to_names[label] = human_names.get(wnid, wnid)

    def item(path, label):
        boxes_of_file = boxes.get(os.path.basename(path)) or None
        return (path, label, labels_to_names[label], boxes_of_file)

    train_items = download_and_convert_image_folder.shuffled(
        [item(path, label) for path, label in train_files], seed
    )
    validation_items = [item(path, label_of_wnid[wnid]) for path, wnid in validation]
    split_items = {"train": train_items, "validation": validation_items}
    fingerprint = sharded_conversion.fingerprint_of(
        [
            download_and_convert_image_folder.file_fingerprint(source, items)
            for items in split_items.values()
        ]
    )
    return sharded_conversion.convert_splits(
        dataset_dir,
        "imagenet",
        split_items,
        example_encoders.encode_image_file,
        num_shards or DEFAULT_NUM_SHARDS,
        labels_to_names,
        fingerprint=fingerprint,
        num_workers=num_workers,
        strict=strict,
        overwrite=overwrite,
    )
