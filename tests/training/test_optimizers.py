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
}


def test_the_seven_optimizers_are_listed():
    assert set(optimizers.OPTIMIZERS) == set(LEARNING_RATES)


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
        optimizers.configure_optimizer("lamb", 0.1, params())
    message = str(err.value)
    assert "'lamb'" in message
    for name in LEARNING_RATES:
        assert name in message
