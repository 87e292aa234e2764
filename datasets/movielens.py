"""MovieLens as NCF uses it (He et al. 2017): the converted records and the training sampler.

`download_and_convert_movielens.py` writes, into a dataset_dir:

    movielens_train-*.tfrecord  one record per training positive: user, item (int64 [1])
    movielens_test-*.tfrecord   one record per user: user (int64 [1]), items (int64 [100]:
                                the held-out positive FIRST, then 99 sampled negatives),
                                labels (float [100]: 1, 0, ..., 0)
    movielens_interactions.npz  train_users, train_items (the training positives) and
                                rated_users, rated_items (every pair rated, the test
                                positives too): what NegativeSampler needs
    user_map.tsv, item_map.tsv  raw id TAB dense id (dense ids 0..n-1)
    movielens.json              num_users, num_items, num_test_negatives, split sizes...

Training negatives are not stored: `NegativeSampler` draws 4 per positive afresh each
epoch (NCF's protocol), from items the user never rated, seeded by (seed, epoch) and
sharded by rank:

    sampler = movielens.NegativeSampler.from_dataset_dir(dataset_dir, seed=0)
    users, items, labels = sampler.epoch(epoch, rank=hvd.rank(), size=hvd.size())
    dataset = movielens.train_dataset(sampler, batch_size=256, rank=..., size=...)
"""

import json
import os

import numpy as np

from training import input_pipeline, tf_startup

tf2 = tf_startup.import_tensorflow()

NAME = "movielens"
FILE_PATTERN = NAME + "_{split}-*.tfrecord"
METADATA_FILENAME = "movielens.json"
INTERACTIONS_FILENAME = "movielens_interactions.npz"
USER_MAP_FILENAME = "user_map.tsv"
ITEM_MAP_FILENAME = "item_map.tsv"
DEFAULT_NUM_TEST_NEGATIVES = 99
DEFAULT_NUM_TRAIN_NEGATIVES = 4
TRAIN_FEATURE_KEYS = ("user", "item")
TEST_FEATURE_KEYS = ("user", "items", "labels")


def train_feature_spec():
    """tf.io parsing spec of a training-positive record."""
    return {
        "user": tf2.io.FixedLenFeature([1], tf2.int64),
        "item": tf2.io.FixedLenFeature([1], tf2.int64),
    }


def test_feature_spec(num_candidates=DEFAULT_NUM_TEST_NEGATIVES + 1):
    """tf.io parsing spec of a test record (positive first among num_candidates items)."""
    return {
        "user": tf2.io.FixedLenFeature([1], tf2.int64),
        "items": tf2.io.FixedLenFeature([num_candidates], tf2.int64),
        "labels": tf2.io.FixedLenFeature([num_candidates], tf2.float32),
    }


def read_metadata(dataset_dir):
    """The movielens.json a conversion wrote (FileNotFoundError names the file)."""
    path = os.path.join(dataset_dir, METADATA_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: convert the ratings first (download_and_convert_data.py "
            "--dataset_name=movielens --source=<ratings file>)"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _pair_keys(users, items, num_items):
    return np.asarray(users, dtype=np.int64) * num_items + np.asarray(items, dtype=np.int64)


class NegativeSampler:
    """Training triples (user, item, label): every positive with fresh sampled negatives.

    Each epoch the positives are shuffled by a generator seeded with (seed, epoch); each
    positive is followed by num_negatives items drawn uniformly from those its user never
    rated (rejection sampling, the same generator). Rank r of size takes every size-th
    triple group from r on, so ranks are disjoint, together cover the epoch, and the
    union over ranks does not depend on the number of ranks (each rank draws the whole
    epoch and keeps its share: numpy draws ~5 * 10^7 ids a second here).
    """

    def __init__(
        self,
        train_users,
        train_items,
        rated_users,
        rated_items,
        num_items,
        num_negatives=DEFAULT_NUM_TRAIN_NEGATIVES,
        seed=0,
    ):
        """Args:
        train_users, train_items: int arrays, the training positives (dense ids).
        rated_users, rated_items: int arrays, every pair a user rated (never a negative).
        num_items: size of the item vocabulary (ids 0..num_items-1).
        num_negatives: negatives per positive (NCF: 4).
        seed: base seed; epoch e draws from a generator seeded with (seed, e).
        """
        self.train_users = np.asarray(train_users, dtype=np.int64)
        self.train_items = np.asarray(train_items, dtype=np.int64)
        self.num_items = int(num_items)
        self.num_negatives = int(num_negatives)
        self.seed = int(seed)
        self._rated_keys = np.unique(_pair_keys(rated_users, rated_items, self.num_items))
        if self.train_users.shape != self.train_items.shape:
            raise ValueError("train_users and train_items differ in length")
        rated_per_user = np.bincount(np.asarray(rated_users, dtype=np.int64))
        if len(rated_per_user) and rated_per_user.max() >= self.num_items:
            user = int(rated_per_user.argmax())
            raise ValueError(f"user {user} rated all {self.num_items} items: no negative to sample")

    @classmethod
    def from_dataset_dir(cls, dataset_dir, num_negatives=DEFAULT_NUM_TRAIN_NEGATIVES, seed=0):
        """A sampler over what download_and_convert_movielens wrote into dataset_dir."""
        metadata = read_metadata(dataset_dir)
        with np.load(os.path.join(dataset_dir, INTERACTIONS_FILENAME)) as arrays:
            return cls(
                arrays["train_users"],
                arrays["train_items"],
                arrays["rated_users"],
                arrays["rated_items"],
                metadata["num_items"],
                num_negatives=num_negatives,
                seed=seed,
            )

    def is_rated(self, users, items):
        """Bool array: whether each (user, item) pair was rated."""
        keys = _pair_keys(users, items, self.num_items)
        where = np.searchsorted(self._rated_keys, keys)
        where = np.minimum(where, len(self._rated_keys) - 1)
        return self._rated_keys[where] == keys

    def epoch(self, epoch, rank=0, size=1):
        """(users, items, labels) of one epoch's share of rank: int64, int64, float32 arrays.

        Laid out in groups of 1 + num_negatives: a positive (label 1) then its negatives.
        """
        if not 0 <= rank < size:
            raise ValueError(f"rank must be in [0, size={size}), got {rank}")
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(len(self.train_users))
        users = self.train_users[order]
        negative_users = np.repeat(users, self.num_negatives)
        negatives = rng.integers(0, self.num_items, size=len(negative_users))
        rejected = np.flatnonzero(self.is_rated(negative_users, negatives))
        while len(rejected):
            negatives[rejected] = rng.integers(0, self.num_items, size=len(rejected))
            rejected = rejected[self.is_rated(negative_users[rejected], negatives[rejected])]
        group = 1 + self.num_negatives
        items = np.empty((len(users), group), dtype=np.int64)
        items[:, 0] = self.train_items[order]
        items[:, 1:] = negatives.reshape(len(users), self.num_negatives)
        labels = np.zeros((len(users), group), dtype=np.float32)
        labels[:, 0] = 1.0
        users = np.repeat(users[:, None], group, axis=1)
        # Horovod: each rank keeps every size-th positive group, so shards are disjoint.
        share = slice(rank, None, size)
        return users[share].reshape(-1), items[share].reshape(-1), labels[share].reshape(-1)


def train_dataset(sampler, batch_size, rank=0, size=1, num_epochs=None, first_epoch=0):
    """A tf.data pipeline of {'user', 'item', 'label'} batches from a NegativeSampler.

    Epoch e (from first_epoch, for a resumed run) draws its triples with sampler.epoch(e,
    rank, size) and shuffles them within the epoch with the same seed; the last batch of
    an epoch may be short. num_epochs None: repeat forever.
    """

    def batches():
        epoch = first_epoch
        while num_epochs is None or epoch < first_epoch + num_epochs:
            users, items, labels = sampler.epoch(epoch, rank, size)
            # Mix each positive's group apart, same on every run.
            order = np.random.default_rng([sampler.seed, epoch, 1]).permutation(len(users))
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                yield {"user": users[chosen], "item": items[chosen], "label": labels[chosen]}
            epoch += 1

    signature = {
        "user": tf2.TensorSpec([None], tf2.int64),
        "item": tf2.TensorSpec([None], tf2.int64),
        "label": tf2.TensorSpec([None], tf2.float32),
    }
    return tf2.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)


def test_files(dataset_dir):
    """Sorted test-split shard paths (FileNotFoundError when there are none)."""
    pattern = os.path.join(dataset_dir, FILE_PATTERN.format(split="test"))
    files = sorted(tf2.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no MovieLens test records match {pattern}")
    return files


def test_dataset(dataset_dir, batch_size, rank=0, size=1):
    """Test records (one per user: 100 candidates, positive first), sharded by rank.

    Users are split across ranks as the image pipeline shards (whole files when they divide
    among the ranks, else every size-th record), so each user is evaluated exactly once
    when the ranks' HR/NDCG sums are added.
    """
    num_candidates = read_metadata(dataset_dir)["num_test_negatives"] + 1
    spec = test_feature_spec(num_candidates)
    # Horovod: a disjoint share of the users on every rank.
    plan = input_pipeline.shard_files_by_rank(test_files(dataset_dir), rank, size)
    dataset = input_pipeline.read_records(plan, rank, size, is_training=False)
    return dataset.batch(batch_size).map(lambda records: tf2.io.parse_example(records, spec))
