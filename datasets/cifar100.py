"""CIFAR-100 (Krizhevsky, 2009) stored as TF-Slim image tfrecords, with the 100 fine labels.

32x32 color images, 100 classes. Records come from
`python datasets/download_and_convert_data.py --dataset_name=cifar100` (the python-pickle
`cifar-100-python.tar.gz` archive); the class names are written to `labels.txt`.
"""

from datasets import tfrecord_format

SPLITS_TO_SIZES = {"train": 50000, "test": 10000}
NUM_CLASSES = 100
IMAGE_SHAPE = (32, 32, 3)
CHANNELS = 3
FILE_PATTERN = "cifar100_{split}-*.tfrecord"
LABELS_TO_NAMES = {}  # 100 names: read from the converter's labels.txt

parse_fn = tfrecord_format.make_parse_fn(CHANNELS)
