"""Any folder of class sub-folders of JPEG / PNG images, stored as TF-Slim image tfrecords.

`python datasets/download_and_convert_data.py --dataset_name=image_folder --source=DIR`
writes the records, `labels.txt` (one "id:name" line per class folder, in sorted order)
and `split_sizes.json`. The number of classes and the split sizes are read from those two
files, so they have no defaults here.
"""

from datasets import tfrecord_format

SPLITS_TO_SIZES = {}  # read from split_sizes.json
SPLITS = ("train", "validation")
NUM_CLASSES = None  # the number of lines of labels.txt
IMAGE_SHAPE = (None, None, 3)
CHANNELS = 3
FILE_PATTERN = "image_folder_{split}-*.tfrecord"
LABELS_TO_NAMES = {}

parse_fn = tfrecord_format.make_parse_fn(CHANNELS)
