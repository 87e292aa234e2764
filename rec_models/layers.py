"""Small building blocks of the recommendation models: dense layers, MLP towers, embeddings.

Weights are requested in the dtype of their input, so under the trainer's fp32-master-
weight getter (training/precision.py) they are stored in fp32 and read in the compute
dtype. Embedding tables are created in fp32 and read through precision.embedding_lookup,
which casts only the gathered rows.

`Embeddings` is the feature-column spec of DeepCTR's style, handed to a model rather than
built inside it: it decides whether a table is one local variable or a model-parallel
table sharded over the Horovod ranks (rec_models/sharded_embedding.py).
"""

from slim_compat import tf
from training import distributed, precision, sparse_adagrad

#: NCF (He et al. 2017) and Hetu initialise embeddings from N(0, 0.01^2).
EMBEDDING_STDDEV = 0.01


def dense(x, units, name, activation=None, use_bias=True):
    """x @ W + b (Glorot-uniform W, zero b) in x's dtype, in variable scope `name`."""
    with tf.variable_scope(name):
        kernel = tf.get_variable(
            "kernel",
            [x.shape[-1], units],
            dtype=x.dtype,
            initializer=tf.glorot_uniform_initializer(),
        )
        y = tf.matmul(x, kernel)
        if use_bias:
            bias = tf.get_variable(
                "bias", [units], dtype=x.dtype, initializer=tf.zeros_initializer()
            )
            y = tf.nn.bias_add(y, bias)
    return activation(y) if activation is not None else y


def mlp(x, hidden_units, name, activation=tf.nn.relu):
    """A tower of dense layers `name`/layer_{i}, each followed by `activation`."""
    with tf.variable_scope(name):
        for i, units in enumerate(hidden_units):
            x = dense(x, units, f"layer_{i}", activation=activation)
    return x


class Embeddings:
    """Creates embedding tables and looks rows up, locally or sharded over ranks.

    Args:
        model_parallel: a rec_models.sharded_embedding.ModelParallel (Horovod rank, size
            and the alltoall) to shard every table with at least `min_sharded_rows` rows
            by rows over the ranks; None keeps each table whole on every rank.
        min_sharded_rows: tables smaller than this stay whole (data-parallel) even when
            model_parallel is given (a bias table of a few rows gains nothing).
        stddev: of the N(0, stddev^2) initialiser.
        from_shards: with model_parallel None, the tables that a model-parallel run would
            shard (min_sharded_rows) are whole but marked rank-local
            (distributed.RANK_LOCAL_VARIABLES): a serving graph fills them from the
            shard checkpoints (sharded_embedding.restore_tables), not the main checkpoint.
    """

    def __init__(
        self,
        model_parallel=None,
        min_sharded_rows=1,
        stddev=EMBEDDING_STDDEV,
        from_shards=False,
    ):
        self.model_parallel = model_parallel
        self.min_sharded_rows = int(min_sharded_rows)
        self.stddev = float(stddev)
        self.from_shards = bool(from_shards)
        self._distinct = {}  # (ids tensor, num_rows) -> (distinct ids, their positions)

    def lookup(self, name, ids, num_rows, dim, dtype=tf.float32):
        """Rows `ids` (int, any shape) of table `name` [num_rows, dim] -> ids.shape + [dim].

        Rows come back in `dtype`; the table itself stays fp32. An id outside [0, num_rows)
        fails the step with an error naming the table and its size (before a
        model-parallel lookup sends it to a rank that does not hold it).

        A whole table gathers each distinct id of the batch once and spreads the rows to
        the ids' positions, so its gradient is an IndexedSlices of distinct rows (summed
        by the gather's gradient) that training/sparse_adagrad.py updates without a
        second dedupe; tables looked up with the same `ids` tensor share one `unique`.
        """
        initializer = tf.random_normal_initializer(stddev=self.stddev)
        if self.model_parallel is not None and num_rows >= self.min_sharded_rows:
            from rec_models import sharded_embedding

            ids = check_ids(ids, num_rows, tf.get_variable_scope().name + "/" + name)
            table = sharded_embedding.ShardedTable(
                name, num_rows, dim, self.model_parallel, stddev=self.stddev
            )
            return table.lookup(ids, dtype)
        table = tf.get_variable(name, [num_rows, dim], dtype=tf.float32, initializer=initializer)
        if self.from_shards and num_rows >= self.min_sharded_rows:
            if table not in distributed.rank_local_variables():
                tf.add_to_collection(distributed.RANK_LOCAL_VARIABLES, table)
        ids = tf.convert_to_tensor(ids)
        distinct, positions = self._distinct_ids(ids, num_rows, table.op.name)
        rows = precision.embedding_lookup(table, distinct, tf.float32)
        # Adagrad's row update reuses these rows instead of gathering the table again.
        sparse_adagrad.register_lookup(table, distinct, rows)
        if dtype != tf.float32:
            rows = tf.cast(rows, dtype)
        out = _spread(rows, positions) if dim == 1 else tf.gather(rows, positions)
        return tf.reshape(out, tf.concat([tf.shape(ids), [dim]], axis=0))

    def _distinct_ids(self, ids, num_rows, what):
        """(distinct ids, position of each id among them) of `ids` flattened, checked once.

        int32 when the table allows it (a Unique over int32 keys took about half the
        time of int64 here); the range check runs on the original ids, before the cast.
        """
        key = (ids, int(num_rows))
        if key not in self._distinct:
            flat = tf.reshape(check_ids(ids, num_rows, what), [-1])
            if num_rows <= 2**31 - 1 and flat.dtype != tf.int32:
                flat = tf.cast(flat, tf.int32)
            with tf.name_scope("distinct_ids"):
                self._distinct[key] = tf.unique(flat)
        return self._distinct[key]


def _spread(rows, positions):
    """tf.gather(rows, positions) for a [n, 1] `rows`, with a cheaper, bitwise-equal gradient.

    The gather's gradient sums the incoming rows per position: an unsorted_segment_sum
    that costs a fixed overhead per row (6-12 ms of a traced DeepFM step for 213k scalars of
    the first-order table). A weighted bincount adds the same values in the same (input)
    order in about a quarter of that time. Other dtypes than bincount's take the plain gather.
    """
    if rows.dtype not in (tf.float32, tf.float64):
        return tf.gather(rows, positions)

    @tf.custom_gradient
    def spread(rows):
        def grad(upstream):
            # The raw op: tf.math.bincount adds a max() pass over the ids for its size.
            sums = tf.raw_ops.Bincount(
                arr=tf.cast(positions, tf.int32),
                size=tf.shape(rows, out_type=tf.int32)[0],
                weights=tf.reshape(upstream, [-1]),
            )
            return tf.reshape(sums, [-1, 1])

        return tf.gather(rows, positions), grad

    return spread(rows)


def check_ids(ids, num_rows, what):
    """`ids` after a run-time check that every id is in [0, num_rows) (error names `what`)."""
    ids = tf.convert_to_tensor(ids)
    message = f"ids of {what.strip('/')} must be in [0, {num_rows}) (the table's rows)"
    with tf.name_scope("check_ids"):
        checks = [
            tf.debugging.assert_non_negative(ids, message=message),
            tf.debugging.assert_less(ids, tf.cast(num_rows, ids.dtype), message=message),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(ids)
