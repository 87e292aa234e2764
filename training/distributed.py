"""Horovod, when the run was launched by mpirun / horovodrun; a single process otherwise.

Horovod is imported only for a launched run, so a plain `python train_image_classifiers.py`
needs no Horovod and starts faster. Everything the rest of tfzoo needs from the
distribution layer goes through `Distributed`: rank and size, the optimizer wrapper, the
broadcast hook and sums over ranks.
"""

import os

from slim_compat import tf

# Environment variables that a launcher sets for every rank it starts.
# SLURM_STEP_NUM_TASKS is set by srun for its job step (not in the batch script itself).
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

    def wrap_optimizer(
        self, optimizer, compression="none", op="average", backward_passes_per_step=1
    ):
        """Horovod: average (or sum / adasum) the gradients over ranks at every step."""
        if self.hvd is None:
            if backward_passes_per_step != 1:
                raise ValueError(
                    "backward_passes_per_step > 1 needs a Horovod run (mpirun / horovodrun); "
                    f"got {backward_passes_per_step} in a single process"
                )
            return optimizer
        hvd = self.hvd
        compressions = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}
        ops = {"average": hvd.Average, "sum": hvd.Sum, "adasum": hvd.Adasum}
        if compression not in compressions:
            raise ValueError(
                f"Unknown gradient_compression {compression!r}; expected one of: none, fp16"
            )
        if op not in ops:
            raise ValueError(f"Unknown allreduce_op {op!r}; expected one of: average, sum, adasum")
        return hvd.DistributedOptimizer(
            optimizer,
            compression=compressions[compression],
            op=ops[op],
            backward_passes_per_step=backward_passes_per_step,
        )

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
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name=name)

    def allreduce_mean(self, tensor, name=None):
        """Mean of `tensor` over ranks (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.allreduce(tensor, op=self.hvd.Average, name=name)

    def broadcast_from_chief(self, tensor, name=None):
        """Rank 0's value of `tensor` on every rank (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.broadcast(tensor, root_rank=0, name=name)

    def allreduce_max(self, tensor, name=None):
        """Max of `tensor` over ranks (identity for one process)."""
        if self.hvd is None:
            return tf.identity(tensor, name=name)
        return self.hvd.allreduce(tensor, op=self.hvd.Max, name=name)


class BroadcastVariablesHook(tf.train.SessionRunHook):
    """Broadcasts every global variable from rank 0 once the session exists.

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
            self._op = self._hvd.broadcast_global_variables(self._root_rank)

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
