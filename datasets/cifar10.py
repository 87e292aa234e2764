"""CIFAR-10 (Krizhevsky, 2009) stored as TF-Slim image tfrecords.

32x32 color images, 10 classes. Records come from
`python datasets/download_and_convert_data.py --dataset_name=cifar10` (the python-pickle
`cifar-10-python.tar.gz` archive).
"""

from datasets import tfrecord_format

SPLITS_TO_SIZES = {"train": 50000, "test": 10000}
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
CHANNELS = 3
FILE_PATTERN = "cifar10_{split}-*.tfrecord"
LABELS_TO_NAMES = dict(
    enumerate(
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
    )
)

parse_fn = tfrecord_format.make_parse_fn(CHANNELS)
