"""training/fused_ops.py: the fused GELU, dropout and layer-norm kernels and their fallback."""

import os
import shutil

import numpy as np
import pytest

from slim_compat import tf
from training import fused_ops

# Sizes that end in a partial block of the kernels' 8192 elements, and layer norms with
# fewer and more rows than their 64 reduction chunks.
ELEMENTS = 2 * 8192 + 37


@pytest.fixture
def kernels():
    """The loaded library; fails (never skips) unless the CPU cannot run it."""
    library = fused_ops.library()
    lacks = fused_ops._cpu_lacks()
    if lacks:
        assert library is None and "lacks" in fused_ops.unavailable_reason()
        pytest.skip(f"this CPU lacks {lacks}: the plain ops are used, as they should be")
    assert library is not None, fused_ops.unavailable_reason()
    return library


@pytest.fixture
def fresh_state(monkeypatch):
    """Lets a test load the library again under its own environment, then restores it."""
    saved = dict(fused_ops._state)
    monkeypatch.setattr(fused_ops, "_state", {"loaded": False, "library": None, "why": None})
    monkeypatch.setattr(fused_ops, "_register_gradients", lambda library: None)  # done once
    yield
    fused_ops._state.update(saved)


def _run(fetches):
    with tf.Session() as session:
        return session.run(fetches)


def test_the_kernels_are_built_for_this_source_and_load(kernels):
    assert fused_ops.unavailable_reason() is None
    with open(fused_ops.LIBRARY + ".stamp", encoding="utf-8") as f:
        assert f.read().strip() == fused_ops.build_stamp()


@pytest.mark.parametrize("shape", [(ELEMENTS,), (3, 5, 7), (1,)])
def test_gelu_and_its_gradient_equal_the_plain_ops(graph, kernels, shape):
    rng = np.random.default_rng(0)
    x = tf.constant((rng.normal(size=shape) * 3).astype(np.float32))
    dy = tf.constant(rng.normal(size=shape).astype(np.float32))
    fused, plain = fused_ops.gelu(x), fused_ops.reference_gelu(x)
    assert fused.op.type == "TfzooGelu" and fused.shape == x.shape
    grads = tf.gradients([fused], [x], grad_ys=[dy]) + tf.gradients([plain], [x], grad_ys=[dy])
    y_fused, y_plain, g_fused, g_plain = _run([fused, plain] + grads)
    np.testing.assert_allclose(y_fused, y_plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_fused, g_plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_gelu_in_low_precision_is_the_fp32_value_rounded(graph, kernels, dtype):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(64, 33)).astype(np.float32) * 2
    x = tf.cast(tf.constant(values), dtype)
    fused = fused_ops.gelu(x)
    grad = tf.gradients(fused, x, grad_ys=tf.ones_like(x))[0]
    exact = fused_ops.reference_gelu(tf.cast(x, tf.float32))  # of the rounded input
    exact_grad = tf.gradients(exact, x)[0]
    y, g, y32, g32 = _run([tf.cast(t, tf.float32) for t in (fused, grad, exact, exact_grad)])
    assert fused.dtype == dtype and grad.dtype == dtype
    relative = 2.0**-7 if dtype == tf.bfloat16 else 2.0**-10  # one rounding of the result
    np.testing.assert_allclose(y, y32, rtol=relative, atol=1e-3)
    np.testing.assert_allclose(g, g32, rtol=relative, atol=1e-3)


@pytest.mark.parametrize("shape", [(3, 7, 96), (200, 33), (1, 1)])
def test_layer_norm_and_its_gradients_equal_the_plain_ops(graph, kernels, shape):
    rng = np.random.default_rng(2)
    x = tf.constant((rng.normal(size=shape) * 4 + 1).astype(np.float32))
    gamma = tf.constant(rng.normal(size=shape[-1:]).astype(np.float32))
    beta = tf.constant(rng.normal(size=shape[-1:]).astype(np.float32))
    dy = tf.constant(rng.normal(size=shape).astype(np.float32))
    fused = fused_ops.layer_norm(x, gamma, beta, 1e-12)
    plain = fused_ops.reference_layer_norm(x, gamma, beta, 1e-12)
    assert fused.op.type == "TfzooLayerNorm" and fused.shape == x.shape
    inputs = [x, gamma, beta]
    results = _run(
        [fused, plain]
        + tf.gradients(fused, inputs, grad_ys=dy)
        + tf.gradients(plain, inputs, grad_ys=dy)
    )
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)
    for got, want in zip(results[2:5], results[5:], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_layer_norm_in_low_precision_normalises_in_fp32(graph, kernels, dtype):
    rng = np.random.default_rng(5)
    x = tf.cast(tf.constant((rng.normal(size=(70, 48)) * 3 + 2).astype(np.float32)), dtype)
    gamma = tf.constant(rng.normal(size=48).astype(np.float32))
    beta = tf.constant(rng.normal(size=48).astype(np.float32))
    fused = fused_ops.layer_norm(x, gamma, beta, 1e-12)
    plain = fused_ops.reference_layer_norm(x, gamma, beta, 1e-12)
    assert fused.dtype == dtype
    grads = tf.gradients(fused, [x, gamma]) + tf.gradients(plain, [x, gamma])
    got, want, *g = _run([tf.cast(fused, tf.float32), tf.cast(plain, tf.float32)] + grads)
    np.testing.assert_allclose(got, want, rtol=2.0**-7, atol=2e-2)
    np.testing.assert_allclose(np.float32(g[0]), np.float32(g[2]), rtol=2.0**-6, atol=2e-2)
    np.testing.assert_allclose(g[1], g[3], rtol=1e-2, atol=1e-2)


def _attention_inputs(rng, dtype=tf.float32, batch=2, heads=3, queries=5, keys=130):
    scores = tf.cast(tf.constant(rng.normal(size=(batch, heads, queries, keys)) * 4), dtype)
    mask = np.ones((batch, keys), np.float32)
    mask[1, keys // 2 :] = 0  # padding in the second sequence
    adder = tf.constant(((1.0 - mask) * -10000.0)[:, None, None, :].astype(np.float32))
    dy = tf.constant(rng.normal(size=(batch, heads, queries, keys)).astype(np.float32))
    return scores, tf.cast(adder, dtype), tf.cast(dy, dtype)


def test_attention_softmax_and_its_gradient_equal_the_plain_ops(graph, kernels):
    scores, adder, dy = _attention_inputs(np.random.default_rng(6))
    fused = fused_ops.attention_softmax(scores, adder, 0.125, 0.0)
    plain = fused_ops.reference_attention_softmax(scores, adder, 0.125, 0.0)
    assert fused.op.type == "TfzooAttentionSoftmax"
    got, want, g_got, g_want = _run(
        [fused, plain]
        + tf.gradients(fused, scores, grad_ys=dy)
        + tf.gradients(plain, scores, grad_ys=dy)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-6)
    assert np.abs(got[1, :, :, 65:]).max() < 1e-30  # padded keys get no weight
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


def test_attention_dropout_drops_the_softmax_and_its_gradient_alike(graph, kernels):
    scores, adder, dy = _attention_inputs(np.random.default_rng(7), heads=4, queries=64)
    rate = 0.2
    dropped = fused_ops.attention_softmax(scores, adder, 0.5, rate)
    probs = fused_ops.reference_attention_softmax(scores, adder, 0.5, 0.0)
    grad = tf.gradients(dropped, scores, grad_ys=dy)[0]
    d, p, g, upstream = _run([dropped, probs, grad, dy])
    kept = d != 0
    real = p > 0  # not a padded key, whose weight is 0 kept or not
    assert abs(kept[real].mean() - (1 - rate)) < 0.01
    np.testing.assert_allclose(d, np.where(kept, p / (1 - rate), 0.0), rtol=1e-5, atol=1e-8)
    through = np.where(kept, upstream / (1 - rate), 0.0)
    want = 0.5 * p * (through - (through * p).sum(-1, keepdims=True))
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)


def test_attention_softmax_in_bf16_and_a_bad_mask_shape(graph, kernels):
    scores, adder, _ = _attention_inputs(np.random.default_rng(8), dtype=tf.bfloat16)
    fused = fused_ops.attention_softmax(scores, adder, 0.125, 0.1)
    assert fused.dtype == tf.bfloat16
    assert tf.gradients(fused, scores)[0].dtype == tf.bfloat16
    exact = fused_ops.reference_attention_softmax(
        tf.cast(scores, tf.float32), tf.cast(adder, tf.float32), 0.125, 0.0
    )
    got, want = _run([tf.cast(fused, tf.float32), exact])
    kept = got != 0
    np.testing.assert_allclose(got[kept], want[kept] / 0.9, rtol=2.0**-7, atol=1e-3)
    wrong = fused_ops.attention_softmax(scores, tf.zeros([2, 1, 1, 7], tf.bfloat16), 1.0, 0.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be \[batch, 1, 1, keys\]"):
        _run(wrong)


def test_layer_norm_refuses_a_scale_of_the_wrong_width(graph, kernels):
    out = fused_ops.layer_norm(tf.zeros([4, 8]), tf.ones([7]), tf.zeros([7]), 1e-12)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"gamma must have shape \[8\]"):
        _run(out)


def test_dropout_keeps_each_value_with_the_right_probability_and_scales_it(graph, kernels):
    n = 1 << 20
    x = tf.constant(np.arange(1, n + 1, dtype=np.float32))
    for rate in (0.1, 0.5):
        y = fused_ops.dropout(x, rate)
        assert y.op.type == "TfzooDropout"
        values = _run(y)
        kept = values != 0
        sigma = np.sqrt(rate * (1 - rate) / n)
        assert abs(kept.mean() - (1 - rate)) < 5 * sigma, (rate, kept.mean())
        np.testing.assert_allclose(values[kept], np.arange(1, n + 1)[kept] / (1 - rate), rtol=1e-6)
        # Independent draws: neighbours agree as often as two coin flips do, and no block
        # of 8192 repeats another (a wrong Philox counter would repeat them).
        agree = (kept[1:] == kept[:-1]).mean()
        expected = rate**2 + (1 - rate) ** 2
        assert abs(agree - expected) < 0.005, (rate, agree, expected)
        blocks = kept[: (n // 8192) * 8192].reshape(-1, 8192)
        assert len({row.tobytes() for row in blocks}) == len(blocks)


def test_dropout_gradient_passes_through_the_kept_values_only(graph, kernels):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(5, ELEMENTS // 5)).astype(np.float32))
    dy = tf.constant(rng.normal(size=(5, ELEMENTS // 5)).astype(np.float32))
    y = fused_ops.dropout(x, 0.25)
    y_value, grad, dy_value = _run([y, tf.gradients(y, x, grad_ys=dy)[0], dy])
    kept = y_value != 0
    np.testing.assert_allclose(grad, np.where(kept, dy_value / 0.75, 0.0), rtol=1e-6)


def test_dropout_follows_the_graph_seed_and_draws_anew_each_step(kernels):
    def masks(seed):
        with tf.Graph().as_default():
            tf.set_random_seed(seed)
            y = fused_ops.dropout(tf.ones([4, 4096], tf.bfloat16), 0.5)
            with tf.Session() as session:
                return [session.run(y) != 0 for _ in range(2)]

    first, second = masks(7), masks(7)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert (first[0] != first[1]).any()
    assert (first[0] != masks(8)[0]).any()


def test_dropout_rate_zero_is_the_identity_and_a_bad_rate_is_named(graph, kernels):
    x = tf.ones([3])
    assert fused_ops.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="1.5"):
        fused_ops.dropout(x, 1.5)


def test_without_the_library_the_plain_ops_are_built(graph, fresh_state, monkeypatch):
    monkeypatch.setenv(fused_ops.ENV_VARIABLE, "0")
    assert fused_ops.library() is None
    assert fused_ops.ENV_VARIABLE in fused_ops.unavailable_reason()
    x = tf.ones([2, 3])
    assert fused_ops.gelu(x).op.type == "Mul"
    assert fused_ops.layer_norm(x, tf.ones([3]), tf.zeros([3]), 1e-12).op.type == "AddV2"
    scores = tf.ones([1, 1, 2, 3])
    assert fused_ops.attention_softmax(scores, scores[:, :, :1], 1.0, 0.0).op.type == "Softmax"
    assert fused_ops.dropout(x, 0.1).op.type != "TfzooDropout"


def test_a_library_built_from_another_source_is_not_loaded(
    kernels, tmp_path, fresh_state, monkeypatch
):
    copy = tmp_path / "fused_ops.so"
    assert os.path.isfile(fused_ops.LIBRARY)
    shutil.copy(fused_ops.LIBRARY, copy)
    (tmp_path / "fused_ops.so.stamp").write_text("0123 tensorflow-0.0\n")
    monkeypatch.setenv(fused_ops.ENV_VARIABLE, str(copy))
    assert fused_ops.library() is None
    assert "another fused_ops.cc" in fused_ops.unavailable_reason()
    assert "setup.sh" in fused_ops.unavailable_reason()


def test_a_missing_library_names_the_set_up_script(tmp_path, fresh_state, monkeypatch):
    monkeypatch.setenv(fused_ops.ENV_VARIABLE, str(tmp_path / "absent.so"))
    assert fused_ops.library() is None
    assert "absent.so is not built" in fused_ops.unavailable_reason()


def test_bert_with_the_kernels_computes_what_the_plain_ops_do(kernels, monkeypatch):
    """nlp_models/bert.py wires the kernels in right: loss and every gradient agree."""
    from nlp_models import bert

    config = bert.get_config("bert_tiny", vocab_size=40)._replace(
        max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 40, (2, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0

    def run(weights=None):
        with tf.Graph().as_default():
            model = bert.BertModel(config, ids, mask, np.zeros_like(ids), is_training=True)
            logits = bert.masked_lm_logits(
                config, model.sequence_output, model.embedding_table, tf.constant([[1, 4]] * 2)
            )
            loss = tf.reduce_sum(tf.square(logits)) + tf.reduce_sum(
                bert.next_sentence_logits(config, model.pooled_output)
            )
            variables = tf.trainable_variables()
            grads = [tf.convert_to_tensor(g) for g in tf.gradients(loss, variables)]
            types = {op.type for op in tf.get_default_graph().get_operations()}
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                if weights is not None:
                    for v in variables:
                        v.load(weights[v.op.name], session)
                values = session.run({v.op.name: v for v in variables})
                return values, session.run([loss] + grads), types

    weights, fused, fused_types = run()
    assert {"TfzooGelu", "TfzooLayerNorm", "TfzooAttentionSoftmax"} <= fused_types
    monkeypatch.setattr(fused_ops, "_state", {"loaded": True, "library": None, "why": "test"})
    _, plain, plain_types = run(weights)
    assert not any(t.startswith("Tfzoo") for t in plain_types)
    for got, want in zip(fused, plain, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_plain_ops_inside_the_export_scope_and_kernels_after_it(graph, kernels):
    x = tf.ones([2, 3])
    with fused_ops.plain_ops():
        assert fused_ops.gelu(x).op.type == "Mul"
        assert fused_ops.dropout(x, 0.5).op.type != "TfzooDropout"
    assert fused_ops.gelu(x).op.type == "TfzooGelu"
