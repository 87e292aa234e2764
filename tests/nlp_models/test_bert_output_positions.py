"""BertModel(output_positions=...): the last layer computes only the rows the heads read.

The pruned model (the tasks' path) must give the full model's logits, losses and every
gradient, and run fewer matmul FLOPs: exactly executed_pretraining_flops_per_example's.
"""

import numpy as np
import pytest

from nlp_models import bert
from slim_compat import tf
from tasks import bert as bert_tasks
from tests.nlp_models import test_bert
from training import precision

# bert_tiny's width and depth (2 layers, so the first stays full and the last is pruned),
# a small vocabulary, no dropout: the two paths must agree number for number.
CONFIG = bert.get_config("bert_tiny", vocab_size=60)._replace(
    max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
)
BATCH, SEQ, P = 3, 16, 4


def pretraining_batch(seed=0):
    """google's records: padding in input_mask; masked positions sorted and padded with 0
    (weight 0); one sequence's positions unsorted and repeated (the gather allows it)."""
    rng = np.random.default_rng(seed)
    lengths = np.array([SEQ, 11, 7])
    mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int32)
    positions = np.array([[1, 5, 9, 15], [2, 3, 10, 0], [6, 6, 1, 4]], np.int32)
    weights = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], np.float32)
    return {
        "input_ids": rng.integers(1, CONFIG.vocab_size, (BATCH, SEQ)).astype(np.int32) * mask,
        "input_mask": mask,
        "segment_ids": ((np.arange(SEQ)[None] >= lengths[:, None] // 2) * mask).astype(np.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(1, CONFIG.vocab_size, (BATCH, P)).astype(np.int32),
        "masked_lm_weights": weights,
        "next_sentence_labels": np.array([[0], [1], [1]], np.int32),
    }


def _task(cls):
    task = cls()
    task.setup = lambda _: ({"num_labels": 3}, CONFIG, SEQ)  # no records: the config above
    return task


def build_both(features, dtype=tf.float32):
    """The task's (pruned) pretraining outputs and losses, and the full model's, sharing
    one set of variables. Returns ({'pruned': ..., 'full': ...}, the pruned BertModel)."""
    task = _task(bert_tasks.BertPretrainingTask)
    built = {}
    with tf.variable_scope("", reuse=tf.AUTO_REUSE):
        outputs = task.build_model(features, None, True, dtype)
        built["pruned"] = dict(outputs, loss=task.build_losses(features, outputs, None).total)
        full = bert.BertModel(
            CONFIG,
            features["input_ids"],
            features["input_mask"],
            features["segment_ids"],
            is_training=True,
            dtype=dtype,
        )
        outputs = {
            "masked_lm_logits": bert.masked_lm_logits(
                CONFIG,
                full.sequence_output,
                full.embedding_table,
                features["masked_lm_positions"],
                dtype,
            ),
            "next_sentence_logits": bert.next_sentence_logits(CONFIG, full.pooled_output),
        }
        built["full"] = dict(outputs, loss=task.build_losses(features, outputs, None).total)
    return built


def _dense(gradient):
    return tf.convert_to_tensor(gradient)  # the word table's IndexedSlices too


def test_pruned_last_layer_gives_the_full_models_logits_losses_and_gradients():
    batch = pretraining_batch()
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        features = {k: tf.constant(v) for k, v in batch.items()}
        built = build_both(features)
        variables = tf.trainable_variables()
        grads = {
            name: [_dense(g) for g in tf.gradients(built[name]["loss"], variables)]
            for name in built
        }
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            got = sess.run({"values": built, "grads": grads})
    pruned, full = got["values"]["pruned"], got["values"]["full"]
    # One set of variables, google's, serves both paths (a name only one path made
    # would be an extra variable here).
    layout = {v.op.name: v.shape.as_list() for v in variables}
    assert layout == test_bert.google_layout(CONFIG)
    for key in ("masked_lm_logits", "next_sentence_logits", "loss"):
        np.testing.assert_allclose(pruned[key], full[key], atol=1e-5, rtol=1e-5, err_msg=key)
    assert pruned["masked_lm_logits"].shape == (BATCH * P, CONFIG.vocab_size)
    # The check has teeth: the logits vary by row, so a row taken from the wrong
    # position or sequence would show.
    logits = full["masked_lm_logits"]
    assert np.abs(logits[0] - logits[1]).max() > 1e-2
    assert np.abs(logits[8] - logits[9]).max() < 1e-6  # position 6 twice: the same row
    for var, g_pruned, g_full in zip(variables, got["grads"]["pruned"], got["grads"]["full"]):
        scale = max(1.0, float(np.abs(g_full).max()))
        np.testing.assert_allclose(g_pruned, g_full, atol=1e-5 * scale, err_msg=var.op.name)
        assert np.abs(g_full).max() > 0, var.op.name  # every variable is trained


def _matmul_flops(graph, session, feed=None):
    """{op name: FLOPs} of every forward MatMul / BatchMatMulV2, from the run shapes."""
    ops = [
        op
        for op in graph.get_operations()
        if op.type in ("MatMul", "BatchMatMulV2") and not op.name.startswith("gradients")
    ]
    shapes = session.run({op.name: (tf.shape(op.inputs[0]), tf.shape(op.outputs[0])) for op in ops})
    flops = {}
    for op in ops:
        a_shape, out_shape = shapes[op.name]
        transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
        k = a_shape[-2] if transposed else a_shape[-1]
        flops[op.name] = 2 * int(np.prod(out_shape)) * int(k)
    return flops


def test_pruned_last_layer_runs_fewer_matmul_flops():
    """The last layer's feed-forward sees batch * (1 + P) rows, its keys batch * seq; the
    forward matmuls add up to executed_pretraining_flops_per_example, the full model's to
    pretraining_flops_per_example (each a third of the training count)."""
    batch = pretraining_batch()
    with tf.Graph().as_default() as graph:
        features = {k: tf.constant(v) for k, v in batch.items()}
        task = _task(bert_tasks.BertPretrainingTask)
        task.build_model(features, None, True, tf.float32)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            flops = _matmul_flops(graph, sess)
            rows = {
                name: sess.run(tf.shape(graph.get_tensor_by_name(f"{name}/MatMul:0")))[0]
                for name in (
                    "bert/encoder/layer_0/intermediate/dense",
                    "bert/encoder/layer_1/intermediate/dense",
                    "bert/encoder/layer_1/attention/self/query",
                    "bert/encoder/layer_1/attention/self/key",
                )
            }
    assert rows == {
        "bert/encoder/layer_0/intermediate/dense": BATCH * SEQ,
        "bert/encoder/layer_1/intermediate/dense": BATCH * (1 + P),
        "bert/encoder/layer_1/attention/self/query": BATCH * (1 + P),
        "bert/encoder/layer_1/attention/self/key": BATCH * SEQ,
    }
    executed = bert.executed_pretraining_flops_per_example(CONFIG, SEQ, P)
    assert sum(flops.values()) * 3 == executed * BATCH
    with tf.Graph().as_default() as graph:
        features = {k: tf.constant(v) for k, v in batch.items()}
        model = bert.BertModel(CONFIG, features["input_ids"], features["input_mask"])
        bert.masked_lm_logits(
            CONFIG, model.sequence_output, model.embedding_table, features["masked_lm_positions"]
        )
        bert.next_sentence_logits(CONFIG, model.pooled_output)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            full_flops = sum(_matmul_flops(graph, sess).values())
    assert full_flops * 3 == bert.pretraining_flops_per_example(CONFIG, SEQ, P) * BATCH
    assert executed < full_flops * 3 / BATCH


def test_pruned_path_in_bf16_runs_and_stays_close():
    batch = pretraining_batch(seed=2)
    with tf.Graph().as_default():
        features = {k: tf.constant(v) for k, v in batch.items()}
        getter = precision.master_weights_getter(tf.bfloat16)
        with tf.variable_scope("", custom_getter=getter):
            built = build_both(features, tf.bfloat16)
        assert all(v.dtype.base_dtype == tf.float32 for v in tf.global_variables())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            got = sess.run(built)
    for key in ("masked_lm_logits", "next_sentence_logits", "loss"):
        assert got["pruned"][key].dtype == np.float32, key
        assert np.isfinite(got["pruned"][key]).all(), key
        scale = max(1.0, float(np.abs(got["full"][key]).max()))
        np.testing.assert_allclose(
            got["pruned"][key], got["full"][key], atol=0.05 * scale, err_msg=key
        )


def test_classifier_reads_position_0_only_and_gets_the_full_models_logits():
    batch = pretraining_batch()
    task = _task(bert_tasks.SequenceClassificationTask)
    with tf.Graph().as_default() as graph:
        features = {k: tf.constant(batch[k]) for k in bert_tasks.EXPORT_INPUTS}
        with tf.variable_scope("", reuse=tf.AUTO_REUSE):
            pruned = task.build_model(features, None, False, tf.float32)["logits"]
            full = bert.BertModel(CONFIG, *(features[k] for k in bert_tasks.EXPORT_INPUTS))
            full = bert.classifier_logits(CONFIG, full.pooled_output, 3, False)
        ffn = graph.get_tensor_by_name("bert/encoder/layer_1/intermediate/dense/MatMul:0")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            pruned, full, rows = sess.run([pruned, full, tf.shape(ffn)[0]])
    assert rows == BATCH  # one row per sequence in the last layer
    np.testing.assert_allclose(pruned, full, atol=1e-5)
    assert np.abs(full[0] - full[1]).max() > 1e-3


def test_full_outputs_are_not_built_and_say_why():
    with tf.Graph().as_default():
        ids = tf.constant(pretraining_batch()["input_ids"])
        model = bert.BertModel(CONFIG, ids, output_positions=tf.constant([[1], [2], [3]]))
        assert model.gathered_output.shape.as_list() == [BATCH * 1, CONFIG.hidden_size]
        for name in ("sequence_output", "all_encoder_layers"):
            with pytest.raises(AttributeError, match="output_positions"):
                getattr(model, name)
        full = bert.BertModel(CONFIG, ids, scope="full")
        assert full.gathered_output is None
        assert len(full.all_encoder_layers) == CONFIG.num_hidden_layers
        assert full.sequence_output is full.all_encoder_layers[-1]


@pytest.mark.parametrize("position", [SEQ, -1])
def test_a_position_outside_the_sequence_is_refused(position):
    """A flat row number would otherwise read a row of the next sequence."""
    with tf.Graph().as_default():
        ids = tf.constant(pretraining_batch()["input_ids"])
        positions = tf.constant([[1], [position], [3]])
        model = bert.BertModel(CONFIG, ids, output_positions=positions)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            with pytest.raises(tf.errors.InvalidArgumentError, match="output_positions"):
                sess.run(model.gathered_output)
