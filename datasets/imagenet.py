"""ImageNet ILSVRC-2012 classification (Russakovsky et al., 2015) as TF-Slim image tfrecords.

Variable-size JPEG photos, 1000 classes plus TF-Slim's background class 0, so labels run
1..1000 and NUM_CLASSES is 1001 (TF-Slim's published checkpoints have 1001 logits).
Records may also carry 'image/class/text' and the object boxes
'image/object/bbox/{xmin,ymin,xmax,ymax}'; `parse_fn_with_bboxes` returns them.
Records come from `python datasets/download_and_convert_data.py --dataset_name=imagenet`
(a train folder of wnid class folders and a validation folder with a labels file).
"""

import functools

from datasets import tfrecord_format

SPLITS_TO_SIZES = {"train": 1281167, "validation": 50000}
NUM_CLASSES = 1001
LABELS_OFFSET = 1  # label 0 is the background class
IMAGE_SHAPE = (None, None, 3)  # variable size photos
CHANNELS = 3
FILE_PATTERN = "imagenet_{split}-*.tfrecord"
LABELS_TO_NAMES = {}  # 1001 names: read from the converter's labels.txt

parse_fn = tfrecord_format.make_parse_fn(CHANNELS)
parse_fn_with_bboxes = functools.partial(
    tfrecord_format.parse_example_with_bboxes, channels=CHANNELS
)
