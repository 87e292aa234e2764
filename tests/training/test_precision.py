"""Tests of training/precision.py: master weights, precision names, loss scaling with skips."""

import os
import subprocess
import sys

import numpy as np
import pytest

from slim_compat import slim, tf
from training import hardware, precision
from training import train_op as train_op_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOW_PRECISIONS = [tf.bfloat16, tf.float16]


# ------------------------------------------------------------------ master weights


@pytest.mark.parametrize("compute_dtype", LOW_PRECISIONS, ids=["bf16", "fp16"])
def test_master_weights_are_fp32_while_the_layer_computes_low(graph, compute_dtype):
    images = np.random.RandomState(0).uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    getter = precision.master_weights_getter(compute_dtype)
    with tf.variable_scope("net", custom_getter=getter):
        net = slim.conv2d(tf.cast(images, compute_dtype), 4, [3, 3], scope="conv")
        logits = slim.fully_connected(slim.flatten(net), 5, activation_fn=None, scope="fc")
    assert net.dtype == compute_dtype and logits.dtype == compute_dtype
    variables = {v.op.name: v for v in tf.global_variables()}
    assert set(variables) == {
        "net/conv/weights",
        "net/conv/biases",
        "net/fc/weights",
        "net/fc/biases",
    }
    for name, var in variables.items():
        assert var.dtype.base_dtype == tf.float32, name
        assert var in tf.trainable_variables()
    # The layer reads the fp32 variable through a cast to the compute dtype.
    conv_inputs = [t.dtype for t in net.op.inputs] if net.op.type == "Conv2D" else None
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        low, weights, biases = session.run(
            [net, variables["net/conv/weights"], variables["net/conv/biases"]]
        )
    assert conv_inputs is None or all(d == compute_dtype for d in conv_inputs)
    # Same result as an fp32 convolution of the same weights, to the low precision.
    with tf.Graph().as_default(), tf.Session() as session:
        reference = session.run(
            tf.nn.relu(tf.nn.conv2d(images, weights, [1, 1, 1, 1], "SAME") + biases)
        )
    np.testing.assert_allclose(low.astype(np.float32), reference, atol=0.05, rtol=0.02)


def test_gradients_reach_the_fp32_master_weights(graph):
    getter = precision.master_weights_getter(tf.bfloat16)
    with tf.variable_scope("net", custom_getter=getter):
        out = slim.fully_connected(tf.ones([2, 3], tf.bfloat16), 2, scope="fc")
    loss = tf.reduce_sum(tf.cast(out, tf.float32))
    grads = tf.gradients(loss, tf.trainable_variables())
    assert all(g is not None and g.dtype == tf.float32 for g in grads)


def test_get_variable_directly_under_the_getter(graph):
    # tf.get_variable (not a slim layer) calls a lone custom getter with keyword arguments.
    getter = precision.master_weights_getter(tf.float16)
    with tf.variable_scope("s", custom_getter=getter):
        low = tf.get_variable("low", [2], tf.float16, initializer=tf.ones_initializer())
        counter = tf.get_variable("counter", [], tf.int64, trainable=False)
        full = tf.get_variable("full", [2], tf.float32)
    stored = {v.op.name: v for v in tf.global_variables()}
    assert low.dtype == tf.float16 and stored["s/low"].dtype.base_dtype == tf.float32
    # Other dtypes pass through as the variables themselves.
    assert counter is stored["s/counter"] and counter.dtype.base_dtype == tf.int64
    assert full is stored["s/full"] and full.dtype.base_dtype == tf.float32
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(session.run(low), [1.0, 1.0])


@pytest.mark.parametrize("compute_dtype", LOW_PRECISIONS, ids=["bf16", "fp16"])
def test_batch_norm_keeps_fp32_moving_statistics(graph, compute_dtype):
    rng = np.random.RandomState(1)
    x = (rng.normal(size=(8, 4, 4, 2)) * [1.0, 2.0] + [3.0, -1.0]).astype(np.float32)
    getter = precision.master_weights_getter(compute_dtype)
    with tf.variable_scope("net", custom_getter=getter):
        y = slim.batch_norm(tf.cast(x, compute_dtype), decay=0.5, is_training=True, scope="bn")
    assert y.dtype == compute_dtype
    stats = {v.op.name.split("/")[-1]: v for v in tf.global_variables()}
    assert {"beta", "moving_mean", "moving_variance"} <= set(stats)
    for var in stats.values():
        assert var.dtype.base_dtype == tf.float32, var.op.name
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert update_ops
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        out = session.run([y] + update_ops)[0]
        mean, variance = session.run([stats["moving_mean"], stats["moving_variance"]])
    # One update with decay 0.5 from (0, 1) lands half-way to the batch statistics.
    batch_mean = x.reshape(-1, 2).mean(0)
    batch_var = x.reshape(-1, 2).var(0)
    np.testing.assert_allclose(mean, 0.5 * batch_mean, rtol=0.02, atol=0.02)
    np.testing.assert_allclose(variance, 0.5 + 0.5 * batch_var, rtol=0.05)
    # The normalised output has zero mean and unit variance per channel.
    out = out.astype(np.float32).reshape(-1, 2)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(out.std(0), 1.0, atol=0.05)


# ------------------------------------------------------------------ names and values


@pytest.mark.parametrize(
    "name, use_fp16, want",
    [
        ("fp32", False, "fp32"),
        ("fp16", False, "fp16"),
        ("bf16", False, "bf16"),
        ("fp32", True, "fp16"),  # FastNN's --use_fp16 alias
        ("fp16", True, "fp16"),
    ],
)
def test_resolve_precision(name, use_fp16, want):
    assert precision.resolve_precision(name, use_fp16) == want


def test_use_fp16_conflicts_with_bf16():
    with pytest.raises(ValueError, match="--use_fp16.*--precision=bf16"):
        precision.resolve_precision("bf16", use_fp16=True)


def test_cpu_warning_only_without_native_low_precision_instructions(tmp_path):
    zen3 = {"avx2", "fma", "f16c"}
    sapphire_rapids = zen3 | {"avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"}
    warning = precision.cpu_precision_warning("bf16", zen3)
    assert "--precision=bf16" in warning and "avx512_bf16 or amx_bf16" in warning
    assert precision.cpu_precision_warning("bf16", sapphire_rapids) is None
    assert "avx512_fp16" in precision.cpu_precision_warning("fp16", zen3 | {"avx512_bf16"})
    assert precision.cpu_precision_warning("fp32", zen3) is None
    assert precision.cpu_precision_warning("bf16", set()) is None  # unknown CPU: no claim

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nflags\t: other\n")
    assert hardware.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware.cpu_flags(str(tmp_path / "missing")) == set()
    assert hardware.native_cpu_precisions(sapphire_rapids) == ["bf16", "fp16"]
    assert hardware.native_cpu_precisions(zen3) == []


def test_unknown_precision_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        precision.resolve_precision("fp8")
    assert "'fp8'" in str(err.value)
    for name in ("fp32", "fp16", "bf16"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "value, want",
    [
        ("dynamic", "dynamic"),
        (" Dynamic ", "dynamic"),
        ("128", 128.0),
        ("0.5", 0.5),
        (1024, 1024.0),
    ],
)
def test_parse_loss_scale_good_values(value, want):
    assert precision.parse_loss_scale(value) == want


@pytest.mark.parametrize("value", ["0", "-8", "abc", "", None, "nan", "inf", float("inf")])
def test_parse_loss_scale_bad_values_are_named(value):
    with pytest.raises(ValueError) as err:
        precision.parse_loss_scale(value)
    assert repr(value) in str(err.value) and "dynamic" in str(err.value)


# ------------------------------------------------------------------ loss scaling


class LinearProblem:
    """loss = factor * sum(w * x): the gradient is factor * x, exact in fp32.

    Feeding `factor` = OVERFLOW makes the gradient overflow to inf while the loss stays
    finite: a forced overflow on demand.
    """

    X = np.array([1.0, -2.0, 0.5], np.float32)
    LR = 0.25
    # Finite in fp32 (max 3.4e38), and so is the loss; the gradient 2 * OVERFLOW is not.
    OVERFLOW = 3e38

    def __init__(self, loss_scale="dynamic", growth_steps=2000, initial_scale=2.0**15):
        self.weights = tf.get_variable("w", initializer=tf.constant([1.0, 1.0, 1.0]))
        self.factor = tf.placeholder_with_default(tf.constant(1.0), [])
        self.loss = self.factor * tf.reduce_sum(self.weights * self.X)
        self.global_step = tf.train.get_or_create_global_step()
        self.opt = precision.LossScaleOptimizer(
            tf.train.GradientDescentOptimizer(self.LR),
            loss_scale,
            growth_steps=growth_steps,
            initial_scale=initial_scale,
        )
        grads_and_vars = self.opt.compute_gradients(self.loss, var_list=[self.weights])
        self.grad = grads_and_vars[0][0]
        self.train = self.opt.apply_gradients(grads_and_vars, global_step=self.global_step)
        self.session = tf.Session()
        self.session.run(tf.global_variables_initializer())

    def step(self, overflow=False):
        feed = {self.factor: self.OVERFLOW} if overflow else {}
        self.session.run(self.train, feed)
        return self.state()

    def state(self):
        w, scale, skipped, good, step = self.session.run(
            [
                self.weights,
                self.opt.scale,
                self.opt.skipped_steps,
                self.opt.good_steps,
                self.global_step,
            ]
        )
        return dict(w=w, scale=scale, skipped=skipped, good=good, step=step)


def test_overflow_skips_the_step_halves_the_scale_then_training_goes_on(graph):
    problem = LinearProblem(initial_scale=2.0**15)
    before = problem.state()
    assert before["scale"] == 2.0**15 and before["skipped"] == 0 and before["step"] == 0

    # The fed factor makes the gradient overflow fp32: the update is skipped.
    grad = problem.session.run(problem.grad, {problem.factor: problem.OVERFLOW})
    assert not np.all(np.isfinite(grad))
    after = problem.step(overflow=True)
    np.testing.assert_array_equal(after["w"], before["w"])
    assert after["skipped"] == 1
    assert after["scale"] == 2.0**14
    assert after["step"] == 1  # the global step advances on a skipped step too

    # A normal step applies the exact SGD update and keeps the halved scale.
    normal = problem.step()
    np.testing.assert_allclose(normal["w"], before["w"] - problem.LR * problem.X, rtol=1e-6)
    assert normal["skipped"] == 1 and normal["scale"] == 2.0**14 and normal["step"] == 2

    again = problem.step()
    np.testing.assert_allclose(again["w"], before["w"] - 2 * problem.LR * problem.X, rtol=1e-6)
    assert again["step"] == 3


def test_repeated_overflows_keep_halving_but_not_below_one(graph):
    problem = LinearProblem(initial_scale=4.0)
    scales = [problem.step(overflow=True)["scale"] for _ in range(4)]
    assert scales == [2.0, 1.0, 1.0, 1.0]
    assert problem.state()["skipped"] == 4 and problem.state()["step"] == 4


def test_dynamic_scale_doubles_after_growth_steps_good_steps(graph):
    problem = LinearProblem(growth_steps=3, initial_scale=8.0)
    states = [problem.step() for _ in range(7)]
    assert [s["scale"] for s in states] == [8.0, 8.0, 16.0, 16.0, 16.0, 32.0, 32.0]
    assert [s["good"] for s in states] == [1, 2, 0, 1, 2, 0, 1]
    # An overflow resets the count of good steps.
    skipped = problem.step(overflow=True)
    assert skipped["scale"] == 16.0 and skipped["good"] == 0
    scales = [problem.step()["scale"] for _ in range(3)]
    assert scales == [16.0, 16.0, 32.0]
    # Every good step applied the same exact update.
    w = problem.state()["w"]
    np.testing.assert_allclose(w, 1.0 - 10 * problem.LR * problem.X, rtol=1e-5)


def test_static_scale_gives_the_unscaled_gradients(graph):
    images = np.random.RandomState(2).normal(size=(4, 5)).astype(np.float32)
    labels = np.array([0, 1, 2, 1])
    with tf.variable_scope("scaled"):
        scaled_logits = slim.fully_connected(images, 3, activation_fn=None)
    with tf.variable_scope("plain"):
        plain_logits = slim.fully_connected(images, 3, activation_fn=None)
    losses = [
        tf.losses.sparse_softmax_cross_entropy(labels, logits)
        for logits in (scaled_logits, plain_logits)
    ]
    scaled_vars = tf.trainable_variables("scaled")
    plain_vars = tf.trainable_variables("plain")
    scaled_opt = precision.LossScaleOptimizer(tf.train.GradientDescentOptimizer(0.5), 1000.0)
    scaled_gv = scaled_opt.compute_gradients(losses[0], var_list=scaled_vars)
    plain_opt = tf.train.GradientDescentOptimizer(0.5)
    plain_gv = plain_opt.compute_gradients(losses[1], var_list=plain_vars)
    train_scaled = scaled_opt.apply_gradients(scaled_gv)
    train_plain = plain_opt.apply_gradients(plain_gv)
    copy = [tf.assign(p, s) for s, p in zip(scaled_vars, plain_vars, strict=True)]
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(copy)  # same starting weights
        for _ in range(3):
            got, want = session.run([[g for g, _ in scaled_gv], [g for g, _ in plain_gv]])
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
                assert np.abs(w).max() > 1e-3  # a real gradient, not zeros
            session.run([train_scaled, train_plain])
        for s, p in zip(session.run(scaled_vars), session.run(plain_vars), strict=True):
            np.testing.assert_allclose(s, p, rtol=1e-5, atol=1e-7)
        assert session.run(scaled_opt.scale) == 1000.0


def test_static_scale_skips_overflows_without_changing_the_scale(graph):
    problem = LinearProblem(loss_scale=256.0)
    skipped = problem.step(overflow=True)
    np.testing.assert_array_equal(skipped["w"], [1.0, 1.0, 1.0])
    assert skipped["skipped"] == 1 and skipped["scale"] == 256.0 and skipped["step"] == 1
    normal = problem.step()
    np.testing.assert_allclose(normal["w"], 1.0 - problem.LR * problem.X, rtol=1e-6)
    assert normal["scale"] == 256.0 and normal["skipped"] == 1


def test_fp16_compute_with_a_too_large_scale_recovers(graph):
    # Zero weights give p = 0.5 for both classes, so the gradient of the mean cross-entropy
    # with respect to each logit is +-1/8. Scaled by 2**20 or 2**19 it is 2**17 or 2**16,
    # beyond fp16's 65504: the gradient through the fp16 logits overflows and both steps are
    # skipped; at 2**18 it fits (inputs below 0.4 keep the weight gradients in range too).
    images = np.random.RandomState(3).uniform(-0.4, 0.4, (4, 6)).astype(np.float32)
    labels = np.array([0, 1, 1, 0])
    getter = precision.master_weights_getter(tf.float16)
    with tf.variable_scope("net", custom_getter=getter):
        logits = slim.fully_connected(
            tf.cast(images, tf.float16),
            2,
            activation_fn=None,
            weights_initializer=tf.zeros_initializer(),
        )
    loss = tf.losses.sparse_softmax_cross_entropy(labels, tf.cast(logits, tf.float32))
    global_step = tf.train.get_or_create_global_step()
    opt = precision.LossScaleOptimizer(
        tf.train.MomentumOptimizer(0.5, 0.9), "dynamic", initial_scale=2.0**20
    )
    update = train_op_lib.build_update(loss, opt, global_step, tf.trainable_variables())
    train, step_after = update.train_op, update.step_after
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        first_loss = session.run(loss)
        history = []
        for _ in range(10):
            _, step = session.run([train, step_after])
            history.append(session.run([opt.scale, opt.skipped_steps, loss]) + [step])
        weights = session.run(tf.trainable_variables())
    scales, skipped, losses, steps = (list(column) for column in zip(*history, strict=True))
    assert first_loss == pytest.approx(np.log(2.0), rel=1e-3)
    assert steps == list(range(1, 11))  # skipped steps count as steps
    assert skipped == [1, 2] + [2] * 8
    assert scales == [2.0**19, 2.0**18] + [2.0**18] * 8
    # The skipped steps left the weights (and so the loss) alone; the later ones trained.
    assert losses[:2] == [first_loss, first_loss]
    assert losses[2] < first_loss and losses[-1] < 0.5 * first_loss
    assert all(np.all(np.isfinite(w)) for w in weights)


def test_sparse_gradients_are_unscaled(graph):
    table = tf.get_variable("table", initializer=tf.ones([5, 2]))
    rows = tf.gather(table, [1, 3, 3])
    loss = tf.reduce_sum(rows * [[1.0, 2.0]])
    opt = precision.LossScaleOptimizer(tf.train.GradientDescentOptimizer(0.1), 64.0)
    ((grad, _),) = opt.compute_gradients(loss, var_list=[table])
    assert isinstance(grad, tf.IndexedSlices)
    train = opt.apply_gradients([(grad, table)])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        np.testing.assert_allclose(session.run(grad.values), [[1.0, 2.0]] * 3)
        session.run(train)
        got = session.run(table)
    want = np.ones([5, 2])
    want[1] -= 0.1 * np.array([1.0, 2.0])
    want[3] -= 0.2 * np.array([1.0, 2.0])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_loss_scale_state_is_saved_in_checkpoints(graph, tmp_path):
    problem = LinearProblem(initial_scale=64.0)
    problem.step(overflow=True)
    path = tf.train.Saver().save(problem.session, str(tmp_path / "ckpt"))
    reader = tf.train.NewCheckpointReader(path)
    assert reader.get_tensor("loss_scale/scale") == 32.0
    assert reader.get_tensor("loss_scale/skipped_steps") == 1


EAGER_FIRST_SCRIPT = """
from slim_compat import tf
from training import precision

tf.constant(1.0)  # TF used eagerly first, as before app.run's main disables eager execution
tf.disable_eager_execution()
weight = tf.get_variable("w", initializer=[1.0, 2.0])
opt = precision.LossScaleOptimizer(tf.train.MomentumOptimizer(0.1, 0.9), "dynamic")
train = opt.apply_gradients(opt.compute_gradients(tf.reduce_sum(weight), [weight]))
with tf.Session() as session:
    session.run(tf.global_variables_initializer())
    session.run(train)
    print("weights", session.run(weight).tolist())
"""


@pytest.mark.slow  # a fresh Python process that imports TensorFlow
def test_slots_stay_in_the_graph_when_eager_was_disabled_late(tmp_path):
    # The entry points disable eager execution in main(), after TF has started in eager
    # mode; the momentum slots made inside the skip-on-overflow cond must still be graph
    # variables (they used to be lifted into the eager context and fail).
    script = tmp_path / "eager_first.py"
    script.write_text(EAGER_FIRST_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "weights [0.8999999761581421, 1.899999976158142]" in proc.stdout


def test_embedding_table_is_cast_after_the_lookup_not_whole(graph):
    # Under the fp16 getter, a dense layer's kernel is cast on read, but an fp32 table is
    # never cast whole: only the gathered [batch, dim] rows are.
    getter = precision.master_weights_getter(tf.float16)
    ids = tf.constant([[3, 0], [7, 3]])
    with tf.variable_scope("model", custom_getter=getter):
        table = tf.get_variable("embeddings", [1000, 16])
        rows = precision.embedding_lookup(table, ids, tf.float16)
        logits = slim.fully_connected(tf.reshape(rows, [2, 32]), 4)
    assert table.dtype.base_dtype == tf.float32 and rows.dtype == tf.float16
    assert logits.dtype == tf.float16
    casts = [op for op in graph.get_operations() if op.type == "Cast"]
    cast_shapes = [op.inputs[0].shape.as_list() for op in casts]
    assert [1000, 16] not in cast_shapes, cast_shapes
    assert [2, 2, 16] in cast_shapes  # the rows, after the gather
    (grad,) = tf.gradients(tf.reduce_sum(tf.cast(logits, tf.float32)), [table])
    assert isinstance(grad, tf.IndexedSlices) and grad.values.dtype == tf.float32
