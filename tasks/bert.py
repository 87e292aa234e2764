"""BERT tasks: `bert_pretraining` (masked LM + next sentence) and `sequence_classification`.

Both read google-research/bert's records (datasets/create_pretraining_data.py and the
text_classification converter), build nlp_models/bert.py and compute google's losses.
Both build it with output_positions, the rows their heads read (the masked positions and
position 0, or position 0 alone), so its last layer computes only those rows:

* bert_pretraining: the masked-LM loss is the mean cross-entropy over the real
  predictions (masked_lm_weights), the next-sentence loss the mean over the batch, the
  total their sum (run_pretraining.py). Evaluation: masked-LM accuracy and loss weighted
  by masked_lm_weights, next-sentence accuracy and loss, as sums over the split.
* sequence_classification: run_classifier.py's head on the pooled output, the mean
  cross-entropy. Evaluation: accuracy, loss, the confusion matrix (per-class counts),
  macro F1 and, for two classes, the F1 of class 1.

The configuration is --model_name (bert_tiny ... bert_large, with the vocabulary size of
the records) or --bert_config_file (a google bert_config.json, e.g. a published
checkpoint's). The sequence length and predictions per sequence are those the records
were written with (their metadata JSON); --max_seq_length only checks them. Sequence
lengths above max_position_embeddings (512) are refused, and the position table always
has 512 rows, so a seq-128 phase-1 checkpoint resumes into a seq-512 phase 2.

Finetuning (google's --init_checkpoint=P, the same as the trainer's --task_type=finetune
--model_dir=dirname(P) --ckpt_file_name=basename(P)) restores the encoder from a
pretraining or published checkpoint; the classifier head (`output_weights`,
`output_bias`) is excluded by default, and --checkpoint_exclude_scopes /
--trainable_scopes apply as for every task.

No L2 term is added to the loss: BERT's weight decay is the optimizer's decoupled one
(--optimizer=adamw or lamb, --decoupled_weight_decay, skipping LayerNorm and biases).
"""

import functools
import glob
import json
import os
import types

import numpy as np
from absl import flags as absl_flags

from datasets import create_pretraining_data, dataset_factory
from datasets import download_and_convert_text_classification as text_classification
from nlp_models import bert, models_factory
from slim_compat import tf
from training import checkpoints, input_pipeline
from training.task import ExportSignature, InputData, Losses, Task, register_task

PRETRAINING_HELD_OUT = ("validation", "dev", "test")
CLASSIFICATION_HELD_OUT = ("dev", "validation", "test")
EXPORT_INPUTS = ("input_ids", "input_mask", "segment_ids")


def _define(flags_module, kind, name, default, help_text):
    # flags_module is tfzoo's flags.py (whose FLAGS is absl's) or absl.flags itself.
    if name not in flags_module.FLAGS:
        getattr(absl_flags, f"DEFINE_{kind}")(name, default, help_text)


def define_bert_flags(flags_module):
    """The flags both BERT tasks read (defined once, whichever task asks first)."""
    _define(
        flags_module,
        "string",
        "bert_config_file",
        None,
        "A google bert_config.json (e.g. of a published checkpoint); default: the named "
        "--model_name (bert_tiny, bert_mini, bert_small, bert_medium, bert_base, bert_large) "
        "with the records' vocabulary size.",
    )
    _define(
        flags_module,
        "integer",
        "max_seq_length",
        None,
        "Tokens per sequence; must equal the records' (their metadata JSON), which is the "
        "default, and be <= max_position_embeddings.",
    )
    _define(
        flags_module,
        "string",
        "init_checkpoint",
        None,
        "google's finetune start: a checkpoint prefix (e.g. uncased_L-12_H-768_A-12/"
        "bert_model.ckpt) or a directory (its latest) whose weights a fresh run starts from, "
        "minus --checkpoint_exclude_scopes and the task's new head; ignored when --train_dir "
        "holds a checkpoint (resume).",
    )


def _read_metadata(dataset_dir, filename, converter):
    if not dataset_dir or not os.path.isdir(dataset_dir):
        raise FileNotFoundError(
            f"--dataset_dir {dataset_dir!r} does not exist (expected the records of {converter})"
        )
    path = os.path.join(dataset_dir, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: {dataset_dir} holds no records of {converter}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _split_files(dataset_dir, name, split, held_out):
    """(split, sorted files, size) of a converted split; None picks the held-out one."""
    sizes_path = os.path.join(dataset_dir, dataset_factory.SPLIT_SIZES_FILENAME)
    if not os.path.isfile(sizes_path):
        raise FileNotFoundError(
            f"{sizes_path} is missing: the conversion into {dataset_dir} did not finish"
        )
    sizes = dataset_factory.read_split_sizes(sizes_path)
    if split is None:
        candidates = [s for s in held_out if s in sizes]
        if not candidates:
            raise ValueError(
                f"{dataset_dir} has no held-out split ({', '.join(held_out)}); its splits: "
                f"{sorted(sizes)}. Name one with --eval_split_name"
            )
        split = candidates[0]
    if split not in sizes:
        raise ValueError(
            f"Unknown split {split!r} of the records in {dataset_dir}; valid splits: "
            f"{sorted(sizes)}"
        )
    pattern = os.path.join(dataset_dir, f"{name}_{split}-*.tfrecord")
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no file matches {pattern}")
    dataset_factory.check_shards_complete(files, pattern)
    return split, files, sizes[split]


def resolve_init_checkpoint(path):
    """The checkpoint prefix of --init_checkpoint: a prefix, or a directory's latest.

    Raises:
        FileNotFoundError: naming the path that holds no checkpoint.
    """
    if os.path.isdir(path):
        return checkpoints.resolve_checkpoint(path)
    directory, name = os.path.split(path)
    if not os.path.isdir(directory or "."):
        raise FileNotFoundError(f"--init_checkpoint {path!r}: no directory {directory!r}")
    return checkpoints.resolve_checkpoint(directory or ".", name)


def _first_only(features):
    """No output position: the classifier reads the last layer at position 0 only."""
    return tf.zeros_like(features["input_ids"][:, :0])


def _to_int32(features):
    return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in features.items()}


class _BertTask(Task):
    """What both BERT tasks share: flags, config, records, the encoder, throughput."""

    family = "nlp"
    sparse_as_dense = True  # every step touches much of the word table: allreduce it dense
    throughput_labels = {"examples": ("examples/s", "sequences/s")}
    record_name = None
    metadata_filename = None
    converter = None
    held_out_splits = ()

    @classmethod
    def define_flags(cls, flags_module):
        define_bert_flags(flags_module)

    # ------------------------------------------------------------ configuration

    def metadata(self, params):
        return _read_metadata(params.dataset_dir, self.metadata_filename, self.converter)

    def bert_config(self, params, vocab_size=None):
        """The BertConfig of --bert_config_file or --model_name, dropout from the flags."""
        config_file = getattr(params, "bert_config_file", None)
        if not config_file and params.model_name not in models_factory.names("bert"):
            raise ValueError(
                f"--model_name={params.model_name!r} is not a BERT of "
                f"nlp_models/models_factory.py; expected one of: "
                f"{', '.join(models_factory.names('bert'))}, or give --bert_config_file"
            )
        config = bert.get_config(params.model_name, config_file, vocab_size)
        if config_file and vocab_size is not None and vocab_size > config.vocab_size:
            raise ValueError(
                f"the records' vocabulary has {vocab_size} ids but {config_file} has "
                f"vocab_size {config.vocab_size}: the records were made with another vocab.txt"
            )
        keep = getattr(params, "dropout_keep_prob", None)
        if keep is not None:
            if not 0.0 < keep <= 1.0:
                raise ValueError(f"--dropout_keep_prob must be in (0, 1], got {keep}")
            config = config._replace(
                hidden_dropout_prob=1.0 - keep, attention_probs_dropout_prob=1.0 - keep
            )
        return config

    def sequence_length(self, params, metadata, config):
        """The records' sequence length, checked against --max_seq_length and the model."""
        length = int(metadata["max_seq_length"])
        wanted = getattr(params, "max_seq_length", None)
        if wanted is not None and wanted != length:
            raise ValueError(
                f"--max_seq_length={wanted} but the records in {params.dataset_dir} hold "
                f"sequences of {length} tokens (convert the text again for another length)"
            )
        bert.check_sequence_length(config, length)
        return length

    def setup(self, params):
        """(metadata, config, sequence length) of this run."""
        metadata = self.metadata(params)
        config = self.bert_config(params, metadata.get("vocab_size"))
        return metadata, config, self.sequence_length(params, metadata, config)

    # ------------------------------------------------------------------ inputs

    def feature_spec(self, metadata):
        raise NotImplementedError

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        metadata, _, _ = self.setup(params)
        split, files, num_examples = _split_files(
            params.dataset_dir, self.record_name, split, self.held_out_splits
        )
        spec = self.feature_spec(metadata)
        # Horovod: each rank reads a disjoint part of the split (whole files when they
        # divide evenly among the ranks, else every size-th record).
        plan = input_pipeline.shard_files_by_rank(files, rank, size)
        records = input_pipeline.read_records(
            plan, rank, size, is_training, getattr(params, "num_readers", 4), seed
        )
        if is_training:
            records = records.repeat().shuffle(
                getattr(params, "shuffle_buffer_size", 1024) or 1024, seed=seed
            )
        dataset = records.map(
            lambda r: _to_int32(tf.io.parse_single_example(r, spec)),
            num_parallel_calls=input_pipeline.AUTOTUNE,
        )
        dataset = dataset.batch(batch_size, drop_remainder=is_training)
        dataset = dataset.prefetch(input_pipeline.AUTOTUNE)
        # A corrupt record is reported naming its file.
        source = types.SimpleNamespace(name=self.record_name, split=split, files=files)
        return InputData(
            dataset,
            num_examples,
            f"{self.record_name} {split}: {plan.description}",
            errors_named=functools.partial(dataset_factory.input_errors_named, source),
        )

    # ------------------------------------------------------------------- model

    def encoder(self, features, config, is_training, dtype, output_positions):
        """The BertModel whose last layer computes position 0 and `output_positions` only
        (the rows the heads read; the same numbers as computing every row)."""
        return bert.BertModel(
            config,
            features["input_ids"],
            features["input_mask"],
            features["segment_ids"],
            is_training=is_training,
            dtype=dtype,
            output_positions=output_positions,
        )

    def batch_counts(self, features):
        return {
            "examples": tf.shape(features["input_ids"])[0],
            "tokens": tf.reduce_sum(features["input_mask"]),  # non-padding tokens
        }

    def check_params(self, params, dist):
        """--init_checkpoint=P becomes the trainer's finetune of P (see the module docstring).

        The trainer then restores it in the session's initialisation, before the first
        save and the Horovod broadcast, minus --checkpoint_exclude_scopes and the task's
        new head, and a train_dir holding a checkpoint resumes instead.
        """
        path = getattr(params, "init_checkpoint", None)
        if not path:
            return
        if getattr(params, "task_type", "pretrain") == "finetune":
            raise ValueError(
                "--init_checkpoint and --task_type=finetune both name a checkpoint to start "
                "from: give one of them"
            )
        prefix = resolve_init_checkpoint(path)
        params.task_type = "finetune"
        params.model_dir, params.ckpt_file_name = os.path.split(prefix)

    def export_example(self, signature, batch_size, seed):
        """Ids in range, masks of random lengths, a second segment, positions in range."""
        rng = np.random.default_rng(seed)
        seq = signature.inputs["input_ids"].shape.as_list()[1]
        vocab_size = getattr(self, "_vocab_size", None) or 100
        lengths = rng.integers(2, seq + 1, batch_size)
        mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int32)
        second = (np.arange(seq)[None] >= lengths[:, None] // 2).astype(np.int32)
        example = {
            "input_ids": rng.integers(1, vocab_size, (batch_size, seq)).astype(np.int32) * mask,
            "input_mask": mask,
            "segment_ids": second * mask,
        }
        if "masked_lm_positions" in signature.inputs:
            width = signature.inputs["masked_lm_positions"].shape.as_list()[1]
            positions = rng.integers(0, seq, (batch_size, width))
            example["masked_lm_positions"] = np.sort(positions, axis=1).astype(np.int32)
        return example

    def _placeholders(self, seq_length):
        return {
            name: tf.placeholder(tf.int32, [None, seq_length], name=name) for name in EXPORT_INPUTS
        }


class BertPretrainingTask(_BertTask):
    """Masked LM + next-sentence prediction on google's pretraining records."""

    name = "bert_pretraining"
    record_name = create_pretraining_data.NAME
    metadata_filename = create_pretraining_data.METADATA_FILENAME
    converter = "datasets/create_pretraining_data.py"
    held_out_splits = PRETRAINING_HELD_OUT

    def feature_spec(self, metadata):
        return create_pretraining_data.feature_spec(
            int(metadata["max_seq_length"]), int(metadata["max_predictions_per_seq"])
        )

    def build_model(self, features, params, is_training, compute_dtype):
        _, config, _ = self.setup(params)
        model = self.encoder(
            features, config, is_training, compute_dtype, features["masked_lm_positions"]
        )
        mlm_logits = bert.masked_lm_head(
            config, model.gathered_output, model.embedding_table, compute_dtype
        )
        nsp_logits = bert.next_sentence_logits(config, model.pooled_output)
        return {"masked_lm_logits": mlm_logits, "next_sentence_logits": nsp_logits}

    @staticmethod
    def _per_example(features, outputs):
        """Per-prediction MLM and per-example NSP cross-entropies (google's), and weights."""
        # google's -sum(one_hot * log_softmax), as the fused kernel that also gives the
        # gradient (softmax - one_hot) in the same pass over the [B * P, vocab] logits.
        mlm_ids = tf.reshape(features["masked_lm_ids"], [-1])
        mlm_weights = tf.reshape(features["masked_lm_weights"], [-1])
        mlm_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=mlm_ids, logits=outputs["masked_lm_logits"]
        )
        nsp_labels = tf.reshape(features["next_sentence_labels"], [-1])
        nsp_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=nsp_labels, logits=outputs["next_sentence_logits"]
        )
        return mlm_loss, mlm_ids, mlm_weights, nsp_loss, nsp_labels

    def build_losses(self, features, outputs, params):
        mlm_loss, _, mlm_weights, nsp_loss, _ = self._per_example(features, outputs)
        masked_lm = tf.reduce_sum(mlm_weights * mlm_loss) / (tf.reduce_sum(mlm_weights) + 1e-5)
        next_sentence = tf.reduce_mean(nsp_loss)
        return Losses(
            masked_lm + next_sentence,
            {"masked_lm_loss": masked_lm, "next_sentence_loss": next_sentence},
        )

    def _correct(self, features, outputs):
        _, mlm_ids, mlm_weights, _, nsp_labels = self._per_example(features, outputs)
        mlm_hit = tf.cast(
            tf.equal(tf.argmax(outputs["masked_lm_logits"], -1, output_type=tf.int32), mlm_ids),
            tf.float32,
        )
        nsp_hit = tf.cast(
            tf.equal(
                tf.argmax(outputs["next_sentence_logits"], -1, output_type=tf.int32), nsp_labels
            ),
            tf.float32,
        )
        return mlm_hit * mlm_weights, nsp_hit

    def train_metrics(self, features, outputs):
        mlm_hit, nsp_hit = self._correct(features, outputs)
        weights = tf.reshape(features["masked_lm_weights"], [-1])
        return {
            "masked_lm_accuracy": tf.reduce_sum(mlm_hit) / tf.maximum(tf.reduce_sum(weights), 1.0),
            "next_sentence_accuracy": tf.reduce_mean(nsp_hit),
        }

    def eval_statistics(self, features, outputs):
        mlm_loss, mlm_ids, mlm_weights, nsp_loss, _ = self._per_example(features, outputs)
        mlm_hit, nsp_hit = self._correct(features, outputs)
        vocab_size = tf.compat.dimension_value(outputs["masked_lm_logits"].shape[-1])
        return {
            "count": tf.cast(tf.shape(nsp_hit)[0], tf.float32),
            # How often each id is the answer: the accuracy of always guessing the most
            # frequent one is the baseline the model must beat.
            "masked_lm_id_counts": tf.math.unsorted_segment_sum(mlm_weights, mlm_ids, vocab_size),
            "masked_lm_predictions": tf.reduce_sum(mlm_weights),
            "masked_lm_correct": tf.reduce_sum(mlm_hit),
            "masked_lm_loss_sum": tf.reduce_sum(mlm_weights * mlm_loss),
            "next_sentence_correct": tf.reduce_sum(nsp_hit),
            "next_sentence_loss_sum": tf.reduce_sum(nsp_loss),
        }

    def metrics_from_sums(self, sums):
        count, predictions = float(sums["count"]), float(sums["masked_lm_predictions"])
        if count <= 0 or predictions <= 0:
            raise ValueError(
                f"the evaluation saw {count:g} sequences and {predictions:g} masked tokens: "
                "the split is empty"
            )
        return {
            "masked_lm_accuracy": float(sums["masked_lm_correct"]) / predictions,
            "masked_lm_loss": float(sums["masked_lm_loss_sum"]) / predictions,
            "masked_lm_majority_accuracy": float(np.max(sums["masked_lm_id_counts"])) / predictions,
            "next_sentence_accuracy": float(sums["next_sentence_correct"]) / count,
            "next_sentence_loss": float(sums["next_sentence_loss_sum"]) / count,
            "count": int(round(count)),
        }

    def export_signature(self, params):
        metadata, config, seq = self.setup(params)
        self._vocab_size = config.vocab_size
        inputs = self._placeholders(seq)
        predictions = int(metadata["max_predictions_per_seq"])
        inputs["masked_lm_positions"] = tf.placeholder(
            tf.int32, [None, predictions], name="masked_lm_positions"
        )
        model = self.encoder(inputs, config, False, tf.float32, inputs["masked_lm_positions"])
        mlm_logits = bert.masked_lm_head(config, model.gathered_output, model.embedding_table)
        nsp_logits = bert.next_sentence_logits(config, model.pooled_output)
        batch = tf.shape(inputs["input_ids"])[0]
        mlm_logits = tf.reshape(mlm_logits, [batch, predictions, config.vocab_size])
        return ExportSignature(
            inputs,
            {
                "masked_lm_predictions": tf.argmax(mlm_logits, -1, output_type=tf.int32),
                "next_sentence_probabilities": tf.nn.softmax(nsp_logits),
            },
        )


class SequenceClassificationTask(_BertTask):
    """run_classifier's task: a label per sequence (or sequence pair) from the pooled output."""

    name = "sequence_classification"
    record_name = text_classification.NAME
    metadata_filename = text_classification.METADATA_FILENAME
    converter = "datasets/download_and_convert_data.py --dataset_name=text_classification"
    held_out_splits = CLASSIFICATION_HELD_OUT

    def feature_spec(self, metadata):
        return text_classification.feature_spec(int(metadata["max_seq_length"]))

    def num_labels(self, params, metadata):
        labels = int(metadata["num_labels"])
        wanted = getattr(params, "num_classes", None)
        if wanted is not None and wanted != labels:
            raise ValueError(
                f"--num_classes={wanted} but the records in {params.dataset_dir} have "
                f"{labels} labels"
            )
        return labels

    def build_model(self, features, params, is_training, compute_dtype):
        metadata, config, _ = self.setup(params)
        model = self.encoder(features, config, is_training, compute_dtype, _first_only(features))
        logits = bert.classifier_logits(
            config, model.pooled_output, self.num_labels(params, metadata), is_training
        )
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    def _labels(self, features):
        return tf.reshape(features["label_ids"], [-1])

    def build_losses(self, features, outputs, params):
        logits = outputs["logits"]
        labels = tf.one_hot(self._labels(features), tf.shape(logits)[-1])
        smoothing = getattr(params, "label_smoothing", 0.0) or 0.0
        loss = tf.losses.softmax_cross_entropy(
            labels, logits, label_smoothing=smoothing, reduction=tf.losses.Reduction.MEAN
        )
        return Losses(loss, {"cross_entropy": loss})

    def _predictions(self, outputs):
        return tf.argmax(outputs["logits"], -1, output_type=tf.int32)

    def train_metrics(self, features, outputs):
        hit = tf.equal(self._predictions(outputs), self._labels(features))
        return {"accuracy": tf.reduce_mean(tf.cast(hit, tf.float32))}

    def eval_statistics(self, features, outputs):
        labels, predictions = self._labels(features), self._predictions(outputs)
        logits = outputs["logits"]
        num_labels = tf.compat.dimension_value(logits.shape[-1])
        real = tf.cast(tf.reshape(features["is_real_example"], [-1]), tf.float32)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        confusion = tf.math.confusion_matrix(
            labels, predictions, num_labels, weights=real, dtype=tf.float32
        )
        return {
            "count": tf.reduce_sum(real),
            "loss_sum": tf.reduce_sum(loss * real),
            "confusion": confusion,  # [true label, predicted label]
        }

    def metrics_from_sums(self, sums):
        count = float(sums["count"])
        if count <= 0:
            raise ValueError("the evaluation saw no example: the split is empty")
        confusion = np.asarray(sums["confusion"], np.float64)
        correct = np.diag(confusion)
        support, predicted = confusion.sum(1), confusion.sum(0)
        precision_ = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
        recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
        denominator = precision_ + recall
        f1 = np.divide(
            2 * precision_ * recall, denominator, out=np.zeros_like(correct), where=denominator > 0
        )
        metrics = {
            "accuracy": float(correct.sum() / count),
            "loss": float(sums["loss_sum"]) / count,
            "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
            # Always answering the most frequent class of this split: the bar to beat.
            "majority_class_accuracy": float(support.max() / count),
        }
        if len(correct) == 2:
            metrics["f1"] = float(f1[1])  # of class 1, the positive class of binary tasks
        metrics["count"] = int(round(count))
        for label, (hits, total) in enumerate(zip(correct, support)):
            metrics[f"class_{label}_correct"] = int(round(hits))
            metrics[f"class_{label}_support"] = int(round(total))
        return metrics

    def format_metrics(self, metrics):
        """The overall metrics, then 'per class correct/support' as label:hits/total."""
        head = {k: v for k, v in metrics.items() if not k.startswith("class_")}
        labels = sorted(
            int(k.split("_")[1])
            for k in metrics
            if k.startswith("class_") and k.endswith("_support")
        )
        per_class = " ".join(
            f"{i}:{metrics[f'class_{i}_correct']}/{metrics[f'class_{i}_support']}" for i in labels
        )
        line = super().format_metrics(head)
        return f"{line}  per class correct/support {per_class}" if per_class else line

    def export_signature(self, params):
        metadata, config, seq = self.setup(params)
        self._vocab_size = config.vocab_size
        inputs = self._placeholders(seq)
        model = self.encoder(inputs, config, False, tf.float32, _first_only(inputs))
        logits = bert.classifier_logits(
            config, model.pooled_output, self.num_labels(params, metadata), False
        )
        return ExportSignature(inputs, {"logits": logits, "probabilities": tf.nn.softmax(logits)})

    def finetune_exclude_scopes(self, params):
        # A pretraining or published checkpoint has no classifier; another task's has
        # another number of labels: the head always starts fresh.
        return ["output_weights", "output_bias"]


register_task(BertPretrainingTask.name, BertPretrainingTask)
register_task(SequenceClassificationTask.name, SequenceClassificationTask)
