"""Epoch time of the graph models: full-batch GCN and sampled GraphSAGE beside a Keras 3 GCN.

Every configuration runs in its own process on the same generated graph (a planted
partition, datasets/graph_formats.py, the same seed everywhere) and the same malloc
(tcmalloc where installed, as tfzoo's entry points use):

* tfzoo gcn, full batch: the node_classification task's training step (its input
  pipeline, Kipf & Welling's GCN, the masked loss, Adam), one step = one epoch, in a
  graph-mode session, as the trainer runs it;
* tfzoo graphsage_mean, sampled: one epoch = every training target once, in mini-batches
  of --sage_batch_size with --fanouts neighbours sampled on the host (the task's
  generator, prefetched); and the same under `mpirun -np 2`, each rank taking half of
  each batch, the gradients averaged by Horovod;
* Keras 3 gcn: the same GCN (dropout 0.5 on both layers' inputs, 16 hidden, Glorot, no
  bias, L2 5e-4 / 2 on the first kernel, the same sparse A_hat as a tf.SparseTensor and
  tf.sparse.sparse_dense_matmul, Adam 0.01, the train mask as sample weights scaled to a
  masked mean) trained with model.fit(batch_size=N), one step per epoch.

Each side warms up (--warmup_epochs), then times --repeats blocks of --epochs epochs;
reported: the median epoch time (min-max over blocks) and epochs per second, and the
ratio tfzoo / Keras of the GCN epoch rates. The sides alternate over --rounds fresh
processes (A B A B), and the blocks of all rounds are pooled.

    python scripts/benchmark_graph.py                      # 100k nodes, about 6 minutes
    python scripts/benchmark_graph.py --num_nodes=200000 --features=128 --output_json=g.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

_SCRIPT = os.path.abspath(__file__)
_REPO_ROOT = os.path.dirname(os.path.dirname(_SCRIPT))
if __package__ in (None, ""):
    sys.path.insert(0, _REPO_ROOT)


def planted_spec(cfg):
    """The --graph_planted_partition value of the benchmark graph."""
    return (
        f"nodes={cfg['num_nodes']},classes={cfg['classes']},p_in={cfg['p_in']},"
        f"p_out={cfg['p_out']},noise=3.0,features={cfg['features']},"
        f"train_per_class={cfg['train_per_class']},val=1000,test=1000,seed=0"
    )


def task_params(cfg, model_name):
    """The flags of the node_classification task for this benchmark (a namespace)."""
    import types

    return types.SimpleNamespace(
        dataset_name="planted_partition",
        dataset_dir=None,
        graph_files=None,
        graph_planted_partition=planted_spec(cfg),
        graph_directed=False,
        model_name=model_name,
        graph_batching=None,
        graph_fanouts=cfg["fanouts"],
        graph_hidden_units=None,
        graph_int_features="auto",
        dropout_keep_prob=None,
        weight_decay=5e-4 if model_name == "gcn" else 0.0,
        label_smoothing=0.0,
    )


def _blocks(run_epoch, cfg):
    """Warm-up, then --repeats timed blocks of --epochs epochs: seconds per epoch each."""
    for _ in range(cfg["warmup_epochs"]):
        run_epoch()
    times = []
    for _ in range(cfg["repeats"]):
        start = time.perf_counter()
        for _ in range(cfg["epochs"]):
            run_epoch()
        times.append((time.perf_counter() - start) / cfg["epochs"])
    return times


def run_tfzoo_worker(cfg, model_name):
    """One process, or one rank of an mpirun (its gradients averaged by Horovod)."""
    from slim_compat import tf
    from tasks import node_classification
    from training import distributed, runtime

    runtime.configure_tf_runtime()
    dist = distributed.init()  # Horovod only under a launcher
    params = task_params(cfg, model_name)
    task = node_classification.NodeClassificationTask()
    build_start = time.perf_counter()
    graph = task.graph(params)
    # Horovod: the global batch of one process, split over the ranks.
    batch_size = cfg["sage_batch_size"] // dist.size
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        data = task.build_inputs(params, "train", True, dist.rank, dist.size, batch_size, seed=0)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        outputs = task.build_model(features, params, True, tf.float32)
        losses = task.build_losses(features, outputs, params)
        optimizer = tf.train.AdamOptimizer(0.01)
        variables = tf.trainable_variables()
        grads = tf.gradients(losses.total, variables)
        # Horovod: the gradients averaged over ranks (the identity in one process).
        grads = dist.reduce_gradients(grads)
        train_op = optimizer.apply_gradients(zip(grads, variables))
        steps = data.batches_per_epoch
        with tf.Session(config=distributed.session_config(dist)) as session:
            session.run(tf.global_variables_initializer())
            if dist.hvd:  # Horovod: every rank starts from rank 0's weights
                session.run(dist.hvd.broadcast_global_variables(0))
            build_seconds = time.perf_counter() - build_start

            def run_epoch():
                for _ in range(steps):
                    session.run(train_op)

            times = _blocks(run_epoch, cfg)
    return {
        "seconds_per_epoch": times,
        "steps_per_epoch": steps,
        "ranks": dist.size,
        "nodes": graph.num_nodes,
        "edges": graph.num_edges,
        "train_nodes": int(graph.train_mask.sum()),
        "build_seconds": build_seconds,
    }


def run_keras_worker(cfg):
    import keras
    import numpy as np
    import tensorflow as tf

    from datasets import graphs
    from tasks import node_classification

    params = task_params(cfg, "gcn")
    graph = node_classification.load_graph(params)
    a_hat = tf.SparseTensor(*graphs.sparse_tensor_parts(graphs.normalized_adjacency(graph)))
    n, num_classes = graph.num_nodes, graph.num_classes

    class GraphConv(keras.layers.Layer):
        def __init__(self, units, activation=None, l2=0.0):
            super().__init__()
            self.units, self.activation = units, keras.activations.get(activation)
            self.l2 = keras.regularizers.L2(l2) if l2 else None

        def build(self, input_shape):
            self.kernel = self.add_weight(
                shape=(input_shape[-1], self.units),
                initializer="glorot_uniform",
                regularizer=self.l2,
            )

        def call(self, x):
            return self.activation(tf.sparse.sparse_dense_matmul(a_hat, x @ self.kernel))

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(graph.num_features,))
    net = keras.layers.Dropout(0.5)(inputs)
    # Keras's L2(l) is l * sum(w^2); Kipf's 5e-4 * l2_loss is 5e-4 * sum(w^2) / 2.
    net = GraphConv(16, "relu", l2=2.5e-4)(net)
    net = keras.layers.Dropout(0.5)(net)
    logits = GraphConv(num_classes)(net)
    model = keras.Model(inputs, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=cfg["keras_jit_compile"],
    )
    x = np.asarray(graph.features, np.float32)
    y = np.maximum(graph.labels, 0)
    # Keras divides the weighted sum by the batch size: scale to the train mask's mean.
    weights = graph.train_mask.astype(np.float32) * (n / graph.train_mask.sum())
    epoch_times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.start)

    total = cfg["warmup_epochs"] + cfg["repeats"] * cfg["epochs"]
    start = time.perf_counter()
    model.fit(
        x,
        y,
        sample_weight=weights,
        batch_size=n,
        epochs=total,
        shuffle=False,
        verbose=0,
        callbacks=[Timer()],
    )
    wall = time.perf_counter() - start
    timed = epoch_times[cfg["warmup_epochs"] :]
    blocks = [
        sum(timed[i * cfg["epochs"] : (i + 1) * cfg["epochs"]]) / cfg["epochs"]
        for i in range(cfg["repeats"])
    ]
    return {
        "seconds_per_epoch": blocks,
        "steps_per_epoch": 1,
        "nodes": n,
        "edges": graph.num_edges,
        "train_nodes": int(graph.train_mask.sum()),
        "fit_wall_seconds": wall,
        "keras": keras.__version__,
        "jit_compile": str(cfg["keras_jit_compile"]),
    }


WORKERS = {
    "tfzoo_gcn": lambda cfg: run_tfzoo_worker(cfg, "gcn"),
    "tfzoo_graphsage_mean": lambda cfg: run_tfzoo_worker(cfg, "graphsage_mean"),
    "tfzoo_graphsage_mean_2ranks": lambda cfg: run_tfzoo_worker(cfg, "graphsage_mean"),
    "keras_gcn": run_keras_worker,
}
ROWS = (
    ("tfzoo_gcn", "tfzoo", "gcn", "full batch"),
    ("keras_gcn", "Keras 3 model.fit", "gcn", "full batch"),
    ("tfzoo_graphsage_mean", "tfzoo", "graphsage_mean", "sampled"),
    ("tfzoo_graphsage_mean_2ranks", "tfzoo, mpirun -np 2", "graphsage_mean", "sampled"),
)
# Workers launched on 2 ranks (mpirun; a rank waiting in an allreduce yields its core),
# and the environment every rank gets (the allocator as the one-process workers).
MPIRUN_WORKERS = {"tfzoo_graphsage_mean_2ranks": 2}
_RANK_ENV = ("PYTHONPATH", "LD_PRELOAD", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD")


def run_worker(kind, cfg, timeout):
    """Runs one worker in a fresh process on tcmalloc (when installed); its JSON result."""
    from training import allocator

    env = dict(os.environ, PYTHONPATH=_REPO_ROOT)
    library = allocator.tcmalloc_path()
    if library:
        env = allocator.tcmalloc_environment(env, library)
    command = [sys.executable, _SCRIPT, "--worker", kind, "--config", json.dumps(cfg)]
    if kind in MPIRUN_WORKERS:
        command = [
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "--mca",
            "mpi_yield_when_idle",
            "1",
            "-np",
            str(MPIRUN_WORKERS[kind]),
            *[x for name in sorted(env) if name in _RANK_ENV for x in ("-x", name)],
            *command,
        ]
    try:
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=_REPO_ROOT
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"}
    # Each rank prints its result; every step ends in an allreduce, so the ranks' epoch
    # times agree and the first result printed stands for the run.
    for line in proc.stdout.strip().splitlines():
        if line.startswith("{"):
            return json.loads(line)
    return {"error": "no result printed"}


def report(cfg, results):
    """Markdown rows of the measured results."""
    lines = [
        f"Graph: planted partition, {cfg['num_nodes']:,} nodes, {cfg['features']} features, "
        f"{cfg['classes']} classes, p_in={cfg['p_in']}, p_out={cfg['p_out']}; "
        f"GraphSAGE: batch {cfg['sage_batch_size']}, fanouts {cfg['fanouts']}.",
        "",
        "| side | model | batching | edges | train nodes | steps/epoch | ms/epoch (median, "
        "min-max) | epochs/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rates = {}
    for kind, side, model, batching in ROWS:
        result = results.get(kind)
        if result is None:
            continue
        if "error" in result:
            lines.append(f"| {side} | {model} | {batching} | error: {result['error']} | | | | |")
            continue
        times = result["seconds_per_epoch"]
        median = statistics.median(times)
        rates[kind] = 1.0 / median
        lines.append(
            f"| {side} | {model} | {batching} | {result['edges']:,} | {result['train_nodes']:,} "
            f"| {result['steps_per_epoch']} | {median * 1e3:.1f} ({min(times) * 1e3:.1f}-"
            f"{max(times) * 1e3:.1f}) | {1.0 / median:.2f} |"
        )
    if "tfzoo_gcn" in rates and "keras_gcn" in rates:
        lines += [
            "",
            f"GCN epoch rate tfzoo / Keras: {rates['tfzoo_gcn'] / rates['keras_gcn']:.2f}x",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_nodes", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--p_in", type=float, default=5e-4, help="edge probability in a class")
    parser.add_argument("--p_out", type=float, default=1.25e-5, help="... across classes")
    parser.add_argument(
        "--train_per_class", type=int, default=2000, help="training targets per class"
    )
    parser.add_argument("--sage_batch_size", type=int, default=512)
    parser.add_argument("--fanouts", default="25,10")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks")
    parser.add_argument("--warmup_epochs", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=2, help="fresh processes per side, alternating sides"
    )
    parser.add_argument(
        "--keras_jit_compile",
        default="auto",
        help="model.compile(jit_compile=...) of the peer: auto (Keras's default), true, false",
    )
    parser.add_argument("--only", default=",".join(WORKERS), help="comma-separated workers")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per worker")
    parser.add_argument("--output_json", default=None)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](json.loads(args.config))
        print(json.dumps(result))
        return
    jit = {"auto": "auto", "true": True, "false": False}.get(args.keras_jit_compile.lower())
    if jit is None:
        parser.error(
            f"--keras_jit_compile must be auto, true or false, got {args.keras_jit_compile!r}"
        )
    cfg = {
        k: v for k, v in vars(args).items() if k not in ("worker", "config", "only", "output_json")
    }
    cfg["keras_jit_compile"] = jit
    kinds = args.only.split(",")
    for kind in kinds:
        if kind not in WORKERS:
            parser.error(f"--only: unknown worker {kind!r}; expected any of {', '.join(WORKERS)}")
    results = {}
    # Rounds alternate the sides (A B A B ...), so a change in the machine's load (it is
    # shared) falls on both; each round is a fresh process, its blocks pooled.
    for round_index in range(args.rounds):
        for kind in kinds:
            print(f"round {round_index + 1}: {kind} ...", file=sys.stderr, flush=True)
            result = run_worker(kind, cfg, args.timeout)
            print(f"  {json.dumps(result)}", file=sys.stderr, flush=True)
            if kind not in results or "error" in result:
                results[kind] = result  # the first round, or an error that stands
            elif "error" not in results[kind]:
                results[kind]["seconds_per_epoch"] += result["seconds_per_epoch"]
    print(report(cfg, results))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"config": cfg, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
