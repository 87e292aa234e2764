"""The translation task: a Transformer on token-id records, scored by BLEU and chrF.

    python train_nlp_models.py --task=translation --model_name=transformer_base \
        --dataset_dir=data/gettext_de --batch_tokens=4096 --optimizer=adam \
        --adam_beta2=0.98 --opt_epsilon=1e-9 --learning_rate=2.0 \
        --learning_rate_decay_type=noam --warmup_steps=4000

Inputs are datasets/translation.py's records (a converter wrote them beside their
SentencePiece model), batched by datasets/token_batching.py: by --batch_tokens with
length buckets (or --batch_size sentences when --batch_tokens=0), padded to a multiple
of 8, sharded by rank with equal steps on every rank. The loss is the label-smoothed
cross-entropy over non-pad target tokens (the model's label_smoothing, 0.1, unless
--label_smoothing is given). The log reports tokens/s (target tokens, EOS included).

Evaluation sums, per batch, the NLL and correct-token counts (in the graph) and the
sacrebleu statistics of the decoded batch (on the host: ids -> text with the records'
SentencePiece model; datasets/translation_metrics.py), so corpus BLEU and chrF come out
exactly as sacrebleu's over the whole split, however it is split into batches and ranks.
"""

import functools

import numpy as np
from absl import flags as absl_flags

from datasets import token_batching, translation, translation_metrics
from nlp_models import models_factory, transformer
from preprocessing import sentencepiece_bpe
from slim_compat import tf
from training import cpu_kernels
from training.task import ExportSignature, InputData, Losses, Task, register_task

DEFAULT_EVAL_SPLIT = "test"
EXPORT_PARTS = ("translate", "encoder")
# Evaluation scores whole sentences: only a sentence longer than this (tokens) is cut.
EVAL_MAX_LENGTH = 1024


def define_translation_flags(flags_module):
    """The translation flags (each defined once, whichever task asks first).

    flags_module: tfzoo's flags.py (what the trainer passes) or absl.flags; either has
    FLAGS, and the flags are defined with absl's DEFINE_* functions.
    """
    f = absl_flags
    FLAGS = flags_module.FLAGS

    def define(kind, name, default, help_text, enum_values=None):
        if name in FLAGS:
            return
        if kind == "enum":
            f.DEFINE_enum(name, default, enum_values, help_text)
        else:
            getattr(f, "DEFINE_" + kind)(name, default, help_text)

    # ------------------------------------------------------------ translation
    define(
        "integer",
        "batch_tokens",
        4096,
        "translation: tokens per batch per rank (padded length x sentences, max over source "
        "and target); 0: batch --batch_size sentences.",
    )
    define("integer", "max_input_length", 256, "translation: longest source, tokens (EOS in).")
    define("integer", "max_target_length", 256, "translation: longest target, tokens (EOS in).")
    define(
        "enum",
        "length_policy",
        "filter",
        "translation: training pairs over the max lengths are dropped or truncated "
        "(evaluation always truncates).",
        enum_values=list(token_batching.LENGTH_POLICIES),
    )
    define(
        "float",
        "length_bucket_step",
        token_batching.DEFAULT_LENGTH_BUCKET_STEP,
        "translation: ratio of successive length-bucket bounds (> 1).",
    )
    define(
        "string",
        "model_hparams",
        "",
        "Comma-separated name=value overrides of the model's hyper-parameters "
        "(nlp_models/models_factory.py), e.g. 'dropout=0.0,pre_layer_norm=true'.",
    )
    define("integer", "beam_size", 4, "translation: beams of eval / export decoding (1: greedy).")
    define("float", "decode_alpha", 0.6, "translation: beam search length penalty exponent (GNMT).")
    define(
        "integer",
        "decode_extra_length",
        50,
        "translation: decoded tokens at most = source length + this.",
    )
    define(
        "boolean",
        "eval_bleu",
        True,
        "translation: decode the eval split and report BLEU / chrF (else loss and accuracy).",
    )
    define(
        "enum",
        "export_part",
        "translate",
        "translation export: 'translate' (source ids -> beam-search ids) or 'encoder' "
        "(source ids -> encoder states).",
        enum_values=list(EXPORT_PARTS),
    )


def parse_hparams(text):
    """'a=1,b=true,c=0.5,d=all' -> {'a': 1, 'b': True, 'c': 0.5, 'd': 'all'}."""
    out = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"Bad --model_hparams item {item!r}; expected name=value")
        name, value = (s.strip() for s in item.split("=", 1))
        lowered = value.lower()
        if lowered in ("true", "false"):
            out[name] = lowered == "true"
            continue
        for kind in (int, float):
            try:
                out[name] = kind(value)
                break
            except ValueError:
                pass
        else:
            out[name] = value
    return out


def _flag_given(params, name):
    """Whether flag `name` was set on the command line (absl FlagValues), else not None."""
    try:
        return bool(params[name].present)
    except (TypeError, KeyError, AttributeError):
        return getattr(params, name, None) not in (None, 0, 0.0)


@functools.lru_cache(maxsize=8)
def _tokenizer(path):
    return sentencepiece_bpe.BpeTokenizer(path)


@functools.lru_cache(maxsize=32)
def _batches_per_epoch(files, max_input_length, max_target_length, batch_tokens, step, size):
    """One rank's training batches in an epoch of token batching, from the record lengths."""
    bounds = token_batching.bucket_boundaries(
        max(max_input_length, max_target_length), token_batching.DEFAULT_PAD_MULTIPLE, step
    )
    counts = np.zeros(len(bounds), np.int64)
    for path in files:
        for record in tf.io.tf_record_iterator(path):
            example = tf.train.Example.FromString(record).features.feature
            n_in = len(example[translation.INPUTS_KEY].int64_list.value)
            n_out = len(example[translation.TARGETS_KEY].int64_list.value)
            if n_in > max_input_length or n_out > max_target_length:
                continue
            counts[int(np.searchsorted(bounds, max(n_in, n_out)))] += 1
    sizes = np.maximum(1, int(batch_tokens) // np.asarray(bounds))
    return max(1, int(np.ceil(counts / sizes).sum() // size))


class TranslationTask(Task):
    """Sentence pairs -> a Transformer trained on label-smoothed CE, scored by BLEU / chrF."""

    name = "translation"
    family = "nlp"
    # Horovod: the shared embedding's gradient touches most rows every step; reduce it as
    # one dense tensor rather than allgathering a batch of rows from every rank.
    sparse_as_dense = True
    throughput_labels = {"tokens": ("tokens_per_sec", "tokens/s")}

    @classmethod
    def define_flags(cls, flags_module):
        define_translation_flags(flags_module)

    # -- data -------------------------------------------------------------------------

    def _split(self, params, split):
        return translation.get_split(params.dataset_dir, split or DEFAULT_EVAL_SPLIT)

    def config(self, params):
        """The model's hyper-parameters: its factory config, the data's vocabulary, overrides."""
        split = self._split(params, params.dataset_split_name)
        vocab_size = _tokenizer(split.spm_model_path).vocab_size
        return models_factory.get_config(
            params.model_name,
            "translation",  # the map holds BERTs too
            vocab_size=vocab_size,
            **parse_hparams(params.model_hparams),
        )

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        data = self._split(params, split)
        if not is_training:
            # eval_host_statistics detokenises this split with the model beside its records.
            self._eval_spm_model_path = data.spm_model_path
        batch_tokens = int(params.batch_tokens) if is_training else 0
        eval_max = max(EVAL_MAX_LENGTH, params.max_input_length, params.max_target_length)
        dataset, plan = token_batching.build_dataset(
            data.files,
            is_training,
            batch_tokens=batch_tokens or None,
            batch_size=None if batch_tokens else int(batch_size),
            # Evaluation truncates what is longer, references too: only beyond EVAL_MAX_LENGTH.
            max_input_length=params.max_input_length if is_training else eval_max,
            max_target_length=params.max_target_length if is_training else eval_max,
            length_policy=params.length_policy,
            rank=rank,
            size=size,
            seed=seed,
            shuffle_buffer_size=params.shuffle_buffer_size,
            num_readers=params.num_readers,
            length_bucket_step=params.length_bucket_step,
        )
        per_epoch = None
        if is_training and batch_tokens:
            per_epoch = _batches_per_epoch(
                tuple(data.files),
                params.max_input_length,
                params.max_target_length,
                batch_tokens,
                params.length_bucket_step,
                size,
            )
        unit = f"{batch_tokens} tokens" if batch_tokens else f"{batch_size} sentences"
        description = (
            f"translation {data.split}: {data.num_examples} pairs in {len(data.files)} files, "
            f"batches of {unit} per rank; {getattr(plan, 'description', plan)}"
        )
        return InputData(dataset, data.num_examples, description, per_epoch)

    # -- model and loss -----------------------------------------------------------------

    def build_model(self, features, params, is_training, compute_dtype):
        config = self.config(params)
        model = transformer.Transformer(config, is_training, compute_dtype)
        inputs = tf.cast(features[translation.INPUTS_KEY], tf.int32)
        targets = tf.cast(features[translation.TARGETS_KEY], tf.int32)
        # training/cpu_kernels.py: the dense layers' input gradients avoid a slow CPU kernel.
        with cpu_kernels.faster_cpu_gradients():
            memory, memory_bias = model.encode(inputs)
            outputs = {"logits": model.decode(targets, memory, memory_bias)}
        if not is_training and params.eval_bleu:
            outputs["decoded"] = self._decode(model, inputs, params)
        return outputs

    @staticmethod
    def _decode(model, inputs, params):
        if params.beam_size <= 1:
            return model.greedy(inputs, extra_length=params.decode_extra_length)[0]
        return model.beam_search(
            inputs, params.beam_size, params.decode_alpha, extra_length=params.decode_extra_length
        )[0]

    def label_smoothing(self, params):
        if _flag_given(params, "label_smoothing"):
            return float(params.label_smoothing)
        return self.config(params).label_smoothing

    def build_losses(self, features, outputs, params):
        targets = features[translation.TARGETS_KEY]
        total, count = transformer.smoothed_cross_entropy(
            outputs["logits"], targets, self.label_smoothing(params)
        )
        loss = total / tf.maximum(count, 1.0)
        return Losses(loss, {"cross_entropy": loss})

    @staticmethod
    def _token_stats(features, outputs):
        targets = tf.cast(features[translation.TARGETS_KEY], tf.int32)
        weights = tf.cast(tf.not_equal(targets, translation.PAD_ID), tf.float32)
        predicted = tf.argmax(outputs["logits"], -1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, targets), tf.float32) * weights)
        return correct, tf.reduce_sum(weights)

    def train_metrics(self, features, outputs):
        correct, tokens = self._token_stats(features, outputs)
        return {"accuracy": correct / tf.maximum(tokens, 1.0)}

    def batch_counts(self, features):
        targets = features[translation.TARGETS_KEY]
        return {
            "examples": tf.shape(targets, out_type=tf.int64)[0],
            "tokens": tf.reduce_sum(tf.cast(tf.not_equal(targets, translation.PAD_ID), tf.int64)),
        }

    # -- evaluation -----------------------------------------------------------------------

    def eval_statistics(self, features, outputs):
        correct, tokens = self._token_stats(features, outputs)
        nll, _ = transformer.smoothed_cross_entropy(
            outputs["logits"], features[translation.TARGETS_KEY], 0.0
        )
        return {
            "count": tf.cast(tf.shape(features[translation.TARGETS_KEY])[0], tf.float32),
            "tokens": tokens,
            "correct": correct,
            "nll_sum": nll,
        }

    def host_statistics_spec(self, params):
        return dict(translation_metrics.SPEC) if params.eval_bleu else {}

    def eval_host_fetches(self, features, outputs):
        if "decoded" not in outputs:
            return {}
        return {"decoded": outputs["decoded"], "targets": features[translation.TARGETS_KEY]}

    def eval_host_statistics(self, fetched):
        if "decoded" not in fetched:
            return {}
        tokenizer = _tokenizer(self._eval_spm_model_path)
        hypotheses = [tokenizer.decode(row) for row in fetched["decoded"]]
        references = [tokenizer.decode(row) for row in fetched["targets"]]
        return translation_metrics.sentence_statistics(hypotheses, references)

    def metrics_from_sums(self, sums):
        tokens = float(sums["tokens"])
        if tokens <= 0:
            raise ValueError("the evaluation split held no target token: no metric is defined")
        loss = float(sums["nll_sum"]) / tokens
        metrics = {
            "count": int(sums["count"]),
            "tokens": int(tokens),
            "loss": loss,
            "perplexity": float(np.exp(min(loss, 50.0))),
            "accuracy": float(sums["correct"]) / tokens,
        }
        if translation_metrics.BLEU_KEY in sums:
            metrics.update(translation_metrics.scores_from_sums(sums))
        return metrics

    def format_metrics(self, metrics):
        parts = [f"{metrics['count']} sentences", f"loss {metrics['loss']:.4f}"]
        parts.append(f"accuracy {100 * metrics['accuracy']:.2f}%")
        if "bleu" in metrics:
            parts += [f"BLEU {metrics['bleu']:.2f}", f"chrF {metrics['chrf']:.2f}"]
        return "  ".join(parts)

    # -- export -------------------------------------------------------------------------

    def export_signature(self, params):
        config = self.config(params)
        self._export_vocab_size = config.vocab_size
        model = transformer.Transformer(config, is_training=False)
        inputs = tf.placeholder(tf.int32, [None, None], name="inputs")
        if params.export_part == "encoder":
            memory, _ = model.encode(inputs)
            return ExportSignature({"inputs": inputs}, {"encoder_outputs": memory})
        ids, scores = model.beam_search(
            inputs,
            max(1, params.beam_size),
            params.decode_alpha,
            extra_length=params.decode_extra_length,
        )
        return ExportSignature(
            {"inputs": inputs}, {"outputs": tf.identity(ids, "outputs"), "scores": scores}
        )

    def export_example(self, signature, batch_size, seed):
        """Source sentences of random ids (4 .. vocab), EOS last, then padding."""
        rng = np.random.default_rng(seed)
        vocab = self._export_vocab_size
        ids = np.zeros([batch_size, 12], np.int32)
        for row in ids:
            length = int(rng.integers(3, 11))
            row[:length] = rng.integers(4, vocab, length)
            row[length] = translation.EOS_ID
        return {"inputs": ids}

    def finetune_exclude_scopes(self, params):
        return []


register_task(TranslationTask.name, TranslationTask)
