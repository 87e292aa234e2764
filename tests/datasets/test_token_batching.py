"""Tests of the translation input pipeline: token budget, padding, length limits, rank sharding.

Records are written directly with translation.encode_example: example i has inputs
[4 + i, ...] (its first id names it) of a known length, so each batch can be traced back
to the examples it holds.
"""

import collections

import numpy as np
import pytest

from datasets import token_batching, translation
from slim_compat import tf

NUM_EXAMPLES = 45
MAX_LENGTH = 32


def _lengths(i):
    """(inputs length, targets length) of example i, EOS included: 2..40, some over 32."""
    return 2 + (i * 7) % 39, 2 + (i * 11) % 39


def _example_ids(i):
    input_length, target_length = _lengths(i)
    inputs = [4 + i] + [5 + (i + k) % 90 for k in range(input_length - 2)] + [3]
    targets = [4 + i] + [6 + (i * k) % 90 for k in range(target_length - 2)] + [3]
    return inputs, targets


@pytest.fixture(scope="module")
def record_files(tmp_path_factory):
    """{num_files: [paths]}: the same NUM_EXAMPLES examples in 2 files and in 3 files."""
    root = tmp_path_factory.mktemp("translation_records")
    layouts = {}
    for num_files in (2, 3):
        paths = [
            str(root / f"translation_train-{k:05d}-of-{num_files:05d}.tfrecord")
            for k in range(num_files)
        ]
        writers = [tf.io.TFRecordWriter(p) for p in paths]
        for i in range(NUM_EXAMPLES):
            example = translation.encode_example(*_example_ids(i))
            writers[i % num_files].write(example.SerializeToString())
        for writer in writers:
            writer.close()
        layouts[num_files] = paths
    return layouts


def _batches(dataset, limit=None):
    with tf.Graph().as_default():
        features = tf.data.make_one_shot_iterator(dataset()).get_next()
        batches = []
        with tf.Session() as sess:
            while limit is None or len(batches) < limit:
                try:
                    batches.append(sess.run(features))
                except tf.errors.OutOfRangeError:
                    break
    return batches


def _is_long(i):
    return max(_lengths(i)) > MAX_LENGTH


def _check_batch(batch, batch_tokens=None):
    inputs, targets = batch["inputs"], batch["targets"]
    assert inputs.dtype == np.int64 and targets.dtype == np.int64
    assert inputs.shape[1] % 8 == 0 and targets.shape[1] % 8 == 0
    if batch_tokens is not None:
        assert max(inputs.shape[1], targets.shape[1]) * inputs.shape[0] <= batch_tokens
    for key, length_key in (("inputs", "inputs_length"), ("targets", "targets_length")):
        ids = batch[key]
        np.testing.assert_array_equal((ids != 0).sum(axis=1), batch[length_key])
        for row, length in zip(ids, batch[length_key]):
            assert row[length - 1] == 3 and not row[length:].any()  # EOS, then padding
    # Padding beyond a multiple of 8 of the longest row is not added.
    assert inputs.shape[1] == token_batching.round_up(batch["inputs_length"].max(), 8)
    return [int(row[0]) - 4 for row in inputs]


def test_training_batches_respect_the_token_budget_and_drop_long_examples(record_files):
    budget = 96
    batches = _batches(
        lambda: token_batching.build_dataset(
            record_files[2],
            is_training=True,
            batch_tokens=budget,
            max_input_length=MAX_LENGTH,
            max_target_length=MAX_LENGTH,
        )[0],
        limit=60,
    )
    seen = collections.Counter()
    sizes = set()
    for batch in batches:
        ids = _check_batch(batch, budget)
        seen.update(ids)
        sizes.add(len(ids))
    short = {i for i in range(NUM_EXAMPLES) if not _is_long(i)}
    assert set(seen) == short  # repeated past an epoch, long examples never appear
    assert len(sizes) > 1  # bucketing: short buckets hold more sentences
    counts = [int(b["num_long_examples"]) for b in batches]
    assert counts == sorted(counts)
    assert counts[-1] == sum(map(_is_long, range(NUM_EXAMPLES)))  # once an epoch was read
    # Bucketing: the rows of a batch are of similar length (one bucket).
    for batch in batches:
        lengths = np.maximum(batch["inputs_length"], batch["targets_length"])
        bounds = token_batching.bucket_boundaries(MAX_LENGTH)
        buckets = {int(np.searchsorted(bounds, n)) for n in lengths}
        assert len(buckets) == 1


def test_truncate_keeps_long_examples_cut_with_eos(record_files):
    batches = _batches(
        lambda: token_batching.build_dataset(
            record_files[2],
            is_training=True,
            batch_size=5,
            max_input_length=16,
            max_target_length=24,
            length_policy="truncate",
        )[0],
        limit=40,
    )
    seen = set()
    for batch in batches:
        ids = _check_batch(batch)
        assert len(ids) == 5
        for i, inputs_length, targets_length in zip(
            ids, batch["inputs_length"], batch["targets_length"]
        ):
            assert inputs_length == min(_lengths(i)[0], 16)
            assert targets_length == min(_lengths(i)[1], 24)
        seen.update(ids)
    assert seen == set(range(NUM_EXAMPLES))


@pytest.mark.parametrize("num_files", [2, 3])  # file sharding, example sharding
@pytest.mark.parametrize("batching", [{"batch_tokens": 64}, {"batch_size": 4}])
def test_evaluation_over_two_ranks_yields_every_example_once(record_files, num_files, batching):
    per_rank = []
    for rank in range(2):

        def build(rank=rank):
            return token_batching.build_dataset(
                record_files[num_files],
                is_training=False,
                max_input_length=MAX_LENGTH,
                max_target_length=MAX_LENGTH,
                rank=rank,
                size=2,
                **batching,
            )[0]

        batches = _batches(build)
        ids = [i for batch in batches for i in _check_batch(batch, batching.get("batch_tokens"))]
        per_rank.append(ids)
        if "batch_size" in batching:
            # Sentence batches keep the file order; only the last may be partial.
            assert [len(b["inputs"]) for b in batches[:-1]] == [4] * (len(batches) - 1)
        # Evaluation never drops: long examples are truncated and counted.
        assert int(batches[-1]["num_long_examples"]) == sum(_is_long(i) for i in ids)
    plan = token_batching.build_dataset(
        record_files[num_files], False, batch_size=4, rank=0, size=2
    )[1]
    assert plan.mode == ("files" if num_files == 2 else "examples")
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(NUM_EXAMPLES))
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 2


def test_bucket_boundaries_and_bad_arguments(record_files):
    assert token_batching.bucket_boundaries(64) == [8, 16, 24, 32, 40, 48, 56, 64]
    bounds = token_batching.bucket_boundaries(256, step=1.5)
    assert bounds[-1] == 256 and all(b % 8 == 0 for b in bounds) and bounds == sorted(set(bounds))
    files = record_files[2]
    with pytest.raises(ValueError, match="exactly one of batch_tokens and batch_size"):
        token_batching.build_dataset(files, True)
    with pytest.raises(ValueError, match="exactly one of batch_tokens and batch_size"):
        token_batching.build_dataset(files, True, batch_tokens=64, batch_size=4)
    with pytest.raises(ValueError, match=r"Unknown length_policy 'cut'.*\['filter', 'truncate'\]"):
        token_batching.build_dataset(files, True, batch_size=4, length_policy="cut")
    with pytest.raises(ValueError, match="batch_tokens=100 cannot hold one example.*256 tokens"):
        token_batching.build_dataset(files, True, batch_tokens=100)
    with pytest.raises(ValueError, match="no translation tfrecords"):
        token_batching.build_dataset([], True, batch_size=4)
