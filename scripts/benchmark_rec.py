"""Recommendation throughput: DeepFM beside a Keras 3 peer, and a large table's lookup+update.

Two parts, each configuration in a fresh worker process (printed as markdown rows):

* deepfm: examples/s of one DeepFM training step at a large batch. tfzoo: the ctr task's
  model and loss (tasks/recommendation.py, rec_models/ctr.py: first order + FM second
  order + a 3x256 tower) with tfzoo's Adagrad (sparse row updates), in graph mode. Keras 3:
  the same architecture (two Embedding tables, the FM term in keras.ops, 3x256 Dense)
  trained by model.fit with Adagrad. Both read one fixed random batch repeated by tf.data
  (no parsing), the same table size, batch and fp32; median of --repeats timed blocks.
* tables: lookup+update throughput of one --table_rows x --table_dim table (ids per
  second, all ranks together): 1 rank with sparse (IndexedSlices) updates, then 2 ranks
  (mpirun) with the gradient reduced as a dense allreduce, as an allgather of the
  IndexedSlices (tfzoo's Distributed.reduce_gradients, the trainer's path), or the table
  sharded over the ranks (rec_models/sharded_embedding.py: alltoall, no reduction).

    python scripts/benchmark_rec.py                      # both parts, ~5 min on 2 cores
    python scripts/benchmark_rec.py --parts=tables --table_rows=4000000
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_SCRIPT = os.path.abspath(__file__)
_ROOT = os.path.dirname(os.path.dirname(_SCRIPT))
if __package__ in (None, ""):
    sys.path.insert(0, _ROOT)

NUM_DENSE, NUM_SPARSE = 13, 26


def _batch(np, rows, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "dense": np.log1p(rng.integers(0, 100, (batch_size, NUM_DENSE))).astype(np.float32),
        "sparse": rng.integers(0, rows, (batch_size, NUM_SPARSE)).astype(np.int64),
        "label": (rng.random((batch_size, 1)) < 0.25).astype(np.float32),
    }


def _time_blocks(run_step, args, examples_per_step):
    for _ in range(args.warmup_steps):
        run_step()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            run_step()
        rates.append(examples_per_step * args.steps / (time.perf_counter() - start))
    return {"rate": statistics.median(rates), "min": min(rates), "max": max(rates)}


def tfzoo_deepfm_worker(args):
    import numpy as np

    from training import runtime

    runtime.configure_tf_runtime()
    from slim_compat import tf
    from tasks import recommendation
    from training import optimizers

    ctr_task = recommendation.CTRTask()
    batch = _batch(np, args.table_rows, args.batch_size)
    params = argparse.Namespace(
        model_name="deepfm",
        embedding_dim=args.embedding_dim,
        ctr_hidden_units="256,256,256",
        num_cross_layers=3,
        auc_num_buckets=16,
        model_parallel_embeddings=False,
        weight_decay=0.0,
        adagrad_initial_accumulator_value=0.1,
    )
    # The table size the converter would have written (criteo.json's num_rows).
    ctr_task._metadata = lambda p: {"num_rows": args.table_rows}
    features = tf.data.make_one_shot_iterator(
        tf.data.Dataset.from_tensors(batch).repeat().prefetch(4)
    ).get_next()
    outputs = ctr_task.build_model(features, params, True, tf.float32)
    loss = ctr_task.build_losses(features, outputs, params).total
    optimizer = optimizers.configure_optimizer("adagrad", args.learning_rate, params)
    train_op = optimizer.minimize(loss, global_step=tf.train.get_or_create_global_step())
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        result = _time_blocks(lambda: session.run(train_op), args, args.batch_size)
    return dict(result, side="tfzoo")


def keras_deepfm_worker(args):
    import keras
    import numpy as np
    import tensorflow as tf

    batch = _batch(np, args.table_rows, args.batch_size)
    dense_in = keras.Input((NUM_DENSE,), name="dense_features")
    sparse_in = keras.Input((NUM_SPARSE,), dtype="int64", name="sparse_ids")
    first = keras.layers.Embedding(args.table_rows, 1, name="first_order")(sparse_in)
    fields = keras.layers.Embedding(
        args.table_rows,
        args.embedding_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name="embedding",
    )(sparse_in)
    linear = keras.ops.sum(first, axis=1) + keras.layers.Dense(1)(dense_in)
    square_of_sum = keras.ops.square(keras.ops.sum(fields, axis=1))
    sum_of_squares = keras.ops.sum(keras.ops.square(fields), axis=1)
    second = 0.5 * keras.ops.sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)
    x = keras.ops.concatenate([keras.layers.Flatten()(fields), dense_in], axis=-1)
    for _ in range(3):
        x = keras.layers.Dense(256, activation="relu")(x)
    logits = linear + second + keras.layers.Dense(1)(x)
    model = keras.Model({"dense_features": dense_in, "sparse_ids": sparse_in}, logits)
    model.compile(
        optimizer=keras.optimizers.Adagrad(args.learning_rate, initial_accumulator_value=0.1),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    inputs = {"dense_features": batch["dense"], "sparse_ids": batch["sparse"]}
    dataset = tf.data.Dataset.from_tensors((inputs, batch["label"])).repeat().prefetch(4)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch_index, logs=None):
            self.times.append(time.perf_counter())

    timer = Timer()
    steps = args.warmup_steps + args.repeats * args.steps
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
    t = timer.times[args.warmup_steps - 1 :]
    rates = [
        args.batch_size * args.steps / (t[(i + 1) * args.steps] - t[i * args.steps])
        for i in range(args.repeats)
    ]
    return {
        "side": "keras",
        "rate": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "keras": keras.__version__,
        "jit_compile": bool(model.jit_compile),
    }


def table_worker(args):
    import numpy as np

    from training import distributed, runtime

    runtime.configure_tf_runtime()
    from rec_models import layers, sharded_embedding
    from slim_compat import tf

    dist = distributed.init()
    rng = np.random.default_rng(dist.rank)
    ids_value = rng.integers(0, args.table_rows, (args.batch_size, NUM_SPARSE)).astype(np.int64)
    # Horovod: constant ids would let Grappler fold (run) the collectives that depend on
    # them: see distributed.run_time_input (the trainer's ids come from its input).
    ids = distributed.run_time_input(tf.constant(ids_value))
    if args.mode == "model_parallel":
        embeddings = layers.Embeddings(sharded_embedding.ModelParallel(dist.hvd))
    else:
        embeddings = layers.Embeddings()
    rows = embeddings.lookup("table", ids, args.table_rows, args.table_dim)
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(rows, axis=1) - 1.0))
    (table,) = tf.trainable_variables()
    (grad,) = tf.gradients(loss, [table])
    if args.mode == "dense":
        grad = tf.convert_to_tensor(grad)
    if args.mode in ("dense", "allgather"):
        # Horovod: the trainer's reduction (allreduce of a dense tensor, allgather of slices).
        (grad,) = dist.reduce_gradients([grad])
    optimizer = tf.train.GradientDescentOptimizer(args.learning_rate)
    train_op = optimizer.apply_gradients([(grad, table)])
    with tf.Session(config=distributed.session_config(dist)) as session:
        # A model-parallel shard is a local variable (rec_models/sharded_embedding.py).
        session.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        result = _time_blocks(lambda: session.run(train_op), args, args.batch_size * NUM_SPARSE)
    # Ids per second of all ranks: every rank times the same steps.
    result = {k: v * dist.size for k, v in result.items()}
    shard = int(np.prod(table.shape.as_list())) * 4 / 2**20
    return dict(result, mode=args.mode, ranks=dist.size, rank=dist.rank, table_mib_per_rank=shard)


WORKERS = {
    "tfzoo_deepfm": tfzoo_deepfm_worker,
    "keras_deepfm": keras_deepfm_worker,
    "table": table_worker,
}


def _run_worker(args, worker, ranks=None, **overrides):
    argv = [sys.executable, _SCRIPT, f"--worker={worker}"]
    for key, value in dict(vars(args), **overrides).items():
        if key not in ("worker", "parts", "output_json", "deepfm_table_rows"):
            argv.append(f"--{key}={value}")
    env = dict(os.environ, PYTHONPATH=_ROOT)
    if ranks:
        argv = [
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "--mca",
            "mpi_yield_when_idle",
            "1",
            "-np",
            str(ranks),
            "-x",
            "PYTHONPATH",
            "-x",
            "TF_CPP_MIN_LOG_LEVEL",
        ] + argv
    print(f"[benchmark_rec] {worker} {overrides} ranks={ranks or 1}", file=sys.stderr)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    results = [
        json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")
    ]
    if proc.returncode or not results:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["no result"]}
    return results[0]


def _fmt(result, unit):
    if "error" in result:
        return f"error: {result['error'][0][:80]}"
    unit = f" {unit}" if unit else ""
    return f"{result['rate']:,.0f}{unit} ({result['min']:,.0f}-{result['max']:,.0f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="deepfm,tables", help="deepfm, tables or both.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="sparse", help=argparse.SUPPRESS)
    parser.add_argument("--batch_size", type=int, default=8192, help="Examples per step per rank.")
    parser.add_argument(
        "--deepfm_table_rows",
        default="1000000,5000000",
        help="deepfm: comma-separated table sizes, one pair of rows per size.",
    )
    parser.add_argument("--table_rows", type=int, default=1_000_000, help="tables: rows.")
    parser.add_argument("--table_dim", type=int, default=32, help="tables: width of the table.")
    parser.add_argument("--embedding_dim", type=int, default=16, help="deepfm: field embedding.")
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="Steps per timed block.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed blocks (median reported).")
    parser.add_argument("--output_json", default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    if args.worker:
        from training import allocator

        # Both sides on tcmalloc, as tfzoo's entry points run (training/allocator.py).
        allocator.use_tcmalloc()
        result = WORKERS[args.worker](args)
        # Rank 0 alone reports: mpirun merges the ranks' stdout, and two lines written at
        # once can arrive joined.
        if result.get("rank", 0) == 0:
            print("RESULT " + json.dumps(result), flush=True)
        return
    parts = args.parts.split(",")
    report = {}
    if "deepfm" in parts:
        report["deepfm"] = []
        print(
            f"\nDeepFM, batch {args.batch_size}, embedding {args.embedding_dim}, 3x256 tower, "
            "Adagrad, fp32, one random batch repeated\n"
        )
        print(
            "| table rows | tfzoo ex/s (min-max) | Keras model.fit ex/s (min-max) | "
            "tfzoo / Keras |\n|---|---|---|---|"
        )
        for rows in [int(r) for r in args.deepfm_table_rows.split(",")]:
            tfzoo = _run_worker(args, "tfzoo_deepfm", table_rows=rows)
            keras = _run_worker(args, "keras_deepfm", table_rows=rows)
            report["deepfm"].append({"table_rows": rows, "tfzoo": tfzoo, "keras": keras})
            ok = tfzoo.get("rate") and keras.get("rate")
            ratio = f"{tfzoo['rate'] / keras['rate']:.2f}x" if ok else "n/a"
            print(f"| {rows:,} | {_fmt(tfzoo, '')} | {_fmt(keras, '')} | {ratio} |", flush=True)
        print(f"\nKeras {keras.get('keras', '?')}, jit_compile={keras.get('jit_compile')}")
    if "tables" in parts:
        rows = [
            ("1 rank, sparse update", "sparse", None),
            ("2 ranks, dense allreduce", "dense", 2),
            ("2 ranks, sparse allgather", "allgather", 2),
            ("2 ranks, model-parallel (alltoall)", "model_parallel", 2),
        ]
        results = {}
        print(
            f"\nLookup+update of a {args.table_rows:,} x {args.table_dim} fp32 table, "
            f"{args.batch_size} x {NUM_SPARSE} ids per step per rank, SGD\n"
        )
        print("| configuration | ids/s, all ranks (min-max) | table MiB per rank |\n|---|---|---|")
        for label, mode, ranks in rows:
            result = _run_worker(args, "table", ranks=ranks, mode=mode)
            results[mode] = result
            mib = result.get("table_mib_per_rank")
            print(
                f"| {label} | {_fmt(result, 'ids/s')} | {mib if mib is None else round(mib)} |",
                flush=True,
            )
        report["tables"] = results
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
