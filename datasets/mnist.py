"""MNIST handwritten digits (LeCun et al., 1998) stored as TF-Slim image tfrecords.

28x28 grayscale digits, 10 classes. Records come from
`python datasets/download_and_convert_data.py --dataset_name=mnist` (the four idx `.gz`
files) or `--dataset_name=sklearn_digits` (scikit-learn's 8x8 digits upsampled to 28x28,
written under this dataset's name with its own `split_sizes.json`).
"""

from datasets import tfrecord_format

SPLITS_TO_SIZES = {"train": 60000, "test": 10000}
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
CHANNELS = 1
FILE_PATTERN = "mnist_{split}-*.tfrecord"
LABELS_TO_NAMES = dict(
    enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
)

parse_fn = tfrecord_format.make_parse_fn(CHANNELS)
