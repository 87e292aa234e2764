"""Model-parallel embedding tables: 2 ranks (mpirun) against one process with the whole table."""

import json
import os

import numpy as np
import pytest

from rec_models import layers, sharded_embedding
from slim_compat import tf
from training import distributed

try:
    from tests.training.test_horovod import launch
except ImportError:  # pragma: no cover - run from another root
    launch = None

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sharded_embedding_driver.py")


def test_shard_layout_round_robin():
    assert sharded_embedding.shard_rows(23, 2) == 12
    assert sharded_embedding.owned_rows(23, 1, 2).tolist() == list(range(1, 23, 2))
    owned = np.concatenate([sharded_embedding.owned_rows(10, r, 3) for r in range(3)])
    assert sorted(owned.tolist()) == list(range(10))


def test_one_rank_table_matches_a_plain_lookup_and_is_rank_local(graph):
    ids = tf.constant([[3, 1, 3], [0, 4, 4]], tf.int64)
    mp = sharded_embedding.ModelParallel(None)
    rows = layers.Embeddings(mp).lookup("t", ids, 5, 2)
    (shard,) = distributed.rank_local_variables()
    assert shard.op.name == "t/shard" and shard.shape.as_list() == [5, 2]
    grad = tf.gradients(tf.reduce_sum(rows * tf.constant([1.0, 2.0])), shard)[0]
    assert isinstance(grad, tf.IndexedSlices)
    with tf.Session() as s:
        s.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        table, got, g = s.run([shard, rows, tf.convert_to_tensor(grad)])
    np.testing.assert_array_equal(got, table[[[3, 1, 3], [0, 4, 4]]])
    expected = np.zeros((5, 2), np.float32)
    for i in [3, 1, 3, 0, 4, 4]:
        expected[i] += [1.0, 2.0]
    np.testing.assert_allclose(g, expected)


def test_resume_without_the_shards_is_an_error(graph, tmp_path):
    mp = sharded_embedding.ModelParallel(None)
    layers.Embeddings(mp).lookup("t", tf.constant([0]), 5, 2)
    step = tf.train.get_or_create_global_step()
    hook = sharded_embedding.ShardCheckpointHook(str(tmp_path), 0, 1, save_steps=10)
    hook.begin()
    with tf.Session() as s:
        s.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        s.run(step.assign(30))
        with pytest.raises(FileNotFoundError, match="resuming at step 30.*rank0-of-1"):
            hook.after_create_session(s, None)


@pytest.mark.slow
@pytest.mark.horovod
def test_two_ranks_train_like_one_process_holding_the_whole_table(tmp_path):
    # 6 momentum steps, checkpointed and resumed at step 4: the shards, their slots and
    # the dense weights must all come back for the result to match.
    one, _ = launch(
        str(tmp_path / "one"), ["whole", "8", "6", "4"], np_=1, launcher="none", driver=DRIVER
    )
    two, _ = launch(str(tmp_path / "two"), ["sharded", "4", "6", "4"], driver=DRIVER)
    whole = one[0]["weights"]["table"]
    assert whole.shape == (23, 4)
    for rank, info in enumerate(two):
        assert info["size"] == 2 and info["step"] == 6
        # Each rank holds only its own rows (12 and 11 of 23, the last one padding).
        assert info["table_shape"] == [12, 4]
        owned = info["owned_rows"]
        assert owned == list(range(rank, 23, 2))
        shard = info["weights"]["table"]
        np.testing.assert_allclose(shard[: len(owned)], whole[owned], rtol=1e-5, atol=1e-6)
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(info["weights"][name], one[0]["weights"][name], atol=1e-6)
        assert {"model.ckpt-2.index", "model.ckpt-4.index", "model.ckpt-6.index"} <= set(
            info["shard_checkpoints"]
        )
    # The table moved away from its start, so the match is not the initial table's.
    start = np.random.default_rng(3).normal(0, 0.5, (23, 4)).astype(np.float32)
    assert np.abs(whole - start).max() > 0.1
    table = sharded_embedding.assemble_table(str(tmp_path / "two" / "train"), "table", 2, 23)
    np.testing.assert_allclose(table, whole, rtol=1e-5, atol=1e-6)
    with open(os.path.join(tmp_path, "two", "rank0.json")) as f:
        assert json.load(f)["rank"] == 0


class _Rank:
    """A ModelParallel of rank `rank` of `size` without Horovod (no lookup is run)."""

    def __init__(self, rank, size):
        self.hvd, self.rank, self.size = None, rank, size


def test_a_shards_optimizer_slots_are_rank_local_and_outside_the_shared_saver(graph):
    from training import trainer

    rows = layers.Embeddings(sharded_embedding.ModelParallel(None)).lookup(
        "t", tf.constant([1, 3]), 5, 2
    )
    dense = tf.get_variable("w", [2], initializer=tf.ones_initializer())
    loss = tf.reduce_sum(rows * dense)
    tf.train.AdagradOptimizer(0.1).minimize(loss)
    own = {v.op.name for v in distributed.rank_local_variables()}
    assert own == {"t/shard", "t/shard/Adagrad"}
    shared = {v.op.name for v in trainer._shared_variables()}
    assert "w/Adagrad" in shared and not own & shared


def _write_shards(train_dir, table, size, step):
    """Shard checkpoints of `table` ([rows, dim]) as `size` ranks would write them."""
    rows = sharded_embedding.shard_rows(len(table), size)
    for rank in range(size):
        with tf.Graph().as_default():
            shard = np.zeros([rows, table.shape[1]], np.float32)
            owned = sharded_embedding.owned_rows(len(table), rank, size)
            shard[: len(owned)] = table[owned]
            var = tf.get_variable("t/shard", initializer=shard)
            directory = sharded_embedding.shard_directory(train_dir, rank, size)
            os.makedirs(directory, exist_ok=True)
            with tf.Session() as s:
                s.run(var.initializer)
                tf.train.Saver([var]).save(s, os.path.join(directory, "model.ckpt"), step)


@pytest.mark.parametrize("serving", [False, True])
def test_one_process_gathers_the_shards_of_two_ranks(tmp_path, serving):
    table = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    _write_shards(str(tmp_path), table, 2, 7)
    with tf.Graph().as_default():
        if serving:  # export: a whole table "t", filled from the shards
            embeddings = layers.Embeddings(min_sharded_rows=3, from_shards=True)
        else:  # eval in one process: the shard of rank 0 of 1 holds every row
            embeddings = layers.Embeddings(sharded_embedding.ModelParallel(None))
        rows = embeddings.lookup("t", tf.constant([4, 0, 3]), 5, 2)
        (var,) = distributed.rank_local_variables()
        assert var.op.name == ("t" if serving else "t/shard")
        with tf.Session() as s:
            s.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            sharded_embedding.restore_tables(s, str(tmp_path / "model.ckpt-7"), 0, 1)
            np.testing.assert_array_equal(s.run(rows), table[[4, 0, 3]])
            with pytest.raises(FileNotFoundError, match="no shard checkpoint of step 8"):
                sharded_embedding.restore_tables(s, str(tmp_path / "model.ckpt-8"), 0, 1)


def test_each_rank_restores_its_own_shard(tmp_path):
    table = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    _write_shards(str(tmp_path), table, 2, 7)
    with tf.Graph().as_default():
        sharded_embedding.ShardedTable("t", 5, 2, _Rank(1, 2))
        (var,) = distributed.rank_local_variables()
        with tf.Session() as s:
            s.run(tf.local_variables_initializer())
            sharded_embedding.restore_tables(s, str(tmp_path / "model.ckpt-7"), 1, 2)
            np.testing.assert_array_equal(s.run(var), table[[1, 3, 1]] * [[1], [1], [0]])
            # 3 ranks never wrote shards here: an error, not fresh rows.
            with pytest.raises(FileNotFoundError, match="rank 1 of 3"):
                sharded_embedding.restore_tables(s, str(tmp_path / "model.ckpt-7"), 1, 3)
