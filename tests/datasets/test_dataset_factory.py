"""Tests of datasets/dataset_factory.py, the dataset modules and the TF-Slim record parser.

Records are written here with tf.train.Example and the TF-Slim feature keys spelled out,
independently of the project's own example writer, and read back through
get_dataset(...).parse_fn in a tf.data pipeline.
"""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from datasets import dataset_factory, imagenet, mock
from slim_compat import tf

# name -> (channels, image height, image width, a split of it)
REAL_DATASETS = {
    "mnist": (1, 28, 28, "train"),
    "cifar10": (3, 32, 32, "test"),
    "cifar100": (3, 32, 32, "train"),
    "flowers": (3, 20, 30, "validation"),
    "imagenet": (3, 24, 18, "validation"),
    "image_folder": (3, 16, 16, "train"),
}


def _encode(pixels, image_format):
    """PNG / JPEG bytes of a uint8 [H, W, C] array (C 1 or 3), or raw bytes."""
    if image_format == b"raw":
        return pixels.tobytes()
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if image_format == b"png" else "JPEG", quality=95)
    return buffer.getvalue()


def _example(pixels, label, image_format, extra=None):
    def bytes_feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int64_feature(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {
        "image/encoded": bytes_feature(_encode(pixels, image_format)),
        "image/format": bytes_feature(image_format),
        "image/class/label": int64_feature(label),
        "image/height": int64_feature(pixels.shape[0]),
        "image/width": int64_feature(pixels.shape[1]),
    }
    feature.update(extra or {})
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _write_records(path, examples):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def _random_images(count, height, width, channels, seed):
    rng = np.random.RandomState(seed)
    return [
        rng.randint(0, 256, size=(height, width, channels), dtype=np.uint8) for _ in range(count)
    ]


def _read_all(spec):
    """Runs spec.parse_fn over all of spec.files; returns lists of images and labels."""
    dataset = tf.data.TFRecordDataset(spec.files).map(spec.parse_fn)
    image, label = tf.data.make_one_shot_iterator(dataset).get_next()
    images, labels = [], []
    with tf.Session() as sess:
        while True:
            try:
                image_value, label_value = sess.run([image, label])
            except tf.errors.OutOfRangeError:
                return images, labels, image, label
            images.append(image_value)
            labels.append(label_value)


def _write_dataset_dir(directory, name, split, examples, num_shards=1, meta=True):
    """Writes examples into num_shards standard-named files (+ labels.txt, split_sizes.json)."""
    os.makedirs(directory, exist_ok=True)
    for index in range(num_shards):
        path = os.path.join(
            directory, dataset_factory.shard_filename(name, split, index, num_shards)
        )
        _write_records(path, examples[index::num_shards])
    if meta:
        with open(os.path.join(directory, "split_sizes.json"), "w") as f:
            json.dump({split: len(examples), "other": 7}, f)
        with open(os.path.join(directory, "labels.txt"), "w") as f:
            f.write("0:cat\n1:dog\n2:bird\n")


# ---------------------------------------------------------------------------------------
# Round trips through every real dataset's parse_fn.


@pytest.mark.parametrize("name", sorted(REAL_DATASETS))
def test_png_records_round_trip_exactly(graph, tmp_path, name):
    channels, height, width, split = REAL_DATASETS[name]
    pixels = _random_images(3, height, width, channels, seed=len(name))
    labels = [2, 0, 1]
    examples = [_example(p, lbl, b"png") for p, lbl in zip(pixels, labels, strict=True)]
    _write_dataset_dir(str(tmp_path), name, split, examples)

    spec = dataset_factory.get_dataset(name, split, str(tmp_path))
    assert spec.name == name and spec.split == split and not spec.synthetic
    assert spec.num_samples == 3  # from split_sizes.json, not the module's default
    assert spec.labels_to_names == {0: "cat", 1: "dog", 2: "bird"}
    expected_classes = 3 if name == "image_folder" else dataset_factory.DATASETS[name].NUM_CLASSES
    assert spec.num_classes == expected_classes

    images, read_labels, image_tensor, label_tensor = _read_all(spec)
    assert image_tensor.shape.as_list() == [None, None, channels]  # static channel dim
    assert image_tensor.dtype == tf.uint8 and label_tensor.dtype == tf.int64
    assert label_tensor.shape.ndims == 0
    assert read_labels == labels
    for got, want in zip(images, pixels, strict=True):
        np.testing.assert_array_equal(got, want)


def test_jpeg_records_decode_within_tolerance(graph, tmp_path):
    # Smooth images: JPEG keeps them close to the original.
    ys, xs = np.mgrid[0:40, 0:48]
    pixels = [
        np.stack([ys * 5, xs * 4, (ys + xs) * 2 + 30 * k], axis=-1).clip(0, 255).astype(np.uint8)
        for k in range(3)
    ]
    examples = [_example(p, k, b"jpeg") for k, p in enumerate(pixels)]
    _write_dataset_dir(str(tmp_path), "flowers", "train", examples, meta=False)

    spec = dataset_factory.get_dataset("flowers", "train", str(tmp_path))
    assert spec.num_samples == 3320  # TF-Slim's size: no split_sizes.json here
    assert spec.labels_to_names[4] == "tulips"  # the module's default names
    images, labels, _, _ = _read_all(spec)
    assert labels == [0, 1, 2]
    for got, want in zip(images, pixels, strict=True):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 3.0


def test_raw_records_and_rgb_png_read_as_grayscale(graph, tmp_path):
    raw = _random_images(2, 28, 28, 1, seed=3)
    examples = [_example(raw[0], 7, b"raw"), _example(raw[1], 3, b"raw")]
    # An RGB PNG whose three channels are equal decodes to the same gray pixels.
    gray = _random_images(1, 28, 28, 1, seed=4)[0]
    examples.append(_example(np.repeat(gray, 3, axis=2), 5, b"png"))
    _write_dataset_dir(str(tmp_path), "mnist", "test", examples, num_shards=2, meta=False)

    spec = dataset_factory.get_dataset("mnist", "test", str(tmp_path))
    assert len(spec.files) == 2 and spec.files == sorted(spec.files)
    assert spec.num_samples == 10000 and spec.num_classes == 10
    images, labels, _, _ = _read_all(spec)
    # Shard 0 holds examples 0 and 2, shard 1 holds example 1.
    assert labels == [7, 5, 3]
    np.testing.assert_array_equal(images[0], raw[0])
    np.testing.assert_array_equal(images[1], gray)
    np.testing.assert_array_equal(images[2], raw[1])


def test_imagenet_bboxes_and_class_text(graph, tmp_path):
    pixels = _random_images(2, 10, 12, 3, seed=5)

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    boxes = {
        "image/object/bbox/xmin": floats([0.1, 0.5]),
        "image/object/bbox/ymin": floats([0.2, 0.6]),
        "image/object/bbox/xmax": floats([0.3, 0.7]),
        "image/object/bbox/ymax": floats([0.4, 0.8]),
        "image/class/text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"tench"])),
    }
    examples = [_example(pixels[0], 1, b"png", boxes), _example(pixels[1], 1000, b"png")]
    _write_dataset_dir(str(tmp_path), "imagenet", "train", examples, meta=False)
    spec = dataset_factory.get_dataset("imagenet", "train", str(tmp_path))
    assert spec.num_classes == 1001 and spec.num_samples == 1281167

    dataset = tf.data.TFRecordDataset(spec.files).map(imagenet.parse_fn_with_bboxes)
    image, label, bboxes, text = tf.data.make_one_shot_iterator(dataset).get_next()
    with tf.Session() as sess:
        first = sess.run([image, label, bboxes, text])
        second = sess.run([image, label, bboxes, text])
    np.testing.assert_array_equal(first[0], pixels[0])
    assert first[1] == 1 and first[3] == b"tench"
    np.testing.assert_allclose(first[2], [[0.2, 0.1, 0.4, 0.3], [0.6, 0.5, 0.8, 0.7]], rtol=1e-6)
    assert second[1] == 1000 and second[2].shape == (0, 4) and second[3] == b""


# ---------------------------------------------------------------------------------------
# Errors.


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown dataset 'mnsit'.*cifar10.*image_folder.*mock"):
        dataset_factory.get_dataset("mnsit", "train", "/tmp")


def test_unknown_split_lists_valid_splits(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown split 'validation'.*\['test', 'train'\]"):
        dataset_factory.get_dataset("cifar10", "validation", str(tmp_path))
    with pytest.raises(ValueError, match=r"Unknown split 'test'.*\['train', 'validation'\]"):
        dataset_factory.get_dataset("mock", "test")


def test_split_sizes_json_defines_the_valid_splits(tmp_path):
    (tmp_path / "split_sizes.json").write_text(json.dumps({"train": 5, "holdout": 2}))
    with pytest.raises(ValueError, match=r"Unknown split 'test'.*\['holdout', 'train'\]"):
        dataset_factory.get_dataset("mnist", "test", str(tmp_path))
    (tmp_path / "split_sizes.json").write_text(json.dumps({"train": "five"}))
    with pytest.raises(ValueError, match="split_sizes.json must hold"):
        dataset_factory.get_dataset("mnist", "train", str(tmp_path))


def test_missing_dataset_dir_is_named(tmp_path):
    missing = str(tmp_path / "no_such_dir")
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        dataset_factory.get_dataset("mnist", "train", missing)
    with pytest.raises(FileNotFoundError, match="needs --dataset_dir"):
        dataset_factory.get_dataset("flowers", "train", None)


def test_no_matching_file_names_pattern_and_dir(tmp_path):
    (tmp_path / "cifar10_train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as excinfo:
        dataset_factory.get_dataset("cifar10", "test", str(tmp_path))
    assert "cifar10_test-*.tfrecord" in str(excinfo.value)
    assert str(tmp_path) in str(excinfo.value)
    # A custom pattern is used (and named) instead of the default.
    with pytest.raises(FileNotFoundError, match=r"other-\*\.rec"):
        dataset_factory.get_dataset("cifar10", "train", str(tmp_path), file_pattern="other-*.rec")
    spec = dataset_factory.get_dataset(
        "cifar10", "train", str(tmp_path), file_pattern="cifar10_{split}-*"
    )
    assert spec.files == [str(tmp_path / "cifar10_train-00000-of-00001.tfrecord")]


def test_missing_shards_are_reported(tmp_path):
    for index in (0, 2):
        (tmp_path / dataset_factory.shard_filename("mnist", "train", index, 3)).write_bytes(b"")
    with pytest.raises(ValueError, match=r"1 of 3 shards.*missing.*\[1\]"):
        dataset_factory.get_dataset("mnist", "train", str(tmp_path))


def test_image_folder_needs_its_labels_and_sizes(tmp_path):
    (tmp_path / "image_folder_train-00000-of-00001.tfrecord").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="split_sizes.json"):
        dataset_factory.get_dataset("image_folder", "train", str(tmp_path))
    (tmp_path / "split_sizes.json").write_text(json.dumps({"train": 1}))
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        dataset_factory.get_dataset("image_folder", "train", str(tmp_path))
    (tmp_path / "labels.txt").write_text("0:a\n1:b\n\n2:c:with colon\n3:d\n")
    spec = dataset_factory.get_dataset("image_folder", "train", str(tmp_path))
    assert spec.num_classes == 4 and spec.labels_to_names[2] == "c:with colon"


def test_malformed_labels_file_names_the_line(tmp_path):
    (tmp_path / "labels.txt").write_text("0:a\nb\n")
    with pytest.raises(ValueError, match=r"labels.txt:2: expected an 'id:name' line"):
        dataset_factory.get_dataset("mnist", "train", str(tmp_path))


# ---------------------------------------------------------------------------------------
# The synthetic 'mock' set.


def test_mock_spec_is_synthetic():
    spec = dataset_factory.get_dataset("mock", "train", None)
    assert spec.synthetic and spec.files == [] and spec.parse_fn is None
    assert spec.num_samples == 12800 and spec.num_classes == 1000
    assert dataset_factory.get_dataset("mock", "validation").num_samples == 1280


def _mock_arrays(num_samples, height, width, channels, num_classes, seed):
    with tf.Graph().as_default():
        dataset = mock.synthetic_dataset(num_samples, height, width, channels, num_classes, seed)
        images, labels = tf.data.make_one_shot_iterator(dataset.batch(num_samples)).get_next()
        assert images.shape.as_list() == [None, height, width, channels]
        assert images.dtype == tf.uint8 and labels.dtype == tf.int64
        with tf.Session() as sess:
            return sess.run([images, labels])


def test_mock_is_deterministic_for_a_seed():
    images_a, labels_a = _mock_arrays(16, 12, 10, 3, 5, seed=0)
    images_b, labels_b = _mock_arrays(16, 12, 10, 3, 5, seed=0)
    images_c, labels_c = _mock_arrays(16, 12, 10, 3, 5, seed=1)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    assert not np.array_equal(images_a, images_c)
    assert images_a.shape == (16, 12, 10, 3)
    assert labels_a.min() >= 0 and labels_a.max() < 5


def test_mock_labels_are_recoverable_from_images():
    num_classes = 10
    images, labels = _mock_arrays(600, 16, 16, 3, num_classes, seed=3)
    assert set(labels.tolist()) == set(range(num_classes))
    flat = images.reshape(len(images), -1).astype(np.float32)
    train_x, train_y, test_x, test_y = flat[:400], labels[:400], flat[400:], labels[400:]
    # Nearest class-mean classifier fitted on the first 400, scored on the other 200.
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in range(num_classes)])
    distances = ((test_x[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    accuracy = (distances.argmin(axis=1) == test_y).mean()
    assert accuracy > 0.9
    # ...while the images are not trivially identical within a class.
    same_class = images[labels == labels[0]]
    assert not np.array_equal(same_class[0], same_class[1])


# ---------------------------------------------------------------------------------------
# find_corrupt_tfrecords.


def test_find_corrupt_tfrecords_names_a_truncated_file(tmp_path):
    pixels = _random_images(3, 8, 8, 3, seed=6)
    examples = [_example(p, 0, b"png") for p in pixels]
    good = tmp_path / "good.tfrecord"
    bad = tmp_path / "bad.tfrecord"
    _write_records(good, examples)
    _write_records(bad, examples)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 30])  # cut the last record short

    assert dataset_factory.find_corrupt_tfrecords([str(good)]) == []
    corrupt = dataset_factory.find_corrupt_tfrecords([str(good), str(bad)])
    assert [path for path, _ in corrupt] == [str(bad)]
    assert corrupt[0][1]  # a non-empty message


def test_no_split_name_means_the_held_out_split(tmp_path):
    (tmp_path / "cifar10_test-00000-of-00001.tfrecord").write_bytes(b"")
    # cifar10 and mnist have no validation split: their held-out split is test.
    spec = dataset_factory.get_dataset("cifar10", None, str(tmp_path))
    assert spec.split == "test" and spec.num_samples == 10000
    assert spec.files == [str(tmp_path / "cifar10_test-00000-of-00001.tfrecord")]
    assert dataset_factory.get_dataset("mock", None).split == "validation"
    # A converted set whose split_sizes.json has validation uses it.
    (tmp_path / "split_sizes.json").write_text(json.dumps({"train": 5, "validation": 2}))
    (tmp_path / "mnist_validation-00000-of-00001.tfrecord").write_bytes(b"")
    assert dataset_factory.get_dataset("mnist", None, str(tmp_path)).split == "validation"
    # Neither: the error lists the dataset's splits and the flag to set.
    (tmp_path / "split_sizes.json").write_text(json.dumps({"train": 5, "holdout": 2}))
    with pytest.raises(
        ValueError, match=r"no held-out split.*\['holdout', 'train'\].*--eval_split"
    ):
        dataset_factory.get_dataset("mnist", None, str(tmp_path))


def test_comma_separated_file_list_reads_those_files(tmp_path):
    for index in range(3):
        (tmp_path / dataset_factory.shard_filename("cifar10", "train", index, 3)).write_bytes(b"")
    spec = dataset_factory.get_dataset(
        "cifar10",
        "train",
        str(tmp_path),
        file_pattern="cifar10_train-00002-of-00003.tfrecord, cifar10_train-00000-*",
    )
    assert spec.files == [
        str(tmp_path / dataset_factory.shard_filename("cifar10", "train", i, 3)) for i in (0, 2)
    ]
    with pytest.raises(FileNotFoundError, match=r"'nope\.tfrecord'"):
        dataset_factory.get_dataset(
            "cifar10", "train", str(tmp_path), file_pattern="cifar10_train-00000-*,nope.tfrecord"
        )
