"""Tests of training/optimizers.py: each optimizer trains and reads its own flags."""

import numpy as np
import pytest

from slim_compat import tf
from training import optimizers

TARGET = np.array([1.5, -2.0, 0.5], np.float32)

# A learning rate per optimizer that makes 30 steps on the quadratic below converge well.
LEARNING_RATES = {
    "adadelta": 1.0,
    "adagrad": 0.5,
    "adam": 0.3,
    "ftrl": 0.5,
    "momentum": 0.05,
    "sgd": 0.1,
    "rmsprop": 0.1,
    "adamw": 0.3,
    "adamweightdecay": 0.3,
    "lamb": 0.3,
}

# The slot variables each optimizer keeps per trained variable (TF1 names).
SLOT_NAMES = {
    "adadelta": {"accum", "accum_update"},
    "adagrad": {"accumulator"},
    "adam": {"m", "v"},
    "ftrl": {"accum", "linear"},
    "momentum": {"momentum"},
    "sgd": set(),
    "rmsprop": {"rms", "momentum"},
    "adamw": {"m", "v"},
    "adamweightdecay": {"m", "v"},
    "lamb": {"m", "v"},
}


def test_every_optimizer_is_listed():
    assert set(optimizers.BUILTIN_OPTIMIZERS) == set(LEARNING_RATES)


@pytest.mark.parametrize("name", sorted(LEARNING_RATES))
def test_reduces_a_quadratic_loss(params, graph, name):
    weights = tf.get_variable("w", initializer=tf.zeros([3]))
    loss = tf.reduce_sum(tf.square(weights - TARGET))
    optimizer = optimizers.configure_optimizer(name, LEARNING_RATES[name], params())
    train = optimizer.minimize(loss, var_list=[weights])
    assert set(optimizer.get_slot_names()) == SLOT_NAMES[name]
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        start = session.run(loss)
        losses = [session.run([train, loss])[1] for _ in range(30)]
        end = session.run(loss)
    assert start == pytest.approx(float(np.sum(TARGET**2)))
    assert np.all(np.isfinite(losses))
    assert end < 0.1 * start, (name, start, end)


def private(optimizer, attribute):
    """A hyper-parameter the TF1 optimizer keeps as a private attribute."""
    return float(getattr(optimizer, attribute))


@pytest.mark.parametrize(
    "name, flag_values, attributes",
    [
        (
            "adadelta",
            dict(adadelta_rho=0.8, opt_epsilon=0.3),
            dict(_rho=0.8, _epsilon=0.3),
        ),
        (
            "adagrad",
            dict(adagrad_initial_accumulator_value=0.7),
            dict(_initial_accumulator_value=0.7),
        ),
        (
            "adam",
            dict(adam_beta1=0.8, adam_beta2=0.95, opt_epsilon=0.2),
            dict(_beta1=0.8, _beta2=0.95, _epsilon=0.2),
        ),
        (
            "ftrl",
            dict(
                ftrl_learning_rate_power=-0.25,
                ftrl_initial_accumulator_value=0.4,
                ftrl_l1=0.01,
                ftrl_l2=0.02,
            ),
            dict(
                _learning_rate_power=-0.25,
                _initial_accumulator_value=0.4,
                _l1_regularization_strength=0.01,
                _l2_regularization_strength=0.02,
            ),
        ),
        ("momentum", dict(momentum=0.7), dict(_momentum=0.7)),
        (
            "rmsprop",
            dict(rmsprop_decay=0.8, rmsprop_momentum=0.3, opt_epsilon=0.05),
            dict(_decay=0.8, _momentum=0.3, _epsilon=0.05),
        ),
    ],
)
def test_picks_up_its_flags(params, graph, name, flag_values, attributes):
    optimizer = optimizers.configure_optimizer(name, 0.01, params(**flag_values))
    for attribute, value in attributes.items():
        assert private(optimizer, attribute) == pytest.approx(value), attribute


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_momentum_value_drives_the_update(params, graph, momentum):
    # Loss c * w has the constant gradient c: two momentum steps move w by lr * c * (2 + m).
    lr, c = 0.1, 3.0
    weight = tf.get_variable("w", initializer=0.0)
    optimizer = optimizers.configure_optimizer("momentum", lr, params(momentum=momentum))
    train = optimizer.minimize(c * weight)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train)
        session.run(train)
        assert session.run(weight) == pytest.approx(-lr * c * (2 + momentum), rel=1e-6)
        slot = optimizer.get_slot(weight, "momentum")
        assert session.run(slot) == pytest.approx(c * (1 + momentum), rel=1e-6)


def test_adagrad_starts_its_accumulator_at_the_flag_value(params, graph):
    weight = tf.get_variable("w", initializer=tf.zeros([2]))
    optimizer = optimizers.configure_optimizer(
        "adagrad", 0.1, params(adagrad_initial_accumulator_value=0.25)
    )
    optimizer.minimize(tf.reduce_sum(weight))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        np.testing.assert_allclose(session.run(optimizer.get_slot(weight, "accumulator")), 0.25)


def test_learning_rate_tensor_is_used(params, graph):
    lr = tf.placeholder(tf.float32, [])
    weight = tf.get_variable("w", initializer=0.0)
    train = optimizers.configure_optimizer("sgd", lr, params()).minimize(2.0 * weight)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train, {lr: 0.5})
        session.run(train, {lr: 0.25})
        assert session.run(weight) == pytest.approx(-(0.5 + 0.25) * 2.0)


def test_unknown_name_lists_the_valid_ones(params):
    with pytest.raises(ValueError) as err:
        optimizers.configure_optimizer("nadam", 0.1, params())
    message = str(err.value)
    assert "'nadam'" in message
    for name in LEARNING_RATES:
        assert name in message


def _adamw_reference(w, grads, lr, wd, b1, b2, eps, decays, bias_correction, trust_ratio):
    """numpy AdamW / LAMB over successive gradients (google's BERT / the LAMB paper)."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = (m / (1 - b1**t), v / (1 - b2**t)) if bias_correction else (m, v)
        update = m_hat / (np.sqrt(v_hat) + eps)
        if decays:
            update = update + wd * w
        ratio = 1.0
        if trust_ratio and np.linalg.norm(w) > 0 and np.linalg.norm(update) > 0:
            ratio = np.linalg.norm(w) / np.linalg.norm(update)
        w = w - lr * ratio * update
    return w


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_decoupled_weight_decay_optimizers_match_their_definition(params, graph, name):
    # Two variables: 'dense/kernel' decays (and, for LAMB, adapts); 'dense/bias' does neither.
    rng = np.random.RandomState(0)
    start = {"kernel": rng.randn(4).astype(np.float32), "bias": rng.randn(4).astype(np.float32)}
    coef = {k: rng.randn(3, 4).astype(np.float32) for k in start}  # gradient of step t: coef[t]
    lr, wd = 0.05, 0.1
    flags = params(decoupled_weight_decay=wd, adam_beta1=0.8, adam_beta2=0.9, adamw_epsilon=1e-3)
    step = tf.placeholder(tf.int32, [])
    with tf.variable_scope("dense"):
        weights = {k: tf.get_variable(k, initializer=v) for k, v in start.items()}
    # Loss sum(c_t * w): the gradient of step t is exactly c_t.
    loss = tf.add_n([tf.reduce_sum(tf.gather(coef[k], step) * w) for k, w in weights.items()])
    optimizer = optimizers.configure_optimizer(name, lr, flags)
    train = optimizer.minimize(loss)
    assert {v.op.name for v in tf.global_variables()} >= {
        "dense/kernel/adam_m",
        "dense/kernel/adam_v",
        "dense/bias/adam_m",
    }  # google's BERT checkpoints name the moments so
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for t in range(3):
            session.run(train, {step: t})
        got = session.run(weights)
    lamb = name == "lamb"
    for key, decays in (("kernel", True), ("bias", False)):
        want = _adamw_reference(
            start[key], list(coef[key]), lr, wd, 0.8, 0.9, 1e-3, decays, lamb, lamb and decays
        )
        np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("resource", [True, False], ids=["resource", "ref"])
def test_fused_adamw_equals_the_element_wise_one(graph, resource):
    """AdamW through the fused Adam kernel (decay first, no bias correction) moves every
    variable as google's element-wise formula does, decayed or excluded, dense or sparse."""
    rng = np.random.RandomState(1)
    start = {
        "layer/kernel": rng.randn(16, 8).astype(np.float32),
        "layer/bias": rng.randn(8).astype(np.float32),
        "layer/LayerNorm/gamma": rng.randn(8).astype(np.float32),
        "embeddings": rng.randn(10, 8).astype(np.float32),
    }
    x = tf.constant(rng.randn(5, 16).astype(np.float32))
    ids = tf.constant([1, 4, 4, 9, 0])
    results = {}
    for fused in (True, False):
        with tf.variable_scope(f"fused_{fused}"):
            w = {
                k: tf.get_variable(k, initializer=v, use_resource=resource)
                for k, v in start.items()
            }
        h = tf.matmul(x, w["layer/kernel"]) + w["layer/bias"]
        h = h * w["layer/LayerNorm/gamma"] + tf.gather(w["embeddings"], ids)
        # Quadratic: the gradient reads the weights (so a decay before it would show)
        # and is far from 0, where Adam's m / sqrt(v) would magnify rounding.
        loss = tf.reduce_sum(0.5 * tf.square(h) + 3.0 * h)
        # Betas whose 1 - beta is exact in fp32: the fused kernel computes 1 - beta in fp32
        # (1 - 0.999 there is 0.00099998713), the element-wise ops in float64.
        optimizer = optimizers.AdamWeightDecayOptimizer(
            1e-2,
            beta1=0.875,
            beta2=1 - 2.0**-10,
            weight_decay=0.1,
            exclude_from_weight_decay=["LayerNorm", "bias"],
            fused=fused,
        )
        results[fused] = (w, optimizer.minimize(loss))
    ops = [op for _, op in results.values()]
    assert any(op.type == ("ResourceApplyAdam" if resource else "ApplyAdam")
               for op in tf.get_default_graph().get_operations())  # fmt: skip
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for _ in range(4):
            session.run(ops)
        fused, plain = session.run([results[True][0], results[False][0]])
    for key in start:
        assert not np.allclose(fused[key], start[key]), key
        np.testing.assert_allclose(fused[key], plain[key], rtol=2e-6, atol=2e-7, err_msg=key)


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_sparse_gradients_update_like_dense_ones(params, graph, name):
    # The gradient of an embedding lookup (IndexedSlices, a repeated id) and the same
    # gradient given densely must move the table the same way.
    table0 = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    ids = tf.constant([1, 3, 1])
    tables = []
    for kind in ("sparse", "dense"):
        with tf.variable_scope(kind):
            table = tf.get_variable("embeddings", initializer=table0)
        rows = tf.gather(table, ids) if kind == "sparse" else tf.matmul(tf.one_hot(ids, 4), table)
        loss = tf.reduce_sum(rows * tf.constant([[1.0, -2.0, 0.5]]))
        optimizer = optimizers.configure_optimizer(name, 0.1, params())
        grads = optimizer.compute_gradients(loss, var_list=[table])
        assert isinstance(grads[0][0], tf.IndexedSlices) == (kind == "sparse")
        tables.append((table, optimizer.apply_gradients(grads)))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for _ in range(2):
            session.run([op for _, op in tables])
        sparse, dense = session.run([t for t, _ in tables])
    np.testing.assert_allclose(sparse, dense, rtol=1e-6)
    assert not np.allclose(sparse, table0)


def test_register_optimizer_extends_the_map(params, graph):
    optimizers.register_optimizer(
        "half_sgd", lambda lr, p: tf.train.GradientDescentOptimizer(lr / 2)
    )
    try:
        weight = tf.get_variable("w", initializer=0.0)
        train = optimizers.configure_optimizer("half_sgd", 0.5, params()).minimize(2.0 * weight)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(train)
            assert session.run(weight) == pytest.approx(-0.5)
        with pytest.raises(ValueError, match="already registered"):
            optimizers.register_optimizer("half_sgd", lambda lr, p: None)
    finally:
        del optimizers.OPTIMIZERS["half_sgd"]
