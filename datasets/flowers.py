"""The TensorFlow flowers set (`flower_photos`, 5 classes) stored as TF-Slim image tfrecords.

Variable-size JPEG photos of daisies, dandelions, roses, sunflowers and tulips, split as
TF-Slim splits them: 350 validation images, the other 3320 for training. Records come
from `python datasets/download_and_convert_data.py --dataset_name=flowers`.
"""

from datasets import tfrecord_format

SPLITS_TO_SIZES = {"train": 3320, "validation": 350}
NUM_CLASSES = 5
IMAGE_SHAPE = (None, None, 3)  # variable size photos
CHANNELS = 3
FILE_PATTERN = "flowers_{split}-*.tfrecord"
LABELS_TO_NAMES = dict(enumerate(["daisy", "dandelion", "roses", "sunflowers", "tulips"]))

parse_fn = tfrecord_format.make_parse_fn(CHANNELS)
