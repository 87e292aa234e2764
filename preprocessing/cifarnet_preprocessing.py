"""CifarNet preprocessing (TF-Slim's `cifarnet_preprocessing`).

Training: zero-pad by 4 pixels on every side, take a random crop of the output size, flip
left-right at random, jitter brightness (max delta 63 of 255) and contrast (factor in
[0.2, 1.8]), then standardize each image to zero mean and unit variance.
Evaluation: center-crop or zero-pad to the output size, then standardize.

tfzoo first center-crops or pads the input to the output size in training too, so inputs of
any size work; for CIFAR's 32x32 images and a 32x32 output that step changes nothing.
"""

from preprocessing import image_ops
from slim_compat import tf

PADDING = 4
BRIGHTNESS_MAX_DELTA = 63.0
CONTRAST_RANGE = (0.2, 1.8)


def preprocess_for_train(
    image, output_height, output_width, padding=PADDING, color_distortion=True, seed=None
):
    """Random crop of the padded image, random flip, brightness/contrast jitter, standardize.

    Args:
        image: [height, width, channels] tensor, uint8 or float in [0, 255].
        output_height: output height in pixels.
        output_width: output width in pixels.
        padding: zero padding added on every side before the random crop.
        color_distortion: whether to jitter brightness and contrast (TF-Slim always does).
        seed: optional op-level seed base for the random ops.

    Returns:
        float32 [output_height, output_width, channels], per-image standardized.
    """
    image_ops.check_output_size(output_height, output_width)
    channels = image_ops.static_channels(image)
    seeds = image_ops.op_seeds(seed)
    image = tf.cast(image, tf.float32)
    image = tf.image.resize_image_with_crop_or_pad(image, output_height, output_width)
    if padding > 0:
        image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.random_crop(image, [output_height, output_width, channels], seed=next(seeds))
    image = tf.image.random_flip_left_right(image, seed=next(seeds))
    if color_distortion:
        # Brightness before contrast, as in TF-Slim; the two do not commute.
        image = tf.image.random_brightness(image, max_delta=BRIGHTNESS_MAX_DELTA, seed=next(seeds))
        image = tf.image.random_contrast(image, *CONTRAST_RANGE, seed=next(seeds))
    return tf.image.per_image_standardization(image)


def preprocess_for_eval(image, output_height, output_width, seed=None):
    """Center-crops or zero-pads to the output size and standardizes the image.

    Args:
        image: [height, width, channels] tensor, uint8 or float in [0, 255].
        output_height: output height in pixels.
        output_width: output width in pixels.
        seed: ignored (evaluation is deterministic); accepted so that callers can pass
            the same keyword arguments in both modes.

    Returns:
        float32 [output_height, output_width, channels], per-image standardized.
    """
    del seed
    image_ops.check_output_size(output_height, output_width)
    image = tf.cast(image, tf.float32)
    image = tf.image.resize_image_with_crop_or_pad(image, output_height, output_width)
    return tf.image.per_image_standardization(image)


def preprocess_image(image, output_height, output_width, is_training=False, **kwargs):
    """Training or evaluation preprocessing; `kwargs` go to the chosen function."""
    if is_training:
        return preprocess_for_train(image, output_height, output_width, **kwargs)
    return preprocess_for_eval(image, output_height, output_width, **kwargs)
