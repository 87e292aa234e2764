"""Tests of training/learning_rates.py: every schedule against a hand computation."""

import pytest

from slim_compat import tf
from training import learning_rates

BASE = 0.1


def schedule(params, steps, steps_per_epoch=10, num_ranks=1, **overrides):
    """Learning rate at each of `steps`, from a graph fed the global step."""
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        lr = learning_rates.configure_learning_rate(
            params(**dict(dict(learning_rate=BASE, lr_scaling="none"), **overrides)),
            step,
            steps_per_epoch,
            num_ranks,
        )
        assert lr.dtype == tf.float32 and lr.shape.ndims == 0
        with tf.Session() as session:
            return [float(session.run(lr, {step: s})) for s in steps]


def test_fixed(params):
    assert schedule(params, [0, 1, 500, 10**6], learning_rate_decay_type="fixed") == pytest.approx(
        [BASE] * 4
    )


def test_exponential_is_a_staircase_every_decay_period(params):
    # 10 steps per epoch x 2 epochs per decay: the rate drops by the factor every 20 steps.
    got = schedule(
        params,
        [0, 19, 20, 39, 40, 45, 100],
        learning_rate_decay_type="exponential",
        num_epochs_per_decay=2.0,
        learning_rate_decay_factor=0.5,
    )
    want = [BASE, BASE, BASE / 2, BASE / 2, BASE / 4, BASE / 4, BASE / 32]
    assert got == pytest.approx(want, rel=1e-6)


def test_exponential_fractional_epochs_per_decay(params):
    # 10 steps/epoch x 0.5 epochs = a decay every 5 steps.
    got = schedule(
        params,
        [4, 5, 10],
        learning_rate_decay_type="exponential",
        num_epochs_per_decay=0.5,
        learning_rate_decay_factor=0.9,
    )
    assert got == pytest.approx([BASE, BASE * 0.9, BASE * 0.81], rel=1e-6)


def test_polynomial_is_linear_to_the_end_rate_then_flat(params):
    end = 0.001
    got = schedule(
        params,
        [0, 5, 10, 15, 20, 200],
        learning_rate_decay_type="polynomial",
        num_epochs_per_decay=2.0,  # 20 steps of decay
        end_learning_rate=end,
    )
    want = [BASE - (BASE - end) * s / 20 for s in (0, 5, 10, 15, 20)] + [end]
    assert got == pytest.approx(want, rel=1e-6)


def test_t2t_warmup_then_fixed(params):
    warmup = 100
    got = schedule(
        params, [0, 25, 50, 99, 100, 1000], learning_rate_decay_type="fixed", warmup_steps=warmup
    )
    # Exponential from 1% at step 0 to 100% at step `warmup`: 0.01 ** ((warmup - s) / warmup).
    want = [BASE * 0.01 ** ((warmup - s) / warmup) for s in (0, 25, 50, 99)] + [BASE, BASE]
    assert got == pytest.approx(want, rel=1e-5)
    assert got[0] == pytest.approx(0.01 * BASE, rel=1e-5)
    assert got[2] == pytest.approx(0.1 * BASE, rel=1e-5)  # half-way is the geometric mean
    assert all(a < b for a, b in zip(got[:4], got[1:5], strict=True))


def test_decay_is_measured_from_the_end_of_warmup(params):
    got = schedule(
        params,
        [30, 50, 69, 70, 89, 90],
        learning_rate_decay_type="exponential",
        num_epochs_per_decay=2.0,  # a decay every 20 steps after warmup
        learning_rate_decay_factor=0.5,
        warmup_steps=50,
    )
    want = [BASE * 0.01 ** (20 / 50), BASE, BASE, BASE / 2, BASE / 2, BASE / 4]
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    "scheme, first_halving, interval, times",
    [
        # stop_at_step=300. luong234: from 2/3 of training, 4 halvings every (300-200)/4 steps.
        ("luong234", 225, 25, 4),
        # luong5 / luong10: from half of training, 5 (10) halvings every 150/5 (150/10) steps.
        ("luong5", 180, 30, 5),
        ("luong10", 165, 15, 10),
    ],
)
def test_luong_decays_halve_at_the_right_steps(params, scheme, first_halving, interval, times):
    halving_steps = [first_halving + k * interval for k in range(times)]
    assert halving_steps[-1] == 300
    probes = [0, first_halving - interval, first_halving - 1]
    for s in halving_steps:
        probes += [s, s + interval - 1] if s < 300 else [s]
    probes.append(1000)  # never more halvings than `times`
    got = schedule(
        params,
        probes,
        decay_scheme=scheme,
        stop_at_step=300,
        learning_rate_decay_type="exponential",  # overridden by the scheme
    )
    want = [BASE * 0.5 ** sum(p >= h for h in halving_steps) for p in probes]
    assert got == pytest.approx(want, rel=1e-6)
    assert got[-1] == pytest.approx(BASE * 0.5**times, rel=1e-6)


def test_luong_with_warmup_counts_training_after_warmup(params):
    # 100 warmup steps of 400: the luong234 decay runs over the 300 steps after warmup.
    got = schedule(
        params, [100, 324, 325, 400], decay_scheme="luong234", stop_at_step=400, warmup_steps=100
    )
    assert got == pytest.approx([BASE, BASE, BASE / 2, BASE / 16], rel=1e-6)


def test_linear_scaling_multiplies_by_the_number_of_ranks(params):
    kwargs = dict(learning_rate_decay_type="exponential", learning_rate_decay_factor=0.5)
    scaled = schedule(params, [0, 20, 40], num_ranks=4, lr_scaling="linear", **kwargs)
    unscaled = schedule(params, [0, 20, 40], num_ranks=4, lr_scaling="none", **kwargs)
    one_rank = schedule(params, [0, 20, 40], num_ranks=1, lr_scaling="linear", **kwargs)
    assert unscaled == pytest.approx([BASE, BASE / 2, BASE / 4], rel=1e-6)
    assert scaled == pytest.approx([4 * v for v in unscaled], rel=1e-6)
    assert one_rank == pytest.approx(unscaled, rel=1e-6)


@pytest.mark.parametrize("op", ["sum", "adasum"])
def test_linear_scaling_only_with_averaged_gradients(params, op, caplog):
    fixed = dict(learning_rate_decay_type="fixed", lr_scaling="linear")
    averaged = schedule(params, [0], num_ranks=4, allreduce_op="average", **fixed)
    assert averaged == pytest.approx([4 * BASE])
    assert "scales the learning rate only" not in caplog.text
    # Summed gradients already grow with the ranks; Adasum adapts: warned, not scaled.
    assert schedule(params, [0], num_ranks=4, allreduce_op=op, **fixed) == pytest.approx([BASE])
    assert f"only with --allreduce_op=average; with --allreduce_op={op}" in caplog.text


def test_works_with_the_global_step_variable(params, graph):
    global_step = tf.train.get_or_create_global_step()
    lr = learning_rates.configure_learning_rate(
        params(learning_rate=BASE, learning_rate_decay_factor=0.5, num_epochs_per_decay=1.0),
        global_step,
        steps_per_epoch=3,
    )
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        assert session.run(lr) == pytest.approx(BASE)
        session.run(global_step.assign(7))
        assert session.run(lr) == pytest.approx(BASE / 4)


@pytest.mark.parametrize(
    "overrides, bad, valid",
    [
        (
            dict(learning_rate_decay_type="cosine"),
            "cosine",
            "fixed, exponential, polynomial, linear, inverse_sqrt, noam",
        ),
        (dict(decay_scheme="luong3"), "luong3", "luong234, luong5, luong10"),
        (dict(warmup_steps=10, warmup_scheme="cosine"), "cosine", "t2t, linear"),
        (dict(lr_scaling="sqrt"), "sqrt", "linear, none"),
    ],
)
def test_bad_names_list_the_valid_ones(params, graph, overrides, bad, valid):
    with pytest.raises(ValueError) as err:
        learning_rates.configure_learning_rate(
            params(**overrides), tf.train.get_or_create_global_step(), 10
        )
    assert repr(bad) in str(err.value) and valid in str(err.value)


@pytest.mark.parametrize("steps_per_epoch", [0, -3])
def test_non_positive_steps_per_epoch(params, graph, steps_per_epoch):
    with pytest.raises(ValueError, match=f"steps_per_epoch.*{steps_per_epoch}"):
        learning_rates.configure_learning_rate(
            params(), tf.train.get_or_create_global_step(), steps_per_epoch
        )


def test_linear_decays_to_the_end_rate_at_the_last_step_after_linear_warmup(params):
    # google's BERT: 0 -> BASE over 10 warmup steps, then linear to 0 at step 110.
    got = schedule(
        params,
        [0, 5, 10, 60, 110, 200],
        learning_rate_decay_type="linear",
        warmup_steps=10,
        warmup_scheme="linear",
        end_learning_rate=0.0,
        stop_at_step=110,
    )
    assert got == pytest.approx([0.0, BASE / 2, BASE, BASE / 2, 0.0, 0.0], abs=1e-7)


def test_inverse_sqrt_warms_up_linearly_then_decays_with_the_root_of_the_step(params):
    got = schedule(
        params, [0, 50, 100, 400, 10000], learning_rate_decay_type="inverse_sqrt", warmup_steps=100
    )
    assert got == pytest.approx([0.0, BASE / 2, BASE, BASE / 2, BASE / 10], rel=1e-6)


def test_noam_is_the_papers_formula(params):
    d, warmup = 512, 4000
    got = schedule(
        params,
        [1, 2000, 4000, 16000],
        learning_rate=2.0,
        learning_rate_decay_type="noam",
        warmup_steps=warmup,
        noam_hidden_size=d,
    )
    want = [2.0 * d**-0.5 * min(s**-0.5, s * warmup**-1.5) for s in [1, 2000, 4000, 16000]]
    assert got == pytest.approx(want, rel=1e-5)
    assert max(got) == got[2]  # the peak is at the end of warmup


@pytest.mark.parametrize("decay_type", ["inverse_sqrt", "noam"])
def test_warmup_schedules_need_warmup_steps(params, graph, decay_type):
    with pytest.raises(ValueError, match=f"{decay_type} needs --warmup_steps"):
        learning_rates.configure_learning_rate(
            params(learning_rate_decay_type=decay_type), tf.train.get_or_create_global_step(), 10
        )


def test_register_schedule_extends_the_map(params):
    learning_rates.register_schedule(
        "halving_each_step", lambda base, step, *rest: base * tf.pow(0.5, step)
    )
    try:
        got = schedule(params, [0, 1, 3], learning_rate_decay_type="halving_each_step")
        assert got == pytest.approx([BASE, BASE / 2, BASE / 8])
    finally:
        del learning_rates.SCHEDULES["halving_each_step"]
