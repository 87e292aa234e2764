"""The Transformer encoder-decoder for translation, with greedy and beam-search decoding.

Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762), as the
seeds' model zoo (Hetu) defines it: post-LN residual blocks with LayerNorm epsilon 1e-8,
sinusoidal positions, embeddings scaled by sqrt(d_model), ONE embedding matrix shared by
the encoder, the decoder and the output projection (its padding row 0 held at zero), key
padding masks and causal decoder self-attention. Options: pre-LN blocks
(`pre_layer_norm`) and untied embeddings (`embedding_sharing`).

Every dense layer is one 2-D tf.matmul over all tokens of the batch ([B*T, d] x [d, d'];
the query/key/value projections of self-attention fused into one [d, 3d] kernel), the
shape CPU matmul kernels run fastest.

    config = models_factory.get_config("transformer_base", vocab_size=8000)
    model = transformer.Transformer(config, is_training=True)
    logits = model(features["inputs"], features["targets"])          # fp32 [B, T, V]
    loss, weight = transformer.smoothed_cross_entropy(logits, targets, 0.1)
    ids, scores = model.beam_search(inputs, beam_size=4, alpha=0.6)  # [B, L] ids

Variable scopes are the checkpoint format: transformer/{embeddings,encoder,decoder}/...
The model reads no flags and does no I/O.
"""

import dataclasses
import math

from slim_compat import tf
from training import precision

PAD_ID = 0
BOS_ID = 2
EOS_ID = 3
EMBEDDING_SHARINGS = ("all", "decoder", "none")
# Added to attention logits of masked keys; exp() of it is exactly 0 in fp32.
_MASK_VALUE = -1e9


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of one Transformer (tensor2tensor's names where they exist).

    embedding_sharing: 'all' (one matrix for encoder, decoder and softmax; needs a joint
        vocabulary), 'decoder' (decoder input and softmax share one, the encoder has its
        own) or 'none' (three matrices).
    """

    vocab_size: int = 8000
    hidden_size: int = 512
    filter_size: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    dropout: float = 0.1  # on embeddings + positions and on every sub-layer's output
    attention_dropout: float = 0.1  # on the attention weights
    relu_dropout: float = 0.1  # inside the feed-forward block
    label_smoothing: float = 0.1
    layer_norm_epsilon: float = 1e-8
    pre_layer_norm: bool = False
    embedding_sharing: str = "all"

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )
        if self.embedding_sharing not in EMBEDDING_SHARINGS:
            raise ValueError(
                f"Unknown embedding_sharing {self.embedding_sharing!r}; expected one of: "
                f"{', '.join(EMBEDDING_SHARINGS)}"
            )
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size {self.vocab_size} < 4 (pad, unk, bos, eos)")

    def replace(self, **overrides):
        """A copy with `overrides`; unknown names raise a ValueError listing the fields."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"Unknown Transformer hparams {unknown}; valid: {names}")
        return dataclasses.replace(self, **overrides)


def training_flops_per_token(config, source_length, target_length):
    """Matmul FLOPs of one training step per target token (forward + backward = 3x forward).

    Counts the dense layers, the attention score and context products and the softmax
    projection, for sentences of the given lengths (the usual MFU convention: 2 FLOPs per
    multiply-add, element-wise work ignored).
    """
    d, f, n, v = config.hidden_size, config.filter_size, config.num_layers, config.vocab_size
    s, t = source_length, target_length
    encoder = n * s * (2 * 4 * d * d + 2 * 2 * d * f + 2 * 2 * s * d)
    decoder = n * t * (2 * 4 * d * d + 2 * 2 * d * d + 2 * 2 * d * f + 2 * 2 * t * d)
    decoder += n * (2 * 2 * s * d * d + 2 * 2 * t * s * d)  # cross-attention keys/values
    softmax = t * 2 * d * v
    return 3.0 * (encoder + decoder + softmax) / t


def positional_signal(length, depth, dtype=tf.float32, start=0):
    """Sinusoidal positions [length, depth]: sines in the first half, cosines in the second.

    Timescales grow geometrically from 1 to 1e4 (the paper's formula, in tensor2tensor's
    and fairseq's concatenated layout).
    """
    half = depth // 2
    positions = tf.cast(tf.range(length) + start, tf.float32)
    log_increment = math.log(1.0e4) / max(half - 1, 1)
    inv_timescales = tf.exp(tf.range(half, dtype=tf.float32) * -log_increment)
    scaled = positions[:, None] * inv_timescales[None, :]
    signal = tf.concat([tf.sin(scaled), tf.cos(scaled)], axis=1)
    if depth % 2:
        signal = tf.pad(signal, [[0, 0], [0, 1]])
    return tf.cast(signal, dtype)


def padding_bias(ids):
    """[B, 1, 1, S] fp32: _MASK_VALUE at padding keys (id 0), 0 elsewhere."""
    return tf.cast(tf.equal(ids, PAD_ID), tf.float32)[:, None, None, :] * _MASK_VALUE


def causal_bias(length):
    """[1, 1, T, T] fp32: _MASK_VALUE where a query would see a later key."""
    allowed = tf.linalg.band_part(tf.ones([length, length]), -1, 0)
    return ((1.0 - allowed) * _MASK_VALUE)[None, None]


def shift_right(targets):
    """Decoder inputs: BOS_ID, then the targets but the last (teacher forcing)."""
    start = tf.fill([tf.shape(targets)[0], 1], tf.constant(BOS_ID, targets.dtype))
    return tf.concat([start, targets[:, :-1]], axis=1)


def smoothed_cross_entropy(logits, targets, label_smoothing):
    """Label-smoothed cross-entropy summed over non-pad targets, and their count.

    The smoothed target puts 1 - label_smoothing on the true id and spreads the rest
    evenly over the other vocab_size - 1 ids (tensor2tensor's scheme); the entropy of
    that distribution is subtracted, so a perfect prediction scores 0. Computed from the
    log-sum-exp, never materialising a [tokens, vocab] one-hot.

    Args:
        logits: fp32 [B, T, V].
        targets: int [B, T], PAD_ID where there is no token.
        label_smoothing: in [0, 1).

    Returns:
        (sum of the per-token losses over non-pad targets, number of non-pad targets),
        both fp32 scalars.
    """
    vocab = tf.cast(tf.shape(logits)[-1], tf.float32)
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (vocab - 1.0)
    log_z = tf.reduce_logsumexp(logits, axis=-1)
    target_logit = tf.squeeze(
        tf.gather(logits, tf.cast(targets, tf.int32)[..., None], batch_dims=2), -1
    )
    log_p_target = target_logit - log_z
    sum_log_p = tf.reduce_sum(logits, axis=-1) - vocab * log_z
    xent = -(confidence * log_p_target + low * (sum_log_p - log_p_target))
    if label_smoothing > 0:
        xent -= -(confidence * math.log(confidence) + label_smoothing * tf.math.log(low + 1e-20))
    weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
    return tf.reduce_sum(xent * weights), tf.reduce_sum(weights)


def _length_penalty(length, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


class Transformer:
    """The encoder-decoder; call it on (inputs, targets) for logits, or decode inputs.

    Build it inside the trainer's variable scope; every call reuses the variables
    (tf.AUTO_REUSE under `scope`), so training, evaluation and decoding share them.
    """

    def __init__(self, config, is_training, compute_dtype=tf.float32, scope="transformer"):
        self.config = config
        self.is_training = is_training
        self.dtype = tf.as_dtype(compute_dtype)
        self.scope = scope

    # -- pieces -----------------------------------------------------------------------

    def _dropout(self, x, rate):
        if not self.is_training or rate <= 0:
            return x
        return tf.nn.dropout(x, rate=rate)

    def _dense(self, x, units, name, use_bias=True):
        """x [..., d] @ kernel [d, units] (+ bias), as one 2-D matmul over all tokens."""
        depth = x.shape[-1]
        kernel = tf.get_variable(
            name + "/kernel",
            [depth, units],
            dtype=self.dtype,
            initializer=tf.glorot_uniform_initializer(),
        )
        lead = tf.shape(x)[:-1]
        y = tf.matmul(tf.reshape(x, [-1, depth]), kernel)
        if use_bias:
            bias = tf.get_variable(
                name + "/bias", [units], dtype=self.dtype, initializer=tf.zeros_initializer()
            )
            y = tf.nn.bias_add(y, bias)
        return tf.reshape(y, tf.concat([lead, [units]], 0))

    def _layer_norm(self, x, name):
        """LayerNorm over the last axis, in fp32 (its statistics overflow fp16)."""
        with tf.variable_scope(name):
            depth = x.shape[-1]
            gamma = tf.get_variable("gamma", [depth], initializer=tf.ones_initializer())
            beta = tf.get_variable("beta", [depth], initializer=tf.zeros_initializer())
            x32 = tf.cast(x, tf.float32)
            mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
            y = (x32 - mean) * tf.math.rsqrt(variance + self.config.layer_norm_epsilon)
            return tf.cast(y * gamma + beta, self.dtype)

    def _split_heads(self, x):
        """[B, T, d] -> [B, H, T, d / H]."""
        heads = self.config.num_heads
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], heads, self.config.hidden_size // heads])
        return tf.transpose(x, [0, 2, 1, 3])

    def _merge_heads(self, x):
        """[B, H, T, d / H] -> [B, T, d]."""
        x = tf.transpose(x, [0, 2, 1, 3])
        shape = tf.shape(x)
        return tf.reshape(x, [shape[0], shape[1], self.config.hidden_size])

    def _attend(self, q, k, v, bias):
        """Scaled dot-product attention of heads q [B,H,Tq,dh] over k, v [B,H,Tk,dh].

        bias: fp32, broadcast to [B, H, Tq, Tk]. The softmax runs in fp32.
        """
        depth = self.config.hidden_size // self.config.num_heads
        logits = tf.matmul(q * tf.cast(depth**-0.5, q.dtype), k, transpose_b=True)
        weights = tf.nn.softmax(tf.cast(logits, tf.float32) + bias)
        weights = self._dropout(tf.cast(weights, self.dtype), self.config.attention_dropout)
        return tf.matmul(weights, v)

    def _self_attention(self, x, bias, name, cache=None):
        """Multi-head self-attention; with `cache` (dict 'k', 'v' [B,H,t,dh]) appends to it."""
        d = self.config.hidden_size
        with tf.variable_scope(name):
            qkv = self._dense(x, 3 * d, "qkv")
            q, k, v = tf.split(qkv, 3, axis=-1)
            q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
            if cache is not None:
                k = tf.concat([cache["k"], k], axis=2)
                v = tf.concat([cache["v"], v], axis=2)
                cache["k"], cache["v"] = k, v
            context = self._merge_heads(self._attend(q, k, v, bias))
            return self._dense(context, d, "output")

    def _cross_attention_memory(self, memory, name):
        """Keys and values [B, H, S, dh] of the encoder output for one decoder layer."""
        d = self.config.hidden_size
        with tf.variable_scope(name):
            kv = self._dense(memory, 2 * d, "kv")
            k, v = tf.split(kv, 2, axis=-1)
            return self._split_heads(k), self._split_heads(v)

    def _cross_attention(self, x, k, v, bias, name):
        d = self.config.hidden_size
        with tf.variable_scope(name):
            q = self._split_heads(self._dense(x, d, "q"))
            context = self._merge_heads(self._attend(q, k, v, bias))
            return self._dense(context, d, "output")

    def _feed_forward(self, x, name):
        with tf.variable_scope(name):
            h = tf.nn.relu(self._dense(x, self.config.filter_size, "intermediate"))
            h = self._dropout(h, self.config.relu_dropout)
            return self._dense(h, self.config.hidden_size, "output")

    def _sublayer(self, x, fn, name):
        """A residual block: post-LN norm(x + drop(f(x))), or pre-LN x + drop(f(norm(x)))."""
        if self.config.pre_layer_norm:
            y = fn(self._layer_norm(x, name + "/layer_norm"))
            return x + self._dropout(y, self.config.dropout)
        y = fn(x)
        return self._layer_norm(x + self._dropout(y, self.config.dropout), name + "/layer_norm")

    # -- embeddings ---------------------------------------------------------------------

    def _table(self, name):
        """An fp32 [V, d] embedding table whose row 0 starts at zero."""
        cfg = self.config
        stddev = cfg.hidden_size**-0.5

        def init(shape, dtype=tf.float32, partition_info=None):
            rows = tf.random.normal(shape, stddev=stddev, dtype=dtype)
            return tf.concat([tf.zeros_like(rows[:1]), rows[1:]], axis=0)

        return tf.get_variable(name, [cfg.vocab_size, cfg.hidden_size], tf.float32, init)

    def _tables(self):
        """(encoder input table, decoder input table, softmax table) per embedding_sharing."""
        with tf.variable_scope("embeddings"):
            shared = self._table("shared_weights")
            if self.config.embedding_sharing == "all":
                return shared, shared, shared
            source = self._table("source_weights")
            if self.config.embedding_sharing == "decoder":
                return source, shared, shared
            return source, shared, self._table("softmax_weights")

    def _embed(self, table, ids):
        """Scaled embeddings + positions [B, T, d] in the compute dtype; pad positions zero.

        Multiplying pad rows by 0 makes row 0's gradient exactly zero, so the row never
        moves from its zero start under any optimizer.
        """
        rows = precision.embedding_lookup(table, ids, self.dtype)
        not_pad = tf.cast(tf.not_equal(ids, PAD_ID), self.dtype)[..., None]
        x = rows * tf.cast(self.config.hidden_size**0.5, self.dtype) * not_pad
        x += positional_signal(tf.shape(ids)[1], self.config.hidden_size, self.dtype)[None]
        return self._dropout(x, self.config.dropout)

    def _logits(self, table, x):
        """fp32 logits [..., V] of decoder states x [..., d] through the softmax table.

        Row 0 enters as zeros (a mask times the table, not the table itself), so the
        projection sends no gradient to it either.
        """
        keep = tf.concat([tf.zeros([1, 1]), tf.ones([self.config.vocab_size - 1, 1])], 0)
        weights = tf.cast(table * keep, self.dtype)
        depth = self.config.hidden_size
        flat = tf.matmul(tf.reshape(x, [-1, depth]), weights, transpose_b=True)
        lead = tf.shape(x)[:-1]
        return tf.cast(tf.reshape(flat, tf.concat([lead, [self.config.vocab_size]], 0)), tf.float32)

    # -- the stacks ---------------------------------------------------------------------

    def encode(self, inputs):
        """Encoder output [B, S, d] (compute dtype) and the source padding bias [B,1,1,S]."""
        with tf.variable_scope(self.scope, reuse=tf.AUTO_REUSE):
            source_table, _, _ = self._tables()
            bias = padding_bias(inputs)
            x = self._embed(source_table, inputs)
            with tf.variable_scope("encoder"):
                for i in range(self.config.num_layers):
                    with tf.variable_scope(f"layer_{i}"):
                        x = self._sublayer(
                            x, lambda h: self._self_attention(h, bias, "self_attention"), "attn"
                        )
                        x = self._sublayer(x, lambda h: self._feed_forward(h, "ffn"), "ffn")
                if self.config.pre_layer_norm:
                    x = self._layer_norm(x, "output_layer_norm")
            return x, bias

    def _decoder_stack(self, x, self_bias, memory_kv, memory_bias, caches=None):
        for i in range(self.config.num_layers):
            with tf.variable_scope(f"layer_{i}"):
                cache = None if caches is None else caches[i]
                k, v = memory_kv[i]
                x = self._sublayer(
                    x,
                    lambda h, c=cache: self._self_attention(h, self_bias, "self_attention", c),
                    "self_attn",
                )
                x = self._sublayer(
                    x,
                    lambda h, k=k, v=v: self._cross_attention(
                        h, k, v, memory_bias, "cross_attention"
                    ),
                    "cross_attn",
                )
                x = self._sublayer(x, lambda h: self._feed_forward(h, "ffn"), "ffn")
        if self.config.pre_layer_norm:
            x = self._layer_norm(x, "output_layer_norm")
        return x

    def _memory(self, memory):
        with tf.variable_scope("decoder"):
            return [
                self._cross_attention_memory(memory, f"layer_{i}/cross_attention")
                for i in range(self.config.num_layers)
            ]

    def decode(self, targets, memory, memory_bias):
        """fp32 logits [B, T, V] of every target position, teacher-forced on `targets`."""
        with tf.variable_scope(self.scope, reuse=tf.AUTO_REUSE):
            _, target_table, softmax_table = self._tables()
            decoder_inputs = shift_right(targets)
            x = self._embed(target_table, decoder_inputs)
            self_bias = causal_bias(tf.shape(targets)[1])
            memory_kv = self._memory(memory)
            with tf.variable_scope("decoder"):
                x = self._decoder_stack(x, self_bias, memory_kv, memory_bias)
            return self._logits(softmax_table, x)

    def __call__(self, inputs, targets):
        """Training / scoring: fp32 logits [B, T, V] of `targets` given `inputs`."""
        memory, bias = self.encode(inputs)
        return self.decode(targets, memory, bias)

    # -- incremental decoding -----------------------------------------------------------

    def _initial_caches(self, batch):
        heads = self.config.num_heads
        depth = self.config.hidden_size // heads
        return [
            {
                "k": tf.zeros([batch, heads, 0, depth], self.dtype),
                "v": tf.zeros([batch, heads, 0, depth], self.dtype),
            }
            for _ in range(self.config.num_layers)
        ]

    def _decode_step(self, ids, step, caches, memory_kv, memory_bias):
        """fp32 logits [N, V] of the next token after `ids` [N] (the token at `step`).

        Appends this step's self-attention keys and values to `caches` (returned), so each
        step costs one position instead of the whole prefix.
        """
        with tf.variable_scope(self.scope, reuse=tf.AUTO_REUSE):
            _, target_table, softmax_table = self._tables()
            rows = precision.embedding_lookup(target_table, ids[:, None], self.dtype)
            not_pad = tf.cast(tf.not_equal(ids, PAD_ID), self.dtype)[:, None, None]
            x = rows * tf.cast(self.config.hidden_size**0.5, self.dtype) * not_pad
            x += positional_signal(1, self.config.hidden_size, self.dtype, start=step)[None]
            caches = [dict(c) for c in caches]
            no_bias = tf.zeros([1, 1, 1, 1])  # the cache holds only earlier positions
            with tf.variable_scope("decoder"):
                x = self._decoder_stack(x, no_bias, memory_kv, memory_bias, caches)
            return self._logits(softmax_table, x)[:, 0, :], caches

    def _decoding_setup(self, inputs, max_decode_length, extra_length):
        memory, memory_bias = self.encode(inputs)
        with tf.variable_scope(self.scope, reuse=tf.AUTO_REUSE):
            memory_kv = self._memory(memory)
        if max_decode_length is None:
            max_decode_length = tf.shape(inputs)[1] + extra_length
        return memory_kv, memory_bias, tf.convert_to_tensor(max_decode_length, tf.int32)

    def greedy(self, inputs, max_decode_length=None, extra_length=50, return_logits=False):
        """Greedy decoding with cached keys/values.

        Args:
            inputs: int [B, S] source ids, PAD_ID-padded.
            max_decode_length: most tokens produced (EOS included); None: S + extra_length.
            extra_length: see max_decode_length.
            return_logits: also return the logits of every step [B, L, V] (for tests).

        Returns:
            ids int32 [B, L] (EOS_ID included, PAD_ID after it; L <= max_decode_length),
            and the sum of log-probabilities [B]; (ids, scores, logits) with return_logits.
        """
        memory_kv, memory_bias, max_len = self._decoding_setup(
            inputs, max_decode_length, extra_length
        )
        batch = tf.shape(inputs)[0]
        vocab = self.config.vocab_size

        def cond(step, finished, *_):
            return tf.logical_and(step < max_len, tf.logical_not(tf.reduce_all(finished)))

        def body(step, finished, last, ids, scores, logits_acc, caches):
            logits, caches = self._decode_step(last, step, caches, memory_kv, memory_bias)
            log_probs = tf.nn.log_softmax(logits)
            next_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
            next_ids = tf.where_v2(finished, tf.zeros_like(next_ids), next_ids)
            scores += tf.where_v2(
                finished,
                tf.zeros_like(scores),
                tf.gather(log_probs, next_ids[:, None], batch_dims=1)[:, 0],
            )
            ids = tf.concat([ids, next_ids[:, None]], axis=1)
            if return_logits:
                logits_acc = tf.concat([logits_acc, logits[:, None]], axis=1)
            finished = tf.logical_or(finished, tf.equal(next_ids, EOS_ID))
            return step + 1, finished, next_ids, ids, scores, logits_acc, caches

        caches = self._initial_caches(batch)
        loop_vars = (
            tf.constant(0),
            tf.zeros([batch], tf.bool),
            tf.fill([batch], BOS_ID),
            tf.zeros([batch, 0], tf.int32),
            tf.zeros([batch]),
            tf.zeros([batch, 0, vocab]),
            caches,
        )
        invariants = (
            tf.TensorShape([]),
            tf.TensorShape([None]),
            tf.TensorShape([None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None]),
            tf.TensorShape([None, None, vocab]),
            self._cache_invariants(),
        )
        _, _, _, ids, scores, logits, _ = tf.while_loop(
            cond, body, loop_vars, shape_invariants=invariants, back_prop=False
        )
        return (ids, scores, logits) if return_logits else (ids, scores)

    def _cache_invariants(self):
        depth = self.config.hidden_size // self.config.num_heads
        shape = tf.TensorShape([None, self.config.num_heads, None, depth])
        return [{"k": shape, "v": shape} for _ in range(self.config.num_layers)]

    def beam_search(self, inputs, beam_size=4, alpha=0.6, max_decode_length=None, extra_length=50):
        """Beam search with GNMT's length penalty and cached keys/values.

        A hypothesis' score is its log-probability over ((5 + length) / 6) ** alpha, length
        counting EOS. Each step expands the `beam_size` alive hypotheses into their
        2 * beam_size best continuations; those ending in EOS join the finished beam,
        the best others stay alive. The search stops at max_decode_length, or when no alive
        hypothesis could still beat the worst finished one (tensor2tensor's bound).

        Args:
            inputs: int [B, S] source ids, PAD_ID-padded.
            beam_size: hypotheses kept per sentence (1: the greedy search, for alpha 0).
            alpha: length-penalty exponent (0: raw log-probabilities).
            max_decode_length: most tokens produced (EOS included); None: S + extra_length.
            extra_length: see max_decode_length.

        Returns:
            (ids int32 [B, L]: the best hypothesis, EOS included, PAD_ID after it;
             its score fp32 [B]).
        """
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        memory_kv, memory_bias, max_len = self._decoding_setup(
            inputs, max_decode_length, extra_length
        )
        k = int(beam_size)
        batch = tf.shape(inputs)[0]
        vocab = self.config.vocab_size
        neg_inf = -1.0e7

        def tile_beams(t):
            # [B, ...] -> [B * K, ...], each sentence's copies adjacent.
            return tf.repeat(t, k, axis=0)

        memory_kv = [(tile_beams(a), tile_beams(b)) for a, b in memory_kv]
        memory_bias = tile_beams(memory_bias)

        def gather_beams(t, beam_indices):
            # t [B, K, ...]; beam_indices [B, K'] -> [B, K', ...].
            return tf.gather(t, beam_indices, batch_dims=1)

        def gather_flat(t, beam_indices):
            shape = tf.shape(t)
            beams = tf.reshape(t, tf.concat([[batch, k], shape[1:]], 0))
            picked = tf.gather(beams, beam_indices, batch_dims=1)
            return tf.reshape(picked, shape)

        def cond(step, alive_seq, alive_log_probs, fin_seq, fin_scores, fin_flags, caches):
            best_alive = alive_log_probs[:, 0] / _length_penalty(max_len, alpha)
            worst_finished = tf.reduce_min(
                tf.where_v2(fin_flags, fin_scores, tf.fill(tf.shape(fin_scores), neg_inf)), axis=1
            )
            all_full = tf.reduce_all(fin_flags, axis=1)
            done = tf.reduce_all(tf.logical_and(all_full, worst_finished > best_alive))
            return tf.logical_and(step < max_len, tf.logical_not(done))

        def body(step, alive_seq, alive_log_probs, fin_seq, fin_scores, fin_flags, caches):
            last = tf.reshape(alive_seq[:, :, -1], [-1])
            logits, caches = self._decode_step(last, step, caches, memory_kv, memory_bias)
            log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, k, vocab])
            candidates = tf.reshape(alive_log_probs[:, :, None] + log_probs, [batch, k * vocab])
            top_log_probs, top_flat = tf.math.top_k(candidates, k=2 * k)
            top_beams = top_flat // vocab
            top_ids = top_flat % vocab
            top_seq = tf.concat([gather_beams(alive_seq, top_beams), top_ids[:, :, None]], 2)
            ends = tf.equal(top_ids, EOS_ID)

            # The alive beam: the best K candidates that did not end.
            alive_scores = tf.where_v2(
                ends, tf.fill(tf.shape(top_log_probs), neg_inf), top_log_probs
            )
            new_alive_log_probs, alive_pick = tf.math.top_k(alive_scores, k=k)
            new_alive_seq = gather_beams(top_seq, alive_pick)
            source_beams = gather_beams(top_beams, alive_pick)
            caches = [
                {name: gather_flat(c[name], source_beams) for name in ("k", "v")} for c in caches
            ]

            # The finished beam: the best K of the old finished and the candidates ending now.
            new_scores = top_log_probs / _length_penalty(step + 1, alpha)
            new_scores = tf.where_v2(ends, new_scores, tf.fill(tf.shape(new_scores), neg_inf))
            padded_fin = tf.pad(fin_seq, [[0, 0], [0, 0], [0, 1]])
            all_seq = tf.concat([padded_fin, top_seq], axis=1)
            all_scores = tf.concat(
                [
                    tf.where_v2(fin_flags, fin_scores, tf.fill(tf.shape(fin_scores), neg_inf)),
                    new_scores,
                ],
                axis=1,
            )
            all_flags = tf.concat([fin_flags, ends], axis=1)
            fin_scores, fin_pick = tf.math.top_k(all_scores, k=k)
            fin_seq = gather_beams(all_seq, fin_pick)
            fin_flags = gather_beams(all_flags, fin_pick)
            return (
                step + 1,
                new_alive_seq,
                new_alive_log_probs,
                fin_seq,
                fin_scores,
                fin_flags,
                caches,
            )

        initial_log_probs = tf.tile(
            tf.constant([[0.0] + [neg_inf] * (k - 1)]), tf.stack([batch, 1])
        )
        loop_vars = (
            tf.constant(0),
            tf.fill([batch, k, 1], BOS_ID),
            initial_log_probs,
            tf.zeros([batch, k, 1], tf.int32),
            tf.zeros([batch, k]),
            tf.zeros([batch, k], tf.bool),
            self._initial_caches(batch * k),
        )
        seq_shape = tf.TensorShape([None, k, None])
        invariants = (
            tf.TensorShape([]),
            seq_shape,
            tf.TensorShape([None, k]),
            seq_shape,
            tf.TensorShape([None, k]),
            tf.TensorShape([None, k]),
            self._cache_invariants(),
        )
        _, alive_seq, alive_log_probs, fin_seq, fin_scores, fin_flags, _ = tf.while_loop(
            cond, body, loop_vars, shape_invariants=invariants, back_prop=False
        )
        # A sentence with no finished hypothesis returns its best alive one (cut at max_len).
        any_finished = tf.reduce_any(fin_flags, axis=1)
        alive_scores = alive_log_probs / _length_penalty(tf.shape(alive_seq)[2] - 1, alpha)
        best_seq = tf.where_v2(any_finished[:, None], fin_seq[:, 0, 1:], alive_seq[:, 0, 1:])
        best_score = tf.where_v2(any_finished, fin_scores[:, 0], alive_scores[:, 0])
        return best_seq, best_score
