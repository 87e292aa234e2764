"""Writers of raw dataset files in their published formats, shared by the tests of datasets/.

Each fixture returns a function that writes tiny input the way the real download looks
(gzip idx files, CIFAR pickles in a tar.gz, class folders of JPEG / PNG files, the flowers
.tgz, the ImageNet train + validation layout) and returns what it wrote, so a test can
convert it and compare. (pytest runs with --import-mode=importlib, where test files cannot
import each other; fixtures are how tests/datasets/ shares code.)
"""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

from datasets import download_and_convert_cifar, download_and_convert_mnist

# The magic numbers that open an idx file: 0x00000803 (uint8, 3 dims), 0x00000801 (1 dim).
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


def random_pixels(rng, height, width, channels):
    return rng.randint(0, 256, size=(height, width, channels), dtype=np.uint8)


def smooth_pixels(seed, height, width):
    """A smooth color image (JPEG keeps it within a few levels), distinct per seed."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.random.RandomState(seed).randint(0, 150, size=3)
    return np.stack([base[0] + ys * 3, base[1] + xs * 3, base[2] + (ys + xs)], axis=-1).astype(
        np.uint8
    )


def save_image(path, pixels, image_format):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, format=image_format, quality=95)


# ---------------------------------------------------------------------------------------
# MNIST (idx .gz files).


def _write_idx_gz(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _write_mnist_source(directory, sizes=(("train", 5), ("test", 3)), seed=0):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.RandomState(seed)
    arrays = {}
    for split, count in sizes:
        images = rng.randint(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.randint(0, 10, size=count).astype(np.uint8)
        images_name, labels_name = download_and_convert_mnist.IDX_FILENAMES[split]
        _write_idx_gz(os.path.join(directory, images_name), images, IDX_IMAGES_MAGIC)
        _write_idx_gz(os.path.join(directory, labels_name), labels, IDX_LABELS_MAGIC)
        arrays[split] = (images, labels)
    return arrays


@pytest.fixture
def write_mnist_source():
    """write_mnist_source(directory, sizes=(("train", 5), ("test", 3)), seed=0).

    Writes the four MNIST idx .gz files of random 28x28 digits into directory; returns
    {split: (images uint8 [N, 28, 28], labels uint8 [N])}.
    """
    return _write_mnist_source


# ---------------------------------------------------------------------------------------
# CIFAR (python pickles in a tar.gz).


def _add_pickle(tar, member, obj):
    data = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(member)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_cifar_archive(path, name, seed=0, images_per_batch=2):
    rng = np.random.RandomState(seed)
    layout = download_and_convert_cifar.ARCHIVES[name]
    names = [f"class_{i}" for i in range(layout["num_classes"])]
    expected = {}
    with tarfile.open(path, "w:gz") as tar:
        meta = {layout["names_key"].encode(): [n.encode() for n in names]}
        if name == "cifar100":
            meta[b"coarse_label_names"] = [b"coarse_0"]
        _add_pickle(tar, f"{layout['folder']}/{layout['meta']}", meta)
        for split, members in layout["splits"].items():
            all_images, all_labels = [], []
            for member in members:
                n = images_per_batch
                images = rng.randint(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
                labels = rng.randint(0, len(names), size=n).tolist()
                batch = {
                    b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),  # channel-major
                    layout["labels_key"].encode(): labels,
                    b"batch_label": member.encode(),
                }
                if name == "cifar100":
                    batch[b"coarse_labels"] = [0] * n
                _add_pickle(tar, f"{layout['folder']}/{member}", batch)
                all_images.append(images)
                all_labels.extend(labels)
            expected[split] = (np.concatenate(all_images), all_labels)
    return names, expected


@pytest.fixture
def add_pickle():
    """add_pickle(tar, member, obj): adds obj, pickled (protocol 2), as member of an open tar."""
    return _add_pickle


@pytest.fixture
def write_cifar_archive():
    """write_cifar_archive(path, name, seed=0, images_per_batch=2).

    Writes a small archive of dataset `name` ('cifar10' or 'cifar100') in the published
    layout (every batch member of the real archive, each with images_per_batch images);
    returns (class names, {split: (images uint8 [N, 32, 32, 3], labels)}).
    """
    return _write_cifar_archive


# ---------------------------------------------------------------------------------------
# Folders of JPEG / PNG files: image_folder, flowers, imagenet.


def _write_class_folders(root, classes, per_class, seed=0):
    rng = np.random.RandomState(seed)
    written = []
    for label, class_name in enumerate(classes):
        for i in range(per_class):
            height, width = 10 + i, 12 + label
            if i % 2 == 0:
                pixels = random_pixels(rng, height, width, 3)
                save_image(os.path.join(root, class_name, f"img_{i}.png"), pixels, "PNG")
            else:
                pixels = smooth_pixels(label * 100 + i, 16, 16)
                save_image(os.path.join(root, class_name, f"img_{i}.jpg"), pixels, "JPEG")
            written.append((pixels, label, i % 2 == 0))
    return written


@pytest.fixture
def write_class_folders():
    """write_class_folders(root, classes, per_class, seed=0).

    One folder per class name under root, each with per_class images alternating PNG
    (random pixels, even indices) and JPEG (smooth 16x16, odd indices). Returns
    [(pixels, label, is_png)] of every image written, labels in the order of `classes`.
    """
    return _write_class_folders


FLOWER_CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def _write_flowers_tgz(dataset_dir, per_class=3):
    staging = os.path.join(dataset_dir, "staging")
    root = os.path.join(staging, "flower_photos")
    written = _write_class_folders(root, FLOWER_CLASSES, per_class=per_class)
    with open(os.path.join(root, "LICENSE.txt"), "w") as f:
        f.write("photos licensed CC-BY\n")
    archive = os.path.join(dataset_dir, "flower_photos.tgz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="flower_photos")
    return archive, root, written


@pytest.fixture
def write_flowers_tgz():
    """write_flowers_tgz(dataset_dir, per_class=3) -> (archive path, unpacked root, written).

    The five flower class folders (as write_class_folders) plus a LICENSE.txt, under
    dataset_dir/staging/flower_photos, packed as dataset_dir/flower_photos.tgz.
    """
    return _write_flowers_tgz


def _write_imagenet_source(source):
    train = _write_class_folders(os.path.join(source, "train"), ["n02", "n01"], per_class=2)
    rng = np.random.RandomState(7)
    validation = []
    for i, wnid in enumerate(["n02", "n01", "n02"]):
        pixels = random_pixels(rng, 9, 11, 3)
        save_image(os.path.join(source, "validation", f"val_{i:03d}.png"), pixels, "PNG")
        validation.append((pixels, {"n01": 1, "n02": 2}[wnid], True))
    with open(os.path.join(source, "validation_labels.txt"), "w") as f:
        f.write("n02\nn01\nn02\n")  # one wnid per validation file, in sorted name order
    with open(os.path.join(source, "imagenet_metadata.txt"), "w") as f:
        f.write("n01\ttench, Tinca tinca\nn02\tgoldfish, Carassius auratus\nn99\tunused\n")
    with open(os.path.join(source, "imagenet_2012_bounding_boxes.csv"), "w") as f:
        f.write("val_001.png,0.1,0.2,0.5,0.6\nval_001.png,0.3,0.3,0.9,1.0\n")
    # Class folders are sorted: n01 -> label 1, n02 -> label 2 (0 is the background).
    train = [(pixels, {0: 2, 1: 1}[label], is_png) for pixels, label, is_png in train]
    return train, validation


@pytest.fixture
def write_imagenet_source():
    """write_imagenet_source(source) -> (train, validation), each [(pixels, label, is_png)].

    The ImageNet layout under source: train/<wnid>/ folders (n01, n02; 2 images each, PNG
    and JPEG), validation/ (3 PNG files), validation_labels.txt, imagenet_metadata.txt and
    imagenet_2012_bounding_boxes.csv. Labels are the converted ones: n01 -> 1, n02 -> 2.
    """
    return _write_imagenet_source


# ---------------------------------------------------------------------------------------
# gettext catalogs (GNU .mo files).

MO_MAGIC = 0x950412DE
MO_HEADER = (
    "Project-Id-Version: tfzoo-test 1.0\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Plural-Forms: nplurals=2; plural=(n != 1);\n"
)


def _write_mo(path, entries, header=MO_HEADER, encoding="utf-8"):
    """Writes a GNU .mo catalog: little-endian magic, revision 0, N, the offsets of the
    msgid and msgstr tables, an empty hash table, then the NUL-terminated strings."""
    messages = [(b"", header.encode(encoding))]
    for msgid, msgstr in entries:
        if isinstance(msgid, tuple):  # plural: "singular\0plural" -> "form0\0form1..."
            key = "\0".join(msgid).encode(encoding)
            value = "\0".join(msgstr).encode(encoding)
        else:
            key, value = msgid.encode(encoding), msgstr.encode(encoding)
        messages.append((key, value))
    messages.sort(key=lambda m: m[0])  # msgids in byte order, as msgfmt writes them
    count = len(messages)
    ids_offset = 28
    strs_offset = ids_offset + 8 * count
    data_offset = strs_offset + 8 * count
    ids_table, strs_table, data = b"", b"", b""
    for key, _ in messages:
        ids_table += struct.pack("<II", len(key), data_offset + len(data))
        data += key + b"\0"
    for _, value in messages:
        strs_table += struct.pack("<II", len(value), data_offset + len(data))
        data += value + b"\0"
    header_words = struct.pack("<7I", MO_MAGIC, 0, count, ids_offset, strs_offset, 0, data_offset)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(header_words + ids_table + strs_table + data)
    return path


@pytest.fixture
def write_mo():
    """write_mo(path, entries, header=MO_HEADER, encoding="utf-8") -> path.

    Writes a gettext .mo catalog in GNU's binary format. entries: [(msgid, msgstr)]; a
    msgid may carry a context ("ctx\\x04msgid"); a plural entry is ((singular, plural),
    [form0, form1, ...]).
    """
    return _write_mo
