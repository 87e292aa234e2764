"""The task interface: what differs between model families, and THE map of tasks.

TF Model Garden splits training into a task and a trainer; HetSeq names the extension
points Task, Model, Dataset, Optimizer and LR scheduler. In tfzoo a `Task` owns what
differs between families (image classification, translation, BERT, recommendation,
graph learning):

* its flags (`define_flags`, called once before flags are parsed);
* its input: a `tf.data.Dataset` of feature dicts for (split, is_training, rank, size);
* the model outputs, the loss (a total plus named parts for the log) and the training
  metrics;
* evaluation as sums of sufficient statistics: per batch the task returns tensors whose
  sums over the whole split determine its metrics (correct counts, loss sums, n-gram
  match counts for BLEU, score histograms for AUC). The trainer accumulates them, sums
  them over ranks with one allreduce, so each example counts exactly once, and hands the
  totals back to `metrics_from_sums`;
* how many examples (and tokens) a batch holds, for the throughput log;
* its export signature.

The trainer (training/trainer.py) owns everything else, once, for every task: precision
(fp32 master weights, loss scaling), Horovod (optimizer wrap, broadcast, LR scaling,
rank-0 I/O), accumulation, clipping, EMA, optimizers and schedules, hooks, checkpoints,
resume, finetune restore rules, evaluation during training and summaries. A task holds
no loop and no session.

Add a task: subclass `Task` in the family's module, then one line in its family's map
or `register_task("name", MyTask)`.
"""

import collections

InputData = collections.namedtuple(
    "InputData", ["dataset", "num_examples", "description", "batches_per_epoch", "errors_named"]
)
InputData.__new__.__defaults__ = ("", None, None)
InputData.__doc__ = """The input of one rank for one split.

dataset: a tf.data.Dataset of dicts of batched feature tensors. Training streams repeat
    forever (every rank runs the same number of steps); evaluation streams make one pass,
    with this rank's disjoint share of the split, the last partial batch kept.
num_examples: examples in the whole split (all ranks), for epochs and schedules; None
    when unknown.
description: a sentence for the log (e.g. how the files were sharded over ranks).
batches_per_epoch: batches of ONE rank in one epoch, when batches are not a fixed number
    of examples (token batching, one full-graph batch); None: num_examples divided by the
    global batch.
errors_named: optional factory of a context manager around the reading session that turns
    a read error into one naming the bad file (dataset_factory.input_errors_named).
"""

Losses = collections.namedtuple("Losses", ["total", "parts"])
Losses.__doc__ = """The training loss of one batch.

total: scalar float32, what the optimizer minimises (regularisation included).
parts: dict name -> scalar float32 tensor, logged and summarised (e.g. cross_entropy).
"""

ExportSignature = collections.namedtuple("ExportSignature", ["inputs", "outputs"])
ExportSignature.__doc__ = """What an exported model takes and returns.

inputs: dict name -> tf.placeholder (any dtype and shape: float images, int32 ids, masks).
outputs: dict name -> tensor, built from those placeholders with is_training=False.
"""


class Task:
    """Base class of every task; subclasses override what their family needs.

    Methods receive `params`, the parsed flags (an object with the flags as attributes),
    so a task reads its own flag group and the shared ones the same way.
    """

    #: Name in the task registry and in --task.
    name = None
    #: The entry point that trains it: "image" (train_image_classifiers.py), "nlp"
    #: (train_nlp_models.py), "rec" (train_rec_models.py) or "graph" (train_graph_models.py).
    family = None
    #: Horovod's default for IndexedSlices gradients (embedding lookups): True reduces
    #: them as dense tensors (allreduce), False allgathers their rows. --sparse_as_dense
    #: overrides it. Dense is right when most rows are touched per step (a shared
    #: vocabulary embedding), allgather when few are (huge recommendation tables).
    sparse_as_dense = True
    #: Throughput units of batch_counts -> (log key, unit shown), e.g. tokens per second.
    throughput_labels = {}

    @classmethod
    def define_flags(cls, flags_module):
        """Defines this task's own absl flags (called once, before parsing)."""

    def check_params(self, params, dist):
        """Raises ValueError for flag values this task cannot run, before anything is built."""

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        """Returns the InputData of this rank for `split`.

        Args:
            params: the parsed flags.
            split: a split name; None for evaluation means the task's held-out split.
            is_training: shuffle, augment and repeat forever; else one ordered pass.
            rank, size: this rank and the number of ranks (shard disjointly).
            batch_size: examples per batch of this rank (--batch_size or --eval_batch_size;
                a task batching by tokens may read its own flag instead).
            seed: the run's seed, already folded with the start step of a resume.
            start_step: the global step the run starts at (0 unless resumed).
        """
        raise NotImplementedError

    def build_model(self, features, params, is_training, compute_dtype):
        """Builds the model on a batch of `features`; returns a dict of output tensors.

        Called under the trainer's fp32-master-weight getter when compute_dtype is fp16
        or bf16: cast float inputs to compute_dtype, look embeddings up with
        precision.embedding_lookup, and return fp32 logits.
        """
        raise NotImplementedError

    def build_losses(self, features, outputs, params):
        """Returns the Losses of one batch (fp32)."""
        raise NotImplementedError

    def train_metrics(self, features, outputs):
        """Dict name -> scalar tensor of this batch for the training log (e.g. accuracy)."""
        return {}

    def eval_statistics(self, features, outputs):
        """Dict name -> tensor of this batch, whose sums over the split give the metrics.

        Every tensor must have the same static shape on every batch (scalars, or vectors
        such as a histogram). Include "count", the examples of the batch.
        """
        raise NotImplementedError

    def host_statistics_spec(self, params):
        """Dict name -> shape of statistics computed in Python per eval batch; {} if none.

        For metrics that need host code (BLEU of detokenised text with sacrebleu): per
        batch the trainer fetches `eval_host_fetches`, calls `eval_host_statistics` on the
        numpy values and sums the results; they are summed over ranks together with the
        graph's statistics, in the same single allreduce.
        """
        return {}

    def eval_host_fetches(self, features, outputs):
        """Dict name -> tensor fetched on every eval batch for eval_host_statistics."""
        return {}

    def eval_host_statistics(self, fetched):
        """Dict name -> numpy array (shapes of host_statistics_spec) of one batch."""
        return {}

    def metrics_from_sums(self, sums):
        """Dict name -> float from the totals of the statistics (graph and host; numpy).

        Include "count", the examples evaluated. Raise ValueError when a total makes the
        metrics undefined (an empty split).
        """
        raise NotImplementedError

    def format_metrics(self, metrics):
        """One line of the eval log from metrics_from_sums' dict."""
        return "  ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
        )

    def batch_counts(self, features):
        """Dict unit -> scalar tensor: what one batch holds, e.g. {"examples": n, "tokens": t}.

        The step log reports each unit per second, summed over ranks.
        """
        raise NotImplementedError

    def export_signature(self, params):
        """The ExportSignature of the serving model (called inside a fresh default graph).

        Build the model with is_training=False in the same variable scopes as training,
        so a training checkpoint restores into it.
        """
        raise NotImplementedError

    def export_example(self, signature, batch_size, seed):
        """Dict input name -> numpy batch valid for the signature (the export's parity run).

        The default fills float inputs with normal noise and integer inputs with zeros;
        override it to give ids in range, masks that make sense.
        """
        import numpy as np

        rng = np.random.default_rng(seed)
        example = {}
        for name, placeholder in signature.inputs.items():
            shape = [batch_size if d is None else d for d in placeholder.shape.as_list()]
            dtype = placeholder.dtype.as_numpy_dtype
            if placeholder.dtype.is_floating:
                example[name] = rng.standard_normal(shape).astype(dtype)
            else:
                example[name] = np.zeros(shape, dtype)
        return example

    def training_hooks(self, params, dist):
        """Extra SessionRunHooks of this task's training run (after the trainer's own)."""
        return []

    def restore_rank_local_variables(self, session, checkpoint, rank, size):
        """Restores the rank-local variables (distributed.RANK_LOCAL_VARIABLES) of this
        graph for `checkpoint` (a trainer checkpoint prefix), which does not hold them.

        Evaluation and export call it after restoring `checkpoint`. The default knows no
        rank-local variables and refuses a graph that has some.
        """
        from training import distributed

        local = distributed.rank_local_variables(session.graph)
        if local:
            raise ValueError(
                f"Task {self.name!r} holds rank-local variables (e.g. {local[0].op.name}) "
                f"that the checkpoint {checkpoint} does not hold, and no way to restore them"
            )

    def finetune_exclude_scopes(self, params):
        """Scopes excluded from a finetune restore by default (e.g. a new head)."""
        return []


TASKS = {}


def register_task(name, task_class):
    """Adds `task_class` (a Task subclass) to THE map of tasks under `name`."""
    if name in TASKS and TASKS[name] is not task_class:
        raise ValueError(f"Task {name!r} is already registered as {TASKS[name].__name__}")
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise TypeError(f"register_task({name!r}, ...) needs a Task subclass, got {task_class!r}")
    TASKS[name] = task_class
    return task_class


def tasks_of_family(family):
    """Sorted names of the registered tasks of `family` (e.g. "nlp")."""
    return sorted(name for name, cls in TASKS.items() if cls.family == family)


def get_task(name, family=None):
    """Instantiates the task `name`.

    Args:
        name: a registered task name.
        family: optional family an entry point serves (e.g. "nlp"): only its tasks are valid.

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    names = sorted(TASKS) if family is None else tasks_of_family(family)
    if name not in names:
        if not names:
            raise ValueError(f"Unknown task {name!r}: no {family} task is registered yet")
        raise ValueError(f"Unknown task {name!r}; expected one of: {', '.join(names)}")
    return TASKS[name]()
