"""BERT: google's checkpoint layout, a google-named checkpoint restored, numpy fidelity.

The expected layout is typed here from the structure of google-research/bert's
modeling.py (embeddings, encoder layers, pooler), run_pretraining.py (cls/predictions,
cls/seq_relationship) and run_classifier.py (output_weights, output_bias), not read from
nlp_models/bert.py, so a renamed or reshaped variable fails.
"""

import json
import math

import numpy as np
import pytest

from nlp_models import bert
from slim_compat import tf
from training import precision

# A tiny config: bert_tiny's width and depth, a small vocabulary and position table so
# the numpy reference stays quick.
TINY = bert.get_config("bert_tiny", vocab_size=50)._replace(max_position_embeddings=16)
BATCH, SEQ, PREDICTIONS, LABELS = 3, 8, 3, 4


def google_layout(config, num_labels=None, pretraining_heads=True):
    """{name: shape} of google's checkpoints for `config`, typed from its modeling.py."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    layout = {
        "bert/embeddings/word_embeddings": [v, h],
        "bert/embeddings/token_type_embeddings": [config.type_vocab_size, h],
        "bert/embeddings/position_embeddings": [config.max_position_embeddings, h],
        "bert/embeddings/LayerNorm/beta": [h],
        "bert/embeddings/LayerNorm/gamma": [h],
        "bert/pooler/dense/kernel": [h, h],
        "bert/pooler/dense/bias": [h],
    }
    for n in range(config.num_hidden_layers):
        p = f"bert/encoder/layer_{n}/"
        layout.update(
            {
                p + "attention/self/query/kernel": [h, h],
                p + "attention/self/query/bias": [h],
                p + "attention/self/key/kernel": [h, h],
                p + "attention/self/key/bias": [h],
                p + "attention/self/value/kernel": [h, h],
                p + "attention/self/value/bias": [h],
                p + "attention/output/dense/kernel": [h, h],
                p + "attention/output/dense/bias": [h],
                p + "attention/output/LayerNorm/beta": [h],
                p + "attention/output/LayerNorm/gamma": [h],
                p + "intermediate/dense/kernel": [h, i],
                p + "intermediate/dense/bias": [i],
                p + "output/dense/kernel": [i, h],
                p + "output/dense/bias": [h],
                p + "output/LayerNorm/beta": [h],
                p + "output/LayerNorm/gamma": [h],
            }
        )
    if pretraining_heads:
        layout.update(
            {
                "cls/predictions/transform/dense/kernel": [h, h],
                "cls/predictions/transform/dense/bias": [h],
                "cls/predictions/transform/LayerNorm/beta": [h],
                "cls/predictions/transform/LayerNorm/gamma": [h],
                "cls/predictions/output_bias": [v],
                "cls/seq_relationship/output_weights": [2, h],
                "cls/seq_relationship/output_bias": [2],
            }
        )
    if num_labels:
        layout["output_weights"] = [num_labels, h]
        layout["output_bias"] = [num_labels]
    return layout


def build_all_heads(config, batch=BATCH, seq=SEQ, dtype=tf.float32):
    """Placeholders, the encoder and all three heads; returns (inputs, outputs) dicts."""
    inputs = {
        "input_ids": tf.placeholder(tf.int32, [batch, seq], "input_ids"),
        "input_mask": tf.placeholder(tf.int32, [batch, seq], "input_mask"),
        "segment_ids": tf.placeholder(tf.int32, [batch, seq], "segment_ids"),
        "positions": tf.placeholder(tf.int32, [batch, PREDICTIONS], "positions"),
    }
    model = bert.BertModel(
        config,
        inputs["input_ids"],
        inputs["input_mask"],
        inputs["segment_ids"],
        is_training=False,
        dtype=dtype,
    )
    outputs = {
        "sequence": tf.cast(model.sequence_output, tf.float32),
        "pooled": tf.cast(model.pooled_output, tf.float32),
        "mlm": bert.masked_lm_logits(
            config, model.sequence_output, model.embedding_table, inputs["positions"], dtype
        ),
        "nsp": bert.next_sentence_logits(config, model.pooled_output),
        "classifier": bert.classifier_logits(config, model.pooled_output, LABELS, False),
    }
    return inputs, outputs


def graph_layout():
    return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


@pytest.mark.parametrize("name", ["bert_tiny", "bert_base"])
def test_variables_are_googles_checkpoint_layout(name):
    config = bert.get_config(name)
    with tf.Graph().as_default():
        ids = tf.zeros([2, 16], tf.int32)
        model = bert.BertModel(config, ids, is_training=True)
        bert.masked_lm_logits(config, model.sequence_output, model.embedding_table, ids[:, :2])
        bert.next_sentence_logits(config, model.pooled_output)
        bert.classifier_logits(config, model.pooled_output, 3, True)
        layout = graph_layout()
        num_params = sum(np.prod(s) for s in layout.values())
    expected = google_layout(config, num_labels=3)
    assert sorted(set(layout) - set(expected)) == []
    assert sorted(set(expected) - set(layout)) == []
    assert {k: v for k, v in layout.items() if expected[k] != v} == {}
    h = config.hidden_size
    assert num_params == bert.num_parameters(config) + 3 * h + 3  # + the 3-label classifier
    if name == "bert_base":  # the paper's 110M (BERT-Base uncased: 109.5M in the encoder)
        assert round(bert.num_parameters(config, pretraining_heads=False) / 1e5) == 1095


def test_named_sizes_are_the_published_ones():
    sizes = {
        n: (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
        for n, c in bert.BERT_CONFIGS.items()
    }
    assert sizes == {
        "bert_tiny": (2, 128, 2, 512),
        "bert_mini": (4, 256, 4, 1024),
        "bert_small": (4, 512, 8, 2048),
        "bert_medium": (8, 512, 8, 2048),
        "bert_base": (12, 768, 12, 3072),
        "bert_large": (24, 1024, 16, 4096),
    }
    assert all(c.max_position_embeddings == 512 for c in bert.BERT_CONFIGS.values())


def test_the_text_models_factory_lists_every_bert():
    """One map: models_factory holds each named BERT (builder, config, family 'bert') beside
    the Transformers, and bert.get_config / the tasks read it."""
    from nlp_models import models_factory

    assert models_factory.names("bert") == list(bert.BERT_CONFIGS)
    assert set(models_factory.names("translation")) >= {"transformer_tiny", "transformer_base"}
    assert not set(models_factory.names("bert")) & set(models_factory.names("translation"))
    for name in models_factory.names("bert"):
        entry = models_factory.MODELS[name]
        assert entry.builder is bert.BertModel and entry.config == bert.BERT_CONFIGS[name]
    base = models_factory.get_config("bert_base", "bert", vocab_size=8000)
    assert base == bert.get_config("bert_base", vocab_size=8000)
    assert (base.vocab_size, base.hidden_size, base.num_hidden_layers) == (8000, 768, 12)
    with pytest.raises(ValueError, match=r"Unknown bert model 'transformer_base'.*bert_tiny"):
        models_factory.get_config("transformer_base", "bert")
    with pytest.raises(ValueError, match=r"Unknown translation model 'bert_tiny'.*transformer"):
        models_factory.get_config("bert_tiny", "translation")
    with pytest.raises(ValueError, match=r"hidden_sise.*hidden_size"):
        models_factory.get_config("bert_tiny", hidden_sise=3)
    with pytest.raises(ValueError, match="num_attention_heads"):
        models_factory.get_config("bert_tiny", num_attention_heads=3)
    with pytest.raises(ValueError, match="has no config file; families that do: bert"):
        models_factory.config_from_file("x.json", "translation")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="bert_hueg.*bert_tiny.*bert_large"):
        bert.get_config("bert_hueg")


def test_config_file_is_read_and_bad_files_are_named(tmp_path):
    good = dict(TINY._asdict(), directionality="bidi")  # extra keys of some releases
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(good))
    assert bert.get_config("ignored", config_file=str(path)) == TINY
    del good["num_attention_heads"]
    path.write_text(json.dumps(good))
    with pytest.raises(ValueError, match="bert_config.json lacks num_attention_heads"):
        bert.get_config(config_file=str(path))
    path.write_text(json.dumps(dict(TINY._asdict(), num_attention_heads=3)))
    with pytest.raises(ValueError, match="hidden_size 128 is not a multiple of.*3"):
        bert.get_config(config_file=str(path))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        bert.get_config(config_file=str(path))
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        bert.get_config(config_file=str(tmp_path / "nowhere.json"))


def test_sequence_longer_than_the_position_table_is_refused():
    with tf.Graph().as_default():
        ids = tf.zeros([1, TINY.max_position_embeddings + 1], tf.int32)
        with pytest.raises(ValueError, match="sequence length 17 exceeds.*max_position_emb.*16"):
            bert.BertModel(TINY, ids)


# ------------------------------------------------------------------ numpy reference


def np_layer_norm(x, beta, gamma):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def np_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_bert(w, config, ids, mask, segments, positions):
    """google's forward pass, written out in numpy from the weights dict `w`."""
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    b, s = ids.shape
    h, heads = config.hidden_size, config.num_attention_heads
    d = h // heads
    x = g("bert/embeddings/word_embeddings")[ids]
    x = x + g("bert/embeddings/token_type_embeddings")[segments]
    x = x + g("bert/embeddings/position_embeddings")[:s][None]
    x = np_layer_norm(x, g("bert/embeddings/LayerNorm/beta"), g("bert/embeddings/LayerNorm/gamma"))
    adder = (1.0 - mask[:, None, None, :]) * -10000.0
    for n in range(config.num_hidden_layers):
        p = f"bert/encoder/layer_{n}/"

        def lin(t, name, p=p):
            return t @ g(p + name + "/kernel") + g(p + name + "/bias")

        def heads_of(t):
            return t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)

        q = heads_of(lin(x, "attention/self/query"))
        k = heads_of(lin(x, "attention/self/key"))
        v = heads_of(lin(x, "attention/self/value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + adder
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        a = lin(context, "attention/output/dense") + x
        a = np_layer_norm(
            a, g(p + "attention/output/LayerNorm/beta"), g(p + "attention/output/LayerNorm/gamma")
        )
        out = lin(np_gelu(lin(a, "intermediate/dense")), "output/dense") + a
        x = np_layer_norm(out, g(p + "output/LayerNorm/beta"), g(p + "output/LayerNorm/gamma"))
    pooled = np.tanh(x[:, 0] @ g("bert/pooler/dense/kernel") + g("bert/pooler/dense/bias"))
    picked = x[np.arange(b)[:, None], positions].reshape(-1, h)
    t = np_gelu(
        picked @ g("cls/predictions/transform/dense/kernel")
        + g("cls/predictions/transform/dense/bias")
    )
    t = np_layer_norm(
        t,
        g("cls/predictions/transform/LayerNorm/beta"),
        g("cls/predictions/transform/LayerNorm/gamma"),
    )
    mlm = t @ g("bert/embeddings/word_embeddings").T + g("cls/predictions/output_bias")
    nsp = pooled @ g("cls/seq_relationship/output_weights").T + g(
        "cls/seq_relationship/output_bias"
    )
    classifier = pooled @ g("output_weights").T + g("output_bias")
    return {"sequence": x, "pooled": pooled, "mlm": mlm, "nsp": nsp, "classifier": classifier}


def random_weights(layout, rng):
    """Weights on the scale of a trained BERT: LayerNorm gammas near 1, others small."""
    weights = {}
    for name, shape in layout.items():
        value = rng.normal(0.0, 0.1 if "LayerNorm" in name or "bias" in name else 0.2, shape)
        if name.endswith("gamma"):
            value += 1.0
        weights[name] = value.astype(np.float32)
    return weights


def feed_values(rng, config):
    ids = rng.integers(0, config.vocab_size, [BATCH, SEQ])
    mask = np.ones([BATCH, SEQ], np.int64)
    mask[1, 5:] = 0  # padding must not change the other positions
    mask[2, 3:] = 0
    segments = np.zeros([BATCH, SEQ], np.int64)
    segments[:, 4:] = 1
    positions = np.stack([rng.choice(SEQ, PREDICTIONS, replace=False) for _ in range(BATCH)])
    return ids, mask, segments, positions


@pytest.fixture(scope="module")
def google_checkpoint(tmp_path_factory):
    """A checkpoint written from plain variables with google's names and shapes."""
    rng = np.random.default_rng(7)
    weights = random_weights(google_layout(TINY, num_labels=LABELS), rng)
    path = str(tmp_path_factory.mktemp("google_ckpt") / "bert_model.ckpt")
    with tf.Graph().as_default():
        variables = [tf.Variable(value, name=name) for name, value in weights.items()]
        tf.Variable(1000, dtype=tf.int64, name="global_step")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(sess, path)
    return path, weights


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_google_checkpoint_restores_fully_and_matches_numpy(google_checkpoint, dtype):
    path, weights = google_checkpoint
    compute_dtype = precision.PRECISIONS[dtype]
    saved = dict(tf.train.list_variables(path))
    with tf.Graph().as_default():
        getter = precision.master_weights_getter(compute_dtype) if dtype != "fp32" else None
        with tf.variable_scope("", custom_getter=getter):
            inputs, outputs = build_all_heads(TINY, dtype=compute_dtype)
        model_vars = {v.op.name: v for v in tf.global_variables()}
        # Every variable of the graph is in the checkpoint with its shape, and every
        # weight of the checkpoint has a variable (only google's global_step is left).
        assert {n: v.shape.as_list() for n, v in model_vars.items()} == {
            n: s for n, s in saved.items() if n != "global_step"
        }
        assert all(v.dtype.base_dtype == tf.float32 for v in model_vars.values())
        with tf.Session() as sess:
            tf.train.Saver(model_vars).restore(sess, path)
            assert sess.run(tf.report_uninitialized_variables()).size == 0
            rng = np.random.default_rng(3)
            ids, mask, segments, positions = feed_values(rng, TINY)
            got = sess.run(
                outputs,
                {
                    inputs["input_ids"]: ids,
                    inputs["input_mask"]: mask,
                    inputs["segment_ids"]: segments,
                    inputs["positions"]: positions,
                },
            )
    want = np_bert(weights, TINY, ids, mask.astype(np.float64), segments, positions)
    tolerance = 1e-4 if dtype == "fp32" else 0.1  # bf16 keeps 8 bits of mantissa
    for key in want:
        assert got[key].dtype == np.float32, key
        scale = max(1.0, float(np.abs(want[key]).max()))
        np.testing.assert_allclose(got[key], want[key], atol=tolerance * scale, err_msg=key)
    # The check has teeth: the logits are not near-constant, and padding matters.
    assert np.std(want["mlm"]) > 0.5
    other = np_bert(weights, TINY, ids, np.ones_like(mask, np.float64), segments, positions)
    assert np.abs(other["sequence"][1] - want["sequence"][1]).max() > 0.05


def test_tied_mlm_output_gets_gradient_from_both_uses():
    """The word table gets gradient from the lookup and from the MLM output matmul."""
    with tf.Graph().as_default():
        ids = tf.constant([[1, 2, 3, 4]])
        model = bert.BertModel(TINY, ids)
        logits = bert.masked_lm_logits(
            TINY, model.sequence_output, model.embedding_table, tf.constant([[1]])
        )
        (grad,) = tf.gradients(logits[0, 7], [model.embedding_table])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            grad = sess.run(tf.convert_to_tensor(grad))
    touched = np.flatnonzero(np.abs(grad).sum(1))
    # Rows 1-4 are looked up; row 7 is the output row of the logit; no other row moves.
    assert set(touched) == {1, 2, 3, 4, 7}
