"""BERT pretraining throughput: tfzoo's training step beside keras-hub's BertMaskedLM.fit.

One run measures, each in a fresh worker process on the same synthetic batch (random ids,
20 masked positions of 128, half the pairs next-sentence): the fp32 (and --precision)
NxN matmul rate of this machine; tfzoo's real training step of the `bert_pretraining`
task (nlp_models/bert.py, google's MLM + NSP losses, AdamW as google's, the trainer's
update: precision, loss scaling, Horovod wrapping) with the batch held in variables; and
the Keras 3 peer: keras-hub's BertMaskedLM built from the same configuration (no
weights), compiled with AdamW and the masked-LM cross-entropy weighted by the same
masked_lm_weights, trained with model.fit. Reported: sequences per second (median over
--repeats timed blocks, min-max), ms per step, training FLOPs per sequence (matmuls,
nlp_models.bert.pretraining_flops_per_example) and the FLOPs utilisation (MFU) against the
matmul rate measured in the same run. Then the ceiling: each matmul shape of the step
(forward and backward, training_matmul_shapes) timed alone, whose FLOP-weighted rate over
the NxN rate is the MFU of a step that did nothing but its matmuls.

The peer has no next-sentence head (BertMaskedLM is the masked LM only); tfzoo's step
also trains NSP, which adds 2H FLOPs per sequence, nothing measurable.

    python scripts/benchmark_bert.py --model=bert_base --batch_size=32 --seq_length=128
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

_SCRIPT = os.path.abspath(__file__)
_REPO_ROOT = os.path.dirname(os.path.dirname(_SCRIPT))
if __package__ in (None, ""):
    for path in (_REPO_ROOT, os.path.dirname(_SCRIPT)):
        if path not in sys.path:
            sys.path.insert(0, path)

import benchmark as image_benchmark  # noqa: E402  (scripts/benchmark.py: timing, launching)

KERAS_POLICIES = image_benchmark.KERAS_POLICIES
GOOGLE_ADAMW = {"learning_rate": 1e-4, "weight_decay": 0.01, "epsilon": 1e-6}


def synthetic_batch(config, batch_size, seq_length, predictions, seed=0):
    """numpy features of google's pretraining records: every position real, 2 segments."""
    import numpy as np

    rng = np.random.default_rng(seed)
    positions = np.stack(
        [np.sort(rng.choice(np.arange(1, seq_length), predictions, replace=False))] * batch_size
    )
    return {
        "input_ids": rng.integers(5, config.vocab_size, (batch_size, seq_length)).astype(np.int32),
        "input_mask": np.ones((batch_size, seq_length), np.int32),
        "segment_ids": (np.arange(seq_length)[None] >= seq_length // 2)
        .repeat(batch_size, 0)
        .astype(np.int32),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(5, config.vocab_size, (batch_size, predictions)).astype(
            np.int32
        ),
        "masked_lm_weights": np.ones((batch_size, predictions), np.float32),
        "next_sentence_labels": rng.integers(0, 2, (batch_size, 1)).astype(np.int32),
    }


# ----------------------------------------------------------------------------------- workers


def run_matmul_worker(cfg):
    """The NxN matmul rate (GFLOP/s) of each precision, as scripts/benchmark.py measures it."""
    from slim_compat import tf
    from training import precision

    tf.disable_eager_execution()
    n = cfg["matmul_size"]
    rates = {}
    for name in cfg["precisions"]:
        dtype = precision.PRECISIONS[name]
        with tf.Graph().as_default():
            a = tf.Variable(tf.cast(tf.random.stateless_uniform([n, n], seed=[0, 1]), dtype))
            b = tf.Variable(tf.cast(tf.random.stateless_uniform([n, n], seed=[0, 2]), dtype))
            product = tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(product)
                times = []
                deadline = time.perf_counter() + cfg["matmul_seconds"]
                while len(times) < 3 or time.perf_counter() < deadline:
                    start = time.perf_counter()
                    sess.run(product)
                    times.append(time.perf_counter() - start)
        rates[name] = 2.0 * n**3 / statistics.median(times) / 1e9
    image_benchmark._write_json(
        cfg["result_file"], {"cpu": image_benchmark._cpu_name(), "matmul_gflops": rates}
    )


def training_matmul_shapes(config, batch_size, seq_length, predictions):
    """The matmuls of one pretraining step: [(name, batch, m, k, n, count)], forward and
    backward, C[batch, m, n] = A[batch, m, k] B[batch, k, n] (2 FLOPs per multiply-add).

    Per layer: Q, K, V and the attention output (H x H), the feed-forward (H x I, I x H),
    the scores and the context (per head); then the MLM head (its transform and the
    tied H x V output). Each forward matmul X W has two backward ones: dX = dY W^T and
    dW = X^T dY. Their FLOPs add up to nlp_models.bert.pretraining_flops_per_example
    (minus the pooler and NSP head, 0.01%).
    """
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    heads = config.num_attention_heads
    tokens, layers = batch_size * seq_length, config.num_hidden_layers
    rows = batch_size * predictions
    forward = [
        ("qkv+output (X W, H x H)", 1, tokens, h, h, 4 * layers),
        ("ffn in (X W, H x I)", 1, tokens, h, i, layers),
        ("ffn out (X W, I x H)", 1, tokens, i, h, layers),
        ("mlm transform (H x H)", 1, rows, h, h, 1),
        ("mlm output (H x V, tied)", 1, rows, h, v, 1),
    ]
    shapes = []
    for name, _, m, k, n, count in forward:
        shapes += [
            (name, 1, m, k, n, count),
            (name + " dX", 1, m, n, k, count),
            (name + " dW", 1, k, m, n, count),
        ]
    b, s, d = batch_size * heads, seq_length, h // heads
    # scores S = Q K^T ([s, d] x [d, s]): dQ = dS K, dK = dS^T Q ([s, s] x [s, d]);
    # context C = P V ([s, s] x [s, d]): dP = dC V^T ([s, d] x [d, s]), dV = P^T dC.
    shapes += [
        ("attention scores", b, s, d, s, layers),
        ("attention scores dQ, dK", b, s, s, d, 2 * layers),
        ("attention context", b, s, s, d, layers),
        ("attention context dP", b, s, d, s, layers),
        ("attention context dV", b, s, s, d, layers),
    ]
    return shapes


def run_shapes_worker(cfg):
    """Times each matmul shape of a pretraining step alone: the rate of the model's own
    matmuls, against which no implementation of this model can beat its MFU ceiling."""
    from nlp_models import bert
    from slim_compat import tf
    from training import precision

    tf.disable_eager_execution()
    config = bert.get_config(cfg["model"])
    dtype = precision.PRECISIONS[cfg["precision"]]
    rows, total_flops, total_seconds = [], 0.0, 0.0
    shapes = training_matmul_shapes(
        config, cfg["batch_size"], cfg["seq_length"], cfg["predictions"]
    )
    for name, batch, m, k, n, count in shapes:
        with tf.Graph().as_default():
            shape_a = [batch, m, k] if batch > 1 else [m, k]
            shape_b = [batch, k, n] if batch > 1 else [k, n]
            a = tf.Variable(tf.cast(tf.random.stateless_uniform(shape_a, seed=[0, 1]), dtype))
            b = tf.Variable(tf.cast(tf.random.stateless_uniform(shape_b, seed=[0, 2]), dtype))
            # A tiny reduction makes the product be computed without fetching it.
            product = tf.reduce_sum(tf.cast(tf.matmul(a, b)[..., :1, :1], tf.float32))
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(product)
                times = []
                deadline = time.perf_counter() + cfg["shape_seconds"]
                while len(times) < 3 or time.perf_counter() < deadline:
                    start = time.perf_counter()
                    sess.run(product)
                    times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        flops = 2.0 * batch * m * k * n
        total_flops += flops * count
        total_seconds += seconds * count
        rows.append(
            {"name": name, "shape": [batch, m, k, n], "count": count,
             "gflops": flops / seconds / 1e9}
        )  # fmt: skip
    image_benchmark._write_json(
        cfg["result_file"],
        {
            "shapes": rows,
            "step_matmul_seconds": total_seconds,
            "step_matmul_gflop": total_flops / 1e9,
            "model_matmul_gflops": total_flops / total_seconds / 1e9,
        },
    )


def _timed_blocks(cfg, run_step):
    """Warm-up steps, then --repeats blocks of steps; returns (block seconds, steps, losses)."""
    for _ in range(cfg["warmup_steps"]):
        start = time.perf_counter()
        run_step()
        warm = time.perf_counter() - start
    steps = image_benchmark._steps_per_block(cfg, warm)
    blocks, losses = [], []
    for _ in range(cfg["repeats"]):
        start = time.perf_counter()
        for _ in range(steps):
            loss = run_step()
        blocks.append(time.perf_counter() - start)
        losses.append(float(loss))
    return blocks, steps, losses


def run_tfzoo_worker(cfg):
    """Times tfzoo's bert_pretraining training step on the synthetic batch."""
    from absl import flags as absl_flags

    import flags  # noqa: F401  (the shared flags)
    from nlp_models import bert
    from slim_compat import tf
    from tasks import bert as bert_tasks
    from training import distributed, precision, runtime, trainer

    task = bert_tasks.BertPretrainingTask()
    task.define_flags(flags)
    absl_flags.FLAGS(
        [
            "benchmark",
            f"--model_name={cfg['model']}",
            f"--precision={cfg['precision']}",
            "--optimizer=adamw",
            f"--learning_rate={GOOGLE_ADAMW['learning_rate']}",
            f"--decoupled_weight_decay={GOOGLE_ADAMW['weight_decay']}",
            "--learning_rate_decay_type=fixed",
        ]
    )
    params = absl_flags.FLAGS
    runtime.configure_tf_runtime()
    config = bert.get_config(cfg["model"])
    batch = synthetic_batch(config, cfg["batch_size"], cfg["seq_length"], cfg["predictions"])
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        local = [tf.GraphKeys.LOCAL_VARIABLES]
        # Held in variables: made once, then every step reads it where it lives.
        features = {
            k: tf.Variable(v, trainable=False, collections=local, name=f"bench_{k}").read_value()
            for k, v in batch.items()
        }
        # The trainer's own pieces: the model in the precision scope, the task's losses,
        # the update (schedule, AdamW, loss scaling, accumulation, allreduce).
        dist = distributed.Distributed(None)
        global_step = tf.train.get_or_create_global_step()
        compute = precision.resolve_precision(params.precision)
        task.setup = lambda _: (None, config, cfg["seq_length"])  # synthetic: no records
        with precision.model_scope(compute) as dtype:
            outputs = task.build_model(features, params, True, dtype)
        losses = task.build_losses(features, outputs, params)
        step = trainer.build_train_step(params, losses.total, compute, dist, global_step, 1, task)
        step = step._replace(train_op=tf.group(step.train_op))
        total_loss = losses.total
        with tf.Session() as sess:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            blocks, steps, losses = _timed_blocks(
                cfg, lambda: sess.run([step.train_op, total_loss])[1]
            )
    result = image_benchmark._block_stats(blocks, steps, cfg["batch_size"])
    result.update(
        peak_rss_mib=image_benchmark._peak_rss_mib(),
        final_loss=losses[-1],
        loss_finite=all(math.isfinite(v) for v in losses),
    )
    image_benchmark._write_json(cfg["result_file"], result)


def run_keras_worker(cfg):
    """Times keras-hub's BertMaskedLM.fit on the same batch, configuration and precision."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # Keras 3, not tf_keras
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import keras_hub
    import tensorflow as tf

    from nlp_models import bert

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[cfg["precision"]])
    config = bert.get_config(cfg["model"])
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size,
        dropout=config.hidden_dropout_prob,
        max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size,
    )
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.AdamW(**GOOGLE_ADAMW),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    batch = synthetic_batch(config, cfg["batch_size"], cfg["seq_length"], cfg["predictions"])
    x = {
        "token_ids": batch["input_ids"],
        "segment_ids": batch["segment_ids"],
        "padding_mask": batch["input_mask"].astype(bool),
        "mask_positions": batch["masked_lm_positions"],
    }
    data = tf.data.Dataset.from_tensors(
        (x, batch["masked_lm_ids"], batch["masked_lm_weights"])
    ).repeat()
    warmup, repeats = cfg["warmup_steps"], cfg["repeats"]
    losses, stamps = [], []

    class BlockTimer(keras.callbacks.Callback):
        steps = None

        def on_train_begin(self, logs=None):
            self.last = time.perf_counter()

        def on_train_batch_end(self, batch_index, logs=None):
            loss = float(logs["loss"])  # a host read: waits for the step
            now = time.perf_counter()
            step_seconds, self.last = now - self.last, now
            if batch_index == warmup - 1:
                BlockTimer.steps = image_benchmark._steps_per_block(cfg, step_seconds)
            if batch_index >= warmup - 1 and (batch_index - warmup + 1) % BlockTimer.steps == 0:
                losses.append(loss)
                stamps.append(now)
                self.model.stop_training = len(stamps) > repeats

    model.fit(data, epochs=1, steps_per_epoch=10**9, verbose=0, callbacks=[BlockTimer()])
    blocks = [b - a for a, b in zip(stamps, stamps[1:])]
    result = image_benchmark._block_stats(blocks, BlockTimer.steps, cfg["batch_size"])
    result.update(
        keras_version=keras.__version__,
        keras_hub_version=keras_hub.__version__,
        jit_compile=bool(model.jit_compile),
        parameters=int(model.count_params()),
        peak_rss_mib=image_benchmark._peak_rss_mib(),
        final_loss=losses[-1],
        loss_finite=all(math.isfinite(v) for v in losses),
    )
    image_benchmark._write_json(cfg["result_file"], result)


WORKERS = {
    "matmul": run_matmul_worker,
    "shapes": run_shapes_worker,
    "tfzoo": run_tfzoo_worker,
    "keras": run_keras_worker,
}


# ------------------------------------------------------------------------------------ driver


def run_worker(kind, cfg, work_dir, timeout, launcher):
    """Runs one worker in its own process; its result dict, or {'error': ...}."""
    result_file = os.path.join(work_dir, f"{kind}.json")
    env = launcher.environment(kind if kind != "matmul" else "machine")
    command = [sys.executable, _SCRIPT, f"--worker={kind}", "--worker_config"]
    command.append(json.dumps(dict(cfg, result_file=result_file)))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=_REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0 or not os.path.exists(result_file):
        lines = (proc.stderr or proc.stdout or "").strip().splitlines() or ["(no output)"]
        return {"error": f"exit code {proc.returncode}: {lines[-1].strip()}"}
    with open(result_file) as f:
        result = json.load(f)
    result["wall_seconds"] = time.perf_counter() - start
    return result


def report_rows(args, report):
    """Markdown table rows (sequences/s, ms/step, MFU) of the report."""
    from nlp_models import bert

    config = bert.get_config(args.model)
    flops = bert.pretraining_flops_per_example(config, args.seq_length, args.predictions)
    rate = (report["matmul"].get("matmul_gflops") or {}).get(args.precision)
    lines = [
        f"matmul {args.precision}: {rate:.0f} GFLOP/s; training FLOPs per sequence "
        f"{flops / 1e9:.1f} G ({args.model}, seq {args.seq_length}, "
        f"{args.predictions} predictions); CPU {report['matmul'].get('cpu')}"
        if rate
        else f"matmul: {report['matmul'].get('error')}",
        "",
        "| run | batch | precision | sequences/s (min-max) | ms/step | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("tfzoo", "keras"):
        result = report.get(name)
        if result is None:
            continue
        label = "tfzoo bert_pretraining" if name == "tfzoo" else "keras-hub BertMaskedLM.fit"
        if "error" in result:
            lines.append(
                f"| {label} | {args.batch_size} | {args.precision} | {result['error']} | | |"
            )
            continue
        mfu = flops * result["images_per_sec"] / 1e9 / rate if rate else float("nan")
        result["mfu"] = mfu
        lines.append(
            f"| {label} | {args.batch_size} | {args.precision} | "
            f"{result['images_per_sec']:.2f} ({result['images_per_sec_min']:.2f}-"
            f"{result['images_per_sec_max']:.2f}) | {result['ms_per_step']:.0f} | {mfu:.0%} |"
        )
    shapes = report.get("shapes") or {}
    if "model_matmul_gflops" in shapes and rate:
        own = shapes["model_matmul_gflops"]
        result = report.get("tfzoo") or {}
        lines += [
            "",
            f"the step's own matmul shapes, each timed alone: {own:.0f} GFLOP/s = "
            f"{own / rate:.0%} of the {args.matmul_size}^2 rate, so {own / rate:.0%} is the "
            f"MFU of a step that only ran its matmuls ({shapes['step_matmul_seconds']:.2f} s "
            f"of matmuls per step of {args.batch_size})",
        ]
        if "ms_per_step" in result:
            share = shapes["step_matmul_seconds"] / (result["ms_per_step"] / 1000.0)
            lines.append(
                f"tfzoo's step: {share:.0%} of its time is what its matmuls alone take; "
                "the rest is the element-wise work (layer norms, GELU, softmax, dropout, "
                "the optimizer) and what is not overlapped"
            )
    if "error" not in report.get("tfzoo", {"error": 1}) and "error" not in report.get(
        "keras", {"error": 1}
    ):
        ratio = report["tfzoo"]["images_per_sec"] / report["keras"]["images_per_sec"]
        lines += ["", f"tfzoo / Keras: {ratio:.2f}x"]
    return lines


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bert_base", help="a name of nlp_models/bert.py")
    parser.add_argument("--batch_size", type=int, default=32, help="sequences per step")
    parser.add_argument("--seq_length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--predictions", type=int, default=20, help="masked positions per sequence")
    parser.add_argument("--precision", default="fp32", choices=sorted(KERAS_POLICIES))
    parser.add_argument("--warmup_steps", type=int, default=3, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=3, help="fewest steps per timed block")
    parser.add_argument("--block_seconds", type=float, default=30.0, help="length of a block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per run")
    parser.add_argument("--matmul_size", type=int, default=2048, help="N of the NxN matmul")
    parser.add_argument("--matmul_seconds", type=float, default=10.0, help="matmul timing")
    parser.add_argument(
        "--shape_seconds", type=float, default=2.0, help="timing of each of the step's matmuls"
    )
    parser.add_argument(
        "--no_shapes", action="store_true", help="skip timing the step's own matmul shapes"
    )
    parser.add_argument("--no_peer", action="store_true", help="skip the Keras peer")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker")
    parser.add_argument("--output_json", default=None, help="write the report here too")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker_config", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        WORKERS[args.worker](json.loads(args.worker_config))
        return 0
    cfg = {
        k: getattr(args, k)
        for k in (
            "model",
            "batch_size",
            "seq_length",
            "predictions",
            "precision",
            "warmup_steps",
            "steps",
            "block_seconds",
            "repeats",
            "matmul_size",
            "matmul_seconds",
            "shape_seconds",
        )
    }
    cfg["precisions"] = sorted({"fp32", args.precision})
    launcher = image_benchmark.Launcher(tempfile.mkdtemp(prefix="tfzoo_bert_bench_"), args.timeout)
    report = {"args": vars(args)}
    kinds = ["matmul"] + ([] if args.no_shapes else ["shapes"]) + ["tfzoo"]
    kinds += [] if args.no_peer else ["keras", "matmul_after"]
    for kind in kinds:
        print(f"{kind} ...", file=sys.stderr, flush=True)
        worker = "matmul" if kind.startswith("matmul") else kind
        with tempfile.TemporaryDirectory() as work_dir:
            report[kind] = run_worker(worker, cfg, work_dir, args.timeout, launcher)
    if "matmul_after" in report and "matmul_gflops" in report["matmul_after"]:
        # The machine is shared: the rate the MFU divides by is the mean of the two
        # measurements around the timed runs.
        before, after = report["matmul"]["matmul_gflops"], report["matmul_after"]["matmul_gflops"]
        report["matmul"]["matmul_gflops"] = {k: (before[k] + after[k]) / 2 for k in before}
    print("\n".join(report_rows(args, report)))
    if args.output_json:
        image_benchmark._write_json(args.output_json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
