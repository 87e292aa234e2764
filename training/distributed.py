"""Horovod, when the run was launched by mpirun / horovodrun; a single process otherwise.

Horovod is imported only for a launched run, so a plain `python train_image_classifiers.py`
needs no Horovod and starts faster. Everything the rest of tfzoo needs from the
distribution layer goes through `Distributed`: rank and size, the gradient reduction,
agreement of a flag over ranks, the broadcast hook and sums over ranks.
"""

import os

from slim_compat import tf

# Environment variables that a launcher sets for every rank it starts.
# SLURM_STEP_NUM_TASKS is set by srun for its job step (not in the batch script itself).
# --allreduce_op and --gradient_compression values.
REDUCTIONS = ("average", "sum", "adasum")
#: Graph collection of the variables each rank holds alone (the rows of a model-parallel
#: embedding table that this rank owns). The trainer does not broadcast them from rank 0
#: and does not reduce their gradients over ranks; every rank saves and restores its own.
RANK_LOCAL_VARIABLES = "tfzoo_rank_local_variables"


def rank_local_variables(graph=None):
    """The variables of RANK_LOCAL_VARIABLES in `graph` (default: the default graph), and
    the optimizer slots made for them (variables named under theirs, e.g. X/Adagrad):
    a shard's accumulator is as much this rank's own as its rows.
    """
    graph = graph or tf.get_default_graph()
    local = graph.get_collection(RANK_LOCAL_VARIABLES)
    prefixes = tuple(v.op.name + "/" for v in local)
    if not prefixes:
        return local
    found, known = list(local), set(local)
    for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES) + graph.get_collection(
        tf.GraphKeys.LOCAL_VARIABLES
    ):
        if v.op.name.startswith(prefixes) and v not in known:  # a slot may be in both
            found.append(v)
            known.add(v)
    return found


COMPRESSIONS = ("none", "fp16")

_LAUNCHER_SIZE_VARS = (
    "HOROVOD_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_SIZE",
    "SLURM_STEP_NUM_TASKS",
)


def launched_size():
    """Number of ranks the launcher started (1 when not launched)."""
    for var in _LAUNCHER_SIZE_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    return 1


def run_time_input(tensor):
    """`tensor` itself, through an op that Grappler's constant folding cannot evaluate.

    Horovod: its collectives are not marked stateful, so when the input of one is a
    constant (e.g. a zero regularization loss logged with allreduce_mean), Grappler runs
    the collective while it optimises a graph, once for every new executor (a new set of
    fetches), not when the step runs. Rank 0 builds executors the others do not (its
    summary steps fetch more), so it waited in Grappler for a collective no other rank
    ran, while they waited for its gradients: sampled GraphSAGE without weight decay hung
    in its second step under mpirun (and the model-parallel table's alltoall of constant
    ids in its first). A select on Timestamp (stateful: never folded) keeps the collective
    in the graph that runs, on every rank at the same step; tf.placeholder_with_default is
    not enough (Grappler folds through an unfed one: tests/training/
    test_distributed_collectives.py).
    """
    tensor = tf.convert_to_tensor(tensor)
    return tf.compat.v2.where(tf.raw_ops.Timestamp() >= 0.0, tensor, tensor)


class Distributed:
    """Rank, size and the Horovod operations of this process.

    Attributes:
        hvd: the horovod.tensorflow module, or None for a single-process run.
        rank, size, local_rank: this process's place (0, 1, 0 without Horovod).
    """

    def __init__(self, hvd=None):
        self.hvd = hvd
        self.rank = hvd.rank() if hvd else 0
        self.size = hvd.size() if hvd else 1
        self.local_rank = hvd.local_rank() if hvd else 0

    @property
    def is_chief(self):
        """Rank 0 alone writes checkpoints, summaries and info logs."""
        return self.rank == 0

    def check_reduction(self, op="average", compression="none"):
        """Raises ValueError for an allreduce op or compression that this run cannot do."""
        if op not in REDUCTIONS:
            raise ValueError(
                f"Unknown allreduce_op {op!r}; expected one of: {', '.join(REDUCTIONS)}"
            )
        if compression not in COMPRESSIONS:
            raise ValueError(
                f"Unknown gradient_compression {compression!r}; "
                f"expected one of: {', '.join(COMPRESSIONS)}"
            )
        if op == "adasum" and self.size & (self.size - 1):
            # Horovod's CPU Adasum combines ranks pairwise (recursive halving).
            raise ValueError(
                f"--allreduce_op=adasum needs a power-of-2 number of ranks; this run has "
                f"{self.size}: use average or sum, or launch 1, 2, 4, 8... ranks"
            )

    def reduce_gradients(self, grads, op="average", compression="none", sparse_as_dense=False):
        """Horovod: combines each rank's gradients into the gradients every rank applies.

        tfzoo calls the allreduce itself instead of wrapping the optimizer in
        hvd.DistributedOptimizer: Horovod 0.28.1's TF1 Adasum optimizer never reaches its
        allreduce (horovod/horovod#1729, its apply_gradients bypasses the delta exchange),
        and gradient accumulation, loss scaling and the NaN guard need the reduction at a
        point tfzoo chooses (training/train_op.py).

        Args:
            grads: list of dense tensors or tf.IndexedSlices (no None).
            op: 'average' (mean over ranks), 'sum' or 'adasum' (Maleki et al. 2021,
                "Adaptive Summation": the sum for orthogonal gradients, the mean for equal
                ones). Adasum has no sparse form, so IndexedSlices become dense for it.
                tfzoo combines the gradients with Adasum, before the optimizer; Horovod's
                TF1 optimizer meant to combine each rank's weight delta after it. For SGD
                the two agree (Adasum scales with its inputs); for momentum or Adam they
                differ.
            compression: 'none' or 'fp16' (halves the bytes sent; dense tensors only).
            sparse_as_dense: reduce IndexedSlices (embedding gradients) as dense tensors
                with an allreduce, instead of allgathering their rows and indices. The
                allgather sends every rank's rows to every rank, so its memory and bytes
                grow with the ranks (horovod/horovod#433): dense is right when a step
                touches most rows (a vocabulary embedding), allgather when it touches few.

        Returns:
            The reduced gradients, identical on every rank; `grads` itself in one process.
        """
        self.check_reduction(op, compression)
        if self.hvd is None:
            return list(grads)
        hvd = self.hvd
        hvd_op = {"average": hvd.Average, "sum": hvd.Sum, "adasum": hvd.Adasum}[op]
        hvd_compression = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}[compression]
        reduced = []
        with tf.name_scope("allreduce_gradients"):
            for g in grads:
                if isinstance(g, tf.IndexedSlices) and (op == "adasum" or sparse_as_dense):
                    g = tf.convert_to_tensor(g)
                # Horovod: IndexedSlices are allgathered (values and indices), dense
                # tensors allreduced; every rank gets the same result.
                reduced.append(hvd.allreduce(g, op=hvd_op, compression=hvd_compression))
        return reduced

    def all_ranks_true(self, flag, name=None):
        """True on every rank iff `flag` (a scalar bool) is true on every rank.

        Horovod: the minimum over ranks, so every rank takes the same branch of a decision
        (apply or skip an update, change the loss scale, stop) even if their own flags differ.
        """
        if self.hvd is None:
            return tf.identity(flag, name=name)
        failed = self.allreduce_max(tf.cast(tf.logical_not(flag), tf.float32), name=name)
        return tf.equal(failed, 0.0)

    def broadcast_hook(self):
        """Horovod: start every rank from rank 0's weights, after init AND after restore."""
        return BroadcastVariablesHook(self.hvd) if self.hvd else None

    def broadcast_object(self, obj, name):
        """Horovod: rank 0's `obj` on every rank (picklable; `obj` itself for one process).

        Runs in a scratch graph and session, before (and apart from) the training graph.
        """
        if self.hvd is None:
            return obj
        with tf.Graph().as_default(), tf.Session(config=session_config(self)) as session:
            return self.hvd.broadcast_object(obj, root_rank=0, session=session, name=name)

    def allreduce_sum(self, tensor, name=None):
        """Sum of `tensor` over ranks (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.allreduce(run_time_input(tensor), op=self.hvd.Sum, name=name)

    def allreduce_mean(self, tensor, name=None):
        """Mean of `tensor` over ranks (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.allreduce(run_time_input(tensor), op=self.hvd.Average, name=name)

    def broadcast_from_chief(self, tensor, name=None):
        """Rank 0's value of `tensor` on every rank (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.broadcast(run_time_input(tensor), root_rank=0, name=name)

    def allreduce_max(self, tensor, name=None):
        """Max of `tensor` over ranks (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.allreduce(run_time_input(tensor), op=self.hvd.Max, name=name)


class BroadcastVariablesHook(tf.train.SessionRunHook):
    """Broadcasts every global variable from rank 0 once the session exists.

    Except those of RANK_LOCAL_VARIABLES, which each rank holds alone.

    horovod.tensorflow.BroadcastGlobalVariablesHook is not defined on TF 2.21 (it looks
    for tf.estimator), hence this one. `after_create_session` runs after the session
    manager has initialised the variables or restored them from a checkpoint (resume or
    finetune), so every rank starts from the same restored weights.
    """

    def __init__(self, hvd, root_rank=0):
        self._hvd = hvd
        self._root_rank = root_rank
        self._op = None

    def begin(self):
        if self._op is None or self._op.graph is not tf.get_default_graph():
            own = set(rank_local_variables())
            # Horovod: the rows of a model-parallel table differ by rank by design.
            shared = [v for v in tf.global_variables() if v not in own]
            self._op = self._hvd.broadcast_variables(shared, self._root_rank)

    def after_create_session(self, session, coord):
        session.run(self._op)


def init(params=None):
    """Initialises Horovod once when launched by mpirun / horovodrun, and returns Distributed.

    Args:
        params: optional object with fusion_threshold_mb and cycle_time_ms; Horovod reads
            these from the environment at init, so they are exported first.

    Raises:
        RuntimeError: launched with several ranks but Horovod is not installed.
    """
    if launched_size() <= 1 and not os.environ.get("TFZOO_FORCE_HOROVOD"):
        return Distributed(None)
    if params is not None:
        if getattr(params, "fusion_threshold_mb", None) is not None:
            os.environ["HOROVOD_FUSION_THRESHOLD"] = str(
                int(params.fusion_threshold_mb * 1024 * 1024)
            )
        if getattr(params, "cycle_time_ms", None) is not None:
            os.environ["HOROVOD_CYCLE_TIME"] = str(params.cycle_time_ms)
    try:
        import horovod.tensorflow as hvd
    except ImportError as e:
        raise RuntimeError(
            f"This run was launched with {launched_size()} ranks but Horovod cannot be imported "
            f"({e}); run scripts/setup.sh, which builds it"
        ) from e
    hvd.init()
    return Distributed(hvd)


def session_config(dist, params=None):
    """tf.ConfigProto for this rank: pin the local GPU (when there is one) and threads."""
    config = tf.ConfigProto(allow_soft_placement=True)
    # Horovod: one GPU per process, chosen by local rank.
    config.gpu_options.visible_device_list = str(dist.local_rank) if dist.hvd else ""
    config.gpu_options.allow_growth = True
    if params is not None:
        config.inter_op_parallelism_threads = params.inter_op_parallelism_threads or 0
        config.intra_op_parallelism_threads = params.intra_op_parallelism_threads or 0
        config.log_device_placement = bool(getattr(params, "log_device_placement", False))
    return config
