"""Model-parallel embedding tables: rows sharded over the Horovod ranks, lookups by alltoall.

A table of num_rows rows is split by rows: global row g lives on rank g % size, at row
g // size of that rank's shard (round-robin, so the per-field offsets of datasets/criteo.py
and popular low ids spread over every rank). Each rank holds only its shard, a variable
in the collection distributed.RANK_LOCAL_VARIABLES: the trainer neither broadcasts it from
rank 0 nor reduces its gradient over ranks, and ShardCheckpointHook saves and restores
each rank's shard (and the optimizer's slots of it) itself. A table larger than one rank's
memory then trains on several.

A shard is a trainable LOCAL variable: the trainer's session initialises it after
restoring the shared weights (which do not include it), and ShardCheckpointHook, which
runs after the trainer's hooks, then restores this rank's rows. The optimizer's slots of
a shard (global variables named under it, e.g. X/shard/Adagrad) count as rank-local too
(distributed.rank_local_variables): they are neither in rank 0's checkpoint nor
broadcast, and each rank saves and restores its own with its rows. Every shard has
ceil(num_rows / size) rows (the last rank's final row may be padding that no id reaches).

Evaluation and export read the shards of the checkpoint's step (restore_tables): under
mpirun with the training's number of ranks each rank its own shard; in one process the
whole table, assembled from every rank's shard.

A lookup of ids (any shape) on every rank, in one step:

1. the batch's distinct ids, sorted by owner; their counts per owner are the splits;
2. Horovod's alltoall sends each owner the (local) rows it is asked for;
3. each owner gathers those rows from its shard (and casts them to the compute dtype);
4. a second alltoall, with the splits received in 1, sends the rows back;
5. the rows are put back in the order of the ids.

The backward pass needs no code of its own: Horovod 0.28.1 registers the gradient of its
alltoall in TF1 graph mode as the reverse alltoall (the received splits as the splits), so
the gradient of the returned rows flows back to the owners, and the gather of step 3 makes
it an IndexedSlices of the shard's local rows. An owner receives the sum over ranks of
those gradients, while the trainer averages the data-parallel ones over ranks; scaling the
routed gradient by 1 / size makes the shard follow the same averaged gradient, so 2 ranks
with batch B train the shard exactly as one process with the whole table and batch 2B.

Every rank must run every lookup (an alltoall is a collective): training steps are aligned
by the trainer; evaluation batches must be as many on every rank (see
tasks/recommendation.py, which pads the shorter ranks' eval streams).
"""

import collections
import os
import re

import numpy as np

from slim_compat import tf
from training import distributed, precision

SHARD_SCOPE_SUFFIX = "shard"
SHARDS_DIRNAME = "embedding_shards"


class ModelParallel:
    """This rank's place among the ranks that share the tables, and the alltoall.

    Args:
        hvd: the horovod.tensorflow module (initialised), or None for one process, which
            then holds every row (size 1; the routing code still runs, without alltoall).
    """

    def __init__(self, hvd=None):
        self.hvd = hvd
        self.rank = hvd.rank() if hvd is not None else 0
        self.size = hvd.size() if hvd is not None else 1

    def alltoall(self, tensor, splits):
        """(received tensor, received splits); the identity for one rank."""
        if self.hvd is None:
            return tf.identity(tensor), tf.identity(splits)
        # Horovod: scatter slices [splits[0], splits[1], ...] to ranks 0, 1, ...; gather
        # theirs. Its registered gradient is the reverse alltoall.
        return self.hvd.alltoall(tensor, splits=splits)


def shard_rows(num_rows, size):
    """Rows of every shard: ceil(num_rows / size) (rank r holds rows r, r + size, ...)."""
    return (num_rows + size - 1) // size


def owned_rows(num_rows, rank, size):
    """Global row ids held by `rank`, in shard order (numpy int64)."""
    return np.arange(rank, num_rows, size, dtype=np.int64)


def _scale_gradient(x, scale):
    """Identity forward; the gradient times `scale`."""

    def grad(dy):
        if isinstance(dy, tf.IndexedSlices):
            return tf.IndexedSlices(dy.values * scale, dy.indices, dy.dense_shape)
        return dy * scale

    @tf.custom_gradient
    def scaled(t):
        return tf.identity(t), grad

    return scaled(x)


class ShardedTable:
    """One table [num_rows, dim] sharded by rows over the ranks of `model_parallel`.

    Creates (or reuses, under a reusing variable scope) the variable `name`/shard of
    shape [shard_rows(num_rows, size), dim], fp32, initialised from N(0, stddev^2)
    with a seed that differs per rank (else every rank would start its rows alike).
    """

    def __init__(self, name, num_rows, dim, model_parallel, stddev=0.01, seed=None):
        self.num_rows = int(num_rows)
        self.dim = int(dim)
        self.mp = model_parallel
        rank, size = model_parallel.rank, model_parallel.size
        if self.num_rows < size:
            raise ValueError(
                f"table {name!r} has {self.num_rows} rows, fewer than the {size} ranks it "
                f"would be sharded over: keep it whole (raise --min_sharded_rows)"
            )
        seed = (0 if seed is None else int(seed)) * 1009 + 7919 * (rank + 1)
        with tf.variable_scope(name):
            reused = tf.get_variable_scope().reuse
            # A local variable: initialised by every session's local_init_op (after the
            # trainer restores its checkpoint, which does not hold it), never in a
            # saver or broadcast of the global variables; ShardCheckpointHook then
            # restores this rank's rows.
            self.shard = tf.get_variable(
                SHARD_SCOPE_SUFFIX,
                [shard_rows(self.num_rows, size), self.dim],
                dtype=tf.float32,
                initializer=tf.random_normal_initializer(stddev=stddev, seed=seed),
                collections=[tf.GraphKeys.LOCAL_VARIABLES],
                trainable=True,
            )
        if not reused and self.shard not in distributed.rank_local_variables():
            tf.add_to_collection(distributed.RANK_LOCAL_VARIABLES, self.shard)

    def lookup(self, ids, dtype=tf.float32):
        """Rows `ids` (global row ids, any int shape) -> ids.shape + [dim] in `dtype`."""
        size = self.mp.size
        with tf.name_scope("sharded_lookup"):
            ids = tf.convert_to_tensor(ids)
            flat = tf.reshape(tf.cast(ids, tf.int64), [-1])
            unique, position = tf.unique(flat)
            owner = tf.cast(unique % size, tf.int32)
            order = tf.argsort(owner, stable=True)
            wanted = tf.gather(unique // size, order)
            splits = tf.math.bincount(owner, minlength=size, maxlength=size, dtype=tf.int32)
            # Horovod: not folded by Grappler when the ids are constants (see
            # distributed.run_time_input), so the exchange runs in the step on every rank.
            wanted = distributed.run_time_input(wanted)
            splits = distributed.run_time_input(splits)
            # Horovod: ids to their owners ...
            asked, asked_splits = self.mp.alltoall(wanted, splits)
            rows = precision.embedding_lookup(self.shard, asked, tf.float32)
            # ... the owner's gradient is a sum over ranks: make it their mean.
            rows = tf.cast(_scale_gradient(rows, 1.0 / size), dtype)
            # Horovod: ... and their rows back, in the order they were asked for.
            answered, _ = self.mp.alltoall(rows, asked_splits)
            unique_rows = tf.gather(answered, tf.math.invert_permutation(order))
            out = tf.gather(unique_rows, position)
            return tf.reshape(out, tf.concat([tf.shape(ids), [self.dim]], axis=0))


class ShardCheckpointHook(tf.train.SessionRunHook):
    """Saves and restores this rank's shards of the model-parallel tables, under train_dir.

    Each rank writes train_dir/embedding_shards/rank{r}-of-{size}/model.ckpt-{step} at the
    trainer's checkpoint steps (every save_steps and at the end), so the shards and the
    main checkpoint are of the same step. After the session is created (and the main
    checkpoint restored), the shard checkpoint of the restored global step is restored:
    resume continues with every rank's own rows. A resume at a step whose shard
    checkpoint is missing, or written by another number of ranks, is an error: the rows
    would silently start over.
    """

    def __init__(self, train_dir, rank, size, save_steps, max_to_keep=5):
        self.directory = shard_directory(train_dir, rank, size)
        self.train_dir = train_dir
        self.rank, self.size = rank, size
        self.save_steps = int(save_steps)
        self.max_to_keep = max_to_keep
        self._saver = None
        self._last_saved = None

    def begin(self):
        variables = rank_local_variables_and_slots()
        self._global_step = tf.train.get_global_step()
        if not variables:
            return
        self._saver = tf.train.Saver(
            variables, max_to_keep=self.max_to_keep, save_relative_paths=True, name="shard_saver"
        )

    def after_create_session(self, session, coord):
        if self._saver is None:
            return
        step = int(session.run(self._global_step)) if self._global_step is not None else 0
        path = os.path.join(self.directory, f"model.ckpt-{step}")
        if tf.train.checkpoint_exists(path):
            self._saver.restore(session, path)
            self._last_saved = step
        elif step > 0:
            others = (
                [
                    d
                    for d in sorted(os.listdir(os.path.dirname(self.directory)))
                    if os.path.isdir(os.path.join(os.path.dirname(self.directory), d))
                ]
                if os.path.isdir(os.path.dirname(self.directory))
                else []
            )
            raise FileNotFoundError(
                f"rank {self.rank}: resuming at step {step} but its embedding shards "
                f"{path} are missing (shard directories here: {others or 'none'}); "
                f"a model-parallel run resumes with the same number of ranks ({self.size})"
            )

    def before_run(self, run_context):
        if self._saver is None or self._global_step is None:
            return None
        return tf.train.SessionRunArgs(self._global_step)

    def after_run(self, run_context, run_values):
        if self._saver is None or run_values.results is None or not self.save_steps:
            return
        # The step read during the run may precede its increment (as CheckpointSaverHook
        # reasons): read the real one only when a save may be due.
        stale = int(run_values.results)
        if (stale + 1) % self.save_steps and stale % self.save_steps:
            return
        step = int(run_context.session.run(self._global_step))
        if step % self.save_steps == 0:
            self._save(run_context.session, step)

    def end(self, session):
        if self._saver is not None and self._global_step is not None:
            self._save(session, int(session.run(self._global_step)))

    def _save(self, session, step):
        if step == self._last_saved:
            return
        os.makedirs(self.directory, exist_ok=True)
        self._saver.save(
            session,
            os.path.join(self.directory, "model.ckpt"),
            global_step=step,
            write_meta_graph=False,
        )
        self._last_saved = step


def rank_local_variables_and_slots(graph=None):
    """The RANK_LOCAL_VARIABLES and the optimizer slots made for them (named var/...)."""
    return distributed.rank_local_variables(graph)


def _checkpoint_step(checkpoint):
    match = re.search(r"-(\d+)$", checkpoint)
    if not match:
        raise ValueError(
            f"cannot tell the step of checkpoint {checkpoint!r} (expected PREFIX-STEP, e.g. "
            "model.ckpt-20): the shards of a model-parallel table are found by it"
        )
    return int(match.group(1))


def saved_rank_counts(train_dir, step):
    """Numbers of ranks n for which every rank{r}-of-{n} holds a shard checkpoint of `step`."""
    root = os.path.join(train_dir, SHARDS_DIRNAME)
    found = collections.defaultdict(set)
    for entry in os.listdir(root) if os.path.isdir(root) else []:
        match = re.fullmatch(r"rank(\d+)-of-(\d+)", entry)
        path = os.path.join(root, entry, f"model.ckpt-{step}")
        if match and tf.train.checkpoint_exists(path):
            found[int(match.group(2))].add(int(match.group(1)))
    return sorted(n for n, ranks in found.items() if ranks == set(range(n)))


def restore_tables(session, checkpoint, rank, size):
    """Fills this graph's model-parallel tables for the trainer checkpoint `checkpoint`.

    For evaluation and export (Task.restore_rank_local_variables), after the main
    checkpoint is restored. Each rank-local table of the graph (distributed.
    RANK_LOCAL_VARIABLES; optimizer slots are not needed) gets, from
    train_dir/embedding_shards, the rows of the checkpoint's step:

    * a shard `X/shard` of rank `rank` of `size`: that rank's own shard checkpoint, when a
      run of `size` ranks wrote one (evaluation under mpirun with the training's ranks);
    * otherwise, in one process (size 1): the whole table `X` (or `X/shard` of one rank,
      which holds every row), assembled from the shards of every rank of the run.

    Raises:
        FileNotFoundError: no shard checkpoint of that step fits (the error lists what the
            directory holds).
    """
    train_dir = os.path.dirname(checkpoint)
    step = _checkpoint_step(checkpoint)
    own = os.path.join(shard_directory(train_dir, rank, size), f"model.ckpt-{step}")
    suffix = "/" + SHARD_SCOPE_SUFFIX
    for var in session.graph.get_collection(distributed.RANK_LOCAL_VARIABLES):
        name = var.op.name
        base = name[: -len(suffix)] if name.endswith(suffix) else name
        if name.endswith(suffix) and tf.train.checkpoint_exists(own):
            value = tf.train.load_variable(own, name)
        else:
            counts = saved_rank_counts(train_dir, step)
            if size != 1 or not counts:
                raise FileNotFoundError(
                    f"rank {rank} of {size}: no shard checkpoint of step {step} for table "
                    f"{base!r} under {os.path.join(train_dir, SHARDS_DIRNAME)} (complete "
                    f"runs of that step: {counts or 'none'} ranks); evaluate under mpirun "
                    "with the training's number of ranks, or in one process"
                )
            value = assemble_table(train_dir, base, counts[-1], var.shape[0], step)
        if list(value.shape) != var.shape.as_list():
            raise ValueError(
                f"table {base!r} of step {step} has shape {list(value.shape)} in its shards, "
                f"{var.shape.as_list()} in this graph: other flags than the training's?"
            )
        var.load(value, session)


def shard_directory(train_dir, rank, size):
    """Where rank `rank` of `size` keeps its shard checkpoints."""
    return os.path.join(train_dir, SHARDS_DIRNAME, f"rank{rank}-of-{size}")


def assemble_table(train_dir, name, size, num_rows, step=None):
    """The whole table `name` [num_rows, dim] (numpy) from the shard checkpoints of `size` ranks.

    For export and inspection in one process. step None: each shard's latest checkpoint
    (which must all be of the same step).
    """
    table, steps = None, set()
    for rank in range(size):
        directory = shard_directory(train_dir, rank, size)
        path = (
            tf.train.latest_checkpoint(directory)
            if step is None
            else os.path.join(directory, f"model.ckpt-{step}")
        )
        if path is None or not tf.train.checkpoint_exists(path):
            raise FileNotFoundError(f"no shard checkpoint of rank {rank} of {size} in {directory}")
        steps.add(path.rsplit("-", 1)[-1])
        shard = tf.train.load_variable(path, f"{name}/{SHARD_SCOPE_SUFFIX}")
        if table is None:
            table = np.zeros([num_rows, shard.shape[1]], shard.dtype)
        owned = owned_rows(num_rows, rank, size)
        table[owned] = shard[: len(owned)]
    if len(steps) > 1:
        raise ValueError(f"the shards of {name!r} are of different steps: {sorted(steps)}")
    return table
