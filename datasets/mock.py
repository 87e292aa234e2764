"""Synthetic images, the default dataset (as FastNN's mock data): no files, learnable labels.

Each class has its own fixed random template, a coarse TEMPLATE_GRID x TEMPLATE_GRID
pattern stretched to the image size; a sample is its class template plus bounded
per-sample noise. So the label can be recovered from the image and a short training run
lowers the loss, which makes the mock set useful for smoke tests as well as for
throughput benchmarks.

Everything is drawn with stateless random ops seeded by (seed, sample index) or
(seed, class id), inside the `tf.data` map: the data is the same on every run and every
rank for a given seed, and the graph holds no large constants.
"""

from slim_compat import tf

SPLITS_TO_SIZES = {"train": 12800, "validation": 1280}
NUM_CLASSES = 1000
IMAGE_SHAPE = (224, 224, 3)  # a hint: synthetic_dataset makes any size
CHANNELS = 3
FILE_PATTERN = None  # no files
LABELS_TO_NAMES = {}

TEMPLATE_GRID = 8  # a template has TEMPLATE_GRID x TEMPLATE_GRID cells
NOISE_AMPLITUDE = 40  # per-pixel noise is uniform in [-NOISE_AMPLITUDE, NOISE_AMPLITUDE]

# Random streams: the first stateless seed word is seed * _NUM_STREAMS + stream, which keeps
# labels, templates and noise (and different seeds) apart.
_LABEL_STREAM = 0
_NOISE_STREAM = 1
_TEMPLATE_STREAM = 2
_NUM_STREAMS = 3

parse_fn = None  # synthetic data is made, not parsed


def _upsample_indices(out_size, grid):
    """Indices into a grid of `grid` cells that stretch it (nearest neighbour) to out_size."""
    return (tf.range(out_size) * grid) // out_size


def synthetic_dataset(num_samples, height, width, channels, num_classes, seed=0):
    """Makes a deterministic, learnable synthetic image classification dataset.

    Args:
      num_samples: number of examples (the dataset is finite; repeat it for more epochs).
      height: image height in pixels.
      width: image width in pixels.
      channels: image channels.
      num_classes: labels are drawn uniformly from [0, num_classes).
      seed: integer seed; the same seed gives the same examples in the same order.

    Returns:
      a `tf.data.Dataset` of (image uint8 [height, width, channels], label int64 scalar).
    """
    if num_samples < 1 or height < 1 or width < 1 or channels < 1 or num_classes < 1:
        raise ValueError(
            "synthetic_dataset needs positive sizes, got num_samples=%r height=%r width=%r "
            "channels=%r num_classes=%r" % (num_samples, height, width, channels, num_classes)
        )
    seed = int(seed)
    grid_h = min(TEMPLATE_GRID, height)
    grid_w = min(TEMPLATE_GRID, width)

    def make_example(index):
        label = tf.random.stateless_uniform(
            [],
            seed=tf.stack([tf.constant(seed * _NUM_STREAMS + _LABEL_STREAM, tf.int64), index]),
            minval=0,
            maxval=num_classes,
            dtype=tf.int64,
        )
        # The template is a function of (seed, label) only; its values stay far enough
        # from 0 and 255 that adding the noise never clips.
        template = tf.random.stateless_uniform(
            [grid_h, grid_w, channels],
            seed=tf.stack([tf.constant(seed * _NUM_STREAMS + _TEMPLATE_STREAM, tf.int64), label]),
            minval=NOISE_AMPLITUDE,
            maxval=256 - NOISE_AMPLITUDE,
            dtype=tf.int32,
        )
        template = tf.gather(template, _upsample_indices(height, grid_h), axis=0)
        template = tf.gather(template, _upsample_indices(width, grid_w), axis=1)
        noise = tf.random.stateless_uniform(
            [height, width, channels],
            seed=tf.stack([tf.constant(seed * _NUM_STREAMS + _NOISE_STREAM, tf.int64), index]),
            minval=-NOISE_AMPLITUDE,
            maxval=NOISE_AMPLITUDE + 1,
            dtype=tf.int32,
        )
        image = tf.cast(tf.clip_by_value(template + noise, 0, 255), tf.uint8)
        image.set_shape([height, width, channels])
        return image, label

    dataset = tf.data.Dataset.range(num_samples)
    return dataset.map(make_example, num_parallel_calls=tf.data.experimental.AUTOTUNE)
