"""Measures the input pipeline alone: images per second from tfrecords to prefetched batches.

No model runs: the figure is the ceiling the input pipeline puts on training speed. The
script writes --num_images random-ish JPEGs of about 400x300 pixels as TF-Slim image
tfrecords (the 'image_folder' dataset layout) into a temporary folder, or reuses
--data_dir, then times for each preprocessing:

* `training.input_pipeline.build_dataset`: read, parse, decode, preprocess, batch, prefetch;
* for preprocessings with a fused JPEG path (inception), the same stages with
  `tf.image.decode_and_crop_jpeg` in place of decode + crop, in a minimal tf.data pipeline
  (build_dataset does not use the fused path).

    python scripts/benchmark_input.py --preprocessing=inception,vgg --batch_size=32 \\
        --num_batches=20 --image_size=224

The figures come from one run on a possibly shared machine: compare rows, not machines.
"""

import argparse
import io
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

if __package__ in (None, ""):
    # Run as a script, Python puts scripts/ first on sys.path; tfzoo's packages live one up.
    _REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if _REPO_ROOT not in sys.path:
        sys.path.insert(0, _REPO_ROOT)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from datasets import dataset_factory, tfrecord_format  # noqa: E402
from preprocessing import preprocessing_factory  # noqa: E402
from slim_compat import tf  # noqa: E402
from training import input_pipeline  # noqa: E402

DATASET_NAME = "image_folder"
SPLIT = "train"
NUM_CLASSES = 10


def random_jpeg(rng, mean_height=300, mean_width=400, quality=90):
    """JPEG bytes of a photo-like random image (smooth colour fields plus grain).

    Pure noise would compress far worse than photos and make decoding unrealistically slow;
    a flat image far better. Sizes vary by +-10% and one image in four is portrait.

    Returns:
        (jpeg bytes, height, width).
    """
    height = int(mean_height * rng.uniform(0.9, 1.1))
    width = int(mean_width * rng.uniform(0.9, 1.1))
    if rng.uniform() < 0.25:
        height, width = width, height
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
    grain = rng.normal(0.0, 12.0, (height, width, 3))
    pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), height, width


def write_jpeg_tfrecords(data_dir, num_images, num_shards=4, seed=0):
    """Writes `num_images` random JPEGs as an 'image_folder' train split in `data_dir`.

    Returns:
        total size of the JPEG bytes written, in bytes.
    """
    os.makedirs(data_dir, exist_ok=True)
    rng = np.random.RandomState(seed)
    num_shards = max(1, min(num_shards, num_images))
    jpeg_bytes = 0
    for shard in range(num_shards):
        path = os.path.join(
            data_dir, dataset_factory.shard_filename(DATASET_NAME, SPLIT, shard, num_shards)
        )
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(shard, num_images, num_shards):
                encoded, height, width = random_jpeg(rng)
                jpeg_bytes += len(encoded)
                label = int(rng.randint(NUM_CLASSES))
                example = tfrecord_format.make_example(encoded, b"jpeg", height, width, label)
                writer.write(example.SerializeToString())
    dataset_factory.write_labels_file(
        {i: f"class_{i}" for i in range(NUM_CLASSES)},
        os.path.join(data_dir, dataset_factory.LABELS_FILENAME),
    )
    with open(os.path.join(data_dir, dataset_factory.SPLIT_SIZES_FILENAME), "w") as f:
        json.dump({SPLIT: num_images}, f)
    return jpeg_bytes


def fused_jpeg_dataset(
    spec, preprocessing_name, image_size, batch_size, is_training, shuffle_buffer_size, seed=0
):
    """read -> parse JPEG bytes -> fused decode-and-crop preprocessing -> batch -> prefetch.

    Mirrors build_dataset's stages for a single rank; every record must hold a JPEG.
    """
    preprocess = preprocessing_factory.get_jpeg_preprocessing(preprocessing_name, is_training)
    features = {
        tfrecord_format.KEY_ENCODED: tf.io.FixedLenFeature([], tf.string),
        tfrecord_format.KEY_LABEL: tf.io.FixedLenFeature([], tf.int64),
    }

    @tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here
    def parse_and_preprocess(serialized):
        parsed = tf.io.parse_single_example(serialized, features)
        image = preprocess(parsed[tfrecord_format.KEY_ENCODED], image_size, image_size)
        return image, parsed[tfrecord_format.KEY_LABEL]

    autotune = input_pipeline.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices(spec.files).interleave(
        tf.data.TFRecordDataset, cycle_length=len(spec.files), num_parallel_calls=autotune
    )
    ds = ds.repeat()  # in evaluation too: one pass may hold fewer batches than are timed
    if is_training:
        ds = ds.shuffle(shuffle_buffer_size, seed=seed)
    ds = ds.map(parse_and_preprocess, num_parallel_calls=autotune)
    return ds.batch(batch_size, drop_remainder=True).prefetch(autotune)


def time_batches(dataset, num_batches, warmup_batches):
    """Pulls `warmup_batches` untimed batches, then times `num_batches`.

    Returns:
        (seconds, images) of the timed batches.
    """
    images = tf.data.make_one_shot_iterator(dataset).get_next()[0]
    # Fetch two scalars: copying every batch back to Python would be timed too.
    fetches = (tf.shape(images)[0], tf.reduce_sum(images[:, 0, 0, 0]))
    with tf.Session() as sess:
        for _ in range(warmup_batches):
            sess.run(fetches)
        count = 0
        start = time.perf_counter()
        for _ in range(num_batches):
            count += sess.run(fetches)[0]
        return time.perf_counter() - start, int(count)


def run_benchmark(
    data_dir,
    preprocessing_names,
    modes,
    image_size,
    batch_size,
    num_batches,
    warmup_batches,
    fused_jpeg=True,
    shuffle_buffer_size=1024,
):
    """Times every (preprocessing, mode, pipeline) combination.

    Returns:
        list of dicts with keys preprocessing, mode, pipeline, images_per_sec, ms_per_batch.
    """
    spec = dataset_factory.get_dataset(DATASET_NAME, SPLIT, data_dir)
    rows = []
    for name in preprocessing_names:
        for mode in modes:
            is_training = mode == "train"
            pipelines = ["build_dataset"]
            if fused_jpeg and preprocessing_factory.get_jpeg_preprocessing(name) is not None:
                pipelines.append("fused decode_and_crop_jpeg")
            for pipeline in pipelines:
                with tf.Graph().as_default():
                    tf.set_random_seed(0)
                    if pipeline == "build_dataset":
                        dataset, _ = input_pipeline.build_dataset(
                            spec,
                            name,
                            image_size,
                            3,
                            batch_size,
                            is_training=is_training,
                            shuffle_buffer_size=shuffle_buffer_size,
                        )
                        if not is_training:
                            dataset = dataset.repeat()  # one pass may hold too few batches
                    else:
                        dataset = fused_jpeg_dataset(
                            spec, name, image_size, batch_size, is_training, shuffle_buffer_size
                        )
                    seconds, images = time_batches(dataset, num_batches, warmup_batches)
                rows.append(
                    {
                        "preprocessing": name,
                        "mode": mode,
                        "pipeline": pipeline,
                        "images_per_sec": images / seconds,
                        "ms_per_batch": 1000.0 * seconds / num_batches,
                    }
                )
    return rows


def format_table(rows):
    """The rows as a fixed-width text table."""
    header = f"{'preprocessing':<14} {'mode':<6} {'pipeline':<28} {'img/s':>9} {'ms/batch':>9}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['preprocessing']:<14} {row['mode']:<6} {row['pipeline']:<28} "
            f"{row['images_per_sec']:>9.1f} {row['ms_per_batch']:>9.1f}"
        )
    return "\n".join(lines)


def _csv(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_images", type=int, default=200, help="JPEGs to generate")
    parser.add_argument("--batch_size", type=int, default=32, help="images per batch")
    parser.add_argument("--num_batches", type=int, default=20, help="timed batches per row")
    parser.add_argument(
        "--warmup_batches", type=int, default=3, help="untimed batches first (fill the buffers)"
    )
    parser.add_argument(
        "--preprocessing",
        type=_csv,
        default=["inception", "vgg"],
        help=f"comma-separated names, of {', '.join(sorted(preprocessing_factory.PREPROCESSINGS))}",
    )
    parser.add_argument(
        "--modes", type=_csv, default=["train"], help="comma-separated: train, eval"
    )
    parser.add_argument(
        "--shuffle_buffer_size",
        type=int,
        default=1024,
        help="records in the training shuffle buffer (build_dataset's default)",
    )
    parser.add_argument("--image_size", type=int, default=224, help="output height = width, px")
    parser.add_argument(
        "--data_dir",
        default=None,
        help="folder for the generated tfrecords, reused when it already holds them "
        "(default: a temporary folder, deleted at the end)",
    )
    parser.add_argument(
        "--no_fused_jpeg",
        dest="fused_jpeg",
        action="store_false",
        help="skip the fused decode_and_crop_jpeg rows",
    )
    args = parser.parse_args(argv)
    for name in args.preprocessing:
        if name not in preprocessing_factory.PREPROCESSINGS:
            parser.error(
                f"unknown preprocessing {name!r}; valid names: "
                f"{', '.join(sorted(preprocessing_factory.PREPROCESSINGS))}"
            )
    for mode in args.modes:
        if mode not in ("train", "eval"):
            parser.error(f"unknown mode {mode!r}; valid modes: train, eval")
    for flag in ("num_images", "batch_size", "num_batches", "image_size"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag} must be positive, got {getattr(args, flag)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    tf.disable_eager_execution()
    with tempfile.TemporaryDirectory(prefix="tfzoo_benchmark_input_") as temp_dir:
        data_dir = args.data_dir or temp_dir
        split_sizes = os.path.join(data_dir, dataset_factory.SPLIT_SIZES_FILENAME)
        if os.path.exists(split_sizes):
            print(f"reusing the tfrecords in {data_dir}")
        else:
            start = time.perf_counter()
            jpeg_bytes = write_jpeg_tfrecords(data_dir, args.num_images)
            print(
                f"wrote {args.num_images} JPEGs (~400x300, {jpeg_bytes / args.num_images / 1024:.0f}"
                f" KiB each) to {data_dir} in {time.perf_counter() - start:.1f} s"
            )
        rows = run_benchmark(
            data_dir,
            args.preprocessing,
            args.modes,
            args.image_size,
            args.batch_size,
            args.num_batches,
            args.warmup_batches,
            fused_jpeg=args.fused_jpeg,
            shuffle_buffer_size=args.shuffle_buffer_size,
        )
    print(
        f"\ninput pipeline only, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"{args.num_batches} timed batches, {os.cpu_count()} CPU(s)"
    )
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
