"""The MovieLens converter (NCF's leave-one-out protocol) and the training negative sampler."""

import json
import os

import numpy as np
import pytest

from datasets import download_and_convert_data, download_and_convert_movielens, movielens
from training import tf_startup

tf2 = tf_startup.import_tensorflow()

NUM_USERS, NUM_ITEMS = 8, 250  # 99 test negatives need >= 99 unrated items per user


def _ratings(seed=0):
    """[(raw user, raw item, rating, timestamp)]: raw ids with gaps (items odd), 3-8 ratings
    for six users, two more users rating half the catalogue each (so every item is rated),
    each user's latest rating known, one user with two ratings at its latest timestamp."""
    rng = np.random.default_rng(seed)
    rows, latest = [], {}
    for user in range(NUM_USERS):
        raw_user = 10 + 3 * user
        if user < NUM_USERS - 2:
            items = rng.choice(NUM_ITEMS, size=3 + user, replace=False) * 2 + 1
        else:
            half = NUM_ITEMS // 2
            items = np.arange(half) * 2 + 1 + (user - NUM_USERS + 2) * 2 * half
        times = rng.permutation(len(items)) + 1000
        for item, time in zip(items, times, strict=True):
            rows.append((raw_user, int(item), int(rng.integers(1, 6)), int(time)))
        latest[raw_user] = int(items[np.argmax(times)])
    # User 10: a second rating at its latest timestamp, later in the file: it wins the tie.
    tie_time = max(r[3] for r in rows if r[0] == 10)
    tie_item = next(
        i for i in range(1, 2 * NUM_ITEMS, 2) if i not in {r[1] for r in rows if r[0] == 10}
    )
    rows.insert(len(rows) // 2, (10, tie_item, 4, tie_time))
    latest[10] = tie_item
    rng.shuffle(rows)
    # Put the tie's competitor before it in the file.
    first = next(k for k, r in enumerate(rows) if r[0] == 10 and r[3] == tie_time)
    second = next(k for k, r in enumerate(rows) if r[0] == 10 and r[3] == tie_time and k != first)
    if rows[first][1] == tie_item:
        rows[first], rows[second] = rows[second], rows[first]
    return rows, latest


def _write(path, rows, separator):
    with open(path, "w") as f:
        f.write("".join(separator.join(map(str, r)) + "\n" for r in rows))
    return str(path)


def _read_records(dataset_dir, split, spec):
    pattern = os.path.join(dataset_dir, movielens.FILE_PATTERN.format(split=split))
    records = []
    for path in sorted(tf2.io.gfile.glob(pattern)):
        for raw in tf2.compat.v1.io.tf_record_iterator(path):
            example = tf2.train.Example.FromString(raw)
            records.append(
                {
                    key: list(
                        example.features.feature[key].int64_list.value
                        or example.features.feature[key].float_list.value
                    )
                    for key in spec
                }
            )
    return records


def _maps(dataset_dir, name):
    with open(os.path.join(dataset_dir, name)) as f:
        return {int(raw): int(dense) for raw, dense in (line.split("\t") for line in f)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """ml-1m-style ratings.dat converted through the dispatcher: (dataset_dir, rows, latest)."""
    root = tmp_path_factory.mktemp("movielens")
    rows, latest = _ratings()
    source = _write(root / "ratings.dat", rows, "::")
    dataset_dir = str(root / "records")
    split_sizes, _ = download_and_convert_data.convert_dataset(
        "movielens", dataset_dir, num_shards=2, source=source, seed=3
    )
    assert split_sizes == {"train": len(rows) - NUM_USERS, "test": NUM_USERS}
    return dataset_dir, rows, latest


def test_round_trip_leave_one_out_and_test_negatives(converted):
    dataset_dir, rows, latest = converted
    users, items = _maps(dataset_dir, "user_map.tsv"), _maps(dataset_dir, "item_map.tsv")
    assert sorted(users) == sorted({r[0] for r in rows})
    assert list(users.values()) == list(range(len(users)))  # dense, in raw-id order
    assert sorted(items) == sorted({r[1] for r in rows})
    metadata = movielens.read_metadata(dataset_dir)
    assert (metadata["num_users"], metadata["num_items"]) == (len(users), len(items))

    dense_rated = {(users[u], items[i]) for u, i, _, _ in rows}
    test = _read_records(dataset_dir, "test", movielens.TEST_FEATURE_KEYS)
    assert sorted(r["user"][0] for r in test) == list(range(NUM_USERS))
    test_pairs = set()
    for record in test:
        user, candidates = record["user"][0], record["items"]
        raw_user = next(raw for raw, dense in users.items() if dense == user)
        assert candidates[0] == items[latest[raw_user]]  # the latest rating, tie to the later line
        assert record["labels"] == [1.0] + [0.0] * 99
        negatives = candidates[1:]
        assert len(set(negatives)) == 99
        assert not any((user, n) in dense_rated for n in negatives)  # never rated
        test_pairs.add((user, candidates[0]))
    train = _read_records(dataset_dir, "train", movielens.TRAIN_FEATURE_KEYS)
    train_pairs = {(r["user"][0], r["item"][0]) for r in train}
    assert len(train_pairs) == len(train)  # each positive written once
    assert train_pairs | test_pairs == dense_rated and not train_pairs & test_pairs


def test_tab_format_and_seeded_test_negatives(converted, tmp_path):
    """u.data-style input converts to the same records; the test negatives follow the seed."""
    dataset_dir, rows, _ = converted
    source = _write(tmp_path / "u.data", rows, "\t")
    same, other = str(tmp_path / "same"), str(tmp_path / "other")
    download_and_convert_movielens.convert(same, source=source, seed=3)
    download_and_convert_movielens.convert(other, source=source, seed=4)

    def candidates(d):
        spec = movielens.TEST_FEATURE_KEYS
        return sorted((r["user"][0], r["items"]) for r in _read_records(d, "test", spec))

    assert candidates(same) == candidates(dataset_dir)
    assert candidates(other) != candidates(dataset_dir)


def test_ratings_csv_crlf_and_byte_order_mark_convert_like_ratings_dat(converted, tmp_path):
    """Real files' quirks: ratings.csv (header, half-star ratings), CRLF line ends, a BOM."""
    dataset_dir, rows, _ = converted
    csv = tmp_path / "ratings.csv"
    body = "".join(f"{u},{i},{r - 0.5},{t}\r\n" for u, i, r, t in rows)
    csv.write_bytes(("\ufeffuserId,movieId,rating,timestamp\r\n" + body).encode("utf-8"))
    assert download_and_convert_movielens.detect_format(str(csv)) == "comma"
    out = str(tmp_path / "csv")
    download_and_convert_movielens.convert(out, source=str(csv), seed=3)
    spec = movielens.TEST_FEATURE_KEYS
    assert sorted(map(str, _read_records(out, "test", spec))) == sorted(
        map(str, _read_records(dataset_dir, "test", spec))
    )
    assert _maps(out, "user_map.tsv") == _maps(dataset_dir, "user_map.tsv")
    # The header only counts as one on the first line: later, it is a bad line.
    csv.write_text("1,2,3.5,100\nuserId,movieId,rating,timestamp\n")
    with pytest.raises(ValueError, match=f"{csv}:2: user, item and timestamp must be integers"):
        download_and_convert_movielens.read_ratings(str(csv))


@pytest.mark.parametrize(
    "line, message",
    [
        ("1::2::3", "expected 4 '::'-separated fields"),
        ("1::x::3::100", "user, item and timestamp must be integers"),
        ("1::2::good::100", "rating 'good' is not a number"),
        ("1::999::3::100", "item id 999 is outside the declared vocabulary 1..500"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    rows, _ = _ratings()
    lines = ["::".join(map(str, r)) for r in rows[:5]] + [line]
    source = tmp_path / "ratings.dat"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{source}:6: {message}"):
        download_and_convert_movielens.read_ratings(str(source), max_item_id=500)


def test_single_rating_user_is_an_error_or_dropped(tmp_path):
    rows, _ = _ratings()
    rows = rows + [(999, 1, 5, 5)]
    source = _write(tmp_path / "u.data", rows, "\t")
    with pytest.raises(ValueError, match="1 user\\(s\\) rated a single item.*drop_single"):
        download_and_convert_movielens.convert(str(tmp_path / "a"), source=source)
    split_sizes, _ = download_and_convert_movielens.convert(
        str(tmp_path / "b"), source=source, drop_single_rating_users=True
    )
    assert split_sizes["test"] == NUM_USERS
    assert movielens.read_metadata(str(tmp_path / "b"))["dropped_single_rating_users"] == 1


def test_missing_source_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.dat"):
        download_and_convert_movielens.convert(str(tmp_path), source=str(tmp_path / "nowhere.dat"))


@pytest.fixture(scope="module")
def sampler(converted):
    return movielens.NegativeSampler.from_dataset_dir(converted[0], seed=5)


def test_sampler_negatives_never_rated_four_per_positive(sampler):
    users, items, labels = sampler.epoch(0)
    positives = len(sampler.train_users)
    assert len(users) == 5 * positives and labels.sum() == positives
    assert np.all(sampler.is_rated(users[labels == 1], items[labels == 1]))
    assert not np.any(sampler.is_rated(users[labels == 0], items[labels == 0]))
    got = sorted(zip(users[labels == 1].tolist(), items[labels == 1].tolist(), strict=True))
    want = sorted(zip(sampler.train_users.tolist(), sampler.train_items.tolist(), strict=True))
    assert got == want  # every positive once per epoch


def test_sampler_resamples_each_epoch_and_is_seeded(sampler, converted):
    first, second = sampler.epoch(0), sampler.epoch(1)
    assert not np.array_equal(first[1], second[1])
    again = movielens.NegativeSampler.from_dataset_dir(converted[0], seed=5).epoch(1)
    for a, b in zip(second, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other_seed = movielens.NegativeSampler.from_dataset_dir(converted[0], seed=6).epoch(1)
    assert not np.array_equal(second[1], other_seed[1])


def test_sampler_rank_shards_are_disjoint_and_cover_the_epoch(sampler):
    whole = sampler.epoch(2)
    shards = [sampler.epoch(2, rank=r, size=3) for r in range(3)]
    positive_sets = [
        set(zip(u[y == 1].tolist(), i[y == 1].tolist(), strict=True)) for u, i, y in shards
    ]
    assert all(s for s in positive_sets)
    assert not (positive_sets[0] & positive_sets[1] or positive_sets[1] & positive_sets[2])
    assert not positive_sets[0] & positive_sets[2]
    # The union over ranks is the one-process epoch, triple for triple.
    union = sorted(t for u, i, y in shards for t in zip(u, i, y, strict=True))
    assert union == sorted(zip(*whole, strict=True))


def test_sampler_rejects_a_user_with_every_item_rated():
    with pytest.raises(ValueError, match="user 0 rated all 2 items"):
        movielens.NegativeSampler([0], [0], [0, 0], [0, 1], num_items=2)


def test_train_and_test_datasets(sampler, converted):
    """tf.data: the sampler's epochs in batches; test records parse with 100 candidates."""
    with tf2.Graph().as_default():
        dataset = movielens.train_dataset(sampler, batch_size=8, num_epochs=2)
        batch = tf2.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        test_batches = [
            tf2.compat.v1.data.make_one_shot_iterator(
                movielens.test_dataset(converted[0], batch_size=NUM_USERS, rank=r, size=2)
            ).get_next()
            for r in range(2)
        ]
        with tf2.compat.v1.Session() as session:
            labels = []
            while True:
                try:
                    labels.append(session.run(batch)["label"])
                except tf2.errors.OutOfRangeError:
                    break
            parsed = session.run(test_batches)
    labels = np.concatenate(labels)
    positives = len(sampler.train_users)
    assert len(labels) == 2 * 5 * positives and labels.sum() == 2 * positives
    for shard in parsed:
        assert shard["items"].shape == (NUM_USERS // 2, 100)
        assert np.all(shard["labels"][:, 0] == 1) and shard["labels"][:, 1:].sum() == 0
    users = [set(shard["user"][:, 0].tolist()) for shard in parsed]
    assert not users[0] & users[1] and users[0] | users[1] == set(range(NUM_USERS))


def test_metadata_is_json(converted):
    with open(os.path.join(converted[0], movielens.METADATA_FILENAME)) as f:
        assert json.load(f)["num_test_negatives"] == 99


def test_cli_options_reach_the_converter(tmp_path, capsys):
    """--ratings_format, --drop_single_rating_users and --num_test_negatives from the CLI."""
    rows, _ = _ratings()
    source = _write(tmp_path / "u.data", rows + [(999, 1, 5, 5)], "\t")
    dataset_dir = str(tmp_path / "out")
    argv = ["--dataset_name=movielens", f"--dataset_dir={dataset_dir}", f"--source={source}"]
    assert download_and_convert_data.main([*argv, "--ratings_format=colons"]) == 1
    assert "expected 4 '::'-separated fields" in capsys.readouterr().err
    assert download_and_convert_data.main(argv) == 1
    assert "drop_single_rating_users" in capsys.readouterr().err
    options = ["--drop_single_rating_users", "--num_test_negatives=20", "--max_user_id=1000"]
    assert download_and_convert_data.main([*argv, *options]) == 0
    assert f"wrote movielens to {dataset_dir}: test {NUM_USERS}" in capsys.readouterr().out
    test = _read_records(dataset_dir, "test", movielens.TEST_FEATURE_KEYS)
    assert {len(r["items"]) for r in test} == {21}
    assert movielens.read_metadata(dataset_dir)["num_test_negatives"] == 20


def test_refused_rerun_keeps_the_earlier_conversion(tmp_path):
    rows, _ = _ratings()
    dataset_dir = str(tmp_path / "out")
    download_and_convert_movielens.convert(dataset_dir, source=_write(tmp_path / "a", rows, "\t"))
    before = _maps(dataset_dir, "user_map.tsv")
    other = [(r[0] + 1, *r[1:]) for r in rows[1:]]  # other raw user ids, a rating less
    with pytest.raises(ValueError, match="pass --overwrite"):
        download_and_convert_movielens.convert(
            dataset_dir, source=_write(tmp_path / "b", other, "\t")
        )
    assert _maps(dataset_dir, "user_map.tsv") == before
    download_and_convert_movielens.convert(dataset_dir, source=str(tmp_path / "b"), overwrite=True)
    assert sorted(_maps(dataset_dir, "user_map.tsv")) == sorted(u + 1 for u in before)
