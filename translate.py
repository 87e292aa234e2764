"""Translates a split of converted records, or lines of text, with a trained Transformer.

    # a split: decode it, write the hypotheses, print corpus BLEU and chrF (sacrebleu)
    python translate.py --dataset_dir=data/gettext_de --model_name=transformer_small \
        --checkpoint_path=/tmp/tfzoo_train --eval_split_name=test --beam_size=4 \
        [--output_file=test.hyp] [--copy_baseline]
    # text: one sentence a line from a file or stdin ('-'), translations to stdout
    echo "Open the selected file" | python translate.py --input_file=- \
        --dataset_dir=data/gettext_de --model_name=transformer_small --checkpoint_path=...

--beam_size=1 decodes greedily; --decode_alpha is the length penalty, decoding stops at
the source length + --decode_extra_length. The SentencePiece model is the one beside the
records in --dataset_dir (text input is normalised and encoded with it). The split's
references are its records' target ids detokenised (the BPE is lossless). With
--copy_baseline the source sentences themselves are scored as hypotheses too (how much
of the target a system that translates nothing gets). The last line printed is a JSON
object of the scores.
"""

import json
import sys
import time

from absl import app, logging
from absl import flags as absl_flags

import flags
from datasets import parallel_text, translation, translation_metrics
from nlp_models import transformer
from slim_compat import tf
from tasks import translation as translation_task
from training import runtime

FLAGS = flags.FLAGS


def define_translate_flags():
    """translate.py's own flags; the model, data and decoding flags are the task's."""
    flags.define_flags()
    translation_task.TranslationTask.define_flags(absl_flags)
    if "input_file" not in FLAGS:
        absl_flags.DEFINE_string(
            "input_file",
            None,
            "translate: a text file of source sentences, one a line ('-': stdin); "
            "default: decode --eval_split_name of --dataset_dir.",
        )
    if "output_file" not in FLAGS:
        absl_flags.DEFINE_string(
            "output_file",
            None,
            "translate: write the translations here (default: stdout "
            "for text input, nowhere for a split).",
        )
    if "copy_baseline" not in FLAGS:
        absl_flags.DEFINE_boolean(
            "copy_baseline", False, "translate: also score the source sentences as output."
        )


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix or a directory (its latest checkpoint)."""
    if path and tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in the directory {path}")
        return latest
    if not path or not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(
            f"checkpoint {path!r} not found: give a checkpoint prefix or a training directory"
        )
    return path


def _decoder(model, inputs, params):
    if params.beam_size <= 1:
        return model.greedy(inputs, extra_length=params.decode_extra_length)[0]
    return model.beam_search(
        inputs, params.beam_size, params.decode_alpha, extra_length=params.decode_extra_length
    )[0]


def _restore(session, checkpoint):
    # Only the model's variables: a training checkpoint also holds optimizer slots.
    tf.train.Saver(tf.global_variables()).restore(session, checkpoint)


def translate_split(params, checkpoint):
    """Decodes params.eval_split_name; returns (hypotheses, references, sources, seconds)."""
    task = translation_task.TranslationTask()
    split = params.eval_split_name or translation_task.DEFAULT_EVAL_SPLIT
    data = task.build_inputs(params, split, False, 0, 1, params.eval_batch_size, params.seed)
    tokenizer = translation_task._tokenizer(task._eval_spm_model_path)
    features = tf.data.make_one_shot_iterator(data.dataset).get_next()
    model = transformer.Transformer(task.config(params), is_training=False)
    inputs = tf.cast(features[translation.INPUTS_KEY], tf.int32)
    decoded = _decoder(model, inputs, params)
    hyps, refs, sources = [], [], []
    start = time.time()
    with tf.Session() as session:
        _restore(session, checkpoint)
        while True:
            try:
                out, f = session.run([decoded, features])
            except tf.errors.OutOfRangeError:
                break
            hyps += [tokenizer.decode(row) for row in out]
            refs += [tokenizer.decode(row) for row in f[translation.TARGETS_KEY]]
            sources += [tokenizer.decode(row) for row in f[translation.INPUTS_KEY]]
    return hyps, refs, sources, time.time() - start


def translate_lines(params, checkpoint, lines):
    """Translations of text lines (normalised and encoded with the records' BPE model)."""
    task = translation_task.TranslationTask()
    split = translation.get_split(params.dataset_dir, params.dataset_split_name)
    tokenizer = translation_task._tokenizer(split.spm_model_path)
    texts = [parallel_text.normalise_text(line) for line in lines]
    inputs = tf.placeholder(tf.int32, [None, None], name="inputs")
    model = transformer.Transformer(task.config(params), is_training=False)
    decoded = _decoder(model, inputs, params)
    out = []
    with tf.Session() as session:
        _restore(session, checkpoint)
        batch = max(1, params.eval_batch_size)
        for i in range(0, len(texts), batch):
            ids = tokenizer.encode_batch(texts[i : i + batch])
            width = max(len(row) for row in ids)
            padded = [row + [translation.PAD_ID] * (width - len(row)) for row in ids]
            out += [tokenizer.decode(row) for row in session.run(decoded, {inputs: padded})]
    return out


def _write(path, lines):
    if path in (None, "-"):
        for line in lines:
            print(line)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def main(argv):
    del argv
    runtime.configure_tf_runtime()
    checkpoint = resolve_checkpoint(FLAGS.checkpoint_path)
    decoding = "greedy" if FLAGS.beam_size <= 1 else f"beam {FLAGS.beam_size}"
    if FLAGS.input_file:
        if FLAGS.input_file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(FLAGS.input_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        with tf.Graph().as_default():
            _write(FLAGS.output_file, translate_lines(FLAGS, checkpoint, lines))
        return
    # A fresh graph: the default one may predate configure_tf_runtime's graph mode.
    with tf.Graph().as_default():
        hyps, refs, sources, seconds = translate_split(FLAGS, checkpoint)
    if FLAGS.output_file:
        _write(FLAGS.output_file, hyps)
    report = {
        "split": FLAGS.eval_split_name or translation_task.DEFAULT_EVAL_SPLIT,
        "sentences": len(hyps),
        "decoding": decoding,
        "checkpoint": checkpoint,
        "seconds": round(seconds, 1),
        **translation_metrics.corpus_scores(hyps, refs),
    }
    print(
        f"{report['split']} ({len(hyps)} sentences, {decoding}): "
        f"BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}"
    )
    if FLAGS.copy_baseline:
        copy = translation_metrics.corpus_scores(sources, refs)
        report["copy_bleu"], report["copy_chrf"] = copy["bleu"], copy["chrf"]
        print(f"copy-the-source baseline: BLEU {copy['bleu']:.2f}  chrF {copy['chrf']:.2f}")
    logging.info("signatures: %s", translation_metrics.signatures())
    print(json.dumps(report))


if __name__ == "__main__":
    define_translate_flags()
    app.run(main)
