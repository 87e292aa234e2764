"""Trains a tiny model on a model-parallel (or whole) embedding table; one rank of a test.

    python sharded_embedding_driver.py OUT_DIR MODE BATCH STEPS RESUME_AT

MODE "sharded": the table is a ShardedTable over the Horovod ranks (launched by mpirun);
MODE "whole": one process holds the whole table (the reference). Every rank sees its
slice of one global batch per step (rank r: rows r*BATCH .. (r+1)*BATCH of a batch of
size*BATCH), so 2 ranks x BATCH train on what 1 process x 2*BATCH does.

The run stops after RESUME_AT steps (shard checkpoints by ShardCheckpointHook, the dense
weights by rank 0's saver), then a new graph and session resume from those checkpoints
and train to STEPS: the final weights show whether resume restored every rank's rows.
Writes OUT_DIR/rank{r}.json (rank, size, shard shape, owned rows) and rank{r}.npz (the
final shard or table, and the dense weights).
"""

import json
import os
import sys

import numpy as np

from training import distributed, runtime

runtime.configure_tf_runtime()

from rec_models import layers, sharded_embedding  # noqa: E402
from slim_compat import tf  # noqa: E402

NUM_ROWS, DIM, IDS_PER_EXAMPLE = 23, 4, 3


def global_batch(step, size, batch):
    rng = np.random.default_rng([7, step])
    ids = rng.integers(0, NUM_ROWS, size=(size * batch, IDS_PER_EXAMPLE))
    labels = (rng.random(size * batch) < 0.5).astype(np.float32)
    return ids, labels


def build(mode, mp):
    ids = tf.placeholder(tf.int64, [None, IDS_PER_EXAMPLE])
    labels = tf.placeholder(tf.float32, [None])
    embeddings = layers.Embeddings(mp if mode == "sharded" else None)
    rows = embeddings.lookup("table", ids, NUM_ROWS, DIM)
    logits = tf.squeeze(layers.dense(tf.reduce_sum(rows, axis=1), 1, "out"), -1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    step = tf.train.get_or_create_global_step()
    # Momentum: slots to restore on resume, and updates that scale with the gradient.
    optimizer = tf.train.MomentumOptimizer(0.5, momentum=0.9)
    grads_and_vars = optimizer.compute_gradients(loss)
    local = set(distributed.rank_local_variables())
    reduced = []
    for g, v in grads_and_vars:
        if mp.hvd is not None and v not in local:
            # Horovod: data-parallel weights average their gradients; shards do not.
            g = mp.hvd.allreduce(g, op=mp.hvd.Average)
        reduced.append((g, v))
    train_op = optimizer.apply_gradients(reduced, global_step=step)
    return ids, labels, train_op, step


def initial_values(rank, size):
    rng = np.random.default_rng(3)
    table = rng.normal(0, 0.5, (NUM_ROWS, DIM)).astype(np.float32)
    kernel = rng.normal(0, 0.5, (DIM, 1)).astype(np.float32)
    shard = np.zeros([sharded_embedding.shard_rows(NUM_ROWS, size), DIM], np.float32)
    owned = sharded_embedding.owned_rows(NUM_ROWS, rank, size)
    shard[: len(owned)] = table[owned]
    return shard, table, kernel


def run_phase(out_dir, mode, mp, batch, first, last):
    """Trains steps first..last-1 in a MonitoredSession, as the trainer would."""
    train_dir = os.path.join(out_dir, "train")
    with tf.Graph().as_default():
        ids, labels, train_op, step = build(mode, mp)
        table = [v for v in tf.trainable_variables() if v.name.startswith("table")][0]
        kernel, bias = (tf.global_variables(f"out/{n}")[0] for n in ("kernel", "bias"))
        # Rank 0's checkpoint of the global variables, as the trainer's (the shard, a local
        # variable, is not in it; its optimizer slots are).
        main_saver = tf.train.Saver()
        shard, whole, k = initial_values(mp.rank, mp.size)

        class LoadInitialValues(tf.train.SessionRunHook):
            """The start of both runs: one table, rows dealt to the shards."""

            def after_create_session(self, session, coord):
                if first == 0:
                    table.load(shard if mode == "sharded" else whole, session)
                    kernel.load(k, session)

        creator = tf.train.ChiefSessionCreator(
            scaffold=tf.train.Scaffold(saver=main_saver),
            checkpoint_filename_with_path=(
                os.path.join(train_dir, f"main.ckpt-{first}") if first else None
            ),
        )
        hooks = [
            LoadInitialValues(),
            sharded_embedding.ShardCheckpointHook(train_dir, mp.rank, mp.size, save_steps=2),
        ]
        with tf.train.MonitoredSession(creator, hooks=hooks) as session:
            for t in range(first, last):
                all_ids, all_labels = global_batch(t, mp.size, batch)
                share = slice(mp.rank * batch, (mp.rank + 1) * batch)
                session.run(train_op, {ids: all_ids[share], labels: all_labels[share]})
            raw = session._tf_sess()
            live = raw.run({"table": table, "kernel": kernel, "bias": bias, "step": step})
            if mp.rank == 0:
                main_saver.save(raw, os.path.join(train_dir, "main.ckpt"), global_step=last)
        if mode == "sharded":
            # What the shard checkpoint holds must be what the rank trained.
            directory = sharded_embedding.shard_directory(train_dir, mp.rank, mp.size)
            saved = tf.train.load_variable(directory, "table/shard")
            np.testing.assert_array_equal(saved, live["table"])
        values = live
        return values


def main():
    out_dir, mode, batch, steps, resume_at = sys.argv[1:6]
    batch, steps, resume_at = int(batch), int(steps), int(resume_at)
    hvd = None
    if mode == "sharded" and distributed.launched_size() > 1:
        import horovod.tensorflow as hvd

        hvd.init()
    mp = sharded_embedding.ModelParallel(hvd)
    run_phase(out_dir, mode, mp, batch, 0, resume_at)
    # Horovod: a barrier, so rank 0 has written the checkpoint the others resume from.
    distributed.Distributed(hvd).broadcast_object(0, "phase_barrier")
    values = run_phase(out_dir, mode, mp, batch, resume_at, steps)
    directory = sharded_embedding.shard_directory(os.path.join(out_dir, "train"), mp.rank, mp.size)
    info = {
        "rank": mp.rank,
        "size": mp.size,
        "step": int(values.pop("step")),
        "table_shape": list(values["table"].shape),
        "owned_rows": sharded_embedding.owned_rows(NUM_ROWS, mp.rank, mp.size).tolist(),
        "shard_checkpoints": sorted(os.listdir(directory)) if os.path.isdir(directory) else [],
    }
    with open(os.path.join(out_dir, f"rank{mp.rank}.json"), "w") as f:
        json.dump(info, f)
    np.savez(os.path.join(out_dir, f"rank{mp.rank}.npz"), **values)


if __name__ == "__main__":
    main()
