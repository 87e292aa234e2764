"""Converts the TensorFlow flowers photos (already on disk) to tfrecords.

`source` is the `flower_photos` folder (five class folders: daisy, dandelion, roses,
sunflowers, tulips; loose files such as LICENSE.txt beside them are ignored) or the
published `flower_photos.tgz`, which is unpacked into a hidden temporary folder inside
dataset_dir and removed afterwards. By default the converter looks for either in
dataset_dir. As TF-Slim does, the photos are shuffled with a fixed seed and the first
`num_validation` (350) become the 'validation' split, the rest 'train'. The JPEG bytes are
stored unchanged.
"""

import os
import shutil
import tarfile
import tempfile
import zlib

from datasets import (
    download_and_convert_image_folder,
    example_encoders,
    flowers,
    sharded_conversion,
)

FOLDER_NAME = "flower_photos"
ARCHIVE_NAME = "flower_photos.tgz"
DEFAULT_NUM_SHARDS = 5  # as TF-Slim
DEFAULT_NUM_VALIDATION = 350  # as TF-Slim
DEFAULT_SEED = 0


def _find_source(dataset_dir):
    for candidate in (FOLDER_NAME, ARCHIVE_NAME):
        path = os.path.join(dataset_dir, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"found neither {FOLDER_NAME}/ nor {ARCHIVE_NAME} in {dataset_dir}; pass --source"
    )


def _extract(archive, into):
    """Unpacks the archive into `into`; returns the folder holding the class folders."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths, links out, devices
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(
            f"{archive} is not a complete flowers archive ({type(e).__name__}: {e})"
        ) from None
    inner = os.path.join(into, FOLDER_NAME)
    return inner if os.path.isdir(inner) else into


def convert(
    dataset_dir,
    source=None,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=2,
    seed=DEFAULT_SEED,
    num_validation=DEFAULT_NUM_VALIDATION,
    strict=False,
    overwrite=False,
    **_,
):
    """Converts the flowers folder or archive `source` into dataset_dir.

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.
    """
    source = source or _find_source(dataset_dir)
    if not os.path.exists(source):
        raise FileNotFoundError(f"flowers source {source} does not exist")
    extracted = None
    try:
        if os.path.isfile(source):
            os.makedirs(dataset_dir, exist_ok=True)
            extracted = tempfile.mkdtemp(prefix=".extract-flowers-", dir=dataset_dir)
            root = _extract(source, extracted)
        else:
            root = source
        class_names, files = download_and_convert_image_folder.scan_class_folders(root)
        if len(class_names) != flowers.NUM_CLASSES:
            raise ValueError(
                f"{source} has {len(class_names)} class folders {class_names}, expected the "
                f"{flowers.NUM_CLASSES} flower classes; convert other folders as 'image_folder'"
            )
        if len(files) <= num_validation:
            raise ValueError(
                f"{source} has {len(files)} files, not more than num_validation={num_validation}"
            )
        items = download_and_convert_image_folder.shuffled(
            [(path, label, None, None) for path, label in files], seed
        )
        split_items = {"train": items[num_validation:], "validation": items[:num_validation]}
        fingerprint = sharded_conversion.fingerprint_of(
            (download_and_convert_image_folder.file_fingerprint(root, items), num_validation)
        )
        return sharded_conversion.convert_splits(
            dataset_dir,
            "flowers",
            split_items,
            example_encoders.encode_image_file,
            num_shards,
            dict(enumerate(class_names)),
            fingerprint=fingerprint,
            num_workers=num_workers,
            strict=strict,
            overwrite=overwrite,
        )
    finally:
        if extracted:
            shutil.rmtree(extracted, ignore_errors=True)
