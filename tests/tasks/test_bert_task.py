"""The BERT tasks' pieces in plain sessions: inputs, google's losses, eval sums, errors."""

import json
import os

import numpy as np
import pytest

from slim_compat import tf
from tasks import bert as bert_tasks
from training import optimizers


def _first_batch(task, params, split, is_training, batch_size=8, rank=0, size=1):
    with tf.Graph().as_default():
        data = task.build_inputs(params, split, is_training, rank, size, batch_size, seed=1)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        with tf.Session() as sess:
            return data, sess.run(features)


def _all_batches(task, params, split, rank, size, batch_size=7):
    with tf.Graph().as_default():
        data = task.build_inputs(params, split, False, rank, size, batch_size, seed=0)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        batches = []
        with tf.Session() as sess:
            while True:
                try:
                    batches.append(sess.run(features))
                except tf.errors.OutOfRangeError:
                    return data, batches


def test_pretraining_inputs_are_googles_features(bert_data, bert_params):
    task = bert_tasks.BertPretrainingTask()
    params = bert_params(dataset_dir=bert_data.pretraining)
    data, batch = _first_batch(task, params, "train", True)
    sizes = json.load(open(os.path.join(bert_data.pretraining, "split_sizes.json")))
    assert data.num_examples == sizes["train"]
    assert {k: v.shape for k, v in batch.items()} == {
        "input_ids": (8, 16),
        "input_mask": (8, 16),
        "segment_ids": (8, 16),
        "masked_lm_positions": (8, 4),
        "masked_lm_ids": (8, 4),
        "masked_lm_weights": (8, 4),
        "next_sentence_labels": (8, 1),
    }
    assert batch["input_ids"].dtype == np.int32
    assert (batch["input_ids"][:, 0] == 2).all()  # [CLS]
    assert ((batch["input_ids"] == 0) == (batch["input_mask"] == 0)).all()


@pytest.mark.parametrize("size", [1, 2, 3])
def test_eval_split_is_covered_once_over_ranks(bert_data, bert_params, size):
    """Each held-out example is evaluated by exactly one rank, the last batch kept."""
    task = bert_tasks.SequenceClassificationTask()
    params = bert_params(dataset_dir=bert_data.classification)
    seen = []
    for rank in range(size):
        data, batches = _all_batches(task, params, None, rank, size)
        seen += [tuple(row) for b in batches for row in b["input_ids"]]
    assert data.num_examples == 41  # split None is the held-out 'dev'
    _, whole = _all_batches(task, params, "dev", 0, 1)
    assert sorted(seen) == sorted(tuple(r) for b in whole for r in b["input_ids"])
    assert len(seen) == 41


def _numpy_pretraining_losses(batch, mlm_logits, nsp_logits):
    """google's run_pretraining losses, written out in numpy."""

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    ids = batch["masked_lm_ids"].reshape(-1)
    weights = batch["masked_lm_weights"].reshape(-1)
    per = -log_softmax(mlm_logits.astype(np.float64))[np.arange(len(ids)), ids]
    mlm = (weights * per).sum() / (weights.sum() + 1e-5)
    labels = batch["next_sentence_labels"].reshape(-1)
    nsp = -log_softmax(nsp_logits.astype(np.float64))[np.arange(len(labels)), labels].mean()
    return mlm, nsp


def test_pretraining_losses_are_googles_and_training_lowers_them(bert_data, bert_params):
    task = bert_tasks.BertPretrainingTask()
    params = bert_params(dataset_dir=bert_data.pretraining, dropout_keep_prob=1.0)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        data = task.build_inputs(params, "train", True, 0, 1, 32, seed=0)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        outputs = task.build_model(features, params, True, tf.float32)
        losses = task.build_losses(features, outputs, params)
        metrics = task.train_metrics(features, outputs)
        counts = task.batch_counts(features)
        opt_params = type(
            "P",
            (),
            dict(
                decoupled_weight_decay=0.01,
                adam_beta1=0.9,
                adam_beta2=0.999,
                adamw_epsilon=1e-6,
                decoupled_weight_decay_exclude="LayerNorm,layer_norm,bias",
            ),
        )
        train_op = optimizers.OPTIMIZERS["adamw"](1e-3, opt_params).minimize(losses.total)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            first = sess.run(
                {"f": features, "o": outputs, "l": losses.parts, "t": losses.total, "c": counts}
            )
            mlm, nsp = _numpy_pretraining_losses(
                first["f"], first["o"]["masked_lm_logits"], first["o"]["next_sentence_logits"]
            )
            assert first["l"]["masked_lm_loss"] == pytest.approx(mlm, rel=1e-4)
            assert first["l"]["next_sentence_loss"] == pytest.approx(nsp, rel=1e-4)
            assert first["t"] == pytest.approx(mlm + nsp, rel=1e-4)
            assert first["c"]["examples"] == 32
            assert first["c"]["tokens"] == first["f"]["input_mask"].sum()
            history = [sess.run([train_op, losses.parts, metrics])[1:] for _ in range(120)]
    start = np.mean([h[0]["masked_lm_loss"] for h in history[:10]])
    end = np.mean([h[0]["masked_lm_loss"] for h in history[-10:]])
    accuracy = np.mean([h[1]["masked_lm_accuracy"] for h in history[-10:]])
    assert end < 0.6 * start, (start, end)
    assert accuracy > 0.3  # 40 words + specials: chance (and the unigram guess) is under 3%


def test_pretraining_metrics_from_sums(bert_params):
    task = bert_tasks.BertPretrainingTask()
    features = {
        "masked_lm_ids": np.array([[3, 4], [5, 0]], np.int32),
        "masked_lm_weights": np.array([[1.0, 1.0], [1.0, 0.0]], np.float32),
        "next_sentence_labels": np.array([[0], [1]], np.int32),
    }
    mlm_logits = np.full([4, 6], -5.0, np.float32)
    mlm_logits[0, 3] = mlm_logits[1, 1] = mlm_logits[2, 5] = mlm_logits[3, 0] = 5.0
    nsp_logits = np.array([[2.0, 0.0], [3.0, 0.0]], np.float32)  # second is wrong
    with tf.Graph().as_default(), tf.Session() as sess:
        stats = sess.run(
            task.eval_statistics(
                {k: tf.constant(v) for k, v in features.items()},
                {
                    "masked_lm_logits": tf.constant(mlm_logits),
                    "next_sentence_logits": tf.constant(nsp_logits),
                },
            )
        )
    # A second identical batch: metrics are of the sums, not averages of batch means.
    sums = {k: 2 * v for k, v in stats.items()}
    metrics = task.metrics_from_sums(sums)
    assert metrics["count"] == 4
    assert metrics["masked_lm_accuracy"] == pytest.approx(2 / 3)  # the padding one ignored
    assert metrics["next_sentence_accuracy"] == pytest.approx(0.5)
    assert metrics["masked_lm_loss"] > 0
    # ids 3, 4, 5 once each per batch (the padded 0 has weight 0): the majority guess is 1/3.
    assert metrics["masked_lm_majority_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="empty"):
        task.metrics_from_sums({k: 0 * v for k, v in stats.items()})


def test_classification_metrics_and_per_class_counts():
    task = bert_tasks.SequenceClassificationTask()
    labels = np.array([0, 0, 1, 1, 1, 0])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    logits = np.eye(2, dtype=np.float32)[predicted] * 4.0
    with tf.Graph().as_default(), tf.Session() as sess:
        stats = sess.run(
            task.eval_statistics(
                {
                    "label_ids": tf.constant(labels[:, None]),
                    "is_real_example": tf.constant(np.ones([6, 1], np.int64)),
                },
                {"logits": tf.constant(logits)},
            )
        )
    metrics = task.metrics_from_sums(stats)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # class 1: precision 2/3, recall 2/3 -> F1 2/3; class 0 likewise.
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx(2 / 3)
    assert metrics["majority_class_accuracy"] == pytest.approx(0.5)
    assert (metrics["class_0_correct"], metrics["class_0_support"]) == (2, 3)
    assert (metrics["class_1_correct"], metrics["class_1_support"]) == (2, 3)
    assert "1:2/3" in task.format_metrics(metrics)


def test_classification_model_and_loss(bert_data, bert_params):
    task = bert_tasks.SequenceClassificationTask()
    params = bert_params(dataset_dir=bert_data.classification)
    with tf.Graph().as_default():
        data = task.build_inputs(params, "train", True, 0, 1, 8, seed=0)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        outputs = task.build_model(features, params, False, tf.float32)
        loss = task.build_losses(features, outputs, params).total
        names = sorted(
            v.op.name for v in tf.global_variables() if not v.op.name.startswith("bert/")
        )
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            f, o, value = sess.run([features, outputs, loss])
    assert names == ["output_bias", "output_weights"]
    assert o["logits"].shape == (8, 4)
    log_probs = o["logits"] - np.log(np.exp(o["logits"]).sum(-1, keepdims=True))
    assert value == pytest.approx(-log_probs[np.arange(8), f["label_ids"][:, 0]].mean(), rel=1e-5)
    assert task.finetune_exclude_scopes(params) == ["output_weights", "output_bias"]


def test_bad_configuration_is_named(bert_data, bert_params, tmp_path):
    task = bert_tasks.SequenceClassificationTask()
    with pytest.raises(ValueError, match="'lenet' is not a BERT.*bert_tiny"):
        task.setup(bert_params(model_name="lenet", dataset_dir=bert_data.classification))
    with pytest.raises(ValueError, match="--max_seq_length=32 but the records.*16 tokens"):
        task.setup(bert_params(max_seq_length=32, dataset_dir=bert_data.classification))
    with pytest.raises(ValueError, match="--num_classes=3 but the records.*4 labels"):
        task.num_labels(
            bert_params(num_classes=3, dataset_dir=bert_data.classification),
            task.metadata(bert_params(dataset_dir=bert_data.classification)),
        )
    short = dict(
        vocab_size=45,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=8,
        type_vocab_size=2,
        initializer_range=0.02,
    )
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps(short))
    with pytest.raises(ValueError, match="sequence length 16 exceeds.*max_position_embeddings 8"):
        task.setup(bert_params(bert_config_file=str(config), dataset_dir=bert_data.classification))
    config.write_text(json.dumps(dict(short, max_position_embeddings=16, vocab_size=30)))
    with pytest.raises(ValueError, match="vocabulary has 45 ids but .*vocab_size 30"):
        task.setup(bert_params(bert_config_file=str(config), dataset_dir=bert_data.classification))
    with pytest.raises(FileNotFoundError, match="text_classification.json is missing"):
        task.setup(bert_params(dataset_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="Unknown split 'nope'.*'dev', 'train'"):
        _first_batch(task, bert_params(dataset_dir=bert_data.classification), "nope", False)
