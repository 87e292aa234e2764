"""The translation task on converted records: inputs, loss, tokens, eval sums and export.

A small synthetic parallel corpus (English-like words mapped word by word to German-like
words, so a tiny model learns it) goes through the real converter once per module; the
task's pieces then run in plain sessions (the trainer has its own tests).
"""

import os

import numpy as np
import pytest
import sacrebleu
from absl import flags as absl_flags

import flags as tfzoo_flags
from datasets import download_and_convert_translation, translation, translation_metrics
from preprocessing import sentencepiece_bpe
from slim_compat import tf
from tasks import translation as translation_task
from training import precision
from training.task import TASKS, get_task

EN = "open save close file window folder document new old print page all red big".split()
DE = "öffne speichere schließe Datei Fenster Ordner Dokument neu alt drucke Seite alle rot groß"
DE = DE.split()


def _pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    pairs = set()
    while len(pairs) < n:
        words = rng.choice(len(EN), size=int(rng.integers(2, 7)))
        pairs.add((" ".join(EN[w] for w in words), " ".join(DE[w] for w in words)))
    return sorted(pairs)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    tsv = root / "pairs.tsv"
    tsv.write_text("".join(f"{en}\t{de}\n" for en, de in _pairs(400)), encoding="utf-8")
    out = root / "records"
    download_and_convert_translation.convert(
        str(out), source=str(tsv), vocab_size=300, num_workers=1, test_fraction=0.1
    )
    return str(out)


def parse(**values):
    """The parsed flags with the task's flags defined, as the trainer passes them."""
    tfzoo_flags.define_flags()
    translation_task.TranslationTask.define_flags(absl_flags)
    FLAGS = absl_flags.FLAGS
    FLAGS.unparse_flags()
    FLAGS(["test"] + [f"--{k}={v}" for k, v in values.items()])
    return FLAGS


PARAMS = dict(
    model_name="transformer_tiny",
    batch_tokens=256,
    max_input_length=32,
    max_target_length=32,
    eval_batch_size=16,
    model_hparams="dropout=0.0,attention_dropout=0.0,relu_dropout=0.0",
    beam_size=2,
    decode_extra_length=5,
)


@pytest.fixture
def params(dataset_dir):
    yield parse(**PARAMS, dataset_dir=dataset_dir)
    absl_flags.FLAGS.unparse_flags()


def test_registered_with_dense_embedding_gradients():
    assert TASKS["translation"] is translation_task.TranslationTask
    task = get_task("translation")
    assert task.sparse_as_dense is True
    assert task.throughput_labels["tokens"][1] == "tokens/s"


def test_model_hparams_parse_and_reject_bad_items():
    assert translation_task.parse_hparams("dropout=0.3, pre_layer_norm=true,num_layers=3") == {
        "dropout": 0.3,
        "pre_layer_norm": True,
        "num_layers": 3,
    }
    with pytest.raises(ValueError, match="'dropout'.*name=value"):
        translation_task.parse_hparams("dropout")


def _train_graph(task, params, rank=0, size=1, compute_dtype=tf.float32):
    data = task.build_inputs(params, "train", True, rank, size, 32, seed=0)
    features = tf.data.make_one_shot_iterator(data.dataset).get_next()
    getter = None if compute_dtype == tf.float32 else precision.master_weights_getter(compute_dtype)
    with tf.variable_scope("", custom_getter=getter):
        outputs = task.build_model(features, params, True, compute_dtype)
    losses = task.build_losses(features, outputs, params)
    return data, features, outputs, losses


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory):
    """Trains the tiny model 150 Adam steps on the corpus; its history and a checkpoint."""
    params = parse(**PARAMS, dataset_dir=dataset_dir)
    task = get_task("translation")
    batches = []
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        data, features, outputs, losses = _train_graph(task, params)
        counts = task.batch_counts(features)
        accuracy = task.train_metrics(features, outputs)["accuracy"]
        step = tf.train.AdamOptimizer(3e-3, 0.9, 0.98, 1e-9).minimize(losses.total)
        table = [v for v in tf.global_variables() if v.name.endswith("shared_weights:0")][0]
        model_variables = [v for v in tf.global_variables() if v.name.startswith("transformer/")]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            history = []
            for i in range(150):
                f, c, loss, acc, _ = session.run([features, counts, losses.total, accuracy, step])
                history.append((loss, acc))
                if i < 20:
                    batches.append((f, c))
            row0 = session.run(table)[0]
            checkpoint = tf.train.Saver(model_variables).save(
                session, str(tmp_path_factory.mktemp("train") / "model.ckpt")
            )
    absl_flags.FLAGS.unparse_flags()
    return dict(data=data, history=history, batches=batches, row0=row0, checkpoint=checkpoint)


def test_training_batches_tokens_loss_and_learning(trained):
    for f, c in trained["batches"]:
        targets = f["targets"]
        assert targets.shape[1] % 8 == 0 and f["inputs"].shape[1] % 8 == 0
        width = max(targets.shape[1], f["inputs"].shape[1])
        assert width * len(targets) <= 256 or len(targets) == 1
        assert c["tokens"] == (targets != 0).sum() and c["examples"] == len(targets)
    assert trained["data"].num_examples > 300 and trained["data"].batches_per_epoch > 10
    history = trained["history"]
    first, last = np.mean(history[:10], 0), np.mean(history[-10:], 0)
    assert last[0] < 0.6 * first[0] and last[1] > first[1] + 0.2
    np.testing.assert_array_equal(trained["row0"], 0.0)


def test_translate_a_split_and_lines(trained, params, tmp_path):
    import translate

    params.beam_size = 2
    with tf.Graph().as_default():
        hyps, refs, sources, _ = translate.translate_split(params, trained["checkpoint"])
    assert len(hyps) == len(refs) == translation.get_split(params.dataset_dir, "test").num_examples
    scores = translation_metrics.corpus_scores(hyps, refs)
    copy = translation_metrics.corpus_scores(sources, refs)
    assert scores["bleu"] > copy["bleu"] + 5 and scores["chrf"] > copy["chrf"]
    with tf.Graph().as_default():
        lines = translate.translate_lines(params, trained["checkpoint"], sources[:3])
    with tf.Graph().as_default():
        params.beam_size = 1
        greedy = translate.translate_lines(params, trained["checkpoint"], sources[:3])
    assert lines == hyps[:3]  # text in, the same translations as from the records
    assert len(greedy) == 3
    assert (
        translate.resolve_checkpoint(os.path.dirname(trained["checkpoint"]))
        == (trained["checkpoint"])
    )
    with pytest.raises(FileNotFoundError, match="no checkpoint in the directory"):
        translate.resolve_checkpoint(str(tmp_path))


def test_label_smoothing_is_the_models_unless_the_flag_is_given(params):
    task = get_task("translation")
    assert task.label_smoothing(params) == pytest.approx(0.1)
    given = parse(**{"dataset_dir": params.dataset_dir, "label_smoothing": 0.0})
    assert task.label_smoothing(given) == 0.0


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16], ids=["bf16", "fp16"])
def test_low_precision_keeps_fp32_master_weights_and_fp32_logits(params, dtype):
    task = get_task("translation")
    with tf.Graph().as_default():
        _, _, outputs, losses = _train_graph(task, params, compute_dtype=dtype)
        assert outputs["logits"].dtype == tf.float32
        assert {v.dtype.base_dtype for v in tf.global_variables()} == {tf.float32}
        grads = tf.gradients(losses.total, tf.trainable_variables())
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            loss, grad_values = session.run([losses.total, grads[1:3]])
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grad_values)


def test_eval_sums_give_loss_accuracy_and_sacrebleu_scores(params):
    """Two 'ranks' of the test split, batch by batch: the metrics of the summed statistics."""
    task = get_task("translation")
    sums, hyps, refs = {}, [], []
    tokenizer = sentencepiece_bpe.BpeTokenizer(
        translation.get_split(params.dataset_dir, "test").spm_model_path
    )
    with tf.Graph().as_default():
        streams = [task.build_inputs(params, None, False, r, 2, 16, 0) for r in (0, 1)]
        batches = [tf.data.make_one_shot_iterator(s.dataset).get_next() for s in streams]
        fetches = []
        for features in batches:
            outputs = task.build_model(features, params, False, tf.float32)
            fetches.append(
                (task.eval_statistics(features, outputs), task.eval_host_fetches(features, outputs))
            )
        assert set(task.host_statistics_spec(params)) == {"bleu_statistics", "chrf_statistics"}
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for graph_stats, host_fetches in fetches:
                while True:
                    try:
                        values, fetched = session.run([graph_stats, host_fetches])
                    except tf.errors.OutOfRangeError:
                        break
                    values.update(task.eval_host_statistics(fetched))
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0) + np.asarray(v)
                    hyps += [tokenizer.decode(r) for r in fetched["decoded"]]
                    refs += [tokenizer.decode(r) for r in fetched["targets"]]
    metrics = task.metrics_from_sums(sums)
    assert metrics["count"] == streams[0].num_examples == len(refs)
    assert metrics["tokens"] > metrics["count"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0
    # The untrained model's output, scored by sacrebleu on the whole split at once.
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert metrics["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert "BLEU" in task.format_metrics(metrics)
    with pytest.raises(ValueError, match="no target token"):
        task.metrics_from_sums({k: 0 * v for k, v in sums.items()})


@pytest.mark.parametrize("part", ["translate", "encoder"])
def test_export_signatures(params, part):
    task = get_task("translation")
    params.export_part = part
    with tf.Graph().as_default():
        signature = task.export_signature(params)
        example = task.export_example(signature, 3, seed=0)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            out = session.run(signature.outputs, {signature.inputs["inputs"]: example["inputs"]})
    ids = example["inputs"]
    assert ids.dtype == np.int32 and (ids[:, 0] >= 4).all() and (ids == 3).sum() == 3
    if part == "encoder":
        assert out["encoder_outputs"].shape == ids.shape + (32,)
    else:
        assert out["outputs"].shape[0] == 3 and out["outputs"].shape[1] <= 12 + 5
        assert out["scores"].shape == (3,)


@pytest.mark.parametrize("part", ["translate", "encoder"])
def test_saved_model_export_of_the_trained_model_runs_like_the_graph(trained, params, part):
    from interchange import task_export

    params.export_part = part
    output = os.path.join(os.path.dirname(trained["checkpoint"]), f"export_{part}")
    report = task_export.export_task(
        get_task("translation"), params, trained["checkpoint"], output, batch_size=3
    )
    assert os.path.exists(os.path.join(output, "saved_model.pb"))
    key = "outputs" if part == "translate" else "encoder_outputs"
    assert report["outputs"] == ([key, "scores"] if part == "translate" else [key])
    # Decoded ids agree exactly; encoder states to float rounding.
    assert report["max_abs_diff"][key] <= (0 if part == "translate" else 1e-5)
