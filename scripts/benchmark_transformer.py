"""Training tokens/s and FLOPs utilisation of tfzoo's Transformer beside a Keras 3 peer.

One run measures, each in its own process (scripts/benchmark.py's launcher: tfzoo on
tcmalloc as its entry points, the peer on the same malloc):

* machine: the NxN tf.matmul rate (GFLOP/s) in each precision, the bound MFU is read
  against;
* tfzoo: the translation task's training step for --model (default transformer_base):
  tasks/translation.py's model and label-smoothed loss under the fp32-master-weight
  getter (bf16 / fp16), the trainer's Adam(0.9, 0.98, 1e-9) (loss scaling for fp16),
  on one fixed batch of --batch_size sentences x --length tokens, source and target,
  held in variables (no input pipeline);
* keras: the peer of the same size, batch and optimizer: keras-hub's
  TransformerEncoder / TransformerDecoder layers (post-LN, ReLU, the same dropout sites:
  tfzoo's relu_dropout is off, as keras-hub has none; PEER_MATCHING_HPARAMS), a
  ReversibleEmbedding tied to the softmax and SinePositionEncoding, trained with
  model.fit on the same batch (Keras 3 on TensorFlow; no XLA on CPU, Keras' own choice).
  Without keras-hub installed (requirements.txt pins it) the row says so.

Reported: target tokens per second (median over --repeats timed blocks, min-max), ms per
step, training FLOPs per target token (matmuls, forward + backward, counted by
nlp_models/transformer.training_flops_per_token for both sides), and MFU = FLOPs/s over
the measured matmul rate in the same precision. Targets: tfzoo >= 1.25x the peer's
tokens/s and MFU >= 60%.

    python scripts/benchmark_transformer.py                     # transformer_base, fp32
    python scripts/benchmark_transformer.py --precisions=fp32,bf16 --output_json=t.json
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_SCRIPT = os.path.abspath(__file__)
_REPO_ROOT = os.path.dirname(os.path.dirname(_SCRIPT))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

PRECISIONS = ("fp32", "bf16", "fp16")
KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
TARGET_SPEEDUP = 1.25
TARGET_MFU = 0.60


# keras-hub's TransformerEncoder / TransformerDecoder drop out the embeddings, the attention
# weights and each sub-layer's output, but nothing inside the feed-forward block: tfzoo's
# relu_dropout is off here so both sides do the same work (its largest dropout tensor,
# [tokens, d_ff], would otherwise be tfzoo's alone).
PEER_MATCHING_HPARAMS = {"relu_dropout": 0.0}


def _model_config(name, vocab_size):
    from nlp_models import models_factory

    return models_factory.get_config(name, vocab_size=vocab_size, **PEER_MATCHING_HPARAMS)


def _batch(cfg):
    """The fixed batch: ids in [4, vocab), EOS last, the same on both sides (seeded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(4, cfg["vocab_size"], [cfg["batch_size"], cfg["length"]])
    ids[:, -1] = 3
    return ids.astype(np.int64)


def _timed(run_step, cfg):
    """Warm-up steps, then cfg['repeats'] blocks of >= cfg['steps'] steps; block seconds."""
    for _ in range(cfg["warmup_steps"]):
        run_step()
    start = time.perf_counter()
    run_step()
    step_seconds = time.perf_counter() - start
    steps = max(cfg["steps"], math.ceil(cfg["block_seconds"] / max(step_seconds, 1e-6)))
    blocks = []
    for _ in range(cfg["repeats"]):
        start = time.perf_counter()
        for _ in range(steps):
            loss = run_step()
        blocks.append(time.perf_counter() - start)
    return blocks, steps, loss


def _stats(blocks, steps, tokens_per_step):
    rates = [steps * tokens_per_step / s for s in blocks]
    return {
        "tokens_per_sec": statistics.median(rates),
        "tokens_per_sec_min": min(rates),
        "tokens_per_sec_max": max(rates),
        "ms_per_step": 1000.0 * statistics.median(blocks) / steps,
        "steps_per_block": steps,
        "block_seconds": blocks,
    }


# ----------------------------------------------------------------------------------- workers


def run_machine_worker(cfg):
    from slim_compat import tf
    from training import runtime

    runtime.configure_tf_runtime()
    n = cfg["matmul_size"]
    rates = {}
    for name in cfg["precisions"]:
        dtype = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}[name]
        with tf.Graph().as_default():
            a_low = tf.Variable(tf.cast(tf.random.normal([n, n]), dtype), trainable=False)
            b_low = tf.Variable(tf.cast(tf.random.normal([n, n]), dtype), trainable=False)
            product = tf.reduce_sum(tf.cast(tf.matmul(a_low, b_low), tf.float32))
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                session.run(product)
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < cfg["matmul_seconds"]:
                    session.run(product)
                    count += 1
                rates[name] = 2.0 * n**3 * count / (time.perf_counter() - start) / 1e9
    return {"matmul_gflops": rates, "matmul_size": n, "tensorflow": tf.__version__}


def run_tfzoo_worker(cfg):
    from slim_compat import tf
    from tasks import translation as translation_task
    from training import precision, runtime

    runtime.configure_tf_runtime()
    config = _model_config(cfg["model"], cfg["vocab_size"])
    dtype = precision.PRECISIONS[cfg["precision"]]
    ids = _batch(cfg)

    class Params:  # the task's flags this step reads
        model_name = cfg["model"]
        model_hparams = ""
        eval_bleu = False
        label_smoothing = config.label_smoothing

    task = translation_task.TranslationTask()
    task.config = lambda params: config  # no records: the vocabulary is given
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        features = {
            key: tf.Variable(ids, trainable=False, name=key) for key in ("inputs", "targets")
        }
        getter = None if dtype == tf.float32 else precision.master_weights_getter(dtype)
        with tf.variable_scope(tf.get_variable_scope(), custom_getter=getter):
            outputs = task.build_model(features, Params, True, dtype)
        loss = task.build_losses(features, outputs, Params).total
        optimizer = tf.train.AdamOptimizer(1e-4, 0.9, 0.98, 1e-9)
        if cfg["precision"] == "fp16":
            optimizer = precision.LossScaleOptimizer(optimizer)
        grads = optimizer.compute_gradients(loss)
        train_op = optimizer.apply_gradients(grads)
        parameters = sum(v.shape.num_elements() for v in tf.trainable_variables())
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())

            def step():
                return session.run([loss, train_op])[0]

            blocks, steps, last_loss = _timed(step, cfg)
    result = _stats(blocks, steps, ids.size)
    result.update(parameters=int(parameters), final_loss=float(last_loss))
    return result


def _keras_peer(keras, keras_hub, config, length):
    """The peer: keras-hub's encoder / decoder layers, a tied embedding, sine positions."""
    d = config.hidden_size
    source = keras.Input((length,), dtype="int32", name="inputs")
    target_in = keras.Input((length,), dtype="int32", name="decoder_inputs")
    embedding = keras_hub.layers.ReversibleEmbedding(
        config.vocab_size, d, tie_weights=True, name="shared_embedding"
    )
    positions = keras_hub.layers.SinePositionEncoding()
    scale = math.sqrt(d)

    def embed(ids):
        x = embedding(ids) * scale
        return keras.layers.Dropout(config.dropout)(x + positions(x))

    source_mask = keras.ops.not_equal(source, 0)
    x = embed(source)
    for _ in range(config.num_layers):
        x = keras_hub.layers.TransformerEncoder(
            config.filter_size,
            config.num_heads,
            dropout=config.dropout,
            layer_norm_epsilon=config.layer_norm_epsilon,
        )(x, padding_mask=source_mask)
    memory = x
    y = embed(target_in)
    for _ in range(config.num_layers):
        y = keras_hub.layers.TransformerDecoder(
            config.filter_size,
            config.num_heads,
            dropout=config.dropout,
            layer_norm_epsilon=config.layer_norm_epsilon,
        )(y, memory, encoder_padding_mask=source_mask, use_causal_mask=True)
    logits = keras.layers.Activation("linear", dtype="float32")(embedding(y, reverse=True))
    return keras.Model([source, target_in], logits)


def run_keras_worker(cfg):
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # Keras 3, not tf_keras
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf

    try:
        import keras_hub
    except ImportError as e:
        return {"error": f"keras-hub is not installed ({e}); scripts/setup.sh installs it"}
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[cfg["precision"]])
    config = _model_config(cfg["model"], cfg["vocab_size"])
    model = _keras_peer(keras, keras_hub, config, cfg["length"])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),  # label smoothing needs one-hot labels in Keras: the plain CE over non-pad ids
    )
    ids = _batch(cfg).astype(np.int32)
    decoder_inputs = np.concatenate([np.full([len(ids), 1], 2, np.int32), ids[:, :-1]], 1)
    dataset = tf.data.Dataset.from_tensors(((ids, decoder_inputs), ids)).repeat()
    warmup, repeats = cfg["warmup_steps"], cfg["repeats"]
    stamps, losses = [], []

    class BlockTimer(keras.callbacks.Callback):
        steps = None

        def on_train_begin(self, logs=None):
            self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = float(logs["loss"])  # a host read: the step has finished
            now = time.perf_counter()
            step_seconds, self.last = now - self.last, now
            if batch == warmup:
                BlockTimer.steps = max(
                    cfg["steps"], math.ceil(cfg["block_seconds"] / max(step_seconds, 1e-6))
                )
            if batch >= warmup and (batch - warmup) % BlockTimer.steps == 0:
                stamps.append(now)
                losses.append(loss)
                self.model.stop_training = len(stamps) > repeats

    model.fit(dataset, epochs=1, steps_per_epoch=10**9, verbose=0, callbacks=[BlockTimer()])
    blocks = [b - a for a, b in zip(stamps, stamps[1:])]
    result = _stats(blocks, BlockTimer.steps, ids.size)
    result.update(
        parameters=int(model.count_params()),
        final_loss=losses[-1],
        keras_version=keras.__version__,
        keras_hub_version=keras_hub.__version__,
        jit_compile=bool(model.jit_compile),
    )
    return result


WORKERS = {"machine": run_machine_worker, "tfzoo": run_tfzoo_worker, "keras": run_keras_worker}


# ------------------------------------------------------------------------------------ driver


def _launch(kind, cfg, timeout):
    """Runs one worker in its own process (tfzoo's malloc for all); its result dict."""
    import subprocess

    sys.path.insert(0, os.path.dirname(_SCRIPT))
    import benchmark  # scripts/benchmark.py: the worker environment (allocator, paths)

    launcher = benchmark.Launcher(tempfile.mkdtemp(prefix="tfzoo_tbench_"), timeout)
    env = launcher.environment("machine" if kind == "machine" else "tfzoo")
    if env is None:
        env = launcher.environment(kind, "system")
    result_file = os.path.join(launcher.work_dir, f"{kind}.json")
    command = [sys.executable, _SCRIPT, f"--worker={kind}", "--worker_config", json.dumps(cfg)]
    command += ["--result_file", result_file]
    try:
        proc = subprocess.run(
            command, cwd=_REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0 or not os.path.exists(result_file):
        lines = (proc.stderr or proc.stdout or "").strip().splitlines() or ["(no output)"]
        return {"error": f"exit code {proc.returncode}: {lines[-1]}", "output_tail": lines[-30:]}
    with open(result_file) as f:
        return json.load(f)


def _row(name, result, flops_per_token, matmul):
    if "error" in result:
        return f"| {name} | - | - | - | - | {result['error']} |"
    tps = result["tokens_per_sec"]
    mfu = flops_per_token * tps / (matmul * 1e9)
    result["mfu"] = mfu
    return (
        f"| {name} | {tps:,.0f} ({result['tokens_per_sec_min']:,.0f}-"
        f"{result['tokens_per_sec_max']:,.0f}) | {result['ms_per_step']:,.0f} | "
        f"{flops_per_token * tps / 1e9:.1f} | {100 * mfu:.0f}% | "
        f"{result['parameters'] / 1e6:.1f}M params, loss {result['final_loss']:.2f} |"
    )


def run_benchmark(args):
    from nlp_models import transformer

    precisions = [p for p in args.precisions.split(",") if p]
    for p in precisions:
        if p not in PRECISIONS:
            raise SystemExit(f"Unknown precision {p!r}; expected one of: {', '.join(PRECISIONS)}")
    base = dict(
        model=args.model,
        vocab_size=args.vocab_size,
        batch_size=args.batch_size,
        length=args.length,
        warmup_steps=args.warmup_steps,
        steps=args.steps,
        repeats=args.repeats,
        block_seconds=args.block_seconds,
    )
    print("machine: matmul rates ...", file=sys.stderr, flush=True)
    machine = _launch(
        "machine",
        dict(precisions=precisions, matmul_size=args.matmul_size, matmul_seconds=3.0),
        args.timeout,
    )
    if "error" in machine:
        raise SystemExit(f"the machine worker failed: {machine}")
    config = _model_config(args.model, args.vocab_size)
    flops = transformer.training_flops_per_token(config, args.length, args.length)
    report = {"machine": machine, "config": base, "flops_per_token": flops, "runs": []}
    lines = [
        f"{args.model}, batch {args.batch_size} x {args.length} tokens (source and target), "
        f"vocab {args.vocab_size}; {flops / 1e9:.3f} GFLOP per target token",
        "",
        "| run | tokens/s (min-max) | ms/step | GFLOP/s | MFU | notes |",
        "|---|---|---|---|---|---|",
    ]
    for p in precisions:
        cfg = dict(base, precision=p)
        results = {}
        for kind in ("tfzoo", "keras"):
            print(f"{kind} {p} ...", file=sys.stderr, flush=True)
            results[kind] = _launch(kind, cfg, args.timeout)
        matmul = machine["matmul_gflops"][p]
        lines.append(f"| matmul {args.matmul_size}^3, {p} | | | {matmul:.1f} | 100% | |")
        lines.append(_row(f"tfzoo {p}", results["tfzoo"], flops, matmul))
        lines.append(_row(f"Keras 3 + keras-hub {p}", results["keras"], flops, matmul))
        if "error" not in results["tfzoo"] and "error" not in results["keras"]:
            speedup = results["tfzoo"]["tokens_per_sec"] / results["keras"]["tokens_per_sec"]
            results["speedup"] = speedup
            lines.append(
                f"| tfzoo / Keras, {p} | {speedup:.2f}x | | | | target {TARGET_SPEEDUP}x |"
            )
        report["runs"].append({"precision": p, **results})
    print("\n".join(lines))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(report, f, indent=1)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="transformer_base")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--batch_size", type=int, default=64, help="Sentences per batch.")
    parser.add_argument("--length", type=int, default=32, help="Tokens per sentence.")
    parser.add_argument("--precisions", default="fp32", help="Comma-separated: fp32,bf16,fp16")
    parser.add_argument("--warmup_steps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="Least steps per timed block.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed blocks.")
    parser.add_argument("--block_seconds", type=float, default=10.0)
    parser.add_argument("--matmul_size", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds per worker.")
    parser.add_argument("--output_json")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker_config", help=argparse.SUPPRESS)
    parser.add_argument("--result_file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](json.loads(args.worker_config))
        with open(args.result_file, "w") as f:
            json.dump(result, f)
        return result
    return run_benchmark(args)


if __name__ == "__main__":
    main()
