"""The Transformer: masks, the shared embedding's zero row, the loss, greedy and beam search.

One tiny model (width 32, 2 layers) is trained for a few hundred Adam steps on a copy task
in a module-scoped graph, so decoding produces real, varied output; every test reads that
graph and session.
"""

import math

import numpy as np
import pytest

from nlp_models import models_factory, transformer
from slim_compat import tf

VOCAB = 24
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, relu_dropout=0.0)


def _random_batch(rng, n, width=10, min_len=2, max_len=8):
    """Sentences of random ids in [4, VOCAB) of random lengths, EOS last, 0-padded."""
    x = np.zeros([n, width], np.int64)
    for i in range(n):
        length = rng.integers(min_len, max_len)
        x[i, :length] = rng.integers(4, VOCAB, length)
        x[i, length] = transformer.EOS_ID
    return x


class Trained:
    """A graph with a tiny model trained on copying, its placeholders and decoders."""

    def __init__(self, steps=250):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(1)
            config = models_factory.get_config(
                "transformer_tiny", vocab_size=VOCAB, label_smoothing=0.0, **NO_DROPOUT
            )
            self.config = config
            train_model = transformer.Transformer(config, is_training=True)
            self.inputs = tf.placeholder(tf.int32, [None, None])
            self.targets = tf.placeholder(tf.int32, [None, None])
            logits = train_model(self.inputs, self.targets)
            loss_sum, count = transformer.smoothed_cross_entropy(logits, self.targets, 0.1)
            self.loss = loss_sum / count
            optimizer = tf.train.AdamOptimizer(3e-3, 0.9, 0.98, 1e-9)
            self.train_op = optimizer.minimize(self.loss)
            model = transformer.Transformer(config, is_training=False)
            self.model = model
            self.memory, _ = model.encode(self.inputs)
            self.logits = model(self.inputs, self.targets)
            self.greedy = model.greedy(self.inputs, max_decode_length=14, return_logits=True)
            self.beam1 = model.beam_search(self.inputs, 1, alpha=0.0, max_decode_length=14)
            self.beam4 = model.beam_search(self.inputs, 4, alpha=0.6, max_decode_length=14)
            self.table = tf.global_variables()[0]
            assert self.table.name == "transformer/embeddings/shared_weights:0"
            self.session = tf.Session(graph=self.graph)
            self.session.run(tf.global_variables_initializer())
        rng = np.random.default_rng(0)
        self.losses = []
        for _ in range(steps):
            x = _random_batch(rng, 32)
            loss, _ = self.session.run(
                [self.loss, self.train_op], {self.inputs: x, self.targets: x}
            )
            self.losses.append(loss)

    def run(self, fetches, inputs, targets=None):
        feed = {self.inputs: inputs}
        if targets is not None:
            feed[self.targets] = targets
        return self.session.run(fetches, feed)


@pytest.fixture(scope="module")
def trained():
    t = Trained()
    yield t
    t.session.close()


def test_training_learns_the_copy_task(trained):
    assert np.mean(trained.losses[:10]) > 2.0
    assert np.mean(trained.losses[-10:]) < 0.5 * np.mean(trained.losses[:10])


def test_embedding_row_zero_stays_zero_after_training_steps(trained):
    table = trained.session.run(trained.table)
    np.testing.assert_array_equal(table[0], np.zeros_like(table[0]))
    # The other rows moved (the check is about row 0, not about a frozen table).
    assert np.abs(table[1:]).sum() > 0


def test_padded_source_never_changes_other_encoder_positions(trained):
    rng = np.random.default_rng(1)
    x = _random_batch(rng, 4, width=9)
    wide = np.pad(x, [[0, 0], [0, 15]])  # the same sentences, 15 more pad positions
    short, long_ = trained.run(trained.memory, x), trained.run(trained.memory, wide)
    mask = x != 0
    np.testing.assert_allclose(long_[:, :9][mask], short[mask], rtol=1e-5, atol=1e-5)
    # A real token does change the others (the test can see a difference).
    changed = x.copy()
    changed[:, 0] = np.where(changed[:, 0] == 5, 6, 5)
    other = trained.run(trained.memory, changed)
    assert np.abs(other[:, 1][mask[:, 1]] - short[:, 1][mask[:, 1]]).max() > 1e-3


def test_future_target_never_changes_earlier_logits(trained):
    rng = np.random.default_rng(2)
    x = _random_batch(rng, 3, width=10, min_len=8, max_len=9)
    base = trained.run(trained.logits, x, x)
    for t in (0, 4, 8):
        changed = x.copy()
        changed[:, t] = np.where(changed[:, t] == 7, 8, 7)
        logits = trained.run(trained.logits, x, changed)
        # Position t predicts targets[t] from targets[< t]: logits up to t are unchanged.
        np.testing.assert_allclose(logits[:, : t + 1], base[:, : t + 1], rtol=1e-5, atol=1e-5)
        assert np.abs(logits[:, t + 1] - base[:, t + 1]).max() > 1e-3


def test_pad_targets_add_nothing_to_the_loss(graph):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal([2, 6, 11]).astype(np.float32)
    targets = np.array([[5, 6, 3, 0, 0, 0], [4, 3, 0, 0, 0, 0]])
    total, count = transformer.smoothed_cross_entropy(tf.constant(logits), targets, 0.1)
    # Other logits at the pad positions and more pad columns: the same loss.
    noisy = logits.copy()
    noisy[targets == 0] = 50.0 * rng.standard_normal(noisy[targets == 0].shape)
    wide = np.concatenate([noisy, rng.standard_normal([2, 4, 11]).astype(np.float32)], 1)
    wide_total, wide_count = transformer.smoothed_cross_entropy(
        tf.constant(wide), np.pad(targets, [[0, 0], [0, 4]]), 0.1
    )
    with tf.Session() as session:
        t, c, wt, wc = session.run([total, count, wide_total, wide_count])
    assert c == wc == 5
    np.testing.assert_allclose(wt, t, rtol=1e-6)
    # And the value is the smoothed cross-entropy minus the smoothed target's entropy.
    expected = 0.0
    for b, i in zip(*np.nonzero(targets)):
        log_p = logits[b, i] - np.log(np.exp(logits[b, i]).sum())
        q = np.full(11, 0.1 / 10)
        q[targets[b, i]] = 0.9
        expected += -(q * log_p).sum() + (q * np.log(q)).sum()
    np.testing.assert_allclose(t, expected, rtol=1e-5)


def _trim(ids):
    """Each row up to and including its first EOS, as a tuple."""
    rows = []
    for row in ids:
        row = list(row)
        rows.append(tuple(row[: row.index(transformer.EOS_ID) + 1] if 3 in row else row))
    return rows


def test_beam_size_one_equals_greedy(trained):
    rng = np.random.default_rng(4)
    x = _random_batch(rng, 8)
    (g_ids, g_scores, _), (b_ids, b_scores) = trained.run([trained.greedy, trained.beam1], x)
    assert _trim(g_ids) == _trim(b_ids)
    np.testing.assert_allclose(b_scores, g_scores, rtol=1e-5, atol=1e-5)
    # The trained model copies most sentences (the decoder is not degenerate).
    assert sum(a == tuple(r[r != 0]) for a, r in zip(_trim(g_ids), x)) >= 6


def test_cached_incremental_decoding_equals_full_recomputation(trained):
    rng = np.random.default_rng(5)
    x = _random_batch(rng, 6)
    ids, scores, step_logits = trained.run(trained.greedy, x)
    full = trained.run(trained.logits, x, ids)
    alive = ids != 0
    alive[:, 0] = True
    np.testing.assert_allclose(step_logits[alive], full[alive], rtol=1e-4, atol=1e-4)
    # The greedy scores are the log-probabilities of its output under the full model.
    log_p = full - np.log(np.exp(full).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, ids[..., None], -1)[..., 0]
    np.testing.assert_allclose((picked * (ids != 0)).sum(1), scores, rtol=1e-4, atol=1e-4)


def test_beam_search_scores_are_length_normalised_log_probs(trained):
    rng = np.random.default_rng(6)
    x = _random_batch(rng, 6)
    ids, scores = trained.run(trained.beam4, x)
    full = trained.run(trained.logits, x, ids)
    log_p = full - np.log(np.exp(full).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, ids[..., None], -1)[..., 0]
    lengths = (ids != 0).sum(1)
    expected = (picked * (ids != 0)).sum(1) / ((5.0 + lengths) / 6.0) ** 0.6
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert all(row[-1] == transformer.EOS_ID for row in _trim(ids))


def test_max_decode_length_bounds_the_output(trained):
    x = _random_batch(np.random.default_rng(7), 3, min_len=7, max_len=8)
    with trained.graph.as_default():
        ids = trained.model.greedy(trained.inputs, max_decode_length=3)[0]
        beam = trained.model.beam_search(trained.inputs, 3, max_decode_length=3)[0]
    g, b = trained.run([ids, beam], x)
    assert g.shape[1] == 3 and b.shape[1] == 3
    np.testing.assert_array_equal(g, x[:, :3])  # copied as far as allowed, no EOS


@pytest.mark.parametrize(
    "overrides",
    [dict(pre_layer_norm=True), dict(embedding_sharing="decoder"), dict(embedding_sharing="none")],
    ids=["pre_ln", "untied_source", "untied_all"],
)
def test_options_build_train_and_keep_their_tables(graph, overrides):
    config = models_factory.get_config("transformer_tiny", vocab_size=VOCAB, **overrides)
    model = transformer.Transformer(config, is_training=True)
    x = _random_batch(np.random.default_rng(8), 4)
    logits = model(tf.constant(x), tf.constant(x))
    total, count = transformer.smoothed_cross_entropy(logits, x, 0.1)
    grads = tf.gradients(total / count, tf.trainable_variables())
    tables = [v.name for v in tf.global_variables() if "/embeddings/" in v.name]
    expected = {"decoder": 2, "none": 3}.get(overrides.get("embedding_sharing"), 1)
    assert len(tables) == expected
    layer_norms = [v for v in tf.global_variables() if "output_layer_norm" in v.name]
    assert bool(layer_norms) == overrides.get("pre_layer_norm", False)
    assert all(g is not None for g in grads)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        assert np.isfinite(session.run(total))


def test_configs_match_the_published_sizes(graph):
    sizes = {
        name: (c.hidden_size, c.filter_size, c.num_layers, c.num_heads, c.dropout)
        for name, c in (
            (n, models_factory.get_config(n)) for n in models_factory.names("translation")
        )
    }
    assert sizes["transformer_base"] == (512, 2048, 6, 8, 0.1)
    assert sizes["transformer_big"] == (1024, 4096, 6, 16, 0.3)
    assert sizes["hetu"] == (512, 2048, 6, 8, 0.3)
    for name in models_factory.names("translation"):
        config = models_factory.get_config(name)
        assert config.layer_norm_epsilon == 1e-8 and config.label_smoothing == 0.1
        assert not config.pre_layer_norm and config.embedding_sharing == "all"
    # The base model's parameters, counted from the graph (vocab 1000, shared table).
    config = models_factory.get_config("transformer_base", vocab_size=1000)
    model = transformer.Transformer(config, is_training=False)
    ids = tf.zeros([1, 8], tf.int32)
    model(ids, ids)
    count = sum(np.prod(v.shape.as_list()) for v in tf.trainable_variables())
    d, f = 512, 2048
    attention = 4 * d * d + 4 * d
    ffn = 2 * d * f + f + d
    expected = 1000 * d + 6 * (attention + ffn + 4 * d) + 6 * (2 * attention + ffn + 6 * d)
    assert count == expected


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="transformer_base"):
        models_factory.get_config("transformer_huge")
    with pytest.raises(ValueError, match="hidden_size"):
        models_factory.get_config("transformer_tiny", hidden_sise=3)
    with pytest.raises(ValueError, match="embedding_sharing"):
        models_factory.get_config("transformer_tiny", embedding_sharing="some")


def test_positional_signal_is_the_sinusoid(graph):
    with tf.Session() as session:
        signal = session.run(transformer.positional_signal(5, 8, start=3))
    inv = np.exp(-np.arange(4) * math.log(1e4) / 3)
    angles = np.arange(3, 8)[:, None] * inv[None]
    np.testing.assert_allclose(
        signal, np.concatenate([np.sin(angles), np.cos(angles)], 1), atol=1e-5
    )
