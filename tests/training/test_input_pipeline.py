"""Tests of training/input_pipeline.py: rank sharding, training batches, exact eval passes."""

import numpy as np
import pytest

from datasets import dataset_factory, example_encoders, mnist
from slim_compat import tf
from training import input_pipeline


def write_records(directory, file_sizes, split="train"):
    """MNIST-format shards holding examples 0..N-1, file by file.

    Example i has label i and carries i in its pixel (0, 0), so every example can be
    identified from its image as well as from its label.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files, next_id = [], 0
    for index, size in enumerate(file_sizes):
        path = directory / dataset_factory.shard_filename("mnist", split, index, len(file_sizes))
        with tf.io.TFRecordWriter(str(path)) as writer:
            for example_id in range(next_id, next_id + size):
                pixels = np.full((28, 28, 1), 7, np.uint8)
                pixels[0, 0, 0] = example_id
                writer.write(
                    example_encoders.encode_pixels((pixels, example_id)).SerializeToString()
                )
        next_id += size
        files.append(str(path))
    return files


def mnist_spec(files, split="train"):
    return dataset_factory.DatasetSpec(
        name="mnist",
        split=split,
        files=files,
        num_samples=None,
        num_classes=10,
        parse_fn=mnist.parse_fn,
        labels_to_names={},
        synthetic=False,
    )


def build(spec, **kwargs):
    args = dict(preprocessing_name="lenet", image_size=28, channels=None, batch_size=4)
    args.update(kwargs)
    return input_pipeline.build_dataset(spec, **args)


def read_batches(make_dataset, limit=None):
    """Every (images, labels) batch of a finite dataset, or the first `limit` batches."""
    return read_ranks([make_dataset], limit)[0]


def read_ranks(make_datasets, limit=None):
    """read_batches for several datasets (e.g. one per simulated rank), in one session."""
    with tf.Graph().as_default():
        next_batches = [tf.data.make_one_shot_iterator(make()).get_next() for make in make_datasets]
        out = []
        with tf.Session() as session:
            for next_batch in next_batches:
                batches = []
                while limit is None or len(batches) < limit:
                    try:
                        batches.append(session.run(next_batch))
                    except tf.errors.OutOfRangeError:
                        break
                out.append(batches)
    return out


def ids_from_pixels(images):
    """Example ids encoded in pixel (0, 0) by write_records, after lenet scaling."""
    return np.round(images[:, 0, 0, 0] * 128.0 + 128.0).astype(np.int64)


# ------------------------------------------------------------------ shard plans


def test_one_rank_reads_everything():
    plan = input_pipeline.shard_files_by_rank(["b", "a", "c"], 0, 1)
    assert plan.mode == "single" and plan.files == ["a", "b", "c"]


def test_files_mode_gives_disjoint_files_covering_all():
    files = [f"f{i}" for i in (3, 1, 0, 2)]
    plans = [input_pipeline.shard_files_by_rank(files, rank, 2) for rank in range(2)]
    assert [p.mode for p in plans] == ["files", "files"]
    assert [len(p.files) for p in plans] == [2, 2]
    assert not set(plans[0].files) & set(plans[1].files)
    assert sorted(plans[0].files + plans[1].files) == sorted(files)
    assert "2 ranks each read 2 of 4 files" in plans[0].description


def test_examples_mode_when_files_do_not_divide():
    files = ["a", "b", "c"]
    plans = [input_pipeline.shard_files_by_rank(files, rank, 2) for rank in range(2)]
    for plan in plans:
        assert plan.mode == "examples" and plan.files == files
    assert "3 file(s) do not divide among 2 ranks" in plans[1].description


# ------------------------------------------------------------------ training


def test_training_batches_have_a_static_size_and_repeat(tmp_path):
    files = write_records(tmp_path, [6, 4])  # 10 examples
    spec = mnist_spec(files)

    def make(**kwargs):
        dataset, plan = build(spec, batch_size=4, is_training=True, **kwargs)
        assert plan.mode == "single"
        images_spec, labels_spec = dataset.element_spec
        assert images_spec.shape.as_list() == [4, 28, 28, 1] and images_spec.dtype == tf.float32
        assert labels_spec.shape.as_list() == [4] and labels_spec.dtype == tf.int64
        return dataset

    shuffled, in_order = read_ranks([make, lambda: make(shuffle_buffer_size=0)], limit=10)
    # 40 examples from a split of 10: it repeats. Without the example shuffle every run of
    # 10 consecutive examples is one whole epoch.
    ids = np.concatenate([labels for _, labels in in_order])
    assert len(ids) == 40
    for epoch in range(4):
        assert sorted(ids[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    shuffled_ids = np.concatenate([labels for _, labels in shuffled])
    assert len(shuffled_ids) == 40 and set(shuffled_ids) <= set(range(10))
    batches = shuffled + in_order
    for images, labels in batches:
        assert images.shape == (4, 28, 28, 1)
        np.testing.assert_array_equal(ids_from_pixels(images), labels)


def test_every_training_epoch_yields_each_example_once_in_a_new_order(tmp_path):
    spec = mnist_spec(write_records(tmp_path, [3, 4]))
    (batches,) = read_ranks([lambda: build(spec, is_training=True, batch_size=7)[0]], limit=3)
    epochs = [labels.tolist() for _, labels in batches]  # one batch = one epoch of 7
    assert all(sorted(epoch) == list(range(7)) for epoch in epochs), epochs
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled between epochs


@pytest.mark.parametrize("file_sizes", [[3, 4, 5, 6], [5, 2, 6]], ids=["files", "examples"])
def test_training_ranks_read_disjoint_parts(tmp_path, file_sizes):
    files = write_records(tmp_path, file_sizes)
    spec = mnist_spec(files)
    total = sum(file_sizes)
    per_rank = read_ranks(
        [
            lambda rank=rank: build(spec, is_training=True, rank=rank, size=2, batch_size=3)[0]
            for rank in range(2)
        ],
        limit=20,
    )
    seen = [set(np.concatenate([labels for _, labels in b]).tolist()) for b in per_rank]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(total))


# ------------------------------------------------------------------ evaluation


@pytest.mark.parametrize(
    "file_sizes, size",
    [
        ([5, 9, 3], 2),  # examples mode
        ([5, 9, 3], 3),  # files mode with uneven files
        ([4, 1, 6, 2], 2),
        ([4, 1, 6, 2], 3),
    ],
)
def test_eval_over_ranks_counts_each_example_once(tmp_path, file_sizes, size):
    files = write_records(tmp_path, file_sizes)
    spec = mnist_spec(files, split="test")
    total = sum(file_sizes)
    batch_size = 4

    def make(rank):
        dataset, plan = build(spec, is_training=False, rank=rank, size=size, batch_size=batch_size)
        assert plan.mode == ("files" if len(file_sizes) % size == 0 else "examples")
        assert dataset.element_spec[0].shape.as_list() == [None, 28, 28, 1]
        return dataset

    all_ids = []
    for batches in read_ranks([lambda rank=rank: make(rank) for rank in range(size)]):
        sizes = [len(labels) for _, labels in batches]
        # Only the last batch of a rank may be partial, and it is kept.
        assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
        for images, labels in batches:
            np.testing.assert_array_equal(ids_from_pixels(images), labels)
            all_ids.extend(labels.tolist())
        # Ordered: each rank reads its part in file order.
        rank_ids = np.concatenate([labels for _, labels in batches])
        assert list(rank_ids) == sorted(rank_ids)
    assert sorted(all_ids) == list(range(total))


def test_eval_keeps_the_last_partial_batch(tmp_path):
    files = write_records(tmp_path, [37])
    batches = read_batches(lambda: build(mnist_spec(files), is_training=False, batch_size=8)[0])
    assert [len(labels) for _, labels in batches] == [8, 8, 8, 8, 5]
    assert np.concatenate([labels for _, labels in batches]).tolist() == list(range(37))


def test_eval_reads_a_converted_split_through_the_factory(tmp_path, write_mnist_records):
    dataset_dir = write_mnist_records({"train": 4, "test": 11}, num_shards=3)
    spec = dataset_factory.get_dataset("mnist", "test", dataset_dir)
    per_rank = read_ranks(
        [
            lambda rank=rank: build(spec, is_training=False, rank=rank, size=2, batch_size=4)[0]
            for rank in range(2)
        ]
    )
    labels = [label for batches in per_rank for _, batch in batches for label in batch.tolist()]
    # write_mnist_records gives example i the label i % 10.
    assert sorted(labels) == sorted(i % 10 for i in range(11))


# ------------------------------------------------------------------ mock data


def test_mock_data_is_sharded_across_ranks():
    spec = dataset_factory.DatasetSpec(
        name="mock",
        split="validation",
        files=[],
        num_samples=10,
        num_classes=5,
        parse_fn=None,
        labels_to_names={},
        synthetic=True,
    )

    def make(rank, size, is_training=False):
        dataset, plan = build(
            spec,
            image_size=8,
            channels=3,
            is_training=is_training,
            rank=rank,
            size=size,
            batch_size=4,
        )
        assert plan is None
        return dataset

    # 10 examples in batches of 4 make 3 eval batches; the limit stops the training stream.
    whole, rank0, rank1, training = read_ranks(
        [
            lambda: make(0, 1),
            lambda: make(0, 2),
            lambda: make(1, 2),
            lambda: make(0, 1, is_training=True),
        ],
        limit=4,
    )

    def images_of(batches):
        images = np.concatenate([images for images, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        assert images.shape[1:] == (8, 8, 3)
        assert labels.min() >= 0 and labels.max() < 5
        return [image.tobytes() for image in images]

    everything = images_of(whole)
    assert len(everything) == 10 and len(set(everything)) == 10
    parts = [images_of(rank0), images_of(rank1)]
    assert [len(p) for p in parts] == [5, 5]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(everything)
    # Training on mock data repeats with a static batch.
    assert [images.shape for images, _ in training] == [(4, 8, 8, 3)] * 4


# ------------------------------------------------------------------ conversions


def test_channels_conversion_gray_to_rgb(tmp_path):
    files = write_records(tmp_path, [5])
    spec = mnist_spec(files)
    rgb_batches, gray_batches = read_ranks(
        [
            lambda: build(spec, channels=3, is_training=False, batch_size=5)[0],
            lambda: build(spec, channels=None, is_training=False, batch_size=5)[0],
        ]
    )
    ((rgb, labels),), ((gray, _),) = rgb_batches, gray_batches
    assert rgb.shape == (5, 28, 28, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    np.testing.assert_array_equal(ids_from_pixels(rgb), labels)
    assert gray.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(gray[..., 0], rgb[..., 0])


def test_labels_offset_is_subtracted(tmp_path):
    files = write_records(tmp_path, [6])
    spec = mnist_spec(files)
    (images, labels), *_ = read_batches(
        lambda: build(spec, labels_offset=1, is_training=False, batch_size=6)[0]
    )
    np.testing.assert_array_equal(labels, ids_from_pixels(images) - 1)
    assert labels.tolist() == [-1, 0, 1, 2, 3, 4]


def test_caching_keeps_the_records_and_decodes_every_epoch(tmp_path):
    # FastNN's datasets_use_caching caches the compressed records, not decoded pixels:
    # the parser runs again in every epoch (it ran once per example with a decoded cache).
    files = write_records(tmp_path / "c", [6])
    calls = []

    def counting_parse(serialized):
        def count(x):
            calls.append(1)
            return x

        serialized = tf.py_function(count, [serialized], tf.string)
        return mnist.parse_fn(tf.ensure_shape(serialized, []))

    spec = mnist_spec(files)._replace(parse_fn=counting_parse)
    batches = read_batches(
        lambda: build(
            spec,
            batch_size=3,
            is_training=True,
            shuffle_buffer_size=1,
            num_preprocessing_threads=1,
            num_parallel_batches=1,
            prefetch_buffer_size=1,
            use_caching=True,
        )[0],
        limit=6,  # 3 epochs of 6 examples
    )
    ids = np.concatenate([ids_from_pixels(images) for images, _ in batches])
    assert sorted(ids) == sorted(list(range(6)) * 3)
    assert len(calls) >= 18  # decoded in every epoch (prefetch may decode a few more)
