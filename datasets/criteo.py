"""Criteo click logs as the CTR models read them: feature keys, parsing spec, vocabulary facts.

`download_and_convert_criteo.py` writes, into a dataset_dir:

    criteo_{train,validation,test}-*.tfrecord  one record per impression:
        label   float [1]    1.0 clicked, 0.0 not
        dense   float [13]   log(max(I, 0) + 1) of I1..I13 (a missing value is 0)
        sparse  int64 [26]   C1..C26 as rows of ONE embedding table: field f's ids are
                             offsets[f] + its id in the field, 0 in a field its OOV row
    criteo.json          field_sizes, offsets, num_rows (the table's rows), min_count or
                         hash_buckets, split sizes
    criteo_vocab/C{n}.txt  (vocabulary mode) the field's kept values, value TAB train count
                         per line; line k (from 0) is the field's id k + 1

A model with one table per field subtracts `offsets` (or uses field_sizes alone).
"""

import json
import os

from training import input_pipeline, tf_startup

tf2 = tf_startup.import_tensorflow()

NAME = "criteo"
FILE_PATTERN = NAME + "_{split}-*.tfrecord"
METADATA_FILENAME = "criteo.json"
VOCABULARY_DIRNAME = "criteo_vocab"
NUM_DENSE = 13
NUM_SPARSE = 26
NUM_FIELDS = 1 + NUM_DENSE + NUM_SPARSE
DENSE_NAMES = tuple(f"I{i}" for i in range(1, NUM_DENSE + 1))
SPARSE_NAMES = tuple(f"C{i}" for i in range(1, NUM_SPARSE + 1))
FEATURE_KEYS = ("label", "dense", "sparse")
OOV_ID = 0  # in every field, before the offset


def feature_spec():
    """tf.io parsing spec of one record."""
    return {
        "label": tf2.io.FixedLenFeature([1], tf2.float32),
        "dense": tf2.io.FixedLenFeature([NUM_DENSE], tf2.float32),
        "sparse": tf2.io.FixedLenFeature([NUM_SPARSE], tf2.int64),
    }


def read_metadata(dataset_dir):
    """The criteo.json a conversion wrote (FileNotFoundError names the file)."""
    path = os.path.join(dataset_dir, METADATA_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: convert the logs first (download_and_convert_data.py "
            "--dataset_name=criteo --source=<train.txt>)"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_dataset(dataset_dir, split, batch_size, rank=0, size=1):
    """Batches of {'label', 'dense', 'sparse'} of one split in one ordered pass, sharded by
    rank as the image pipeline shards (training/input_pipeline.py: whole files when they
    divide among the ranks, else every size-th record)."""
    pattern = os.path.join(dataset_dir, FILE_PATTERN.format(split=split))
    files = sorted(tf2.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no Criteo {split} records match {pattern}")
    # Horovod: a disjoint share of the records on every rank.
    plan = input_pipeline.shard_files_by_rank(files, rank, size)
    dataset = input_pipeline.read_records(plan, rank, size, is_training=False)
    spec = feature_spec()
    return dataset.batch(batch_size).map(lambda records: tf2.io.parse_example(records, spec))
