"""The recommendation tasks and models: learning on data of known structure, exact metrics.

Model-level runs use tests/tasks/task_loop.py (a plain session loop over the task's
pieces); tests/tasks/test_train_rec_models.py runs the same tasks through the trainer.
"""

import os
import sys

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rec_synthetic  # noqa: E402
import task_loop  # noqa: E402

from datasets import rec_metrics  # noqa: E402
from rec_models import layers, models_factory, split_optimizer  # noqa: E402
from slim_compat import tf  # noqa: E402
from tasks import recommendation  # noqa: E402
from training import optimizers, precision, task  # noqa: E402

SMALL_CTR = dict(embedding_dim=8, ctr_hidden_units="64,64,64")


@pytest.fixture(scope="module")
def movielens_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    source = rec_synthetic.latent_factor_ratings(root / "ratings.dat")
    rec_synthetic.convert("movielens", source, str(root / "records"), num_shards=2, seed=1)
    return str(root / "records")


@pytest.fixture(scope="module")
def criteo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("criteo")
    source = rec_synthetic.interaction_clicks(root / "train.txt")
    rec_synthetic.convert(
        "criteo",
        source,
        str(root / "records"),
        num_shards=2,
        min_count=1,
        heldout_fraction=0.2,
        num_workers=1,
    )
    return str(root / "records")


@pytest.mark.parametrize("name", sorted(models_factory.MODELS))
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_every_model_builds_fp32_logits_and_every_weight_learns(graph, name, dtype):
    entry = models_factory.MODELS[name]
    with tf.variable_scope("m", custom_getter=precision.master_weights_getter(dtype)):
        if entry.kind == "ncf":
            logits, _ = entry.fn(
                tf.constant([0, 3, 4]), tf.constant([1, 2, 5]), 5, 6, layers.Embeddings(), dtype
            )
        else:
            dense = tf.random.uniform([3, 13])
            sparse = tf.constant(np.random.default_rng(0).integers(0, 40, (3, 26)))
            logits, _ = entry.fn(dense, sparse, 40, layers.Embeddings(), dtype)
    assert logits.dtype == tf.float32 and logits.shape.as_list() == [3]
    variables = tf.trainable_variables()
    assert variables and all(v.dtype.base_dtype == tf.float32 for v in variables)
    grads = tf.gradients(tf.reduce_sum(tf.sigmoid(logits)), variables)
    assert all(g is not None for g in grads), [
        v.name for v, g in zip(variables, grads) if g is None
    ]
    tables = [
        g for v, g in zip(variables, grads) if "embedding" in v.name or "first_order" in v.name
    ]
    # Embedding gradients stay sparse (and fp32) in one process.
    assert tables and all(isinstance(g, tf.IndexedSlices) for g in tables)
    assert all(g.values.dtype == tf.float32 for g in tables)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        assert np.all(np.isfinite(s.run(logits)))


def test_neumf_defaults_are_the_papers(graph):
    ncf_model = models_factory.get_model("neumf", "ncf")
    assert ncf_model.default_config.mf_dim == 8 and ncf_model.default_config.layers == (
        64,
        32,
        16,
        8,
    )
    ncf_model.fn(tf.constant([0]), tf.constant([0]), 3, 3, layers.Embeddings())
    shapes = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert shapes["gmf/user_embedding"] == [3, 8] and shapes["mlp/item_embedding"] == [3, 32]
    assert [shapes[f"mlp/tower/layer_{i}/kernel"] for i in range(3)] == [
        [64, 32],
        [32, 16],
        [16, 8],
    ]
    assert shapes["prediction/kernel"] == [16, 1]


def test_ctr_defaults_and_dcn_cross_layers(graph):
    dense, sparse = tf.zeros([2, 13]), tf.zeros([2, 26], tf.int64)
    models_factory.get_model("dcn").fn(dense, sparse, 50, layers.Embeddings())
    shapes = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    width = 26 * 16 + 13
    assert shapes["embedding"] == [50, 16]
    assert [shapes[f"cross/layer_{i}/kernel"] for i in range(3)] == [[width, 1]] * 3
    assert [shapes[f"deep/tower/layer_{i}/kernel"][1] for i in range(3)] == [256] * 3
    assert shapes["prediction/kernel"] == [width + 256, 1]


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ValueError, match="Unknown ctr model 'neumf'; expected one of: .*deepfm"):
        models_factory.get_model("neumf", "ctr")


def test_neumf_hit_rate_far_above_popularity_and_metrics_match_numpy(movielens_dir):
    p = task_loop.params(model_name="neumf", dataset_dir=movielens_dir)
    metrics, fetched = task_loop.train_and_evaluate(recommendation.NCFTask(), p, 300, 0.005)
    logits = np.concatenate([o["logits"] for _, o in fetched])
    items = np.concatenate([f["items"] for f, _ in fetched])
    assert metrics["count"] == 100 == len(logits)
    # The task's in-graph HR / NDCG are the direct numpy computation on the same scores.
    hits, ndcg, users = rec_metrics.hit_rate_and_ndcg_sums(logits)
    assert metrics["hr@10"] == pytest.approx(hits / users, abs=1e-9)
    assert metrics["ndcg@10"] == pytest.approx(ndcg / users, rel=1e-5)
    # Popularity: rank the candidates by their training count (ties broken at random).
    with np.load(os.path.join(movielens_dir, "movielens_interactions.npz")) as arrays:
        popularity = np.bincount(arrays["train_items"], minlength=items.max() + 1)
    jitter = np.random.default_rng(0).random(items.shape) * 1e-3
    popular_hits, _, _ = rec_metrics.hit_rate_and_ndcg_sums(popularity[items] + jitter)
    # Measured: NeuMF 0.79, popularity 0.18, random 0.10.
    assert metrics["hr@10"] > popular_hits / users + 0.3, (metrics, popular_hits / users)


def test_deepfm_and_dcn_beat_logistic_regression_when_interactions_matter(criteo_dir):
    auc = {}
    for name in ("logistic_regression", "deepfm", "dcn"):
        p = task_loop.params(model_name=name, dataset_dir=criteo_dir, **SMALL_CTR)
        metrics, fetched = task_loop.train_and_evaluate(recommendation.CTRTask(), p, 400, 0.003)
        labels = np.concatenate([f["label"].reshape(-1) for f, _ in fetched])
        scores = 1 / (1 + np.exp(-np.concatenate([o["logits"] for _, o in fetched])))
        # AUC from the summed histograms is scikit-learn's within its bound; logloss too.
        assert metrics["count"] == len(labels) == 1200
        exact = roc_auc_score(labels, scores)
        assert abs(metrics["auc"] - exact) <= metrics["auc_error_bound"] + 1e-9
        assert metrics["auc"] == pytest.approx(exact, abs=1e-3)
        assert metrics["logloss"] == pytest.approx(log_loss(labels, scores), rel=1e-4)
        auc[name] = metrics["auc"]
    # Measured: logistic regression 0.71, DeepFM 0.96, DCN 0.96.
    assert auc["deepfm"] > auc["logistic_regression"] + 0.1, auc
    assert auc["dcn"] > auc["logistic_regression"] + 0.1, auc


def test_ids_beyond_the_vocabulary_name_the_table(graph):
    ctr_task = recommendation.CTRTask()
    sparse = tf.placeholder(tf.int64, [None, 26])
    logits, _ = models_factory.get_model("deepfm").fn(
        tf.zeros([1, 13]), sparse, 50, layers.Embeddings()
    )
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        s.run(logits, {sparse: [[49] * 26]})
        for bad in (50, -1):
            with pytest.raises(
                tf.errors.InvalidArgumentError,
                match=r"ids of (wide/first_order|embedding) must be in \[0, 50\)",
            ):
                s.run(logits, {sparse: [[0] * 25 + [bad]]})
    assert ctr_task.sparse_as_dense is False and recommendation.NCFTask.sparse_as_dense is False


def test_missing_dataset_is_named(tmp_path):
    p = task_loop.params(dataset_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere/movielens.json not found"):
        recommendation.NCFTask().build_inputs(p, "train", True, 0, 1, 8, 0)
    with pytest.raises(FileNotFoundError, match="nowhere/criteo.json not found"):
        recommendation.CTRTask().build_inputs(p, None, False, 0, 1, 8, 0)


def test_empty_eval_is_an_error():
    with pytest.raises(ValueError, match="no test user"):
        recommendation.NCFTask().metrics_from_sums({"hits": 0, "ndcg": 0, "count": 0})
    with pytest.raises(ValueError, match="no impression"):
        recommendation.CTRTask().metrics_from_sums(
            {"positives": np.zeros(4), "negatives": np.zeros(4), "logloss": 0, "count": 0}
        )


def test_tasks_are_registered():
    assert isinstance(task.get_task("ncf"), recommendation.NCFTask)
    assert isinstance(task.get_task("ctr"), recommendation.CTRTask)


def test_wide_ftrl_updates_the_wide_part_with_ftrl_and_the_rest_with_the_deep_optimizer(graph):
    p = task_loop.params(
        deep_optimizer="adagrad",
        wide_learning_rate=0.5,
        ftrl_learning_rate_power=-0.5,
        ftrl_initial_accumulator_value=0.1,
        ftrl_l1=0.0,
        ftrl_l2=0.0,
        adagrad_initial_accumulator_value=0.1,
    )
    logits, _ = models_factory.get_model("wide_deep").fn(
        tf.ones([4, 13]), tf.constant(np.arange(104).reshape(4, 26) % 30), 30, layers.Embeddings()
    )
    loss = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones([4]), logits=logits)
    )
    optimizer = optimizers.configure_optimizer(recommendation.WIDE_FTRL, 0.1, p)
    assert isinstance(optimizer, split_optimizer.SplitOptimizer)
    step = tf.train.get_or_create_global_step()
    train_op = optimizer.apply_gradients(optimizer.compute_gradients(loss), global_step=step)
    wide = [v for v in tf.trainable_variables() if v.op.name.startswith("wide/")]
    deep = [v for v in tf.trainable_variables() if not v.op.name.startswith("wide/")]
    assert {v.op.name for v in wide} == {"wide/first_order", "wide/dense/kernel", "wide/dense/bias"}
    # FTRL's slots (accumulator, linear) on the wide variables, Adagrad's on the others.
    assert all(optimizer.scoped.get_slot(v, "linear") is not None for v in wide)
    assert all(optimizer.default.get_slot(v, "accumulator") is not None for v in deep)
    assert all(optimizer.scoped.get_slot(v, "linear") is None for v in deep)
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        before = s.run(wide + deep)
        s.run(train_op)
        after = s.run(wide + deep)
        assert s.run(step) == 1  # one step, though two optimizers applied
    assert all(np.any(a != b) for a, b in zip(before, after))
    with pytest.raises(ValueError, match="Unknown optimizer 'nope'"):
        optimizers.configure_optimizer(
            recommendation.WIDE_FTRL, 0.1, task_loop.params(**dict(vars(p), deep_optimizer="nope"))
        )


def test_model_parallel_eval_streams_are_padded_to_one_length(movielens_dir):
    # 100 test users in 2 files over 2 ranks (whole files): ranks read their own file.
    files = sorted(os.listdir(movielens_dir))
    counts = recommendation._records_per_rank(
        [os.path.join(movielens_dir, f) for f in files if f.startswith("movielens_test")], 100, 2
    )
    assert sum(counts) == 100 and len(counts) == 2
    assert recommendation._records_per_rank(["a", "b", "c"], 10, 2) == [5, 5]
    with tf.Graph().as_default():
        base = tf.data.Dataset.from_tensors({"x": tf.ones([3]), "weight": tf.ones([3])})
        padded = recommendation._pad_batches(base, 3, {"x": tf.zeros([1]), "weight": tf.zeros([1])})
        batch = tf.data.make_one_shot_iterator(padded).get_next()
        with tf.Session() as s:
            weights = []
            while True:
                try:
                    weights.append(s.run(batch)["weight"].tolist())
                except tf.errors.OutOfRangeError:
                    break
    assert weights == [[1.0, 1.0, 1.0], [0.0], [0.0]]


def _with_flags(function, **flag_values):
    """function() with these absl flags set (the others at their defaults)."""
    from absl import flags as absl_flags

    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["test"] + [f"--{k}={v}" for k, v in flag_values.items()])
    try:
        with tf.Graph().as_default():
            return function()
    finally:
        absl_flags.FLAGS.unparse_flags()


def test_one_process_model_parallel_run_resumes_with_its_slots_and_evaluates(criteo_dir, tmp_path):
    from training import evaluator, trainer

    trainer.define_task_flag("ctr", "rec")
    run = tmp_path / "run"
    common = dict(
        task="ctr",
        model_name="deepfm",
        dataset_dir=criteo_dir,
        model_parallel_embeddings=True,
        min_sharded_rows=10,
        **SMALL_CTR,
    )
    flags = dict(
        common,
        optimizer="adagrad",
        learning_rate=0.05,
        weight_decay=0,
        batch_size=32,
        save_checkpoints_steps=2,
        eval_every_n_steps=2,  # its metric variables are built after the trainer's scaffold
        train_dir=str(run),
    )
    train = trainer.main_for("rec", "ctr")
    _with_flags(lambda: train(["x"]), stop_at_step=2, **flags)
    shard_dir = run / "embedding_shards" / "rank0-of-1"
    first = tf.train.load_variable(str(shard_dir / "model.ckpt-2"), "embedding/shard/Adagrad")
    # Resumed: the accumulator goes on from its saved value (it only grows under Adagrad).
    _with_flags(lambda: train(["x"]), stop_at_step=4, **flags)
    second = tf.train.load_variable(str(shard_dir / "model.ckpt-4"), "embedding/shard/Adagrad")
    assert np.all(second >= first) and np.any(second > first)
    assert not [n for n, _ in tf.train.list_variables(str(run)) if "/shard" in n]
    metrics = _with_flags(
        lambda: evaluator.evaluate(task.get_task("ctr")), checkpoint_path=str(run), **common
    )
    assert metrics["step"] == 4 and metrics["count"] > 0
