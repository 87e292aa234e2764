"""BERT, with google-research/bert's variable names and shapes, and THE map of BERT sizes.

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding" (https://arxiv.org/abs/1810.04805); the smaller sizes are Turc et al. 2019,
"Well-Read Students Learn Better" (https://arxiv.org/abs/1908.08962).

The variable scopes ARE the checkpoint format: every name below is the one in the
checkpoints google-research/bert publishes (modeling.py, run_pretraining.py,
run_classifier.py), so those checkpoints restore into this graph variable for variable:

    bert/embeddings/{word_embeddings, token_type_embeddings, position_embeddings}
    bert/embeddings/LayerNorm/{beta, gamma}
    bert/encoder/layer_<i>/attention/self/{query, key, value}/{kernel, bias}
    bert/encoder/layer_<i>/attention/output/dense/{kernel, bias}
    bert/encoder/layer_<i>/attention/output/LayerNorm/{beta, gamma}
    bert/encoder/layer_<i>/intermediate/dense/{kernel, bias}
    bert/encoder/layer_<i>/output/dense/{kernel, bias}
    bert/encoder/layer_<i>/output/LayerNorm/{beta, gamma}
    bert/pooler/dense/{kernel, bias}
    cls/predictions/transform/dense/{kernel, bias}, cls/predictions/transform/LayerNorm/...
    cls/predictions/output_bias                      (the MLM output is the word embeddings)
    cls/seq_relationship/{output_weights [2, H], output_bias [2]}
    output_weights [num_labels, H], output_bias [num_labels]   (run_classifier's head)

Precision: the model computes in `dtype` (fp32, fp16 or bf16). Dense weights are
requested in that dtype, so under the trainer's fp32-master-weight getter they are stored
in fp32 and cast on read; the embedding tables are fp32 and only the gathered rows are
cast (training.precision.embedding_lookup); layer norms and softmaxes run in fp32; the
heads return fp32 logits.

Typical use:

    config = bert.get_config("bert_base", vocab_size=30522)
    model = bert.BertModel(config, input_ids, input_mask, segment_ids, is_training=True)
    logits = bert.classifier_logits(config, model.pooled_output, num_labels=2,
                                    is_training=True)
"""

import collections
import json
import math
import os

from slim_compat import tf
from training import fused_ops, precision

BertConfig = collections.namedtuple(
    "BertConfig",
    [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "initializer_range",
    ],
)
BertConfig.__doc__ = """The hyper-parameters of one BERT, with bert_config.json's keys."""

#: google's BERT-Base uncased vocabulary; a named config takes the data's vocab_size instead.
DEFAULT_VOCAB_SIZE = 30522
LAYER_NORM_EPSILON = 1e-12  # tf.contrib.layers.layer_norm's, which google's modeling.py uses
ATTENTION_MASK_ADDER = -10000.0  # google's: a masked score gets this added before the softmax


def _config(layers, hidden, heads=None):
    """A BERT of `layers` x `hidden`: heads of 64, a feed-forward 4x wide, google's rest."""
    return BertConfig(
        vocab_size=DEFAULT_VOCAB_SIZE,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads or hidden // 64,
        intermediate_size=4 * hidden,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
    )


#: The named BERT sizes (vocab_size is replaced by the data's). nlp_models/models_factory.py
#: lists each as an entry of THE map of text models (family 'bert'), which the tasks read.
BERT_CONFIGS = {
    "bert_tiny": _config(2, 128),
    "bert_mini": _config(4, 256),
    "bert_small": _config(4, 512),
    "bert_medium": _config(8, 512),
    "bert_base": _config(12, 768),
    "bert_large": _config(24, 1024),
}

ACTIVATIONS = ("gelu", "relu", "tanh", "linear")


def check_config(config, source="the BERT config"):
    """Raises ValueError naming `source` and the bad field if `config` cannot build a BERT."""
    integers = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    )
    for field in integers:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: {field} must be a positive integer, got {value!r}")
    for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        value = getattr(config, field)
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{source}: {field} must be in [0, 1), got {value!r}")
    if not isinstance(config.initializer_range, (int, float)) or config.initializer_range <= 0:
        raise ValueError(
            f"{source}: initializer_range must be > 0, got {config.initializer_range!r}"
        )
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"{source}: hidden_size {config.hidden_size} is not a multiple of "
            f"num_attention_heads {config.num_attention_heads}"
        )
    if str(config.hidden_act).lower() not in ACTIVATIONS:
        raise ValueError(
            f"{source}: unknown hidden_act {config.hidden_act!r}; expected one of: "
            f"{', '.join(ACTIVATIONS)}"
        )


def config_from_json_file(path):
    """Reads a google bert_config.json (unknown keys, e.g. 'directionality', are ignored).

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: not JSON, a missing key, or a value that cannot build a BERT.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BERT config file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object of BERT hyper-parameters")
    missing = [field for field in BertConfig._fields if field not in values]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)} (google's bert_config.json keys)")
    config = BertConfig(**{field: values[field] for field in BertConfig._fields})
    check_config(config, path)
    return config


def get_config(name=None, config_file=None, vocab_size=None):
    """The BertConfig of a named size or of a bert_config.json, through THE factory map.

    Args:
        name: a 'bert' model of nlp_models/models_factory.py (used when config_file is None).
        config_file: a google bert_config.json; its vocab_size is kept.
        vocab_size: the vocabulary of a named config (default: google's 30522).

    Raises:
        ValueError: an unknown name (lists the valid ones) or a bad config file.
    """
    from nlp_models import models_factory  # it imports this module

    if config_file:
        return models_factory.config_from_file(config_file, "bert")
    overrides = {} if vocab_size is None else {"vocab_size": int(vocab_size)}
    try:
        return models_factory.get_config(name, family="bert", **overrides)
    except ValueError as e:
        if name in models_factory.names("bert"):
            raise
        raise ValueError(f"{e} (or a google bert_config.json)") from None


def get_activation(name):
    """The activation function of a bert_config hidden_act; None for 'linear'."""
    act = str(name).lower()
    # GELU: google's tanh approximation (Hendrycks & Gimpel 2016), fused when built.
    functions = {"gelu": fused_ops.gelu, "relu": tf.nn.relu, "tanh": tf.tanh, "linear": None}
    if act not in functions:
        raise ValueError(f"Unknown hidden_act {name!r}; expected one of: {', '.join(functions)}")
    return functions[act]


def _initializer(config):
    return tf.truncated_normal_initializer(stddev=config.initializer_range)


def dense(x, units, config, dtype, activation=None, name="dense"):
    """x @ kernel + bias in `dtype`, with variables `name`/kernel [in, units] and `name`/bias."""
    with tf.variable_scope(name):
        kernel = tf.get_variable(
            "kernel",
            [tf.compat.dimension_value(x.shape[-1]), units],
            dtype=dtype,
            initializer=_initializer(config),
        )
        bias = tf.get_variable("bias", [units], dtype=dtype, initializer=tf.zeros_initializer())
        out = tf.nn.bias_add(tf.matmul(x, kernel), bias)
        return activation(out) if activation is not None else out


def layer_norm(x, name="LayerNorm"):
    """Layer normalisation of the last axis in fp32 (beta, gamma), cast back to x's dtype."""
    with tf.variable_scope(name):
        width = tf.compat.dimension_value(x.shape[-1])
        beta = tf.get_variable("beta", [width], tf.float32, tf.zeros_initializer())
        gamma = tf.get_variable("gamma", [width], tf.float32, tf.ones_initializer())
        return fused_ops.layer_norm(x, gamma, beta, LAYER_NORM_EPSILON)


def check_sequence_length(config, seq_length):
    """Raises ValueError when a static sequence length exceeds max_position_embeddings."""
    if isinstance(seq_length, int) and seq_length > config.max_position_embeddings:
        raise ValueError(
            f"sequence length {seq_length} exceeds the model's max_position_embeddings "
            f"{config.max_position_embeddings}"
        )


def embeddings(config, input_ids, segment_ids, is_training, dtype):
    """Word + token-type + position embeddings, layer-normalised (and dropped out).

    Returns:
        (output [batch, seq, hidden] in dtype, the word embedding table [vocab, hidden]).
    """
    seq_length = tf.compat.dimension_value(input_ids.shape[1])
    check_sequence_length(config, seq_length)
    with tf.variable_scope("embeddings"):
        width = config.hidden_size
        word_table = tf.get_variable(
            "word_embeddings", [config.vocab_size, width], initializer=_initializer(config)
        )
        output = precision.embedding_lookup(word_table, input_ids, dtype)
        type_table = tf.get_variable(
            "token_type_embeddings",
            [config.type_vocab_size, width],
            initializer=_initializer(config),
        )
        output += precision.embedding_lookup(type_table, segment_ids, dtype)
        position_table = tf.get_variable(
            "position_embeddings",
            [config.max_position_embeddings, width],
            initializer=_initializer(config),
        )
        length = tf.shape(input_ids)[1]
        checks = []
        if seq_length is None:
            checks.append(
                tf.debugging.assert_less_equal(
                    length,
                    config.max_position_embeddings,
                    message="sequence length exceeds max_position_embeddings",
                )
            )
        with tf.control_dependencies(checks):
            positions = tf.cast(position_table[:length], dtype)
        output += positions[tf.newaxis]
        output = layer_norm(output)
        return fused_ops.dropout(
            output, config.hidden_dropout_prob if is_training else 0.0
        ), word_table


def attention_mask_adder(input_mask, dtype):
    """[batch, 1, 1, seq]: 0 where a key may be attended, -10000 on padding (google's)."""
    mask = tf.cast(input_mask, dtype)[:, tf.newaxis, tf.newaxis, :]
    return (1.0 - mask) * tf.cast(ATTENTION_MASK_ADDER, dtype)


def self_attention(
    x, adder, batch, seq, config, is_training, dtype, queries=None, query_length=None
):
    """Multi-head self-attention of x [batch * seq, hidden] -> [batch * seq, hidden].

    With `queries` ([batch * query_length, hidden], rows of x), only those rows attend:
    the keys and values are still every row of x; the result is [batch * query_length,
    hidden].
    """
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads

    def split_heads(t, length):  # [B*L, N*H] -> [B, N, L, H]
        return tf.transpose(tf.reshape(t, [batch, length, heads, head_size]), [0, 2, 1, 3])

    if queries is None:
        queries, query_length = x, seq
    query = split_heads(
        dense(queries, config.hidden_size, config, dtype, name="query"), query_length
    )
    key = split_heads(dense(x, config.hidden_size, config, dtype, name="key"), seq)
    value = split_heads(dense(x, config.hidden_size, config, dtype, name="value"), seq)
    # softmax(QK^T / sqrt(d) + mask) in fp32, then dropout: one fused pass when built.
    probs = fused_ops.attention_softmax(
        tf.matmul(query, key, transpose_b=True),
        adder,
        1.0 / math.sqrt(head_size),
        config.attention_probs_dropout_prob if is_training else 0.0,
    )
    context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
    return tf.reshape(context, [batch * query_length, config.hidden_size])


def output_rows(output_positions, batch, seq):
    """Row numbers in [batch * seq] of position 0 and `output_positions` [batch, P] of each
    sequence, sequence by sequence: [batch * (1 + P)] int32.

    Raises (when run) InvalidArgumentError naming output_positions if one is outside
    [0, seq): a flat row number would otherwise pick a row of the next sequence.
    """
    positions = tf.cast(output_positions, tf.int32)
    # A plain Assert op (string and int32 data need no cond guard), which freezing for
    # the ONNX export keeps.
    check = tf.debugging.Assert(
        tf.reduce_all((positions >= 0) & (positions < seq)),
        ["output_positions (masked_lm_positions) must lie in [0, seq_length) =", seq, positions],
    )
    with tf.control_dependencies([check]):
        rows = tf.concat([tf.zeros([batch, 1], tf.int32), positions], axis=1)
    return tf.reshape(rows + tf.range(batch)[:, tf.newaxis] * seq, [-1])


def transformer_encoder(x, input_mask, config, is_training, dtype, output_positions=None):
    """google's post-LN Transformer encoder; returns the output of every layer [B, S, H].

    With `output_positions` ([B, P] int32), the last layer computes only the rows of
    position 0 and of those positions (output_rows): its queries, attention, output
    dense, layer norms and feed-forward block see B * (1 + P) rows, its keys and values
    all B * S. Its entry is then [B, 1 + P, H], position 0 first. Exact: a row of a
    post-LN layer depends on the other rows only through the keys and values.
    """
    batch, seq = tf.shape(x)[0], tf.shape(x)[1]
    adder = attention_mask_adder(input_mask, dtype)
    activation = get_activation(config.hidden_act)
    hidden_dropout = config.hidden_dropout_prob if is_training else 0.0
    prev = tf.reshape(x, [-1, config.hidden_size])
    outputs = []
    for index in range(config.num_hidden_layers):
        queries, length = None, seq
        if output_positions is not None and index == config.num_hidden_layers - 1:
            # The rows the heads read; the residual below is these rows of prev too.
            queries = tf.gather(prev, output_rows(output_positions, batch, seq))
            length = tf.shape(output_positions)[1] + 1
        with tf.variable_scope(f"layer_{index}"):
            with tf.variable_scope("attention"):
                with tf.variable_scope("self"):
                    attended = self_attention(
                        prev, adder, batch, seq, config, is_training, dtype, queries, length
                    )
                if queries is not None:
                    prev = queries
                with tf.variable_scope("output"):
                    attended = fused_ops.dropout(
                        dense(attended, config.hidden_size, config, dtype), hidden_dropout
                    )
                    attended = layer_norm(attended + prev)
            with tf.variable_scope("intermediate"):
                inner = dense(attended, config.intermediate_size, config, dtype, activation)
            with tf.variable_scope("output"):
                out = fused_ops.dropout(
                    dense(inner, config.hidden_size, config, dtype), hidden_dropout
                )
                prev = layer_norm(out + attended)
            outputs.append(tf.reshape(prev, [batch, length, config.hidden_size]))
    return outputs


class BertModel:
    """The BERT encoder and pooler under the scope 'bert'.

    Pretraining reads the last layer only at the masked positions and at position 0 (the
    pooler): given `output_positions` ([batch, P] int32, e.g. masked_lm_positions), the
    last layer computes only those rows (its keys and values still span every position,
    under the same attention mask), which gives the same numbers to float rounding. The
    variables are the same either way.

    Attributes:
        sequence_output: the last layer, [batch, seq, hidden] in the compute dtype (not
            built with output_positions: reading it raises AttributeError).
        gathered_output: with output_positions, the last layer at them, [batch * P,
            hidden], in gather_positions' order (what masked_lm_head reads); else None.
        pooled_output: tanh(dense(first token)), [batch, hidden] in the compute dtype.
        all_encoder_layers: every layer's output (with output_positions, reading it
            raises AttributeError: its last entry is not built).
        embedding_output: the layer-normalised embeddings (the encoder's input).
        embedding_table: bert/embeddings/word_embeddings (fp32), which the MLM head reuses.
    """

    def __init__(
        self,
        config,
        input_ids,
        input_mask=None,
        segment_ids=None,
        is_training=False,
        dtype=tf.float32,
        scope="bert",
        output_positions=None,
    ):
        input_ids = tf.convert_to_tensor(input_ids)
        if input_mask is None:
            input_mask = tf.ones_like(input_ids)
        if segment_ids is None:
            segment_ids = tf.zeros_like(input_ids)
        self.config = config
        self.output_positions = output_positions
        self.gathered_output = None
        with tf.variable_scope(scope):
            self.embedding_output, self.embedding_table = embeddings(
                config, input_ids, segment_ids, is_training, dtype
            )
            with tf.variable_scope("encoder"):
                self._encoder_layers = transformer_encoder(
                    self.embedding_output,
                    input_mask,
                    config,
                    is_training,
                    dtype,
                    output_positions,
                )
            last = self._encoder_layers[-1]
            if output_positions is not None:
                # [batch, 1 + P, hidden]: position 0, then the positions in their order.
                self.gathered_output = tf.reshape(last[:, 1:], [-1, config.hidden_size])
            with tf.variable_scope("pooler"):
                first_token = last[:, 0]
                self.pooled_output = dense(first_token, config.hidden_size, config, dtype, tf.tanh)

    def _require_every_position(self, name):
        if self.output_positions is not None:
            raise AttributeError(
                f"BertModel.{name} is not built: the model was made with output_positions, "
                "so its last layer computed only position 0 (pooled_output) and those "
                "positions (gathered_output); build it with output_positions=None for every "
                "position"
            )

    @property
    def sequence_output(self):
        self._require_every_position("sequence_output")
        return self._encoder_layers[-1]

    @property
    def all_encoder_layers(self):
        self._require_every_position("all_encoder_layers")
        return self._encoder_layers


def gather_positions(sequence_output, positions):
    """The vectors at `positions` [batch, P] of sequence_output [batch, seq, H] -> [batch*P, H]."""
    shape = tf.shape(sequence_output)
    batch, seq = shape[0], shape[1]
    width = tf.compat.dimension_value(sequence_output.shape[-1])
    offsets = tf.range(batch, dtype=positions.dtype)[:, tf.newaxis] * tf.cast(seq, positions.dtype)
    flat = tf.reshape(sequence_output, [-1, width])
    return tf.gather(flat, tf.reshape(positions + offsets, [-1]))


def masked_lm_logits(config, sequence_output, embedding_table, positions, dtype=tf.float32):
    """google's masked-LM head: fp32 logits [batch * P, vocab] at `positions` [batch, P]."""
    rows = gather_positions(sequence_output, positions)
    return masked_lm_head(config, rows, embedding_table, dtype)


def masked_lm_head(config, rows, embedding_table, dtype=tf.float32):
    """google's masked-LM head on rows already gathered (BertModel.gathered_output or
    gather_positions), [batch * P, hidden]: fp32 logits [batch * P, vocab].

    The output matrix is the word embedding table (tied), cast whole to the compute dtype:
    unlike the input lookup, every row takes part in this matmul.
    """
    with tf.variable_scope("cls/predictions"):
        with tf.variable_scope("transform"):
            x = dense(rows, config.hidden_size, config, dtype, get_activation(config.hidden_act))
            x = layer_norm(x)
        output_bias = tf.get_variable(
            "output_bias", [config.vocab_size], tf.float32, tf.zeros_initializer()
        )
        table = embedding_table if dtype == tf.float32 else tf.cast(embedding_table, dtype)
        logits = tf.matmul(x, table, transpose_b=True)
        return tf.nn.bias_add(tf.cast(logits, tf.float32), output_bias)


def next_sentence_logits(config, pooled_output):
    """google's next-sentence head: fp32 logits [batch, 2] (0: B follows A, 1: random B)."""
    with tf.variable_scope("cls/seq_relationship"):
        weights = tf.get_variable(
            "output_weights", [2, config.hidden_size], tf.float32, _initializer(config)
        )
        bias = tf.get_variable("output_bias", [2], tf.float32, tf.zeros_initializer())
        logits = tf.matmul(tf.cast(pooled_output, tf.float32), weights, transpose_b=True)
        return tf.nn.bias_add(logits, bias)


def classifier_logits(config, pooled_output, num_labels, is_training, dropout_prob=None):
    """run_classifier's head: fp32 logits [batch, num_labels] from the pooled output.

    The variables are google's root-level `output_weights` [num_labels, hidden] and
    `output_bias` [num_labels]; training drops out the pooled output (0.1, google's).
    """
    if dropout_prob is None:
        dropout_prob = config.hidden_dropout_prob
    weights = tf.get_variable(
        "output_weights", [num_labels, config.hidden_size], tf.float32, _initializer(config)
    )
    bias = tf.get_variable("output_bias", [num_labels], tf.float32, tf.zeros_initializer())
    pooled = tf.cast(pooled_output, tf.float32)
    pooled = fused_ops.dropout(pooled, dropout_prob if is_training else 0.0)
    return tf.nn.bias_add(tf.matmul(pooled, weights, transpose_b=True), bias)


def pretraining_flops_per_example(config, seq_length, max_predictions):
    """Training FLOPs of one pretraining example's MODEL (forward + backward = 3x forward).

    Counts the matmuls (2 FLOPs per multiply-add): per layer 4 H^2 S (Q, K, V, output),
    2 H I S (feed-forward), 2 S^2 H (scores and context); the MLM head at P positions
    (H^2 + H V) and the pooler + NSP head. These are the model's FLOPs, the numerator of
    the MFU by the usual convention, whatever an implementation skips: tfzoo's pretraining
    step computes its last layer at 1 + P rows only (BertModel's output_positions), which
    executed_pretraining_flops_per_example counts.
    """
    h, i, v, s = config.hidden_size, config.intermediate_size, config.vocab_size, seq_length
    per_layer = 4 * h * h * s + 2 * h * i * s + 2 * s * s * h
    heads = max_predictions * (h * h + h * v) + h * h + 2 * h
    return 3 * 2 * (config.num_hidden_layers * per_layer + heads)


def executed_pretraining_flops_per_example(config, seq_length, max_predictions):
    """The matmul FLOPs tfzoo's pretraining step runs per example (forward + backward).

    As pretraining_flops_per_example, except that the last layer runs its query,
    attention output, feed-forward and attention (against all S keys) at the R = 1 + P
    rows the heads read, and only its keys and values at all S.
    """
    h, i, s = config.hidden_size, config.intermediate_size, seq_length
    rows = 1 + max_predictions
    full_layer = 4 * h * h * s + 2 * h * i * s + 2 * s * s * h
    last_layer = 2 * h * h * s + 2 * h * h * rows + 2 * h * i * rows + 2 * rows * s * h
    skipped = 3 * 2 * (full_layer - last_layer)
    return pretraining_flops_per_example(config, seq_length, max_predictions) - skipped


def num_parameters(config, pretraining_heads=True):
    """Weights of a BERT of `config` (encoder and pooler, plus the MLM and NSP heads)."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    embeddings_ = (v + config.type_vocab_size + config.max_position_embeddings + 2) * h
    layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h
    count = embeddings_ + config.num_hidden_layers * layer + h * h + h
    if pretraining_heads:
        count += h * h + 3 * h + v + 2 * h + 2
    return count


def main(argv=None):
    """`python -m nlp_models.bert --list`: every named BERT with its size."""
    import argparse

    parser = argparse.ArgumentParser(description="The BERT sizes of nlp_models/bert.py")
    parser.add_argument("--list", action="store_true", help="print every name and its size")
    parser.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE)
    args = parser.parse_args(argv)
    if args.list:
        from nlp_models import models_factory

        for name in models_factory.names("bert"):
            config = models_factory.get_config(name, "bert", vocab_size=args.vocab_size)
            print(
                f"{name:12s} L{config.num_hidden_layers:<3d} H{config.hidden_size:<5d} "
                f"A{config.num_attention_heads:<3d} I{config.intermediate_size:<5d} "
                f"{num_parameters(config, False) / 1e6:7.1f}M encoder, "
                f"{num_parameters(config) / 1e6:7.1f}M with the pretraining heads"
            )
    return 0


if __name__ == "__main__":
    main()
