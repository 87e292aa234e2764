"""The input pipeline of the translation task: shard by rank, parse, limit lengths, batch by tokens.

From the token-id records of datasets/translation.py to padded batches:

* shard by rank with training/input_pipeline.py's `shard_files_by_rank` (whole files when
  they divide among the ranks, single examples otherwise);
* examples longer than max_input_length / max_target_length (EOS included) are dropped
  ('filter') or cut to the limit, keeping EOS last ('truncate'), and counted: every
  batch carries `num_long_examples`, how many of this rank's examples were dropped or cut
  as far as the pipeline has read its share (non-decreasing; from the second training
  epoch on, and at the end of an evaluation pass, the rank's exact total);
* batches are formed by token count (`batch_tokens`: the padded length, max over inputs
  and targets, times the batch size never exceeds it), with examples of similar length
  grouped into buckets whose bounds are multiples of 8 growing by `length_bucket_step`
  (tensor2tensor's scheme), or by sentence count (`batch_size`);
* inputs and targets are padded with PAD_ID (0) to a multiple of `pad_to_multiple` (8).

Training shuffles, repeats forever (every rank runs the same steps; none waits in an
allreduce for a rank that ran out of data) and buckets. Evaluation is one pass over this
rank's disjoint share that yields every example exactly once, the last partial batches
included; it never drops an example, so over-long ones are truncated whatever
length_policy says (with batch_size, batches keep the file order).

    dataset, plan = token_batching.build_dataset(
        split.files, is_training=True, batch_tokens=4096, rank=hvd.rank(), size=hvd.size())
    features = tf.data.make_one_shot_iterator(dataset).get_next()
    features["inputs"]   # int64 [B, S], S a multiple of 8, 0-padded
"""

from datasets import translation
from slim_compat import tf
from training import input_pipeline

AUTOTUNE = tf.data.experimental.AUTOTUNE
LENGTH_POLICIES = ("filter", "truncate")
DEFAULT_MAX_LENGTH = 256
DEFAULT_PAD_MULTIPLE = 8
DEFAULT_LENGTH_BUCKET_STEP = 1.1
LONG_COUNT_KEY = "num_long_examples"
INPUTS_LENGTH_KEY = "inputs_length"
TARGETS_LENGTH_KEY = "targets_length"


def round_up(value, multiple):
    """The smallest multiple of `multiple` that is >= value."""
    return -(-int(value) // int(multiple)) * int(multiple)


def bucket_boundaries(max_length, multiple=DEFAULT_PAD_MULTIPLE, step=DEFAULT_LENGTH_BUCKET_STEP):
    """Upper length bounds of the buckets: multiples of `multiple`, each ~`step` times the last.

    The last bound is max_length rounded up to `multiple`, so every example fits a bucket.
    E.g. (64, 8, 1.1): [8, 16, 24, 32, 40, 48, 56, 64].
    """
    if step <= 1.0:
        raise ValueError(f"length_bucket_step must be > 1, got {step}")
    last = round_up(max_length, multiple)
    bounds, bound = [], multiple
    while bound < last:
        bounds.append(bound)
        bound = max(bound + multiple, round_up(bound * step, multiple))
    bounds.append(last)
    return bounds


def _truncate(ids, max_length):
    """ids cut to max_length with EOS_ID last, when longer."""
    return tf.cond(
        tf.size(ids) > max_length,
        lambda: tf.concat([ids[: max_length - 1], tf.constant([translation.EOS_ID], ids.dtype)], 0),
        lambda: ids,
    )


def _pad_to_multiple(batch, multiple):
    padded = dict(batch)
    for key in (translation.INPUTS_KEY, translation.TARGETS_KEY):
        ids = batch[key]
        extra = (-tf.shape(ids)[1]) % multiple
        padded[key] = tf.pad(ids, [[0, 0], [0, extra]], constant_values=translation.PAD_ID)
    # The running count of the latest example in the batch.
    padded[LONG_COUNT_KEY] = tf.reduce_max(batch[LONG_COUNT_KEY])
    return padded


def build_dataset(
    files,
    is_training,
    batch_tokens=None,
    batch_size=None,
    max_input_length=DEFAULT_MAX_LENGTH,
    max_target_length=DEFAULT_MAX_LENGTH,
    length_policy="filter",
    rank=0,
    size=1,
    seed=0,
    shuffle_buffer_size=4096,
    num_readers=4,
    pad_to_multiple=DEFAULT_PAD_MULTIPLE,
    length_bucket_step=DEFAULT_LENGTH_BUCKET_STEP,
    prefetch_buffer_size=None,
):
    """Builds the batched translation dataset of one rank.

    Args:
      files: the tfrecords of one split (translation.get_split(...).files).
      is_training: shuffle, repeat forever and bucket; else one pass, every example once.
      batch_tokens: batch by tokens: padded length (max over inputs and targets) times
        batch size <= batch_tokens. Exactly one of batch_tokens and batch_size.
      batch_size: batch by sentences: this many pairs per batch.
      max_input_length, max_target_length: longest inputs / targets in tokens, EOS
        included.
      length_policy: 'filter' (drop longer examples; training only) or 'truncate' (cut
        them to the limit, EOS kept last). Evaluation always truncates.
      rank, size: this rank and the number of ranks.
      seed: of the file and example shuffles.
      shuffle_buffer_size: examples in the shuffle buffer (training; <= 1: no shuffle).
      num_readers: files read in parallel (training).
      pad_to_multiple: sequence lengths are padded up to a multiple of this.
      length_bucket_step: ratio between successive bucket bounds (> 1).
      prefetch_buffer_size: batches prefetched (None: AUTOTUNE).

    Returns:
      (dataset of dicts: 'inputs' int64 [B, S], 'targets' int64 [B, T] (0-padded, S and T
      multiples of pad_to_multiple), 'inputs_length' / 'targets_length' int64 [B] (tokens
      before padding, EOS included), 'num_long_examples' int64 scalar (examples this rank
      dropped or truncated, see the module docstring); the input_pipeline.ShardPlan of this
      rank).

    Raises:
      ValueError: no files, both or neither of batch_tokens / batch_size, an unknown
        length_policy (lists the valid ones), or a budget smaller than one longest example.
    """
    if not files:
        raise ValueError("no translation tfrecords to read (files is empty)")
    if (batch_tokens is None) == (batch_size is None):
        raise ValueError(
            f"give exactly one of batch_tokens and batch_size, got batch_tokens={batch_tokens} "
            f"and batch_size={batch_size}"
        )
    if length_policy not in LENGTH_POLICIES:
        raise ValueError(
            f"Unknown length_policy {length_policy!r}; valid policies: {list(LENGTH_POLICIES)}"
        )
    for name, value in (
        ("max_input_length", max_input_length),
        ("max_target_length", max_target_length),
    ):
        if int(value) < 2:
            raise ValueError(f"{name} must be at least 2 (a token and EOS), got {value}")
    bounds = bucket_boundaries(
        max(max_input_length, max_target_length), pad_to_multiple, length_bucket_step
    )
    if batch_tokens is not None and int(batch_tokens) < bounds[-1]:
        raise ValueError(
            f"batch_tokens={batch_tokens} cannot hold one example of the longest bucket "
            f"({bounds[-1]} tokens, max length {max(max_input_length, max_target_length)} "
            f"rounded up to a multiple of {pad_to_multiple}); raise batch_tokens or lower "
            "max_input_length / max_target_length"
        )
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    policy = length_policy if is_training else "truncate"

    # Horovod: each rank reads a disjoint share (its files, or every size-th example), in
    # the image pipeline's way: training interleaves shuffled files, evaluation reads in order.
    plan = input_pipeline.shard_files_by_rank(files, rank, size)
    ds = input_pipeline.read_records(plan, rank, size, is_training, num_readers, seed)
    ds = ds.map(translation.parse_fn, num_parallel_calls=AUTOTUNE, deterministic=True)

    @tf.autograph.experimental.do_not_convert
    def count_long(count, example):
        too_long = tf.logical_or(
            tf.size(example[translation.INPUTS_KEY]) > max_input_length,
            tf.size(example[translation.TARGETS_KEY]) > max_target_length,
        )
        count += tf.cast(too_long, tf.int64)
        return count, dict(example, too_long=too_long, **{LONG_COUNT_KEY: count})

    ds = ds.scan(tf.constant(0, tf.int64), count_long)
    if policy == "filter":
        ds = ds.filter(lambda example: tf.logical_not(example["too_long"]))

    @tf.autograph.experimental.do_not_convert
    def finish(example):
        inputs = _truncate(example[translation.INPUTS_KEY], max_input_length)
        targets = _truncate(example[translation.TARGETS_KEY], max_target_length)
        return {
            translation.INPUTS_KEY: inputs,
            translation.TARGETS_KEY: targets,
            INPUTS_LENGTH_KEY: tf.size(inputs, out_type=tf.int64),
            TARGETS_LENGTH_KEY: tf.size(targets, out_type=tf.int64),
            LONG_COUNT_KEY: example[LONG_COUNT_KEY],
        }

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=True)

    if is_training:
        if shuffle_buffer_size and shuffle_buffer_size > 1:
            ds = ds.shuffle(shuffle_buffer_size, seed=seed + rank, reshuffle_each_iteration=True)
        ds = ds.repeat()

    padded_shapes = {
        translation.INPUTS_KEY: [None],
        translation.TARGETS_KEY: [None],
        INPUTS_LENGTH_KEY: [],
        TARGETS_LENGTH_KEY: [],
        LONG_COUNT_KEY: [],
    }
    if batch_size is not None and not is_training:
        ds = ds.padded_batch(int(batch_size), padded_shapes=padded_shapes)  # keeps the order
    else:
        bounds_tensor = tf.constant(bounds, tf.int64)
        if batch_tokens is not None:
            sizes = [max(1, int(batch_tokens) // bound) for bound in bounds]
        else:
            sizes = [int(batch_size)] * len(bounds)
        sizes_tensor = tf.constant(sizes, tf.int64)

        @tf.autograph.experimental.do_not_convert
        def bucket_of(example):
            length = tf.maximum(example[INPUTS_LENGTH_KEY], example[TARGETS_LENGTH_KEY])
            # The first bound >= length; truncation / filtering keep length <= the last.
            return tf.reduce_sum(tf.cast(bounds_tensor < length, tf.int64))

        def batch_bucket(key, window):
            return window.padded_batch(sizes_tensor[key], padded_shapes=padded_shapes)

        ds = ds.group_by_window(
            key_func=bucket_of,
            reduce_func=batch_bucket,
            window_size_func=lambda key: sizes_tensor[key],
        )
    ds = ds.map(lambda batch: _pad_to_multiple(batch, pad_to_multiple))

    @tf.autograph.experimental.do_not_convert
    def running_max(highest, batch):
        # Shuffling and bucketing reorder examples; the max makes the count non-decreasing.
        highest = tf.maximum(highest, batch[LONG_COUNT_KEY])
        return highest, dict(batch, **{LONG_COUNT_KEY: highest})

    ds = ds.scan(tf.constant(0, tf.int64), running_max)
    ds = ds.prefetch(prefetch_buffer_size or AUTOTUNE)
    return ds, plan
