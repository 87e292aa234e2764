"""The recommendation tasks: `ncf` (NeuMF / GMF / MLP on MovieLens) and `ctr` (Wide&Deep,
DeepFM, DCN, logistic regression on Criteo).

ncf follows NCF's protocol (He et al. 2017): training triples (user, item, 0/1) with 4
negatives per positive drawn afresh every epoch (datasets/movielens.NegativeSampler,
sharded by rank); evaluation ranks each test user's held-out item among its 99 sampled
negatives: HR@10 and NDCG@10 (ties count against the positive, as datasets/rec_metrics.py).

ctr reads the converted Criteo records (datasets/criteo.py: 13 dense features, 26 ids in
ONE table with per-field offsets); evaluation reports AUC from two score histograms and the
logloss, both sums over the whole split and over the ranks (rec_metrics.py: the histogram
AUC is within auc_error_bound of the exact AUC).

Both train with binary cross-entropy on logits. Embedding gradients are IndexedSlices:
`sparse_as_dense = False`, so under Horovod they are allgathered (--sparse_as_dense makes
them dense allreduces); --model_parallel_embeddings shards every table with at least
--min_sharded_rows rows by rows over the ranks instead (rec_models/sharded_embedding.py:
alltoall lookups, shards saved and restored per rank under train_dir/embedding_shards).

    python train_rec_models.py --task=ncf --model_name=neumf --dataset_dir=data/ml-1m \\
        --optimizer=adam --opt_epsilon=1e-8 --learning_rate=0.001 --batch_size=256
    python train_rec_models.py --task=ctr --model_name=deepfm --dataset_dir=data/criteo
"""

import math

import numpy as np

from datasets import criteo, movielens, rec_metrics
from rec_models import ctr, layers, models_factory, ncf, sharded_embedding, split_optimizer
from slim_compat import tf
from training import distributed, input_pipeline, optimizers, task

#: The optimizer name of Wide&Deep's two optimizers (FTRL on the wide part).
WIDE_FTRL = "wide_ftrl"


def _int_list(text, flag):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{flag} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise ValueError(f"--{flag} must list positive integers, got {text!r}")
    return tuple(values)


def define_recommendation_flags(flags_module):
    """The flags of both recommendation tasks (each defined once, whichever task asks)."""
    from absl import flags as f  # flags_module (tfzoo's flags.py) holds the shared ones

    FLAGS = f.FLAGS

    def define(kind, name, default, help_text, **kwargs):
        if name not in FLAGS:
            getattr(f, f"DEFINE_{kind}")(name, default, help_text, **kwargs)

    # ------------------------------------------------------------------ recommendation
    define("integer", "ncf_mf_dim", ncf.DEFAULT_CONFIG.mf_dim, "ncf: GMF embedding size.")
    define(
        "string",
        "ncf_layers",
        ",".join(map(str, ncf.DEFAULT_CONFIG.layers)),
        "ncf: MLP tower, comma-separated; the first is the concatenated user+item embedding "
        "(NCF's [64, 32, 16, 8]: embeddings of 32, then 32, 16, 8 units).",
    )
    define(
        "integer",
        "num_train_negatives",
        movielens.DEFAULT_NUM_TRAIN_NEGATIVES,
        "ncf: negatives sampled per training positive, afresh every epoch.",
    )
    define("integer", "top_k", rec_metrics.DEFAULT_TOP_K, "ncf: K of HR@K and NDCG@K.")
    define(
        "integer",
        "embedding_dim",
        ctr.DEFAULT_CONFIG.embedding_dim,
        "ctr: embedding size of every categorical field.",
    )
    define(
        "string",
        "ctr_hidden_units",
        ",".join(map(str, ctr.DEFAULT_CONFIG.hidden_units)),
        "ctr: the deep tower's ReLU layers, comma-separated.",
    )
    define(
        "integer",
        "num_cross_layers",
        ctr.DEFAULT_CONFIG.num_cross_layers,
        "ctr: cross layers of DCN.",
    )
    define(
        "integer",
        "auc_num_buckets",
        rec_metrics.DEFAULT_NUM_BUCKETS,
        "ctr: score-histogram buckets of the eval AUC (error about 1/buckets).",
    )
    define(
        "boolean",
        "model_parallel_embeddings",
        False,
        "Shard embedding tables by rows over the Horovod ranks (alltoall lookups; each "
        "rank saves its own shard under train_dir/embedding_shards) instead of copying them.",
    )
    define(
        "integer",
        "min_sharded_rows",
        1000,
        "With --model_parallel_embeddings: tables with fewer rows stay whole on every rank.",
    )
    define(
        "string",
        "deep_optimizer",
        "adagrad",
        f"--optimizer={WIDE_FTRL}: the optimizer of everything but the wide part "
        f"(one of tfzoo's --optimizer names; Wide&Deep's paper: adagrad).",
    )
    define(
        "float",
        "wide_learning_rate",
        None,
        f"--optimizer={WIDE_FTRL}: FTRL's learning rate (default: --learning_rate's schedule).",
    )


def _wide_ftrl(learning_rate, params):
    """FTRL (the --ftrl_* flags) on the wide scope, --deep_optimizer on the rest."""
    deep_name = getattr(params, "deep_optimizer", "adagrad")
    if deep_name == WIDE_FTRL:
        raise ValueError(f"--deep_optimizer cannot be {WIDE_FTRL} itself")
    wide_rate = getattr(params, "wide_learning_rate", None)
    wide = optimizers.configure_optimizer(
        "ftrl", learning_rate if wide_rate is None else wide_rate, params
    )
    deep = optimizers.configure_optimizer(deep_name, learning_rate, params)
    return split_optimizer.SplitOptimizer(wide, deep, [ctr.WIDE_SCOPE], name="WideFtrl")


if WIDE_FTRL not in optimizers.OPTIMIZERS:
    optimizers.register_optimizer(WIDE_FTRL, _wide_ftrl)


def _horovod_if_launched():
    if distributed.launched_size() <= 1:
        return None
    import horovod.tensorflow as hvd

    return hvd


def _count_records(path):
    return sum(1 for _ in tf.io.tf_record_iterator(path))


def _records_per_rank(files, total, size):
    """Records each rank reads of `files` (`total` in all), as input_pipeline shards them."""
    plan = input_pipeline.shard_files_by_rank(files, 0, size)
    if plan.mode == "examples" or size == 1:
        return [len(range(r, total, size)) for r in range(size)]
    counts = {path: _count_records(path) for path in files}
    return [
        sum(counts[p] for p in input_pipeline.shard_files_by_rank(files, r, size).files)
        for r in range(size)
    ]


def _pad_batches(dataset, num_batches, padding):
    """`dataset` followed by `padding` batches (weight 0), `num_batches` in all.

    A model-parallel lookup is a collective: every rank must run as many eval batches.
    """
    filler = tf.data.Dataset.from_tensors(padding).repeat()
    return dataset.concatenate(filler).take(num_batches)


class RecommendationTask(task.Task):
    """What the two tasks share: flags, tables, BCE loss, hooks of the sharded tables."""

    kind = None
    family = "rec"
    sparse_as_dense = False
    throughput_labels = {}

    @classmethod
    def define_flags(cls, flags_module):
        define_recommendation_flags(flags_module)

    def model_entry(self, params):
        return models_factory.get_model(params.model_name, self.kind)

    #: Set while the export graph is built: its tables are whole (serving).
    _serving = False

    def embeddings(self, params):
        """The layers.Embeddings of this run: whole tables, or sharded over the ranks.

        The serving graph of a model-parallel run holds whole tables, filled from every
        rank's shards (restore_rank_local_variables).
        """
        if getattr(params, "model_parallel_embeddings", False):
            if self._serving:
                return layers.Embeddings(min_sharded_rows=params.min_sharded_rows, from_shards=True)
            model_parallel = sharded_embedding.ModelParallel(_horovod_if_launched())
            return layers.Embeddings(model_parallel, params.min_sharded_rows)
        return layers.Embeddings()

    def restore_rank_local_variables(self, session, checkpoint, rank, size):
        # The shards of the checkpoint's step: this rank's own, or all of them gathered.
        sharded_embedding.restore_tables(session, checkpoint, rank, size)

    def model_parallel_size(self, params):
        """Ranks sharing tables (1 when tables are whole)."""
        if not getattr(params, "model_parallel_embeddings", False):
            return 1
        return distributed.launched_size()

    def build_losses(self, features, outputs, params):
        labels = tf.cast(tf.reshape(features["label"], [-1]), tf.float32)
        logits = tf.reshape(outputs["logits"], [-1])
        cross_entropy = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        )
        parts = {"cross_entropy": cross_entropy}
        total = cross_entropy
        weight_decay = getattr(params, "weight_decay", 0.0) or 0.0
        kernels = [v for v in tf.trainable_variables() if v.op.name.endswith("kernel")]
        if weight_decay > 0 and kernels:
            # Dense kernels only: an L2 term on a table would make its gradient dense.
            regularization = weight_decay * tf.add_n(
                [tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels]
            )
            parts["regularization"] = regularization
            total = total + regularization
        return task.Losses(total, parts)

    def train_metrics(self, features, outputs):
        labels = tf.reshape(features["label"], [-1])
        predicted = tf.cast(tf.reshape(outputs["logits"], [-1]) > 0, tf.float32)
        return {"accuracy": tf.reduce_mean(tf.cast(tf.equal(predicted, labels), tf.float32))}

    def batch_counts(self, features):
        return {"examples": tf.size(features["label"])}

    def training_hooks(self, params, dist):
        if not getattr(params, "model_parallel_embeddings", False):
            return []
        # Each rank saves its own rows next to the trainer's checkpoints, at its steps.
        return [
            sharded_embedding.ShardCheckpointHook(
                params.train_dir,
                dist.rank,
                dist.size,
                save_steps=params.save_checkpoints_steps,
                max_to_keep=getattr(params, "keep_checkpoint_max", 5),
            )
        ]

    def _eval_stream(self, dataset, counts, rank, batch_size, params, padding):
        """Adds `weight` (1 per real example) and pads to as many batches on every rank."""
        dataset = dataset.map(
            lambda f: dict(f, weight=tf.ones(tf.shape(f["label" if "label" in f else "user"])[:1]))
        )
        if self.model_parallel_size(params) > 1:
            batches = max(math.ceil(c / batch_size) for c in counts)
            dataset = _pad_batches(dataset, batches, padding)
        return dataset


class NCFTask(RecommendationTask):
    """NeuMF, GMF or MLP on MovieLens by NCF's protocol (ids from the converted records)."""

    name = "ncf"
    kind = "ncf"

    def _metadata(self, params):
        return movielens.read_metadata(params.dataset_dir)

    def config(self, params):
        return ncf.NCFConfig(params.ncf_mf_dim, _int_list(params.ncf_layers, "ncf_layers"))

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        metadata = self._metadata(params)
        if is_training:
            if split not in (None, "train"):
                raise ValueError(f"ncf trains on the 'train' split, got {split!r}")
            sampler = movielens.NegativeSampler.from_dataset_dir(
                params.dataset_dir, num_negatives=params.num_train_negatives, seed=seed
            )
            positives = metadata["num_train_positives"]
            triples = math.ceil(positives / size) * (1 + params.num_train_negatives)
            per_epoch = math.ceil(triples / batch_size)
            # A resumed run starts in the epoch (and batch) it stopped at.
            first_epoch, skip = divmod(int(start_step), per_epoch)
            dataset = movielens.train_dataset(sampler, batch_size, rank, size, None, first_epoch)
            dataset = dataset.skip(skip)
            return task.InputData(
                dataset,
                positives * (1 + params.num_train_negatives),
                f"{positives} training positives + {params.num_train_negatives} fresh "
                f"negatives each per epoch, every {size}-th positive on rank {rank}",
                per_epoch,
            )
        if split not in (None, "test"):
            raise ValueError(
                f"ncf evaluates on the 'test' split (one record per user), got {split!r}"
            )
        dataset = movielens.test_dataset(params.dataset_dir, batch_size, rank, size)
        num_users = metadata["num_users"]
        candidates = metadata["num_test_negatives"] + 1
        counts = [num_users]
        if self.model_parallel_size(params) > 1:
            counts = _records_per_rank(movielens.test_files(params.dataset_dir), num_users, size)
        padding = {
            "user": tf.zeros([1, 1], tf.int64),
            "items": tf.zeros([1, candidates], tf.int64),
            "labels": tf.zeros([1, candidates], tf.float32),
            "weight": tf.zeros([1], tf.float32),
        }
        dataset = self._eval_stream(dataset, counts, rank, batch_size, params, padding)
        return task.InputData(
            dataset, num_users, f"{num_users} test users, {candidates} candidates each"
        )

    def score(self, users, items, params, compute_dtype):
        """Logits of (user, item) pairs of any matching shapes (fp32, items' shape)."""
        metadata = self._metadata(params)
        entry = self.model_entry(params)
        users = tf.broadcast_to(users, tf.shape(items))
        logits, _ = entry.fn(
            tf.reshape(users, [-1]),
            tf.reshape(items, [-1]),
            metadata["num_users"],
            metadata["num_items"],
            self.embeddings(params),
            compute_dtype,
            self.config(params),
        )
        return tf.reshape(logits, tf.shape(items))

    def build_model(self, features, params, is_training, compute_dtype):
        self._top_k = params.top_k
        if "items" in features:  # an eval batch: every user's candidates
            return {
                "logits": self.score(features["user"], features["items"], params, compute_dtype)
            }
        return {"logits": self.score(features["user"], features["item"], params, compute_dtype)}

    def eval_statistics(self, features, outputs):
        logits = outputs["logits"]  # [batch, candidates], the positive first
        weight = features["weight"]
        # Ties count against the positive, as rec_metrics.positive_ranks.
        rank = tf.reduce_sum(tf.cast(logits[:, 1:] >= logits[:, :1], tf.float32), axis=1)
        hits = tf.cast(rank < self._top_k, tf.float32)
        ndcg = hits * tf.math.log(2.0) / tf.math.log(rank + 2.0)
        return {
            "hits": tf.reduce_sum(hits * weight),
            "ndcg": tf.reduce_sum(ndcg * weight),
            "count": tf.reduce_sum(weight),
        }

    _top_k = rec_metrics.DEFAULT_TOP_K

    def metrics_from_sums(self, sums):
        count = float(sums["count"])
        if count <= 0:
            raise ValueError("ncf evaluation saw no test user: is the test split empty?")
        k = self._top_k
        return {
            f"hr@{k}": float(sums["hits"]) / count,
            f"ndcg@{k}": float(sums["ndcg"]) / count,
            "count": int(round(count)),
        }

    def export_signature(self, params):
        self._serving = True
        self._export_sizes = self._metadata(params)
        users = tf.placeholder(tf.int64, [None], name="user")
        items = tf.placeholder(tf.int64, [None], name="item")
        logits = self.score(users, items, params, tf.float32)
        return task.ExportSignature(
            {"user": users, "item": items}, {"logits": logits, "probability": tf.sigmoid(logits)}
        )

    def export_example(self, signature, batch_size, seed):
        rng = np.random.default_rng(seed)
        users = self._export_sizes["num_users"]
        items = self._export_sizes["num_items"]
        return {
            "user": rng.integers(0, users, batch_size).astype(np.int64),
            "item": rng.integers(0, items, batch_size).astype(np.int64),
        }


class CTRTask(RecommendationTask):
    """Wide&Deep, DeepFM, DCN or logistic regression on the converted Criteo records."""

    name = "ctr"
    kind = "ctr"

    def _metadata(self, params):
        return criteo.read_metadata(params.dataset_dir)

    def config(self, params):
        return ctr.CTRConfig(
            params.embedding_dim,
            _int_list(params.ctr_hidden_units, "ctr_hidden_units"),
            params.num_cross_layers,
        )

    def _files(self, params, split):
        pattern = criteo.FILE_PATTERN.format(split=split)
        files = sorted(tf.io.gfile.glob(f"{params.dataset_dir}/{pattern}"))
        if not files:
            raise FileNotFoundError(
                f"no Criteo {split} records match {params.dataset_dir}/{pattern}; the splits "
                f"of criteo.json: {sorted(self._metadata(params)['split_sizes'])}"
            )
        return files

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        metadata = self._metadata(params)
        split = split or "validation"
        sizes = metadata["split_sizes"]
        if split not in sizes:
            raise ValueError(f"Unknown Criteo split {split!r}; expected one of: {', '.join(sizes)}")
        total = sizes[split]
        if is_training:
            plan = input_pipeline.shard_files_by_rank(self._files(params, split), rank, size)
            records = input_pipeline.read_records(plan, rank, size, True, seed=seed)
            spec = criteo.feature_spec()
            dataset = (
                records.shuffle(getattr(params, "shuffle_buffer_size", 1024) or 1, seed=seed)
                .repeat()
                .batch(batch_size)
                .map(lambda r: tf.io.parse_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE)
            )
            return task.InputData(dataset, total, plan.description)
        dataset = criteo.split_dataset(params.dataset_dir, split, batch_size, rank, size)
        counts = [total]
        if self.model_parallel_size(params) > 1:
            counts = _records_per_rank(self._files(params, split), total, size)
        padding = {
            "label": tf.zeros([1, 1], tf.float32),
            "dense": tf.zeros([1, criteo.NUM_DENSE], tf.float32),
            "sparse": tf.zeros([1, criteo.NUM_SPARSE], tf.int64),
            "weight": tf.zeros([1], tf.float32),
        }
        dataset = self._eval_stream(dataset, counts, rank, batch_size, params, padding)
        return task.InputData(dataset, total, f"{total} {split} impressions")

    def logits(self, dense, sparse, params, compute_dtype):
        metadata = self._metadata(params)
        entry = self.model_entry(params)
        logits, _ = entry.fn(
            dense,
            sparse,
            metadata["num_rows"],
            self.embeddings(params),
            compute_dtype,
            self.config(params),
        )
        return logits

    def build_model(self, features, params, is_training, compute_dtype):
        self._num_buckets = params.auc_num_buckets
        return {"logits": self.logits(features["dense"], features["sparse"], params, compute_dtype)}

    _num_buckets = rec_metrics.DEFAULT_NUM_BUCKETS

    def eval_statistics(self, features, outputs):
        labels = tf.reshape(features["label"], [-1])
        weight = features["weight"]
        logits = tf.reshape(outputs["logits"], [-1])
        probabilities = tf.sigmoid(logits)
        n = self._num_buckets
        # The buckets of rec_metrics.score_histograms: [b / n, (b + 1) / n), 1.0 in the last.
        buckets = tf.clip_by_value(
            tf.cast(tf.floor(tf.cast(probabilities, tf.float64) * n), tf.int32), 0, n - 1
        )
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        return {
            "positives": tf.math.unsorted_segment_sum(labels * weight, buckets, n),
            "negatives": tf.math.unsorted_segment_sum((1.0 - labels) * weight, buckets, n),
            "logloss": tf.reduce_sum(losses * weight),
            "count": tf.reduce_sum(weight),
        }

    def metrics_from_sums(self, sums):
        count = float(sums["count"])
        if count <= 0:
            raise ValueError("ctr evaluation saw no impression: is the split empty?")
        positives = np.rint(sums["positives"]).astype(np.int64)
        negatives = np.rint(sums["negatives"]).astype(np.int64)
        return {
            "auc": rec_metrics.auc_from_histograms(positives, negatives),
            "logloss": float(sums["logloss"]) / count,
            "auc_error_bound": rec_metrics.auc_histogram_error_bound(positives, negatives),
            "count": int(round(count)),
        }

    def export_signature(self, params):
        dense = tf.placeholder(tf.float32, [None, criteo.NUM_DENSE], name="dense")
        sparse = tf.placeholder(tf.int64, [None, criteo.NUM_SPARSE], name="sparse")
        self._export_rows = self._metadata(params)["num_rows"]
        self._serving = True
        logits = self.logits(dense, sparse, params, tf.float32)
        return task.ExportSignature(
            {"dense": dense, "sparse": sparse},
            {"logits": logits, "probability": tf.sigmoid(logits)},
        )

    def export_example(self, signature, batch_size, seed):
        rng = np.random.default_rng(seed)
        return {
            "dense": np.log1p(rng.integers(0, 100, (batch_size, criteo.NUM_DENSE))).astype(
                np.float32
            ),
            "sparse": rng.integers(0, self._export_rows, (batch_size, criteo.NUM_SPARSE)).astype(
                np.int64
            ),
        }


task.register_task(NCFTask.name, NCFTask)
task.register_task(CTRTask.name, CTRTask)
