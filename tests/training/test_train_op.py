"""Tests of training/train_op.py: accumulation over micro-steps, skips, the step count."""

import numpy as np
import pytest

from slim_compat import tf
from training import distributed, precision
from training import train_op as train_op_lib


class AccumulationProblem:
    """loss = factor * (sum(w * x) + sum(table[ids] * x)): the gradients are exact.

    The gradient of w is factor * x (dense); the gradient of the table is factor * x added
    to each looked-up row (tf.IndexedSlices, a row looked up twice gets it twice).
    """

    LR = 0.5
    OVERFLOW = 3e38  # finite, but the scaled gradient (and 2x it) is not

    def __init__(self, k, reduction="mean", loss_scale=None):
        self.w = tf.get_variable("w", initializer=tf.constant([1.0, 1.0]))
        self.table = tf.get_variable("table", initializer=tf.ones([4, 2]))
        self.x = tf.placeholder(tf.float32, [2])
        self.ids = tf.placeholder(tf.int32, [None])
        self.factor = tf.placeholder_with_default(1.0, [])
        rows = tf.gather(self.table, self.ids)
        loss = self.factor * (tf.reduce_sum(self.w * self.x) + tf.reduce_sum(rows * self.x))
        self.global_step = tf.train.get_or_create_global_step()
        optimizer = tf.train.GradientDescentOptimizer(self.LR)
        self.loss_scale = None
        if loss_scale is not None:
            optimizer = self.loss_scale = precision.LossScaleOptimizer(
                optimizer, "dynamic", initial_scale=loss_scale
            )
        self.update = train_op_lib.build_update(
            loss,
            optimizer,
            self.global_step,
            [self.w, self.table],
            accumulation_steps=k,
            accumulation_reduction=reduction,
        )
        self.session = tf.Session()
        self.session.run([tf.global_variables_initializer(), tf.local_variables_initializer()])

    def run(self, x, ids, overflow=False):
        feed = {self.x: x, self.ids: ids}
        if overflow:
            feed[self.factor] = self.OVERFLOW
        _, step, finite = self.session.run(
            [self.update.train_op, self.update.step_after, self.update.update_finite], feed
        )
        return int(step), bool(finite)

    def state(self):
        fetches = [self.w, self.table]
        if self.loss_scale:
            fetches += [self.loss_scale.scale, self.loss_scale.skipped_steps]
        return self.session.run(fetches)


MICRO = [([1.0, 2.0], [0]), ([3.0, -1.0], [2, 2])]


def expected_after_one_update(divisor):
    w = 1.0 - AccumulationProblem.LR * (np.array(MICRO[0][0]) + np.array(MICRO[1][0])) / divisor
    table = np.ones([4, 2])
    table[0] -= AccumulationProblem.LR * np.array(MICRO[0][0]) / divisor
    table[2] -= AccumulationProblem.LR * 2 * np.array(MICRO[1][0]) / divisor
    return w, table


@pytest.mark.parametrize("reduction, divisor", [("mean", 2.0), ("sum", 1.0)])
def test_two_micro_steps_make_one_update_of_their_mean_or_sum(graph, reduction, divisor):
    problem = AccumulationProblem(k=2, reduction=reduction)
    # The first micro-step only accumulates: no update, the global step stays.
    assert problem.run(*MICRO[0]) == (0, True)
    w, table = problem.state()
    np.testing.assert_array_equal(w, [1.0, 1.0])
    np.testing.assert_array_equal(table, np.ones([4, 2]))
    # The second applies the mean (or sum) of both, dense and sparse alike.
    assert problem.run(*MICRO[1]) == (1, True)
    want_w, want_table = expected_after_one_update(divisor)
    w, table = problem.state()
    np.testing.assert_allclose(w, want_w, rtol=1e-6)
    np.testing.assert_allclose(table, want_table, rtol=1e-6)
    # The accumulators were emptied: the next two micro-steps give the same update again.
    problem.run(*MICRO[0])
    assert problem.run(*MICRO[1]) == (2, True)
    w, table = problem.state()
    np.testing.assert_allclose(w, 2 * want_w - 1.0, rtol=1e-6)
    np.testing.assert_allclose(table, 2 * want_table - 1.0, rtol=1e-6)


def test_one_micro_step_per_update_is_plain_sgd(graph):
    problem = AccumulationProblem(k=1)
    assert problem.run(*MICRO[0]) == (1, True)
    w, table = problem.state()
    np.testing.assert_allclose(w, 1.0 - problem.LR * np.array(MICRO[0][0]), rtol=1e-6)
    np.testing.assert_allclose(table[0], 1.0 - problem.LR * np.array(MICRO[0][0]), rtol=1e-6)


def test_overflow_in_a_micro_step_skips_its_update_on_the_communication_step(graph):
    problem = AccumulationProblem(k=2, loss_scale=64.0)
    # Micro-step 1 overflows; nothing is decided until the update's last micro-step.
    assert problem.run(*MICRO[0], overflow=True) == (0, True)
    w, table, scale, skipped = problem.state()
    assert scale == 64.0 and skipped == 0
    assert problem.run(*MICRO[1]) == (1, False)
    w, table, scale, skipped = problem.state()
    np.testing.assert_array_equal(w, [1.0, 1.0])
    np.testing.assert_array_equal(table, np.ones([4, 2]))
    assert scale == 32.0 and skipped == 1  # halved once, for the one skipped update
    # The inf did not stay in the accumulators: the next update is the exact mean.
    problem.run(*MICRO[0])
    assert problem.run(*MICRO[1]) == (2, True)
    want_w, want_table = expected_after_one_update(2.0)
    w, table, scale, skipped = problem.state()
    np.testing.assert_allclose(w, want_w, rtol=1e-6)
    np.testing.assert_allclose(table, want_table, rtol=1e-6)
    assert scale == 32.0 and skipped == 1


@pytest.mark.parametrize("k", [1, 2])
def test_without_loss_scaling_an_inf_gradient_is_reported_on_its_update(graph, k):
    # NanLossHook stops the run on this report (tests/test_train_image_classifiers.py).
    problem = AccumulationProblem(k=k)
    if k == 2:
        assert problem.run(*MICRO[0], overflow=True) == (0, True)
    assert problem.run(*MICRO[1], overflow=True) == (1, False)
    assert problem.run(*MICRO[0]) == (1 if k == 2 else 2, True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(accumulation_steps=0), "backward_passes_per_step.*>= 1, got 0"),
        (dict(accumulation_reduction="avg"), "'avg'.*mean, sum"),
        (dict(allreduce_op="max"), "'max'.*average, sum, adasum"),
        (dict(gradient_compression="bf16"), "'bf16'.*none, fp16"),
    ],
)
def test_bad_settings_are_named(graph, kwargs, match):
    w = tf.get_variable("w", initializer=[1.0])
    with pytest.raises(ValueError, match=match):
        train_op_lib.build_update(
            tf.reduce_sum(w),
            tf.train.GradientDescentOptimizer(0.1),
            tf.train.get_or_create_global_step(),
            [w],
            **kwargs,
        )


def test_adasum_needs_a_power_of_two_ranks():
    dist = distributed.Distributed(None)
    dist.size = 3
    with pytest.raises(ValueError, match="power-of-2 number of ranks; this run has 3"):
        dist.check_reduction("adasum")
    dist.size = 4
    dist.check_reduction("adasum")
    dist.check_reduction("average")


EXACT = dict(
    model_name="lenet",
    num_classes=10,
    dropout_keep_prob=1.0,
    shuffle_buffer_size=1,
    optimizer="sgd",
    learning_rate_decay_type="fixed",
    log_every_n_steps=1,
    save_summaries_steps=1000,
)


def trained_weights(path):
    reader = tf.train.NewCheckpointReader(path)
    return {
        k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith("LeNet")
    }


@pytest.mark.slow  # three short training runs
def test_accumulating_in_one_process_equals_a_larger_batch(train, tmp_path):
    # 2 micro-steps of 4 examples: the same 8 examples as one batch of 8, in order.
    big = train(**EXACT, batch_size=8, learning_rate=0.01, stop_at_step=3, train_dir=tmp_path / "b")
    mean = train(
        **EXACT,
        batch_size=4,
        backward_passes_per_step=2,
        learning_rate=0.01,
        stop_at_step=3,
        eval_every_n_steps=2,
        eval_split_name="validation",
        eval_batch_size=64,
        train_dir=tmp_path / "m",
    )
    summed = train(
        **EXACT,
        batch_size=4,
        backward_passes_per_step=2,
        accumulation_reduction="sum",
        learning_rate=0.005,
        stop_at_step=3,
        train_dir=tmp_path / "s",
    )
    # The global step counts updates: 3 updates of 2 micro-steps each, logged once each.
    assert [s for s, _ in mean["log"]] == [1, 2, 3]
    assert mean["checkpoint"].endswith("model.ckpt-3")
    # Evaluated once at step 2 (which lasts two micro-steps) and at the end.
    assert [s for s, _ in mean["eval"]] == [2, 3]
    reference = trained_weights(big["checkpoint"])
    for result in (mean, summed):
        for name, value in trained_weights(result["checkpoint"]).items():
            np.testing.assert_allclose(value, reference[name], rtol=1e-4, atol=1e-6, err_msg=name)
