"""Parallel, resumable writing of sharded TF-Slim tfrecords: the machinery of every converter.

A converter lists, per split, the items to store (pixel arrays or image files) and an
`encode_fn(item) -> tf.train.Example` that turns one item into a record; `convert_splits`
does the rest:

* splits each split's items, in order, into contiguous shards named
  {name}_{split}-{index:05d}-of-{count:05d}.tfrecord;
* writes the shards in parallel (a spawn-started process pool: the parent may already run
  TensorFlow, which is not fork-safe), each to `<shard>.partial` first and renamed when
  complete, so an interrupted run never leaves a half shard that looks whole;
* on a re-run skips the shards already complete, so an interrupted conversion resumes
  and ends with byte-identical files. A fingerprint of the input and options, kept in
  `.{name}_{split}.fingerprint`, makes sure reused shards come from the same input;
* skips items whose encode_fn raises `UnreadableItem` (counting and logging them), or
  stops at the first one in strict mode;
* writes `labels.txt` and `split_sizes.json` last, so their presence marks a finished run;
* shows its progress on stderr with tqdm (shards done, records written).
"""

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import sys
import time

from tqdm import tqdm

from datasets import dataset_factory
from training import tf_startup

tf2 = tf_startup.import_tensorflow()

PARTIAL_SUFFIX = ".partial"
# Test hook: seconds each shard writer sleeps after completing a shard, so a test can kill
# a conversion mid-way at a known point.
SLEEP_AFTER_SHARD_ENV = "TFZOO_CONVERT_SLEEP_AFTER_SHARD"

logger = logging.getLogger("tfzoo.convert")


class UnreadableItem(Exception):  # noqa: N818  (it is a condition, not a failure of the tool)
    """Raised by an encode_fn for an input item that cannot be stored (names the item)."""


def boolean_argument(value):
    """An argparse `type` for the converters' true/false options (1/0, true/false, yes/no)."""
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def fingerprint_of(obj):
    """A short, stable hash of a picklable description of a conversion's input and options."""
    return hashlib.sha256(pickle.dumps(obj, protocol=4)).hexdigest()[:32]


def split_into_shards(items, num_shards):
    """Splits a list into num_shards contiguous, nearly equal chunks (in order)."""
    bounds = [len(items) * i // num_shards for i in range(num_shards + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(num_shards)]


def atomic_write_text(path, text):
    """Writes `text` to `path` through `<path>.partial`: a killed run leaves no half file."""
    partial = path + PARTIAL_SUFFIX
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def atomic_write_json(path, obj, ensure_ascii=True):
    """`obj` as indented, key-sorted JSON (and a final newline), written atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=ensure_ascii) + "\n"
    atomic_write_text(path, text)


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _count_records(path):
    """Number of records in a complete shard, or None if the file is corrupt."""
    try:
        return sum(1 for _ in tf2.compat.v1.io.tf_record_iterator(path))
    except (tf2.errors.OpError, OSError):
        return None


def _write_shard(task):
    """Writes one shard; runs in a worker process. Returns (path, num_written, skipped)."""
    path, encode_fn, items, strict = task
    partial = path + PARTIAL_SUFFIX
    written, skipped = 0, []
    try:
        with tf2.io.TFRecordWriter(partial) as writer:
            for item in items:
                try:
                    example = encode_fn(item)
                except UnreadableItem as e:
                    if strict:
                        raise ValueError(f"{e} (stopping: strict mode)") from None
                    skipped.append(str(e))
                    continue
                writer.write(example.SerializeToString(deterministic=True))
                written += 1
        os.replace(partial, path)
    except BaseException:
        _remove_quietly(partial)
        raise
    sleep_seconds = float(os.environ.get(SLEEP_AFTER_SHARD_ENV) or 0)
    if sleep_seconds:
        time.sleep(sleep_seconds)
    return path, written, skipped


def _fingerprint_path(output_dir, name, split):
    return os.path.join(output_dir, f".{name}_{split}.fingerprint")


def _prepare_split(output_dir, name, split, fingerprint, overwrite):
    """Removes partial files and stale shards of one split; records its fingerprint."""
    prefix = f"{name}_{split}-"
    fingerprint_path = _fingerprint_path(output_dir, name, split)
    existing = []
    for filename in sorted(os.listdir(output_dir)):
        if not filename.startswith(prefix):
            continue
        path = os.path.join(output_dir, filename)
        if filename.endswith(PARTIAL_SUFFIX):
            _remove_quietly(path)  # left by an interrupted run
        elif filename.endswith(".tfrecord"):
            existing.append(path)
    old_fingerprint = None
    if os.path.exists(fingerprint_path):
        with open(fingerprint_path, encoding="utf-8") as f:
            old_fingerprint = f.read().strip()
    if existing and old_fingerprint != fingerprint:
        if not overwrite:
            raise ValueError(
                f"{output_dir} already holds {len(existing)} '{name}' {split} shards (e.g. "
                f"{os.path.basename(existing[0])}) written from other input or options; "
                "pass --overwrite to replace them, or choose another --dataset_dir"
            )
        logger.info("removing %d stale %s %s shards", len(existing), name, split)
        for path in existing:
            os.remove(path)
    atomic_write_text(fingerprint_path, fingerprint + "\n")


def convert_splits(
    output_dir,
    name,
    split_items,
    encode_fn,
    num_shards,
    labels_to_names,
    fingerprint,
    num_workers=2,
    strict=False,
    overwrite=False,
):
    """Writes every split of one dataset as sharded tfrecords, plus labels.txt and split_sizes.json.

    Args:
      output_dir: the dataset_dir to write into (created if missing).
      name: dataset name, the file name prefix (a key of dataset_factory.DATASETS).
      split_items: dict split -> list of picklable items, in the order to store them.
      encode_fn: module-level function item -> tf.train.Example; raises UnreadableItem for
        an item to skip.
      num_shards: int, or dict split -> int; a split never gets more shards than items.
      labels_to_names: dict int -> class name, written to labels.txt (None: no labels.txt).
      fingerprint: string identifying the input and options (see fingerprint_of); shards
        of an earlier run are reused only when it matches.
      num_workers: processes writing shards in parallel (1: in this process).
      strict: stop at the first unreadable item instead of skipping it.
      overwrite: replace shards that an earlier run wrote from other input or options.

    Returns:
      (split_sizes dict split -> records written, skipped list of messages).

    Raises:
      ValueError: an unreadable item in strict mode, or stale shards without overwrite.
    """
    os.makedirs(output_dir, exist_ok=True)
    split_sizes_path = os.path.join(output_dir, dataset_factory.SPLIT_SIZES_FILENAME)
    # Until this run finishes, the directory must not look like a finished conversion.
    _remove_quietly(split_sizes_path)

    tasks, split_sizes = [], {}
    for split, items in split_items.items():
        if not items:
            continue
        count = num_shards[split] if isinstance(num_shards, dict) else num_shards
        count = max(1, min(int(count), len(items)))
        split_fingerprint = fingerprint_of((fingerprint, name, split, count))
        _prepare_split(output_dir, name, split, split_fingerprint, overwrite)
        split_sizes[split] = 0
        for index, shard_items in enumerate(split_into_shards(items, count)):
            path = os.path.join(
                output_dir, dataset_factory.shard_filename(name, split, index, count)
            )
            tasks.append((split, (path, encode_fn, shard_items, strict)))

    progress = tqdm(
        total=len(tasks),
        desc=name,
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar:30}| {n_fmt}/{total_fmt} shards"
        "{postfix} [{elapsed}<{remaining}]",
        postfix="0 records",
    )
    records_done = 0

    def advance(records):
        nonlocal records_done
        records_done += records
        progress.set_postfix_str(f"{records_done} records", refresh=False)
        progress.update(1)

    pending = []
    for split, task in tasks:
        if os.path.exists(task[0]):
            records = _count_records(task[0])
            if records is not None:  # complete shard from an interrupted run
                split_sizes[split] += records
                advance(records)
                continue
            logger.warning("rewriting corrupt shard %s", task[0])
            os.remove(task[0])
        pending.append((split, task))

    skipped = []
    split_of_path = {task[0]: split for split, task in pending}
    workers = max(1, min(int(num_workers), len(pending)))
    try:
        if workers == 1:
            results = map(_write_shard, [task for _, task in pending])
            for path, written, shard_skipped in results:
                split_sizes[split_of_path[path]] += written
                skipped.extend(shard_skipped)
                advance(written)
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers) as pool:
                results = pool.imap_unordered(_write_shard, [task for _, task in pending])
                for path, written, shard_skipped in results:
                    split_sizes[split_of_path[path]] += written
                    skipped.extend(shard_skipped)
                    advance(written)
    except ValueError:
        # Bad input (strict mode): the conversion cannot finish as it is, so remove what
        # this run wrote. An interrupted run (any other exception) keeps its complete shards.
        for _, task in pending:
            _remove_quietly(task[0])
        for split in split_sizes:
            if not any(s == split and os.path.exists(t[0]) for s, t in tasks):
                _remove_quietly(_fingerprint_path(output_dir, name, split))
        raise
    finally:
        progress.close()
        # A failed or interrupted run leaves no partial shard.
        for _, task in pending:
            _remove_quietly(task[0] + PARTIAL_SUFFIX)

    if skipped:
        logger.warning(
            "skipped %d unreadable input(s):\n  %s", len(skipped), "\n  ".join(sorted(skipped))
        )
    if labels_to_names is not None:  # None: a dataset without classes (translation)
        labels_path = os.path.join(output_dir, dataset_factory.LABELS_FILENAME)
        atomic_write_text(
            labels_path, "".join(f"{k}:{labels_to_names[k]}\n" for k in sorted(labels_to_names))
        )
    atomic_write_json(split_sizes_path, split_sizes)
    return split_sizes, skipped
