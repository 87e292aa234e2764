"""Tests of the converters: raw files in their published formats -> tfrecords -> dataset_factory.

Each test writes its own small input in the real format (gzip idx files, CIFAR pickles in
a tar.gz, folders of JPEG / PNG files, the flowers .tgz; the writers are fixtures in
conftest.py), converts it and reads the records back through
dataset_factory.get_dataset(...).parse_fn.
"""

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from datasets import (
    dataset_factory,
    download_and_convert_cifar,
    download_and_convert_data,
    download_and_convert_flowers,
    download_and_convert_image_folder,
    download_and_convert_imagenet,
    download_and_convert_mnist,
    download_and_convert_sklearn_digits,
    imagenet,
    sharded_conversion,
)
from slim_compat import tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO_ROOT, "datasets", "download_and_convert_data.py")


# ---------------------------------------------------------------------------------------
# Helpers.


def _read_split(dataset_dir, name, split):
    """(spec, images, labels) of one converted split, read through the factory's parse_fn."""
    spec = dataset_factory.get_dataset(name, split, str(dataset_dir))
    with tf.Graph().as_default():
        dataset = tf.data.TFRecordDataset(spec.files).map(spec.parse_fn)
        image, label = tf.data.make_one_shot_iterator(dataset).get_next()
        images, labels = [], []
        with tf.Session() as sess:
            while True:
                try:
                    image_value, label_value = sess.run([image, label])
                except tf.errors.OutOfRangeError:
                    break
                images.append(image_value)
                labels.append(int(label_value))
    return spec, images, labels


def _output_files(directory):
    """{relative path: bytes} of every file below directory."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


def _assert_nothing_written(directory):
    leftovers = [
        name
        for name in (os.listdir(directory) if os.path.isdir(directory) else [])
        if name.endswith((".tfrecord", ".partial", ".json", ".txt")) or name.startswith(".extract")
    ]
    assert leftovers == []


def _match(image, candidates, tolerance):
    """Index of the candidate the decoded image equals (mean abs difference <= tolerance)."""
    errors = [
        np.abs(image.astype(int) - c.astype(int)).mean() if c.shape == image.shape else np.inf
        for c in candidates
    ]
    best = int(np.argmin(errors))
    assert errors[best] <= tolerance, f"no input image matches (closest differs by {errors[best]})"
    return best


# ---------------------------------------------------------------------------------------
# MNIST (idx .gz files).


def test_mnist_idx_files_round_trip(tmp_path, write_mnist_source):
    arrays = write_mnist_source(str(tmp_path / "raw"))
    out = tmp_path / "mnist"
    split_sizes, skipped = download_and_convert_mnist.convert(
        str(out), source=str(tmp_path / "raw"), num_shards=2, num_workers=1
    )
    assert split_sizes == {"train": 5, "test": 3} and skipped == []
    assert json.loads((out / "split_sizes.json").read_text()) == {"test": 3, "train": 5}
    assert sorted(os.listdir(out)) == [
        ".mnist_test.fingerprint",
        ".mnist_train.fingerprint",
        "labels.txt",
        "mnist_test-00000-of-00002.tfrecord",
        "mnist_test-00001-of-00002.tfrecord",
        "mnist_train-00000-of-00002.tfrecord",
        "mnist_train-00001-of-00002.tfrecord",
        "split_sizes.json",
    ]
    for split, (images, labels) in arrays.items():
        spec, got_images, got_labels = _read_split(out, "mnist", split)
        assert spec.num_samples == len(images) and spec.labels_to_names[3] == "three"
        assert got_labels == labels.tolist()  # contiguous shards keep the input order
        np.testing.assert_array_equal(np.stack(got_images), images[..., None])


def test_mnist_truncated_gzip_is_reported_and_nothing_written(tmp_path, write_mnist_source):
    write_mnist_source(str(tmp_path))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is not a complete gzip"):
        download_and_convert_mnist.convert(str(tmp_path), num_workers=1)
    _assert_nothing_written(str(tmp_path))


def test_mnist_short_payload_and_missing_file(tmp_path, write_mnist_source):
    write_mnist_source(str(tmp_path))
    # A complete gzip whose idx header promises more pixels than it holds.
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write((2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (3, 28, 28)))
        f.write(bytes(100))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz holds 100 bytes.*truncated"):
        download_and_convert_mnist.convert(str(tmp_path), num_workers=1)
    os.remove(tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte.gz does not exist"):
        download_and_convert_mnist.convert(str(tmp_path), num_workers=1)
    _assert_nothing_written(str(tmp_path))


# ---------------------------------------------------------------------------------------
# CIFAR (python pickles in a tar.gz).


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_archive_round_trip(tmp_path, name, write_cifar_archive):
    archive = tmp_path / download_and_convert_cifar.ARCHIVES[name]["archive"]
    names, expected = write_cifar_archive(str(archive), name)
    out = tmp_path / name
    split_sizes, _ = download_and_convert_data.convert_dataset(
        name, str(out), num_shards=3, source=str(archive), num_workers=1
    )
    assert split_sizes == {split: len(labels) for split, (_, labels) in expected.items()}
    for split, (images, labels) in expected.items():
        spec, got_images, got_labels = _read_split(out, name, split)
        assert spec.num_classes == len(names)
        assert spec.labels_to_names == dict(enumerate(names))
        assert got_labels == labels
        np.testing.assert_array_equal(np.stack(got_images), images)


def test_cifar_bad_archives(tmp_path, add_pickle, write_cifar_archive):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz does not exist"):
        download_and_convert_cifar.convert(str(tmp_path), num_workers=1)

    write_cifar_archive(str(archive), "cifar10")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match="is not a complete cifar10 archive"):
        download_and_convert_cifar.convert(str(tmp_path), num_workers=1)

    # The right layout, but a pickle that would run a command when loaded.
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with tarfile.open(archive, "w:gz") as tar:
        add_pickle(tar, "cifar-10-batches-py/batches.meta", Exploit())
    with pytest.raises(ValueError, match="refusing to load"):
        download_and_convert_cifar.convert(str(tmp_path), num_workers=1)

    # The CIFAR-100 archive given as CIFAR-10.
    write_cifar_archive(str(archive), "cifar100")
    with pytest.raises(ValueError, match="has no member 'cifar-10-batches-py/batches.meta'"):
        download_and_convert_cifar.convert(str(tmp_path), num_workers=1)
    _assert_nothing_written(str(tmp_path))


def test_cifar_duplicate_class_names(tmp_path, add_pickle):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_pickle(tar, "cifar-10-batches-py/batches.meta", {b"label_names": [b"cat"] * 10})
        for member in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"]:
            batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
            add_pickle(tar, f"cifar-10-batches-py/{member}", batch)
        for member in ["data_batch_5", "test_batch"]:
            batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
            add_pickle(tar, f"cifar-10-batches-py/{member}", batch)
    with pytest.raises(ValueError, match=r"duplicate class names: \['cat'\]"):
        download_and_convert_cifar.convert(str(tmp_path), num_workers=1)


# ---------------------------------------------------------------------------------------
# Folders of JPEG / PNG files: image_folder, flowers, imagenet.


def _check_round_trip(images, labels, written):
    """Every decoded image equals (PNG) or nearly equals (JPEG) one input, with its label."""
    assert len(images) == len(written)
    candidates = [pixels for pixels, _, _ in written]
    matched = set()
    for image, label in zip(images, labels, strict=True):
        index = _match(image, candidates, tolerance=3.0)
        pixels, expected_label, is_png = written[index]
        if is_png:
            np.testing.assert_array_equal(image, pixels)
        assert label == expected_label
        matched.add(index)
    assert len(matched) == len(written)


def test_image_folder_round_trip_and_split(tmp_path, write_class_folders):
    source = tmp_path / "photos"
    written = write_class_folders(str(source), ["bird", "cat", "dog"], per_class=4)
    out = tmp_path / "records"
    split_sizes, skipped = download_and_convert_image_folder.convert(
        str(out), source=str(source), num_shards=2, num_workers=1, validation_fraction=0.25
    )
    assert split_sizes == {"train": 9, "validation": 3} and skipped == []
    assert (out / "labels.txt").read_text() == "0:bird\n1:cat\n2:dog\n"

    train_spec, train_images, train_labels = _read_split(out, "image_folder", "train")
    val_spec, val_images, val_labels = _read_split(out, "image_folder", "validation")
    assert train_spec.num_classes == 3 and train_spec.num_samples == 9 and val_spec.num_samples == 3
    _check_round_trip(train_images + val_images, train_labels + val_labels, written)


def test_image_folder_skips_unreadable_files_or_stops_when_strict(
    tmp_path, caplog, write_class_folders
):
    source = tmp_path / "photos"
    written = write_class_folders(str(source), ["a", "b"], per_class=2)
    (source / "a" / "notes.txt").write_text("not an image")
    png = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8) + 9).save(png, format="PNG")
    (source / "b" / "cut.png").write_bytes(png.getvalue()[:60])  # truncated PNG
    (source / "b" / ".DS_Store").write_bytes(b"\0\1")  # hidden files are not inputs
    os.symlink(tmp_path / "no_such_file.jpg", source / "a" / "gone.jpg")  # cannot be opened
    out = tmp_path / "records"

    with pytest.raises(
        ValueError, match=r"(notes\.txt|cut\.png|gone\.jpg): not a readable image.*strict"
    ):
        download_and_convert_image_folder.convert(
            str(out), source=str(source), num_workers=1, strict=True
        )
    _assert_nothing_written(str(out))  # no shard, no partial shard, no metadata

    with caplog.at_level("WARNING", logger="tfzoo.convert"):
        split_sizes, skipped = download_and_convert_image_folder.convert(
            str(out), source=str(source), num_workers=1, validation_fraction=0.0
        )
    assert split_sizes == {"train": 4}
    assert len(skipped) == 3
    for name in ("notes.txt", "cut.png", "gone.jpg"):
        assert sum(name in message for message in skipped) == 1
        assert name in caplog.text
    assert "skipped 3 unreadable" in caplog.text
    _, images, labels = _read_split(out, "image_folder", "train")
    _check_round_trip(images, labels, written)


def test_image_folder_bad_folders(tmp_path, write_class_folders):
    with pytest.raises(FileNotFoundError, match="no_such_folder does not exist"):
        download_and_convert_image_folder.convert(
            str(tmp_path / "out"), source=str(tmp_path / "no_such_folder")
        )
    source = tmp_path / "photos"
    write_class_folders(str(source), ["cat"], per_class=1)
    os.makedirs(source / "dog")
    with pytest.raises(ValueError, match=r"class folder .*dog is empty"):
        download_and_convert_image_folder.convert(str(tmp_path / "out"), source=str(source))
    write_class_folders(str(source), ["dog", "Cat"], per_class=1)
    with pytest.raises(ValueError, match=r"duplicate class names.*'Cat' and 'cat'"):
        download_and_convert_image_folder.convert(str(tmp_path / "out"), source=str(source))
    empty = tmp_path / "empty"
    os.makedirs(empty)
    with pytest.raises(ValueError, match="has no class sub-folders"):
        download_and_convert_image_folder.convert(str(tmp_path / "out"), source=str(empty))
    assert not os.path.exists(tmp_path / "out")


def test_flowers_tgz_round_trip(tmp_path, write_flowers_tgz):
    archive, root, written = write_flowers_tgz(str(tmp_path))
    out = tmp_path / "flowers"
    os.makedirs(out)
    os.replace(archive, out / "flower_photos.tgz")  # the default source: found in dataset_dir
    split_sizes, _ = download_and_convert_flowers.convert(
        str(out), num_shards=2, num_workers=1, num_validation=4
    )
    assert split_sizes == {"train": 11, "validation": 4}
    assert not [n for n in os.listdir(out) if n.startswith(".extract")]  # temp folder removed
    _, train_images, train_labels = _read_split(out, "flowers", "train")
    spec, val_images, val_labels = _read_split(out, "flowers", "validation")
    assert spec.labels_to_names == {
        0: "daisy",
        1: "dandelion",
        2: "roses",
        3: "sunflowers",
        4: "tulips",
    }
    _check_round_trip(train_images + val_images, train_labels + val_labels, written)

    # The unpacked folder converts to the very same records.
    out_from_folder = tmp_path / "flowers_from_folder"
    download_and_convert_flowers.convert(
        str(out_from_folder), source=root, num_shards=2, num_workers=1, num_validation=4
    )
    assert _output_files(out_from_folder) == {
        k: v for k, v in _output_files(out).items() if k != "flower_photos.tgz"
    }


def test_flowers_truncated_tgz(tmp_path, write_flowers_tgz):
    archive, _, _ = write_flowers_tgz(str(tmp_path))
    with open(archive, "rb") as f:
        data = f.read()
    out = tmp_path / "flowers"
    os.makedirs(out)
    (out / "flower_photos.tgz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="flower_photos.tgz is not a complete flowers archive"):
        download_and_convert_flowers.convert(str(out), num_workers=1, num_validation=4)
    assert os.listdir(out) == ["flower_photos.tgz"]  # no temp folder, no records


def test_imagenet_round_trip_with_text_and_boxes(tmp_path, write_imagenet_source):
    source = tmp_path / "raw"
    train, validation = write_imagenet_source(str(source))
    out = tmp_path / "imagenet"
    split_sizes, _ = download_and_convert_imagenet.convert(
        str(out), source=str(source), num_shards=2, num_workers=1
    )
    assert split_sizes == {"train": 4, "validation": 3}
    assert (out / "labels.txt").read_text() == (
        "0:background\n1:tench, Tinca tinca\n2:goldfish, Carassius auratus\n"
    )
    spec, train_images, train_labels = _read_split(out, "imagenet", "train")
    assert spec.num_classes == 1001
    _check_round_trip(train_images, train_labels, train)
    _, val_images, val_labels = _read_split(out, "imagenet", "validation")
    assert val_labels == [2, 1, 2]  # validation keeps the sorted file order
    _check_round_trip(val_images, val_labels, validation)

    files = dataset_factory.get_dataset("imagenet", "validation", str(out)).files
    with tf.Graph().as_default():
        dataset = tf.data.TFRecordDataset(files).map(imagenet.parse_fn_with_bboxes)
        parsed = tf.data.make_one_shot_iterator(dataset).get_next()
        with tf.Session() as sess:
            records = [sess.run(parsed) for _ in range(3)]
    assert [r[3] for r in records] == [b"goldfish, Carassius auratus", b"tench, Tinca tinca"] + [
        b"goldfish, Carassius auratus"
    ]
    assert records[0][2].shape == (0, 4)
    np.testing.assert_allclose(records[1][2], [[0.2, 0.1, 0.6, 0.5], [0.3, 0.3, 1.0, 0.9]])


def test_imagenet_bad_validation_labels(tmp_path, write_imagenet_source):
    source = tmp_path / "raw"
    write_imagenet_source(str(source))
    (source / "validation_labels.txt").write_text("n02\nn01\n")
    with pytest.raises(ValueError, match="has 2 labels but .*validation has 3 files"):
        download_and_convert_imagenet.convert(str(tmp_path / "out"), source=str(source))
    (source / "validation_labels.txt").write_text("n02\nn01\nn77\n")
    with pytest.raises(ValueError, match=r"no train folder.*\['n77'\]"):
        download_and_convert_imagenet.convert(str(tmp_path / "out"), source=str(source))
    os.remove(source / "validation_labels.txt")
    with pytest.raises(FileNotFoundError, match="no validation labels file"):
        download_and_convert_imagenet.convert(str(tmp_path / "out"), source=str(source))
    assert not os.path.exists(tmp_path / "out")


# ---------------------------------------------------------------------------------------
# scikit-learn's digits as MNIST.


def test_sklearn_digits_as_mnist(tmp_path):
    split_sizes, _ = download_and_convert_sklearn_digits.convert_sklearn_digits(str(tmp_path))
    assert split_sizes == {"train": 1500, "test": 297}
    spec, images, labels = _read_split(tmp_path, "mnist", "test")
    assert spec.num_samples == 297 and spec.num_classes == 10
    expected_images, expected_labels = download_and_convert_sklearn_digits.digits_as_mnist_arrays()[
        "test"
    ]
    np.testing.assert_array_equal(np.stack(images)[..., 0], expected_images)
    assert labels == expected_labels.tolist()
    assert sorted(set(labels)) == list(range(10))
    # Real digits: the 8x8 originals come back when the 28x28 image is shrunk again.
    from sklearn.datasets import load_digits

    digits = load_digits()
    first = np.asarray(Image.fromarray(images[0][4:24, 4:24, 0]).resize((8, 8), Image.BILINEAR))
    originals = np.rint(digits.images * 255.0 / 16.0)
    closest = np.abs(originals - first[None]).mean(axis=(1, 2)).argmin()
    assert digits.target[closest] == labels[0]


# ---------------------------------------------------------------------------------------
# Determinism, resuming, stale output, the command line.


def test_rerun_reuses_complete_shards_and_refuses_stale_ones(tmp_path, write_class_folders):
    source = tmp_path / "photos"
    write_class_folders(str(source), ["a", "b"], per_class=3)
    out = tmp_path / "records"
    download_and_convert_image_folder.convert(str(out), source=str(source), num_workers=1)
    first = _output_files(out)
    shard = out / "image_folder_train-00000-of-00004.tfrecord"
    stat = os.stat(shard)

    download_and_convert_image_folder.convert(str(out), source=str(source), num_workers=1)
    assert os.stat(shard).st_mtime_ns == stat.st_mtime_ns  # not rewritten
    assert _output_files(out) == first

    # Another seed orders the images differently: the old shards are stale.
    with pytest.raises(ValueError, match="written from other input or options.*--overwrite"):
        download_and_convert_image_folder.convert(
            str(out), source=str(source), num_workers=1, seed=1
        )
    download_and_convert_image_folder.convert(
        str(out), source=str(source), num_workers=1, seed=1, overwrite=True
    )
    reseeded = _output_files(out)
    assert reseeded.keys() == first.keys() and reseeded != first

    # A corrupt shard from an earlier run is rewritten, not reused.
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    download_and_convert_image_folder.convert(str(out), source=str(source), num_workers=1, seed=1)
    assert _output_files(out) == reseeded


def test_unknown_converter_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset_name 'svhn'.*sklearn_digits"):
        download_and_convert_data.convert_dataset("svhn", str(tmp_path))


def _run_cli(args, env_extra=None, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.Popen(
        [sys.executable, SCRIPT, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_interrupted_conversion_resumes_to_identical_files(tmp_path, write_class_folders):
    source = tmp_path / "photos"
    write_class_folders(str(source), ["a", "b", "c"], per_class=4)
    reference = tmp_path / "reference"
    download_and_convert_image_folder.convert(
        str(reference), source=str(source), num_shards=4, num_workers=1
    )

    out = tmp_path / "records"
    args = [
        "--dataset_name=image_folder",
        f"--dataset_dir={out}",
        f"--source={source}",
        "--num_shards=4",
        "--num_workers=2",
    ]
    # Workers sleep after their first shard; kill the whole process group then.
    killed = _run_cli(
        args, {sharded_conversion.SLEEP_AFTER_SHARD_ENV: "120"}, start_new_session=True
    )
    deadline = time.time() + 240
    try:
        while not (out.is_dir() and any(n.endswith(".tfrecord") for n in os.listdir(out))):
            assert killed.poll() is None, killed.communicate()
            assert time.time() < deadline, "no shard was written in time"
            time.sleep(0.2)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.communicate()
    interrupted = sorted(os.listdir(out))
    assert "split_sizes.json" not in interrupted and "labels.txt" not in interrupted
    shards = [n for n in interrupted if n.endswith(".tfrecord")]
    assert 1 <= len(shards) < 5  # 4 train shards + 1 validation shard (1 of 12 images) in all

    # One worker now: the bytes do not depend on how many processes wrote them.
    resumed = _run_cli([*args[:-1], "--num_workers=1"])
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "wrote image_folder" in stdout and "5/5 shards" in stderr
    assert _output_files(out) == _output_files(reference)


@pytest.mark.slow
def test_cli_reports_bad_input_without_traceback(tmp_path):
    process = _run_cli(["--dataset_name=mnist", f"--dataset_dir={tmp_path}", "--num_workers=1"])
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "error: MNIST file" in stderr and "does not exist" in stderr
    assert "Traceback" not in stderr
