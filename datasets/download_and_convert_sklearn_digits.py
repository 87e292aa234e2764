"""Converts scikit-learn's 8x8 handwritten digits (real data, shipped with the package) to MNIST records.

scikit-learn ships the UCI optical-recognition digits (1797 images of 8x8 pixels, values
0..16). Each is scaled to 0..255, enlarged to 20x20 and centred in a 28x28 frame, the way
MNIST centres its digits in 20x20 boxes, then written under the dataset name 'mnist' with
a fixed train/test split (1500/297, a seeded permutation), so everything that reads MNIST
(lenet, the 'lenet' preprocessing, `get_dataset('mnist', ...)`) runs on real digits
without a download. `split_sizes.json` records the real split sizes.

    from datasets import download_and_convert_sklearn_digits
    download_and_convert_sklearn_digits.convert_sklearn_digits("/tmp/digits")
"""

import numpy as np
from PIL import Image

from datasets import download_and_convert_mnist

NUM_TRAIN = 1500  # the remaining 297 images are the test split
DIGIT_BOX = 20  # MNIST's digits fill a 20x20 box...
IMAGE_SIZE = 28  # ...centred in a 28x28 image
DEFAULT_NUM_SHARDS = 1
DEFAULT_SEED = 0


def digits_as_mnist_arrays(seed=DEFAULT_SEED):
    """Returns {'train': (images, labels), 'test': (images, labels)}, uint8 [N, 28, 28] images."""
    from sklearn.datasets import load_digits  # imported here: only this converter needs it

    digits = load_digits()
    # 0..16 intensities -> 0..255; PIL's bilinear resize is deterministic.
    small = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    margin = (IMAGE_SIZE - DIGIT_BOX) // 2
    images = np.zeros((len(small), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for i, image in enumerate(small):
        box = Image.fromarray(image).resize((DIGIT_BOX, DIGIT_BOX), Image.BILINEAR)
        images[i, margin : margin + DIGIT_BOX, margin : margin + DIGIT_BOX] = np.asarray(box)
    labels = digits.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(images))
    train, test = order[:NUM_TRAIN], order[NUM_TRAIN:]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}


def convert_sklearn_digits(
    dataset_dir, num_shards=DEFAULT_NUM_SHARDS, num_workers=1, seed=DEFAULT_SEED, overwrite=False
):
    """Writes scikit-learn's digits into dataset_dir as 'mnist' records (1500 train, 297 test).

    Returns:
      (split_sizes, skipped) as sharded_conversion.convert_splits.
    """
    return download_and_convert_mnist.convert_arrays(
        dataset_dir, digits_as_mnist_arrays(seed), num_shards, num_workers, overwrite=overwrite
    )


def convert(
    dataset_dir,
    num_shards=DEFAULT_NUM_SHARDS,
    num_workers=1,
    seed=DEFAULT_SEED,
    overwrite=False,
    **_,
):
    """The command-line converter's entry; see convert_sklearn_digits."""
    return convert_sklearn_digits(dataset_dir, num_shards, num_workers, seed, overwrite)
