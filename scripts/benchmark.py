"""Training throughput of tfzoo beside a Keras 3 peer, with memory, FLOPs utilisation and scaling.

For every model x batch size x precision x input, a fresh worker process builds the REAL
tfzoo training step (tasks/image_classification.build_train_step: the network in its
precision under the fp32-master-weight getter, TF-Slim's loss, then the trainer's own
update, training/trainer.build_train_step: the momentum optimizer, loss scaling for fp16,
the allreduce; the same functions the trainer calls), runs warm-up
steps, then times --repeats blocks, each of as many steps as last --block_seconds at the
last warm-up step's pace (and at least --steps). tfzoo's workers run on tcmalloc, as its
entry points do (training/allocator.py). Inputs:

* synthetic: one fixed batch held in a variable on the device, no input pipeline;
* pipeline: the trainer's input pipeline (training/input_pipeline.build_dataset) on the
  'mock' dataset, which makes and preprocesses every image on the CPU.

Reported per configuration: images per second (median over repeats, min-max), ms per step,
steps per second, the peak resident memory of the worker process, the model's training
FLOPs per image (counted by tf.compat.v1.profiler on the training graph), and the model
FLOPs utilisation (MFU): FLOPs per image x images per second over the throughput of an
NxN tf.matmul in the same precision, measured in the same run.

The peer: the same architecture as a keras.applications model (ResNet50, MobileNetV2,
InceptionV3, ...; weights=None), or an equivalent keras.Sequential for lenet and cifarnet,
trained with model.fit on the same batch (the same stateless random tensor), batch size
and precision (mixed_bfloat16 / mixed_float16), each side in its own process (Keras 3
runs eagerly / tf.function, tfzoo in graph mode), on the same malloc as tfzoo's workers
(like for like); --keras_allocators=tfzoo,system adds a row of the peer on glibc's malloc.

Scaling: --scaling_model (default: cifarnet) at the first batch size, synthetic input,
under Horovod with 1 and N ranks (mpirun --allow-run-as-root --oversubscribe -np N;
N = the GPUs of a GPU machine, else --scaling_ranks, default 2), the fp32 matmul rate of
every core over one rank's share of them (what N ranks sharing a CPU can gain), and the
allreduce bandwidth of a --allreduce_mb tensor over the N ranks.

    python scripts/benchmark.py --output_json=benchmark.json    # the default set, < 10 min
    python scripts/benchmark.py --models=resnet_v1_50,inception_v3 --precisions=fp32,bf16 \\
        --input=synthetic,pipeline --no_scaling

Prints markdown tables of measured values to stdout (README.md's Benchmarks section says
how to read them and what bounds each figure), progress to stderr.
"""

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

_SCRIPT = os.path.abspath(__file__)
_REPO_ROOT = os.path.dirname(os.path.dirname(_SCRIPT))
if __package__ in (None, ""):
    # Run as a script, Python puts scripts/ first on sys.path; tfzoo's packages live one up.
    if _REPO_ROOT not in sys.path:
        sys.path.insert(0, _REPO_ROOT)

PRECISIONS = ("fp32", "bf16", "fp16")
# malloc of a worker process -> how the report names it.
ALLOCATORS = {"tcmalloc": "tcmalloc", "system": "glibc malloc"}
KERAS_ALLOCATOR_CHOICES = ("tfzoo", *ALLOCATORS)
INPUTS = ("synthetic", "pipeline")
KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
# tfzoo model -> keras.applications class of the same architecture (weights=None).
KERAS_APPLICATIONS = {
    "resnet_v1_50": "ResNet50",
    "resnet_v1_101": "ResNet101",
    "resnet_v1_152": "ResNet152",
    "resnet_v2_50": "ResNet50V2",
    "resnet_v2_101": "ResNet101V2",
    "resnet_v2_152": "ResNet152V2",
    "inception_v3": "InceptionV3",
    "inception_resnet_v2": "InceptionResNetV2",
    "mobilenet_v1": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "vgg_16": "VGG16",
    "vgg_19": "VGG19",
}
# tfzoo model -> a keras.Sequential with the same layer sizes (built in _keras_small_model).
KERAS_SEQUENTIAL = {"lenet": "Sequential (LeNet)", "cifarnet": "Sequential (CifarNet)"}
# The default set: one big and one depthwise ImageNet net, the two small classics. It runs
# in under 10 minutes on 2 CPU cores; inception_v3 and the others are a --models away.
DEFAULT_MODELS = ("resnet_v1_50", "mobilenet_v2", "lenet", "cifarnet")
SCALING_MODEL = "cifarnet"
# CPU flags the report lists beside the low-precision ones of training/hardware.py: the
# vector instructions that decide the figures.
VECTOR_CPU_FLAGS = {"avx2", "fma", "avx512f"}
MOCK_TRAIN_SIZE = 12800  # datasets/mock.py's train split: sets steps_per_epoch, as in training
SECONDS_PER_MATMUL_PRECISION = 2.0  # time spent timing each matmul precision


def keras_peer_name(model):
    """The Keras peer of a tfzoo model name, or None when there is none."""
    return KERAS_APPLICATIONS.get(model) or KERAS_SEQUENTIAL.get(model)


# ----------------------------------------------------------------------------------- workers
# Each worker runs in its own process, so its peak memory is its own and graph-mode tfzoo
# and eager Keras 3 never share a process. A worker gets a JSON config and writes a JSON
# result file.


def _peak_rss_mib():
    """High-water mark of this process's resident memory (Linux reports KiB), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _steps_per_block(cfg, step_seconds):
    """Steps per timed block: enough for cfg['block_seconds'] at the last warm-up step's pace,
    and at least cfg['steps']."""
    return max(cfg["steps"], math.ceil(cfg["block_seconds"] / max(step_seconds, 1e-6)))


def _block_stats(block_seconds, steps, images_per_step):
    """Median and spread over the timed blocks of `steps` steps each."""
    rates = [steps * images_per_step / s for s in block_seconds]
    median_seconds = statistics.median(block_seconds)
    return {
        "images_per_sec": statistics.median(rates),
        "images_per_sec_min": min(rates),
        "images_per_sec_max": max(rates),
        "ms_per_step": 1000.0 * median_seconds / steps,
        "steps_per_sec": steps / median_seconds,
        "steps_per_block": steps,
        "block_seconds": block_seconds,
    }


def _synthetic_batch(tf, batch_size, image_size, channels, num_classes, seed=0):
    """The benchmark batch: images uniform in [-1, 1), labels uniform in [0, num_classes).

    Stateless random ops give the same values in tfzoo's graph and in Keras's eager run.
    """
    images = tf.random.stateless_uniform(
        [batch_size, image_size, image_size, channels], seed=[seed, 1], minval=-1.0, maxval=1.0
    )
    labels = tf.random.stateless_uniform(
        [batch_size], seed=[seed, 2], minval=0, maxval=num_classes, dtype=tf.int64
    )
    return images, labels


def _parse_tfzoo_flags(cfg, extra=()):
    """Sets tfzoo's flags (flags.FLAGS) for this worker: defaults plus the config's values."""
    from absl import flags as absl_flags

    import flags  # noqa: F401  (defines the flags)

    argv = [
        "benchmark",
        f"--model_name={cfg['model']}",
        f"--batch_size={cfg['batch_size']}",
        f"--precision={cfg['precision']}",
        f"--num_classes={cfg['num_classes']}",
        f"--train_image_size={cfg['image_size']}",
        f"--intra_op_parallelism_threads={cfg.get('threads', 0)}",
        f"--inter_op_parallelism_threads={cfg.get('inter_threads', 0)}",
        "--dataset_name=mock",
    ]
    absl_flags.FLAGS(argv + list(extra))
    return absl_flags.FLAGS


def _tfzoo_graph(cfg, FLAGS, dist, tf):
    """Builds the input and the training step of `cfg` in the default graph.

    Returns:
        (the trainer's TrainStep, the total loss tensor).
    """
    from datasets import dataset_factory
    from image_models import nets_factory
    from tasks import image_classification
    from training import precision

    compute = precision.resolve_precision(FLAGS.precision)
    entry = nets_factory.get_entry(cfg["model"])
    tf.set_random_seed(0)
    global_step = tf.train.get_or_create_global_step()
    batch_size = cfg["batch_size"]
    if cfg["input"] == "synthetic":
        images, labels = _synthetic_batch(
            tf, batch_size, cfg["image_size"], cfg["channels"], cfg["num_classes"], seed=dist.rank
        )
        # Held in variables: the batch is made once, then every step reads it on the device.
        local = [tf.GraphKeys.LOCAL_VARIABLES]
        images = tf.Variable(images, trainable=False, collections=local, name="bench_images")
        labels = tf.Variable(labels, trainable=False, collections=local, name="bench_labels")
        images, labels = images.read_value(), labels.read_value()
        num_samples = MOCK_TRAIN_SIZE
    else:
        spec = dataset_factory.get_dataset(
            "mock", "train", None, None, mock_num_classes=cfg["num_classes"]
        )
        # The trainer's own pipeline with its flags (image_classification.make_dataset).
        dataset, _ = image_classification.make_dataset(spec, entry, True, dist, batch_size)
        images, labels = tf.data.make_one_shot_iterator(dataset).get_next()
        num_samples = spec.num_samples
    steps_per_epoch = max(num_samples // (batch_size * dist.size), 1)
    network_fn = nets_factory.get_network_fn(
        cfg["model"], cfg["num_classes"], weight_decay=FLAGS.weight_decay, is_training=True
    )
    step, total_loss, _, _ = image_classification.build_train_step(
        FLAGS,
        network_fn,
        images,
        labels,
        cfg["num_classes"],
        compute,
        dist,
        global_step,
        steps_per_epoch,
        entry.aux_loss_weight,
    )
    return step, total_loss


def run_tfzoo_worker(cfg):
    """Times the tfzoo training step of one configuration (one rank of a Horovod run)."""
    FLAGS = _parse_tfzoo_flags(cfg)
    from slim_compat import tf
    from training import distributed, runtime

    runtime.configure_tf_runtime()
    tf.logging.set_verbosity(tf.logging.ERROR)
    # Horovod: initialised when launched by mpirun (or forced for the 1-rank scaling run).
    dist = distributed.init(FLAGS)
    with tf.Graph().as_default():
        step, total_loss = _tfzoo_graph(cfg, FLAGS, dist, tf)
        init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())
        # Horovod: every rank starts from rank 0's weights, as in training.
        broadcast = dist.hvd.broadcast_global_variables(0) if dist.hvd else tf.no_op()
        rss = tf.placeholder(tf.float32, [])
        peak_over_ranks = dist.allreduce_max(rss, name="peak_rss_over_ranks")
        # Horovod: every rank must run as many steps as the others, or one waits forever.
        local_steps = tf.placeholder(tf.float32, [])
        steps_over_ranks = dist.allreduce_max(local_steps, name="steps_over_ranks")
        fetches = [step.train_op, total_loss]
        with tf.Session(config=distributed.session_config(dist, FLAGS)) as sess:
            sess.run(init)
            sess.run(broadcast)
            for _ in range(cfg["warmup_steps"]):
                start = time.perf_counter()
                sess.run(fetches)
                warm_step_seconds = time.perf_counter() - start
            steps = _steps_per_block(cfg, warm_step_seconds)
            steps = int(sess.run(steps_over_ranks, {local_steps: steps}))
            block_seconds, losses = [], []
            for _ in range(cfg["repeats"]):
                start = time.perf_counter()
                for _ in range(steps):
                    _, loss = sess.run(fetches)
                block_seconds.append(time.perf_counter() - start)
                losses.append(float(loss))
            peak_rss = float(sess.run(peak_over_ranks, {rss: _peak_rss_mib()}))
    result = _block_stats(block_seconds, steps, cfg["batch_size"] * dist.size)
    result.update(
        ranks=dist.size,
        peak_rss_mib=peak_rss,
        final_loss=losses[-1],
        loss_finite=all(math.isfinite(v) for v in losses),
    )
    if dist.is_chief:
        _write_json(cfg["result_file"], result)


def count_training_flops(cfg):
    """Training FLOPs per image of the real training step, counted by tf.compat.v1.profiler.

    The step is built at batch 1 and at batch 2 in fp32 (FLOPs do not depend on the
    precision) and the two counts are subtracted: what remains is the work of one image,
    forward and backward, without the batch-independent ops (initialisers, optimizer
    update, weight decay). The forward pass alone is counted the same way, to check the
    count against the usual "training = 3 x forward" rule.

    Returns:
        {"train_flops_per_image": float, "forward_flops_per_image": float}
    """
    from slim_compat import tf
    from tasks import image_classification
    from training import distributed

    options = tf.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"

    def count(batch_size, training):
        sub = dict(cfg, batch_size=batch_size, input="synthetic", precision="fp32")
        FLAGS = _parse_tfzoo_flags(sub)
        with tf.Graph().as_default() as graph:
            if training:
                _tfzoo_graph(sub, FLAGS, distributed.Distributed(None), tf)
            else:
                from image_models import nets_factory

                images, _ = _synthetic_batch(
                    tf, batch_size, cfg["image_size"], cfg["channels"], cfg["num_classes"]
                )
                network_fn = nets_factory.get_network_fn(
                    cfg["model"], cfg["num_classes"], is_training=True
                )
                image_classification.build_logits(network_fn, images, "fp32")
            return tf.profiler.profile(graph, options=options).total_float_ops

    tf.disable_eager_execution()
    tf.logging.set_verbosity(tf.logging.ERROR)
    return {
        "train_flops_per_image": float(count(2, True) - count(1, True)),
        "forward_flops_per_image": float(count(2, False) - count(1, False)),
    }


def _keras_small_model(keras, tf, model, input_shape, num_classes):
    """keras.Sequential with tfzoo's layer sizes for lenet and cifarnet."""
    layers = keras.layers
    if model == "lenet":
        body = [
            layers.Conv2D(32, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            layers.Dropout(0.5),
        ]
    elif model == "cifarnet":

        def lrn(t):  # as tfzoo's cifarnet: LRN in fp32 (no bf16 LRN kernel on CPU)
            out = tf.nn.local_response_normalization(
                tf.cast(t, tf.float32), 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75
            )
            return tf.cast(out, t.dtype)

        body = [
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(3, 2, padding="same"),
            layers.Lambda(lrn),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            layers.Lambda(lrn),
            layers.MaxPooling2D(3, 2, padding="same"),
            layers.Flatten(),
            layers.Dense(384, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(192, activation="relu"),
        ]
    else:
        raise ValueError(f"No Keras Sequential for {model!r}; expected one of: lenet, cifarnet")
    return keras.Sequential(
        [keras.Input(input_shape)] + body + [layers.Dense(num_classes)], name=model
    )


def run_keras_worker(cfg):
    """Times keras Model.fit on the same batch, batch size and precision as tfzoo."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # Keras 3, not tf_keras
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    if cfg.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[cfg["precision"]])
    shape = (cfg["image_size"], cfg["image_size"], cfg["channels"])
    if cfg["model"] in KERAS_APPLICATIONS:
        application = getattr(keras.applications, KERAS_APPLICATIONS[cfg["model"]])
        model = application(
            weights=None,
            input_shape=shape,
            classes=cfg["num_classes"],
            classifier_activation=None,
        )
    else:
        model = _keras_small_model(keras, tf, cfg["model"], shape, cfg["num_classes"])
    # tfzoo's default optimizer (momentum 0.9, learning rate 0.01); Keras wraps it in its
    # dynamic LossScaleOptimizer under mixed_float16, like tfzoo's fp16.
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, labels = _synthetic_batch(
        tf, cfg["batch_size"], cfg["image_size"], cfg["channels"], cfg["num_classes"]
    )
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    warmup, repeats = cfg["warmup_steps"], cfg["repeats"]
    losses, stamps = [], []  # stamps: the end of the warm-up, then of every timed block

    class BlockTimer(keras.callbacks.Callback):
        """Warm-up steps, then `repeats` blocks sized like tfzoo's (_steps_per_block)."""

        steps = None  # per block, set at the end of the warm-up

        def on_train_begin(self, logs=None):
            self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = float(logs["loss"])  # a host read: waits for the step to finish
            now = time.perf_counter()
            step_seconds, self.last = now - self.last, now
            if batch == warmup - 1:
                BlockTimer.steps = _steps_per_block(cfg, step_seconds)
            if batch >= warmup - 1 and (batch - warmup + 1) % BlockTimer.steps == 0:
                losses.append(loss)
                stamps.append(now)
                self.model.stop_training = len(stamps) > repeats

    model.fit(dataset, epochs=1, steps_per_epoch=10**9, verbose=0, callbacks=[BlockTimer()])
    block_seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    result = _block_stats(block_seconds, BlockTimer.steps, cfg["batch_size"])
    result.update(
        keras_model=keras_peer_name(cfg["model"]),
        keras_version=keras.__version__,
        jit_compile=bool(model.jit_compile),
        parameters=int(model.count_params()),
        peak_rss_mib=_peak_rss_mib(),
        final_loss=losses[-1],
        loss_finite=all(math.isfinite(v) for v in losses),
    )
    _write_json(cfg["result_file"], result)


def model_defaults(model, image_size_override=None, num_classes_override=None):
    """(image_size, channels of the synthetic batch, num_classes) of a registered model."""
    from image_models import nets_factory

    entry = nets_factory.get_entry(model)
    image_size = image_size_override or entry.image_size
    channels = nets_factory.input_channels(model) or 1  # MNIST-style nets eat grayscale
    small = entry.image_size <= 32  # MNIST / CIFAR-sized nets: 10 classes
    num_classes = num_classes_override or (10 if small else 1000)
    return image_size, channels, num_classes


def machine_precisions(gpus, cpu_flags):
    """The default --precisions: fp32, and the low precisions the machine computes natively."""
    from training import hardware

    return ["fp32", *(("fp16", "bf16") if gpus else hardware.native_cpu_precisions(cpu_flags))]


def run_machine_worker(cfg):
    """What does not change between configurations, measured once.

    This machine's devices and versions; the NxN matmul throughput per precision; for each
    model its input size, channels, classes and training FLOPs per image (or the list of
    valid names when a model is unknown, so the driver itself never imports TensorFlow).
    """
    from image_models import nets_factory
    from slim_compat import tf
    from training import hardware, precision

    tf.disable_eager_execution()
    baseline_rss = _peak_rss_mib()  # TensorFlow imported, nothing run yet
    unknown = [m for m in cfg["models"] if m not in nets_factory.NETWORKS]
    if unknown:
        _write_json(
            cfg["result_file"],
            {"unknown_models": unknown, "valid_models": sorted(nets_factory.NETWORKS)},
        )
        return
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    precisions = cfg["precisions"] or machine_precisions(gpus, hardware.cpu_flags())
    n = cfg["matmul_size"]

    def matmul_gflops(name, threads):
        dtype = precision.PRECISIONS[name]
        config = tf.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
        )
        with tf.Graph().as_default():
            # Variables, not constants: grappler would fold a product of constants. The sum is
            # fetched because grappler prunes a stateless op that only a tf.group depends on;
            # it adds n^2 additions to 2n^3 FLOPs.
            a = tf.Variable(tf.cast(tf.random.stateless_uniform([n, n], seed=[0, 1]), dtype))
            b = tf.Variable(tf.cast(tf.random.stateless_uniform([n, n], seed=[0, 2]), dtype))
            product = tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))
            with tf.Session(config=config) as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(product)  # warm-up: kernel selection, thread pools
                times = []
                deadline = time.perf_counter() + cfg["matmul_seconds"]
                while len(times) < 3 or time.perf_counter() < deadline:
                    start = time.perf_counter()
                    sess.run(product)
                    times.append(time.perf_counter() - start)
        return 2.0 * n**3 / statistics.median(times) / 1e9

    matmul = {
        name: {"size": n, "gflops_per_sec": matmul_gflops(name, cfg.get("threads", 0))}
        for name in dict.fromkeys(precisions + cfg["extra_precisions"])
    }
    scaling_matmul = None
    if cfg.get("scaling_threads") and not gpus:
        # What N ranks sharing this CPU could gain on compute-bound work: the fp32 matmul
        # rate with every core over the rate with one rank's share of the cores.
        per_rank = matmul_gflops("fp32", cfg["scaling_threads"])
        scaling_matmul = {
            "threads_per_rank": cfg["scaling_threads"],
            "gflops_per_sec_per_rank_threads": per_rank,
            "gflops_per_sec_every_core": matmul_gflops("fp32", 0),
        }
    models = {}
    for model in cfg["models"]:
        image_size, channels, num_classes = model_defaults(
            model, cfg.get("image_size"), cfg.get("num_classes")
        )
        facts = {"image_size": image_size, "channels": channels, "num_classes": num_classes}
        try:
            facts.update(count_training_flops(dict(cfg, model=model, batch_size=1, **facts)))
        except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
            facts["flops_error"] = f"{type(e).__name__}: {e}"[:500]
        models[model] = facts
    _write_json(
        cfg["result_file"],
        {
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "gpus": gpus,
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": _package_version("keras"),
            "horovod": _package_version("horovod"),
            "baseline_rss_mib": baseline_rss,
            "cpu_flags": sorted(
                hardware.cpu_flags() & VECTOR_CPU_FLAGS.union(*hardware.NATIVE_CPU_FLAGS.values())
            ),
            "precisions": precisions,
            "matmul": matmul,
            "scaling_matmul": scaling_matmul,
            "models": models,
        },
    )


def run_allreduce_worker(cfg):
    """Horovod allreduce (sum) of a cfg['allreduce_mb'] MB float32 tensor; bandwidths."""
    from slim_compat import tf
    from training import distributed

    tf.disable_eager_execution()
    dist = distributed.init()
    if dist.hvd is None:
        raise RuntimeError("the allreduce worker must be launched with mpirun -np N (N > 1)")
    num_floats = int(cfg["allreduce_mb"] * 1e6) // 4
    with tf.Graph().as_default():
        tensor = tf.Variable(tf.ones([num_floats], tf.float32), name="allreduce_tensor")
        # Fetch one element: a tf.group of the allreduce would be pruned by grappler, and
        # fetching the whole tensor would time a 100 MB copy to Python too.
        reduced = dist.hvd.allreduce(tensor.read_value(), op=dist.hvd.Sum)[:1]
        with tf.Session(config=distributed.session_config(dist)) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(2):
                sess.run(reduced)
            times = []
            for _ in range(cfg["allreduce_iters"]):
                start = time.perf_counter()
                sess.run(reduced)
                times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    algbw = num_floats * 4 / seconds / 1e9
    if dist.is_chief:
        _write_json(
            cfg["result_file"],
            {
                "ranks": dist.size,
                "megabytes": num_floats * 4 / 1e6,
                "ms": 1000.0 * seconds,
                "algbw_gb_per_sec": algbw,
                # NCCL-tests convention: a ring allreduce moves 2(n-1)/n of the data per rank.
                "busbw_gb_per_sec": algbw * 2.0 * (dist.size - 1) / dist.size,
            },
        )


WORKERS = {
    "tfzoo": run_tfzoo_worker,
    "keras": run_keras_worker,
    "machine": run_machine_worker,
    "allreduce": run_allreduce_worker,
}


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _package_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------ driver


class Launcher:
    """Starts workers as subprocesses and collects their JSON results."""

    def __init__(self, work_dir, timeout, tfzoo_allocator="tcmalloc"):
        """tfzoo_allocator: 'tcmalloc' (used when it is installed) or 'system'."""
        from training import allocator

        self.work_dir = work_dir
        self.timeout = timeout
        self.tcmalloc = allocator.tcmalloc_path()
        # tfzoo's workers run on tcmalloc when it is installed, as its entry points do
        # (training/allocator.py); TFZOO_MALLOC=system keeps glibc's.
        self.tfzoo_allocator = (
            "tcmalloc" if tfzoo_allocator == "tcmalloc" and self.tcmalloc else "system"
        )
        self._count = 0

    def resolve_allocator(self, name):
        """An --keras_allocators name as 'tcmalloc' or 'system' ('tfzoo': tfzoo's own)."""
        return self.tfzoo_allocator if name == "tfzoo" else name

    def environment(self, kind, allocator_name=None):
        """The environment of a worker: the repository on PYTHONPATH, its allocator preloaded.

        allocator_name: 'tcmalloc' or 'system'; default: tfzoo's for the timed workers, glibc's
        for the machine worker. Returns None when tcmalloc is asked for but not installed.
        """
        from training import allocator

        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO_ROOT, env.get("PYTHONPATH")]))
        malloc = allocator_name or ("system" if kind == "machine" else self.tfzoo_allocator)
        if malloc == "tcmalloc":
            return allocator.tcmalloc_environment(env, self.tcmalloc) if self.tcmalloc else None
        # glibc's malloc: nothing of an outer tcmalloc preload is inherited.
        preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and "tcmalloc" not in p]
        env.pop("LD_PRELOAD", None)
        if preload:
            env["LD_PRELOAD"] = ":".join(preload)
        return env

    def run(self, kind, cfg, ranks=None, force_horovod=False, allocator_name=None):
        """Runs one worker (under mpirun when `ranks` is given); returns its result dict.

        A failed worker gives {"error": "..."} with the end of its output, so one
        configuration that cannot run (e.g. a precision without kernels) does not stop the rest.
        allocator_name: 'tcmalloc' or 'system' (see `environment`).
        """
        from training import allocator

        env = self.environment(kind, allocator_name)
        if env is None:
            return {"error": f"tcmalloc asked for, but {allocator.LIBRARY_NAME} is not installed"}
        self._count += 1
        result_file = os.path.join(self.work_dir, f"{self._count:03d}_{kind}.json")
        cfg = dict(cfg, result_file=result_file)
        command = [sys.executable, _SCRIPT, f"--worker={kind}", "--worker_config", json.dumps(cfg)]
        if ranks is not None:
            if force_horovod:
                env["TFZOO_FORCE_HOROVOD"] = "1"  # Horovod in a 1-rank run, for a fair baseline
            command = (
                [
                    "mpirun",
                    "--allow-run-as-root",
                    "--oversubscribe",
                    "--bind-to",
                    "none",  # ranks share the cores through their thread counts, not pinning
                    # A rank waiting in a collective yields its core instead of spinning on
                    # it (which, with the ranks sharing the cores, starves the others).
                    "--mca",
                    "mpi_yield_when_idle",
                    "1",
                    "-np",
                    str(ranks),
                ]
                + [a for k in env if k in _PASSED_ENV for a in ("-x", k)]
                + command
            )
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                command,
                cwd=_REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {self.timeout} s"}
        if proc.returncode != 0 or not os.path.exists(result_file):
            lines = (proc.stderr or proc.stdout or "").strip().splitlines() or ["(no output)"]
            # The last line of a Python traceback names the exception; keep more for the JSON.
            return {
                "error": f"exit code {proc.returncode}: {lines[-1].strip()}",
                "output_tail": lines[-40:],
            }
        with open(result_file) as f:
            result = json.load(f)
        result["wall_seconds"] = time.perf_counter() - start
        return result


# Environment variables that mpirun passes on to the ranks when set.
_PASSED_ENV = (
    "PYTHONPATH",
    "TF_CPP_MIN_LOG_LEVEL",
    "TFZOO_FORCE_HOROVOD",
    "LD_PRELOAD",
    "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD",
)


def _progress(message):
    print(message, file=sys.stderr, flush=True)


def run_benchmark(args, launcher):
    """Runs every worker the arguments ask for; returns the report dict."""
    common = {
        "warmup_steps": args.warmup_steps,
        "block_seconds": args.block_seconds,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
    }
    scaling_model = [args.scaling_model] if args.scaling else []
    models = list(dict.fromkeys(args.models + scaling_model))
    _progress("machine: devices, matmul throughput, model FLOPs ...")
    machine = launcher.run(
        "machine",
        {
            "models": models,
            "image_size": args.image_size,
            "num_classes": args.num_classes,
            "precisions": args.precisions,  # None: the machine's (fp32 + native low precisions)
            "extra_precisions": [args.scaling_precision] if args.scaling else [],
            "matmul_size": args.matmul_size,
            "matmul_seconds": SECONDS_PER_MATMUL_PRECISION,
            "threads": args.threads,
            "scaling_threads": _cpu_threads_per_rank(args) if args.scaling else 0,
        },
    )
    if "error" in machine:
        raise RuntimeError(f"the machine worker failed: {machine['error']}")
    if machine.get("unknown_models"):
        raise ValueError(
            f"unknown model(s) {', '.join(machine['unknown_models'])}; valid names: "
            f"{', '.join(machine['valid_models'])}"
        )
    args.precisions = machine["precisions"]

    # Keras peers: tfzoo's allocator first (the default, like for like), then any others.
    keras_allocators = list(
        dict.fromkeys(launcher.resolve_allocator(a) for a in args.keras_allocators)
    )
    runs = []
    configs = [
        (m, b, p, i)
        for m in args.models
        for b in args.batch_sizes
        for p in args.precisions
        for i in args.input
    ]
    for index, (model, batch_size, precision, input_mode) in enumerate(configs, 1):
        facts = machine["models"][model]
        image_size, channels, num_classes = (
            facts["image_size"],
            facts["channels"],
            facts["num_classes"],
        )
        cfg = dict(
            common,
            model=model,
            batch_size=batch_size,
            precision=precision,
            input=input_mode,
            image_size=image_size,
            channels=channels,
            num_classes=num_classes,
        )
        label = f"[{index}/{len(configs)}] {model} {input_mode} {precision} batch {batch_size}"
        _progress(f"{label}: tfzoo ...")
        run = {
            "model": model,
            "input": input_mode,
            "image_size": image_size,
            "channels": channels,
            "num_classes": num_classes,
            "batch_size": batch_size,
            "precision": precision,
            "tfzoo": launcher.run("tfzoo", cfg),
            "keras": None,
        }
        if input_mode == "pipeline":
            # The mock data has 3 channels, and the pipeline keeps them for every net.
            run["channels"] = 3
        _add_utilisation(run, facts, machine)
        _progress(f"{label}: tfzoo {_rate_text(run['tfzoo'])}")
        if args.peer and input_mode == "synthetic" and keras_peer_name(model):
            peers = []
            for malloc in keras_allocators:
                _progress(f"{label}: keras {keras_peer_name(model)} on {ALLOCATORS[malloc]} ...")
                peer = dict(launcher.run("keras", cfg, allocator_name=malloc))
                peer["allocator"] = ALLOCATORS[malloc]
                _progress(f"{label}: keras {_rate_text(peer)}")
                if "error" not in peer and "error" not in run["tfzoo"]:
                    peer["tfzoo_over_keras"] = (
                        run["tfzoo"]["images_per_sec"] / peer["images_per_sec"]
                    )
                peers.append(peer)
            # The first peer runs on tfzoo's allocator by default: the like-for-like figure.
            run["keras"], run["keras_extra"] = peers[0], peers[1:]
            if "tfzoo_over_keras" in peers[0]:
                run["tfzoo_over_keras"] = peers[0]["tfzoo_over_keras"]
        runs.append(run)

    report = {
        "settings": {
            k: getattr(args, k)
            for k in (
                "models",
                "batch_sizes",
                "precisions",
                "input",
                "warmup_steps",
                "block_seconds",
                "steps",
                "repeats",
                "image_size",
                "threads",
                "peer",
                "scaling",
            )
        },
        "machine": machine,
        "allocators": {
            "tfzoo": ALLOCATORS[launcher.tfzoo_allocator],
            "keras": [ALLOCATORS[a] for a in keras_allocators] if args.peer else [],
        },
        "runs": runs,
        "scaling": None,
        "allreduce": None,
    }
    if args.scaling:
        report["scaling"], report["allreduce"] = run_scaling(args, launcher, common, machine)
    return report


def _cpu_threads_per_rank(args):
    """Intra-op threads of each rank when the scaling ranks share this machine's CPU."""
    return max(1, (os.cpu_count() or 1) // (args.scaling_ranks or 2))


def run_scaling(args, launcher, common, machine):
    """1 rank vs N ranks under Horovod, and the allreduce bandwidth at N ranks."""
    if shutil.which("mpirun") is None:
        return {"error": "mpirun not found (scripts/setup.sh installs openmpi-bin)"}, None
    if not machine.get("horovod"):
        return {"error": "Horovod is not installed (scripts/setup.sh builds it)"}, None
    gpus = len(machine.get("gpus") or [])
    ranks = args.scaling_ranks or (gpus if gpus > 1 else 2)
    model = args.scaling_model
    precision = args.scaling_precision or "fp32"
    batch_size = args.batch_sizes[0]
    facts = machine["models"][model]
    image_size, channels, num_classes = (
        facts["image_size"],
        facts["channels"],
        facts["num_classes"],
    )
    # On CPU the ranks share the cores: each rank gets cores/N threads (and runs one op at a
    # time) in BOTH runs, so the 1-rank baseline is one "device" like each rank of the N.
    threads = 0 if gpus else _cpu_threads_per_rank(args)
    cfg = dict(
        common,
        threads=threads,
        inter_threads=0 if gpus else 1,
        model=model,
        batch_size=batch_size,
        precision=precision,
        input="synthetic",
        image_size=image_size,
        channels=channels,
        num_classes=num_classes,
    )
    scaling = {
        "model": model,
        "precision": precision,
        "batch_size_per_rank": batch_size,
        "image_size": image_size,
        "threads_per_rank": threads or "all",
        "ranks": ranks,
    }
    for n in (1, ranks):
        _progress(f"scaling: {model} {precision} batch {batch_size}/rank, {n} rank(s) ...")
        scaling[f"rank{n}" if n == 1 else "rankN"] = launcher.run(
            "tfzoo", cfg, ranks=n, force_horovod=True
        )
    one, many = scaling["rank1"], scaling["rankN"]
    if "error" not in one and "error" not in many:
        scaling["speedup"] = many["images_per_sec"] / one["images_per_sec"]
        scaling["efficiency"] = scaling["speedup"] / ranks
    matmul = machine.get("scaling_matmul")
    if matmul:
        scaling["compute_ceiling"] = (
            matmul["gflops_per_sec_every_core"] / matmul["gflops_per_sec_per_rank_threads"]
        )
    _progress(f"allreduce: {args.allreduce_mb} MB over {ranks} ranks ...")
    allreduce = launcher.run(
        "allreduce",
        {"allreduce_mb": args.allreduce_mb, "allreduce_iters": args.allreduce_iters},
        ranks=ranks,
    )
    return scaling, allreduce


def _add_utilisation(run, flops, machine):
    """Adds the training FLOPs per image, the achieved FLOP/s and the MFU to a run."""
    result = run["tfzoo"]
    if "error" in result or "flops_error" in flops:
        return
    per_image = flops["train_flops_per_image"]
    achieved = per_image * result["images_per_sec"]
    peak = machine["matmul"][run["precision"]]["gflops_per_sec"] * 1e9
    result["train_gflop_per_image"] = per_image / 1e9
    result["forward_gflop_per_image"] = flops["forward_flops_per_image"] / 1e9
    result["achieved_gflops_per_sec"] = achieved / 1e9
    result["mfu"] = achieved / peak


def _rate_text(result):
    if "error" in result:
        return f"FAILED ({result['error'][:300]})"
    return (
        f"{result['images_per_sec']:.3g} img/s ({result['images_per_sec_min']:.3g}-"
        f"{result['images_per_sec_max']:.3g}), {result['ms_per_step']:.1f} ms/step, "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB"
    )


# ------------------------------------------------------------------------------------ report


def _num(value, digits=3):
    """A number to `digits` significant digits, without exponent for ordinary sizes."""
    if value is None:
        return "-"
    if value == 0 or not math.isfinite(value):
        return str(value)
    magnitude = int(math.floor(math.log10(abs(value))))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def _rate_cell(result):
    if result is None:
        return "-"
    if "error" in result:
        return "failed"
    return (
        f"{_num(result['images_per_sec'])} "
        f"({_num(result['images_per_sec_min'])}-{_num(result['images_per_sec_max'])})"
    )


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _get(result, key, scale=1.0):
    if not result or "error" in result or result.get(key) is None:
        return None
    return result[key] * scale


def format_report(report):
    """The report as markdown: measured values only (machine, matmul, throughput, Keras peer,
    scaling, what failed). README.md's Benchmarks section says what bounds each figure."""
    machine = report["machine"]
    s = report["settings"]
    mallocs = report["allocators"]
    keras_mallocs = f", the Keras peer on {', '.join(mallocs['keras'])}" if mallocs["keras"] else ""
    out = [
        "## Training throughput",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} CPU(s) "
        f"({', '.join(machine.get('cpu_flags') or []) or 'flags unknown'}), "
        f"GPUs: {', '.join(machine['gpus']) or 'none'}; TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras'] or '-'}, Horovod {machine['horovod'] or '-'}; tfzoo on "
        f"{mallocs['tfzoo']}{keras_mallocs}. "
        f"{s['warmup_steps']} warm-up steps, then {s['repeats']} timed blocks of at least "
        f"{s['steps']} step(s) and {_num(s['block_seconds'])} s each; img/s is the median "
        "over the blocks (min-max).",
        "",
        "Matmul throughput (the MFU denominator):",
        "",
        _table(
            ["precision", "matmul", "GFLOP/s"],
            [
                [p, f"{m['size']}x{m['size']}", _num(m["gflops_per_sec"])]
                for p, m in machine["matmul"].items()
            ],
        ),
        "",
        _table(
            [
                "model",
                "input",
                "image",
                "batch",
                "precision",
                "img/s (min-max)",
                "ms/step",
                "steps/s",
                "peak RSS MiB",
                "GFLOP/img fwd+bwd",
                "GFLOP/s",
                "MFU",
            ],
            [
                [
                    r["model"],
                    r["input"],
                    f"{r['image_size']}x{r['image_size']}x{r['channels']}",
                    r["batch_size"],
                    r["precision"],
                    _rate_cell(r["tfzoo"]),
                    _num(_get(r["tfzoo"], "ms_per_step")),
                    _num(_get(r["tfzoo"], "steps_per_sec")),
                    _num(_get(r["tfzoo"], "peak_rss_mib"), 4),
                    _num(_get(r["tfzoo"], "train_gflop_per_image")),
                    _num(_get(r["tfzoo"], "achieved_gflops_per_sec")),
                    f"{_get(r['tfzoo'], 'mfu', 100):.1f}%"
                    if _get(r["tfzoo"], "mfu") is not None
                    else "-",
                ]
                for r in report["runs"]
            ],
        ),
    ]
    # One row per Keras run: the peer on tfzoo's allocator first, then any other allocator.
    peers = [
        (r, keras)
        for r in report["runs"]
        if r.get("keras") is not None
        for keras in [r["keras"], *r.get("keras_extra", [])]
    ]
    if peers:
        out += [
            "",
            "### tfzoo vs Keras 3 (model.fit), same synthetic batch and precision",
            "",
            _table(
                [
                    "tfzoo model",
                    "Keras model",
                    "Keras malloc",
                    "batch",
                    "precision",
                    "tfzoo img/s",
                    "Keras img/s (min-max)",
                    "tfzoo steps/s",
                    "Keras steps/s",
                    "tfzoo / Keras RSS MiB",
                    "tfzoo / Keras",
                ],
                [
                    [
                        r["model"],
                        keras_peer_name(r["model"]),
                        keras.get("allocator", "-"),
                        r["batch_size"],
                        r["precision"],
                        _num(_get(r["tfzoo"], "images_per_sec")),
                        _rate_cell(keras),
                        _num(_get(r["tfzoo"], "steps_per_sec")),
                        _num(_get(keras, "steps_per_sec")),
                        f"{_num(_get(r['tfzoo'], 'peak_rss_mib'), 4)} / "
                        f"{_num(_get(keras, 'peak_rss_mib'), 4)}",
                        f"{keras['tfzoo_over_keras']:.2f}x" if "tfzoo_over_keras" in keras else "-",
                    ]
                    for r, keras in peers
                ],
            ),
        ]
    scaling, allreduce = report.get("scaling"), report.get("allreduce")
    if scaling:
        out += ["", "### Horovod scaling on this machine", ""]
        if "error" in scaling and "rank1" not in scaling:
            out.append(f"Not run: {scaling['error']}")
        else:
            n = scaling["ranks"]
            out.append(
                _table(
                    [
                        "model",
                        "precision",
                        "batch/rank",
                        "threads/rank",
                        "1 rank img/s",
                        f"{n} ranks img/s",
                        "speed-up",
                        "efficiency",
                        "matmul ceiling",
                    ],
                    [
                        [
                            scaling["model"],
                            scaling["precision"],
                            scaling["batch_size_per_rank"],
                            scaling["threads_per_rank"],
                            _rate_cell(scaling["rank1"]),
                            _rate_cell(scaling["rankN"]),
                            f"{scaling['speedup']:.2f}x" if "speedup" in scaling else "-",
                            f"{100 * scaling['efficiency']:.0f}%"
                            if "efficiency" in scaling
                            else "-",
                            f"{scaling['compute_ceiling']:.2f}x"
                            if "compute_ceiling" in scaling
                            else "-",
                        ]
                    ],
                )
            )
    if allreduce:
        out += [""]
        if "error" in allreduce:
            out.append(f"Allreduce: failed ({allreduce['error'][:300]})")
        else:
            out.append(
                _table(
                    ["allreduce", "ranks", "time ms", "algbw GB/s", "busbw GB/s"],
                    [
                        [
                            f"{_num(allreduce['megabytes'])} MB fp32, sum",
                            allreduce["ranks"],
                            _num(allreduce["ms"]),
                            _num(allreduce["algbw_gb_per_sec"]),
                            _num(allreduce["busbw_gb_per_sec"]),
                        ]
                    ],
                )
            )
    measured = measured_lines(report)
    if measured:
        out += ["", *[f"- {line}" for line in measured]]
    return "\n".join(out)


def measured_lines(report):
    """Measured values the tables do not show: FLOPs ratios, pipeline shares, failures."""
    machine = report["machine"]
    lines = []
    ratios = []
    for flop in machine["models"].values():
        if "flops_error" not in flop and flop["forward_flops_per_image"]:
            ratios.append(flop["train_flops_per_image"] / flop["forward_flops_per_image"])
    if ratios:
        lines.append(f"Training / forward FLOPs counted: {min(ratios):.2f}-{max(ratios):.2f}.")
    synthetic = {
        (r["model"], r["batch_size"], r["precision"]): _get(r["tfzoo"], "images_per_sec")
        for r in report["runs"]
        if r["input"] == "synthetic"
    }
    shares = []
    for r in report["runs"]:
        key = (r["model"], r["batch_size"], r["precision"])
        piped = _get(r["tfzoo"], "images_per_sec")
        if r["input"] == "pipeline" and piped and synthetic.get(key):
            shares.append(f"{r['model']} {r['precision']} {100 * piped / synthetic[key]:.0f}%")
    if shares:
        lines.append("pipeline / synthetic img/s: " + ", ".join(shares) + ".")
    for model, facts in machine["models"].items():
        if "flops_error" in facts:
            lines.append(f"FLOPs of {model} not counted (no MFU): {facts['flops_error'][:200]}")
    failed = [
        f"{r['model']} {r['input']} {r['precision']} b{r['batch_size']} ({side}"
        + (f", {result['allocator']}" if side == "keras" else "")
        + ")"
        for r in report["runs"]
        for side in ("tfzoo", "keras")
        for result in ([r[side]] if side == "tfzoo" else [r[side], *r.get("keras_extra", [])])
        if result and "error" in result
    ]
    if failed:
        lines.append("Failed (see the JSON for the error): " + "; ".join(failed) + ".")
    return lines


# ------------------------------------------------------------------------------------ flags


def _csv(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def _csv_ints(value):
    try:
        return [int(item) for item in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        type=_csv,
        default=list(DEFAULT_MODELS),
        help="comma-separated names from image_models/nets_factory.py",
    )
    parser.add_argument("--batch_sizes", type=_csv_ints, default=[32], help="per rank, csv")
    parser.add_argument(
        "--precisions",
        type=_csv,
        default=None,
        help="csv of fp32, bf16, fp16 (default: fp32 and the low precisions this machine "
        "computes natively: fp16 and bf16 on a GPU, bf16 / fp16 on CPUs with AVX512-BF16 / "
        "AVX512-FP16 or AMX)",
    )
    parser.add_argument(
        "--input",
        type=_csv,
        default=["synthetic"],
        help="csv of synthetic (a batch held on the device) and pipeline (the trainer's "
        "tf.data pipeline on mock data)",
    )
    parser.add_argument("--warmup_steps", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument(
        "--block_seconds",
        type=float,
        default=6.0,
        help="length of a timed block: steps per block = this / the last warm-up step's time",
    )
    parser.add_argument("--steps", type=int, default=1, help="minimum timed steps per block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks (median, min-max)")
    parser.add_argument(
        "--image_size",
        type=int,
        default=None,
        help="pixels, for every model (default: each model's)",
    )
    parser.add_argument(
        "--num_classes",
        type=int,
        default=None,
        help="classes (default: 10 for nets of 32 px or less, else 1000)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="TF intra-op threads per process (0: TF's choice)"
    )
    parser.add_argument("--peer", dest="peer", action="store_true", default=True)
    parser.add_argument(
        "--no_peer", dest="peer", action="store_false", help="skip the Keras 3 peer runs"
    )
    parser.add_argument("--scaling", dest="scaling", action="store_true", default=True)
    parser.add_argument(
        "--no_scaling",
        dest="scaling",
        action="store_false",
        help="skip the Horovod 1-vs-N-ranks runs and the allreduce bandwidth",
    )
    parser.add_argument(
        "--scaling_ranks", type=int, default=0, help="N (default: the GPUs if > 1, else 2)"
    )
    parser.add_argument(
        "--scaling_model",
        default=SCALING_MODEL,
        help="default: %(default)s (small enough for 1 thread per rank on a CPU)",
    )
    parser.add_argument("--scaling_precision", default="fp32", help="fp32, bf16 or fp16")
    parser.add_argument("--allreduce_mb", type=float, default=100.0, help="MB (1e6 bytes)")
    parser.add_argument("--allreduce_iters", type=int, default=5, help="timed allreduces")
    parser.add_argument(
        "--matmul_size", type=int, default=4096, help="N of the NxN matmul (MFU denominator)"
    )
    parser.add_argument(
        "--keras_allocators",
        type=_csv,
        default=["tfzoo"],
        help="csv of the mallocs the Keras peer runs on, one row each: tfzoo (the same as "
        "tfzoo's workers: tcmalloc when installed, glibc's under TFZOO_MALLOC=system; the "
        "default, and the tfzoo / Keras ratio), tcmalloc, system (glibc's, as a Keras user "
        "runs it), e.g. tfzoo,system",
    )
    parser.add_argument("--output_json", default=None, help="also write the report here")
    parser.add_argument(
        "--worker_timeout", type=int, default=3600, help="seconds before a worker is stopped"
    )
    # Internal: the driver starts this script again as a worker.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker_config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args

    for name in (args.precisions or []) + [args.scaling_precision]:
        if name not in PRECISIONS:
            parser.error(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    for name in args.input:
        if name not in INPUTS:
            parser.error(f"unknown input {name!r}; valid: {', '.join(INPUTS)}")
    for name in args.keras_allocators:
        if name not in KERAS_ALLOCATOR_CHOICES:
            parser.error(
                f"unknown Keras allocator {name!r}; valid: {', '.join(KERAS_ALLOCATOR_CHOICES)}"
            )
    if not (
        args.models
        and args.batch_sizes
        and args.precisions != []
        and args.input
        and args.keras_allocators
    ):
        parser.error(
            "--models, --batch_sizes, --precisions, --input and --keras_allocators need one "
            "value at least"
        )
    for flag in ("warmup_steps", "steps", "repeats", "matmul_size", "allreduce_iters"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if any(b < 1 for b in args.batch_sizes):
        parser.error(f"--batch_sizes must be positive, got {args.batch_sizes}")
    if args.block_seconds < 0:
        parser.error(f"--block_seconds must be >= 0, got {args.block_seconds}")
    if args.image_size is not None and args.image_size < 1:
        parser.error(f"--image_size must be positive, got {args.image_size}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        WORKERS[args.worker](json.loads(args.worker_config))
        return None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfzoo_benchmark_") as work_dir:
        try:
            from training import allocator

            tfzoo_malloc = (
                "system" if os.environ.get(allocator.ENV_SWITCH) == "system" else "tcmalloc"
            )
            report = run_benchmark(args, Launcher(work_dir, args.worker_timeout, tfzoo_malloc))
        except ValueError as e:  # an unknown model name: a usage error, as argparse's
            sys.exit(f"benchmark.py: error: {e}")
    report["wall_seconds"] = time.perf_counter() - start
    print(format_report(report))
    if args.output_json:
        _write_json(args.output_json, report)
    _progress(f"done in {report['wall_seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
