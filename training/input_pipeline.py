"""The tf.data input pipeline: shard by rank, interleave files, parse, preprocess, batch, prefetch.

Training data is sharded so that every rank reads a disjoint part: whole files when the
file count divides evenly by the number of ranks, single examples otherwise (every rank
reads every file and keeps one example in `size`). The training stream repeats forever
and every rank runs the same `stop_at_step` steps, so no rank waits in an allreduce for a
rank that ran out of data. Evaluation shards examples, never files, keeps the order, and
keeps the last partial batch, so each example of the split is counted exactly once.
"""

import collections
import hashlib

from datasets import dataset_factory, mock, tfrecord_format
from preprocessing import preprocessing_factory
from slim_compat import tf

AUTOTUNE = tf.data.experimental.AUTOTUNE

ShardPlan = collections.namedtuple("ShardPlan", ["files", "mode", "description"])
ShardPlan.__doc__ = """What one rank reads.

files: the files this rank opens.
mode: 'files' (the rank owns these files) or 'examples' (keep every size-th example
    starting at rank, from all files) or 'single' (one rank, everything).
description: a sentence for the log.
"""


def fold_step_into_seed(seed, step):
    """The seed of a run that starts at `step`: `seed` itself at step 0, another per step.

    A resumed run folds its restored step into the shuffle and graph seeds, so it does
    not replay the data order and augmentations of the run's first steps; the same
    (seed, step) always gives the same stream.
    """
    if not step:
        return seed
    digest = hashlib.sha256(f"{seed}/{step}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def shard_files_by_rank(files, rank, size):
    """Plans which part of `files` rank `rank` of `size` reads (see the module docstring)."""
    files = sorted(files)
    if size == 1:
        return ShardPlan(files, "single", f"1 rank reads all {len(files)} file(s)")
    if files and len(files) % size == 0:
        mine = files[rank::size]
        return ShardPlan(
            mine, "files", f"{size} ranks each read {len(mine)} of {len(files)} files (rank {rank})"
        )
    return ShardPlan(
        files,
        "examples",
        f"{len(files)} file(s) do not divide among {size} ranks: every rank reads all files and "
        f"keeps one example in {size} (rank {rank})",
    )


def read_records(plan, rank, size, is_training, num_readers=4, seed=0):
    """The serialized records of one rank, as `plan` (shard_files_by_rank) says.

    Training interleaves the (shuffled) files; evaluation reads them in order, one pass.
    In 'examples' mode every rank reads all files in one fixed order and keeps every
    size-th record from its rank on, so the ranks' shares are disjoint and complete.
    """
    files = tf.data.Dataset.from_tensor_slices(plan.files)
    if is_training and plan.mode != "examples":
        files = files.shuffle(len(plan.files), seed=seed, reshuffle_each_iteration=True)
    if is_training:
        records = files.interleave(
            tf.data.TFRecordDataset,
            cycle_length=max(1, min(num_readers, len(plan.files))),
            num_parallel_calls=AUTOTUNE,
            deterministic=plan.mode == "examples",  # example sharding needs one fixed order
        )
    else:
        records = files.flat_map(tf.data.TFRecordDataset)
    if plan.mode == "examples":
        records = records.shard(size, rank)
    return records


def build_dataset(
    spec,
    preprocessing_name,
    image_size,
    channels,
    batch_size,
    is_training,
    rank=0,
    size=1,
    seed=0,
    labels_offset=0,
    shuffle_buffer_size=1024,
    num_readers=4,
    num_preprocessing_threads=None,
    num_parallel_batches=None,
    prefetch_buffer_size=None,
    use_caching=False,
    fused_jpeg_decode=True,
    start_step=0,
):
    """Builds the batched dataset of one rank.

    Args:
        spec: a dataset_factory.DatasetSpec.
        preprocessing_name: name in preprocessing_factory.
        image_size: output height = width in pixels.
        channels: channels the network expects (grayscale / RGB converted to match), or None
            to keep the data's.
        batch_size: examples per batch of this rank.
        is_training: shuffle, repeat forever, augment, drop the last partial batch; else one
            ordered pass with the last partial batch kept.
        rank, size: this rank and the number of ranks.
        seed: seed of the shuffle (and of the synthetic data).
        labels_offset: subtracted from every label.
        shuffle_buffer_size, num_readers, num_preprocessing_threads, num_parallel_batches,
        prefetch_buffer_size: the input-pipeline knobs (None = AUTOTUNE).
        use_caching: keep this rank's records in memory after the first pass (FastNN's
            datasets_use_caching): the compressed tfrecord records, before decoding, so the
            cache costs the size on disk and every epoch decodes anew; synthetic data
            caches its generated examples.
        fused_jpeg_decode: at training time, for a preprocessing that has a fused JPEG path
            (inception), decode only the sampled crop of each JPEG record
            (tf.image.decode_and_crop_jpeg); other records are decoded whole.
        start_step: the global step the run starts at (a resume): folded into the shuffle
            seeds, so the stream does not replay the first steps' order. The data itself
            (synthetic examples included) does not change.

    Returns:
        (dataset of (images float32 [B, H, W, C], labels int64 [B]), ShardPlan or None for mock).
    """
    preprocess = preprocessing_factory.get_preprocessing(
        preprocessing_name, is_training=is_training
    )
    parallel = num_preprocessing_threads or AUTOTUNE
    shuffle_seed = fold_step_into_seed(seed, start_step)
    fused = None
    if is_training and fused_jpeg_decode and not spec.synthetic:
        fused = preprocessing_factory.get_jpeg_preprocessing(preprocessing_name, is_training=True)

    if spec.synthetic:
        data_channels = channels or 3
        ds = mock.synthetic_dataset(
            spec.num_samples, image_size, image_size, data_channels, spec.num_classes, seed=seed
        )
        plan = None
        # Every rank makes the same stream; keep a disjoint 1/size of it.
        if size > 1:
            ds = ds.shard(size, rank)
    else:
        plan = shard_files_by_rank(spec.files, rank, size)
        ds = read_records(plan, rank, size, is_training, num_readers, shuffle_seed)
        if use_caching:
            ds = ds.cache()  # the serialized records: compressed images, not pixels
        if not fused:
            ds = ds.map(spec.parse_fn, num_parallel_calls=parallel)

    if use_caching and spec.synthetic:
        ds = ds.cache()
    if is_training:
        # Shuffle, then repeat: every epoch yields each example of this rank exactly once
        # (in a new order). Shuffling a repeated stream would mix epochs, so an example
        # could be missing from a whole epoch's worth of steps while another came twice.
        if shuffle_buffer_size and shuffle_buffer_size > 1:
            ds = ds.shuffle(
                shuffle_buffer_size, seed=shuffle_seed + rank, reshuffle_each_iteration=True
            )
        ds = ds.repeat()

    @tf.autograph.experimental.do_not_convert  # plain graph code: skip AutoGraph's slow parse
    def process(image, label):
        if channels:
            image = preprocessing_factory.ensure_channels(image, channels)
        image = preprocess(image, image_size, image_size)
        return tf.cast(image, tf.float32), tf.cast(label, tf.int64) - labels_offset

    if fused:
        data_channels = dataset_factory.DATASETS[spec.name].CHANNELS

        @tf.autograph.experimental.do_not_convert
        def process_record(serialized):
            features = tfrecord_format.parse_features(serialized)
            encoded = features[tfrecord_format.KEY_ENCODED]

            def fused_decode():
                # decode_and_crop_jpeg converts grey <-> RGB itself.
                return fused(encoded, image_size, image_size, channels=channels or data_channels)

            def whole_decode():
                image = tfrecord_format.decode_image(
                    encoded,
                    features[tfrecord_format.KEY_FORMAT],
                    features[tfrecord_format.KEY_HEIGHT],
                    features[tfrecord_format.KEY_WIDTH],
                    data_channels,
                )
                return process(image, 0)[0]

            image = tf.cond(
                tfrecord_format.is_jpeg(encoded, features[tfrecord_format.KEY_FORMAT]),
                fused_decode,
                whole_decode,
            )
            label = features[tfrecord_format.KEY_LABEL]
            return tf.cast(image, tf.float32), tf.cast(label, tf.int64) - labels_offset

        ds = ds.map(process_record, num_parallel_calls=num_parallel_batches or parallel)
    else:
        ds = ds.map(process, num_parallel_calls=num_parallel_batches or parallel)
    ds = ds.batch(batch_size, drop_remainder=is_training)
    ds = ds.prefetch(prefetch_buffer_size or AUTOTUNE)
    return ds, plan
