"""Converts MovieLens ratings (already on disk) to NCF's leave-one-out records.

Input: one ratings file, `user item rating timestamp` per line, either tab-separated
(ml-100k's u.data), `::`-separated (ml-1m's and ml-10m's ratings.dat) or comma-separated
with the header `userId,movieId,rating,timestamp` (the later releases' ratings.csv); the
format is detected from the first line unless given (`ratings_format`: auto, tab, colons
or comma). User and item ids
and the timestamp are integers, the rating a number. The protocol of He et al. 2017
(Neural Collaborative Filtering) and its reference code:

* implicit feedback: every rating is a positive, whatever its value (a pair rated twice
  counts once, at its latest timestamp);
* raw ids are remapped to dense ids 0..n-1 in increasing raw-id order (user_map.tsv,
  item_map.tsv);
* leave-one-out: each user's latest rating (largest timestamp; among equal timestamps the
  later line of the file) is the test positive, the others are training positives;
* 99 test negatives per user, sampled without replacement from the items the user never
  rated, by a generator seeded with (seed, user);
* training negatives are sampled at input time (datasets/movielens.py NegativeSampler).

A user with one rated item cannot be split: an error, or dropped (and counted) with
drop_single_rating_users. max_user_id / max_item_id declare the vocabulary (raw ids
1..max, as MovieLens numbers them); an id outside it is an error naming file and line.

    python datasets/download_and_convert_data.py --dataset_name=movielens \\
        --source=ml-1m/ratings.dat --dataset_dir=data/ml-1m
"""

import importlib
import os

import numpy as np

from datasets import movielens, sharded_conversion

tf2 = sharded_conversion.tf2

NAME = movielens.NAME
DEFAULT_NUM_SHARDS = 4
RATINGS_FORMATS = {"tab": "\t", "colons": "::", "comma": ","}
#: The header line of the later releases' ratings.csv (ml-latest, ml-20m, ml-25m).
CSV_HEADER = "userId,movieId,rating,timestamp"


def detect_format(path):
    """'colons' when the first non-blank line holds '::', 'comma' when it holds a comma
    (ratings.csv), else 'tab'."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return "colons" if "::" in line else "comma" if "," in line else "tab"
    raise ValueError(f"{path} is empty: expected 'user item rating timestamp' lines")


def read_ratings(path, ratings_format="auto", max_user_id=None, max_item_id=None):
    """Reads a ratings file into int64 arrays (users, items, timestamps), in file order.

    Raises:
      FileNotFoundError: no such file.
      ValueError: a line without 4 fields, a non-integer id or timestamp, a non-numeric
        rating, or an id outside a declared vocabulary (names file and line).
    """
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(
            f"movielens needs --source, a ratings file (ml-100k u.data or ml-1m "
            f"ratings.dat); got {path!r}"
        )
    if ratings_format == "auto":
        ratings_format = detect_format(path)
    if ratings_format not in RATINGS_FORMATS:
        raise ValueError(
            f"unknown ratings_format {ratings_format!r}; valid: auto, {', '.join(RATINGS_FORMATS)}"
        )
    separator = RATINGS_FORMATS[ratings_format]
    limits = {"user": max_user_id, "item": max_item_id}
    users, items, timestamps = [], [], []
    seen_a_line = False
    # utf-8-sig: a byte-order mark (a file saved by a spreadsheet) is not part of an id.
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            fields = [field.strip() for field in line.split(separator)]
            where = f"{path}:{line_number}"
            if not seen_a_line:
                seen_a_line = True
                if separator == "," and line.replace(" ", "") == CSV_HEADER:
                    continue  # ratings.csv's header
            if len(fields) != 4:
                raise ValueError(
                    f"{where}: expected 4 {separator!r}-separated fields (user item rating "
                    f"timestamp; format {ratings_format}), got {len(fields)}: {line[:80]!r}"
                )
            try:
                user, item, timestamp = int(fields[0]), int(fields[1]), int(fields[3])
            except ValueError:
                raise ValueError(
                    f"{where}: user, item and timestamp must be integers, got {line[:80]!r}"
                ) from None
            try:
                float(fields[2])
            except ValueError:
                raise ValueError(f"{where}: rating {fields[2]!r} is not a number") from None
            for kind, value in (("user", user), ("item", item)):
                limit = limits[kind]
                if limit is not None and not 1 <= value <= limit:
                    raise ValueError(
                        f"{where}: {kind} id {value} is outside the declared vocabulary "
                        f"1..{limit} (max_{kind}_id)"
                    )
            users.append(user)
            items.append(item)
            timestamps.append(timestamp)
    if not users:
        raise ValueError(f"{path} holds no rating")
    return (
        np.asarray(users, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.asarray(timestamps, dtype=np.int64),
    )


def leave_one_out(users, items, timestamps, drop_single_rating_users=False, path="ratings"):
    """NCF's split of dense-id ratings (in file order).

    Returns:
      (train_users, train_items, test_users, test_items, dropped users count); test
      arrays hold one positive per user, in user order.

    Raises:
      ValueError: a user with a single rated item (unless drop_single_rating_users).
    """
    line_order = np.arange(len(users))
    # Sort by user, then timestamp, then line: the last of each user is its latest.
    order = np.lexsort((line_order, timestamps, users))
    users, items = users[order], items[order]
    # A pair rated twice is one positive, kept at its latest (last sorted) position.
    keys = users * (int(items.max()) + 1) + items
    _, last_of_pair = np.unique(keys[::-1], return_index=True)
    keep = np.sort(len(keys) - 1 - last_of_pair)
    users, items = users[keep], items[keep]
    is_last = np.r_[users[1:] != users[:-1], True]
    counts = np.bincount(users)
    single = np.flatnonzero(counts == 1)
    dropped = 0
    if len(single):
        if not drop_single_rating_users:
            raise ValueError(
                f"{path}: {len(single)} user(s) rated a single item (dense ids "
                f"{single[:5].tolist()}...), so leave-one-out leaves them no training "
                "positive; pass --drop_single_rating_users to drop them (NCF's data has >= 20 "
                "ratings per user)"
            )
        keep_rows = counts[users] > 1
        users, items, is_last = users[keep_rows], items[keep_rows], is_last[keep_rows]
        dropped = len(single)
    return users[~is_last], items[~is_last], users[is_last], items[is_last], dropped


def dense_ids(raw_ids):
    """(sorted distinct raw ids, dense id of each input): dense ids in increasing raw order."""
    vocabulary, inverse = np.unique(raw_ids, return_inverse=True)
    return vocabulary, inverse.astype(np.int64)


def sample_test_negatives(user, rated_items, num_items, num_negatives, seed):
    """num_negatives distinct items user never rated, from a generator seeded (seed, user)."""
    candidates = np.setdiff1d(np.arange(num_items), rated_items, assume_unique=False)
    if len(candidates) < num_negatives:
        raise ValueError(
            f"user {user} left only {len(candidates)} unrated item(s) of {num_items}; "
            f"{num_negatives} test negatives are needed"
        )
    rng = np.random.default_rng([int(seed), int(user)])
    return rng.choice(candidates, size=num_negatives, replace=False)


def encode_train(item):
    """(user, item) -> a training-positive tf.train.Example (sharded_conversion encode_fn)."""
    user, item_id = item
    features = {
        "user": tf2.train.Feature(int64_list=tf2.train.Int64List(value=[user])),
        "item": tf2.train.Feature(int64_list=tf2.train.Int64List(value=[item_id])),
    }
    return tf2.train.Example(features=tf2.train.Features(feature=features))


def encode_test(item):
    """(user, [positive, negatives...]) -> a test tf.train.Example, labels 1, 0, ..., 0."""
    user, candidates = item
    labels = [1.0] + [0.0] * (len(candidates) - 1)
    features = {
        "user": tf2.train.Feature(int64_list=tf2.train.Int64List(value=[user])),
        "items": tf2.train.Feature(int64_list=tf2.train.Int64List(value=list(candidates))),
        "labels": tf2.train.Feature(float_list=tf2.train.FloatList(value=labels)),
    }
    return tf2.train.Example(features=tf2.train.Features(feature=features))


def _encode(item):
    split, payload = item
    return encode_train(payload) if split == "train" else encode_test(payload)


def _write_map(path, vocabulary):
    sharded_conversion.atomic_write_text(
        path, "".join(f"{raw}\t{dense}\n" for dense, raw in enumerate(vocabulary.tolist()))
    )


def convert(
    dataset_dir,
    source=None,
    ratings_format="auto",
    num_test_negatives=movielens.DEFAULT_NUM_TEST_NEGATIVES,
    drop_single_rating_users=False,
    max_user_id=None,
    max_item_id=None,
    seed=0,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=1,
    overwrite=False,
    **_,
):
    """Converts one ratings file into dataset_dir (see the module docstring for the files).

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits: train = training
      positives, test = users.

    Raises:
      FileNotFoundError: no ratings file.
      ValueError: a bad line (names file and line), a single-rating user, an id outside the
        declared vocabulary, or too few unrated items for the test negatives.
    """
    raw_users, raw_items, timestamps = read_ratings(
        source, ratings_format, max_user_id, max_item_id
    )
    user_vocabulary, users = dense_ids(raw_users)
    item_vocabulary, items = dense_ids(raw_items)
    num_users, num_items = len(user_vocabulary), len(item_vocabulary)
    train_users, train_items, test_users, test_items, dropped = leave_one_out(
        users, items, timestamps, drop_single_rating_users, path=source
    )
    rated_users = np.concatenate([train_users, test_users])
    rated_items = np.concatenate([train_items, test_items])
    order = np.lexsort((rated_items, rated_users))
    rated_users, rated_items = rated_users[order], rated_items[order]
    starts = np.searchsorted(rated_users, test_users)
    ends = np.searchsorted(rated_users, test_users, side="right")
    test_records = []
    for user, positive, start, end in zip(test_users, test_items, starts, ends, strict=True):
        negatives = sample_test_negatives(
            user, rated_items[start:end], num_items, num_test_negatives, seed
        )
        test_records.append(("test", (int(user), [int(positive), *negatives.tolist()])))
    train_records = [
        ("train", (int(u), int(i))) for u, i in zip(train_users, train_items, strict=True)
    ]

    fingerprint = sharded_conversion.fingerprint_of(
        (train_records, test_records, num_users, num_items)
    )
    module = importlib.import_module("datasets.download_and_convert_movielens")
    result = sharded_conversion.convert_splits(
        dataset_dir,
        NAME,
        {"train": train_records, "test": test_records},
        module._encode,
        num_shards,
        None,
        fingerprint=fingerprint,
        num_workers=num_workers,
        strict=True,
        overwrite=overwrite,
    )
    # Written after the shards: a refused run (stale shards, no --overwrite) leaves an
    # earlier conversion's files as they were; a run killed just before this line leaves
    # them missing (their readers name the file) until a re-run, which reuses the shards.
    _write_map(os.path.join(dataset_dir, movielens.USER_MAP_FILENAME), user_vocabulary)
    _write_map(os.path.join(dataset_dir, movielens.ITEM_MAP_FILENAME), item_vocabulary)
    interactions = os.path.join(dataset_dir, movielens.INTERACTIONS_FILENAME)
    with open(interactions + sharded_conversion.PARTIAL_SUFFIX, "wb") as f:
        np.savez(
            f,
            train_users=train_users,
            train_items=train_items,
            rated_users=rated_users,
            rated_items=rated_items,
        )
    os.replace(interactions + sharded_conversion.PARTIAL_SUFFIX, interactions)
    metadata = {
        "source": os.path.abspath(source),
        "num_users": num_users,
        "num_items": num_items,
        "num_test_negatives": num_test_negatives,
        "num_train_positives": len(train_records),
        "dropped_single_rating_users": dropped,
        "seed": seed,
    }
    sharded_conversion.atomic_write_json(
        os.path.join(dataset_dir, movielens.METADATA_FILENAME), metadata
    )
    return result
