"""VGG / ResNet-v1 preprocessing (TF-Slim's `vgg_preprocessing`), after Simonyan & Zisserman,
"Very Deep Convolutional Networks for Large-Scale Image Recognition" (ICLR 2015).

Training ("scale jittering"): resize the image, keeping its aspect ratio, so that its smaller
side is a random integer in [resize_side_min, resize_side_max] = [256, 512]; take a random
crop of the output size; flip left-right at random; subtract the ImageNet RGB means.
Evaluation: resize the smaller side to resize_side_min (256), take the central crop,
subtract the means.

Pixel values stay on the [0, 255] scale (no division), as the Caffe-converted VGG and
ResNet-v1 checkpoints expect. When the output is larger than the resize side (say a 300x300
output with the default 256), the resize side is raised to the output's larger side so that
a crop always fits; inputs smaller than the output are therefore resized up.
"""

from preprocessing import image_ops
from slim_compat import tf

# ImageNet per-channel means in RGB order, on the [0, 255] scale.
RGB_MEANS = (123.68, 116.78, 103.94)
RESIZE_SIDE_MIN = 256
RESIZE_SIDE_MAX = 512


def subtract_means(image, means=RGB_MEANS):
    """Subtracts the per-channel `means` from a float [height, width, channels] image.

    A one-channel image has the average of the means subtracted.

    Raises:
        ValueError: if the image has neither 1 nor len(means) channels.
    """
    channels = image_ops.static_channels(image)
    if channels == 1:
        return image - sum(means) / len(means)
    if channels != len(means):
        raise ValueError(f"image has {channels} channels, expected 1 or {len(means)} (RGB)")
    return image - tf.constant(means, dtype=image.dtype)


def _central_crop(image, crop_height, crop_width):
    """The [crop_height, crop_width] window at the center of the image (floor of offsets)."""
    shape = tf.shape(image)
    offset_height = (shape[0] - crop_height) // 2
    offset_width = (shape[1] - crop_width) // 2
    return tf.image.crop_to_bounding_box(
        image, offset_height, offset_width, crop_height, crop_width
    )


def preprocess_for_train(
    image,
    output_height,
    output_width,
    resize_side_min=RESIZE_SIDE_MIN,
    resize_side_max=RESIZE_SIDE_MAX,
    seed=None,
):
    """Scale jittering, random crop, random flip, mean subtraction.

    Args:
        image: [height, width, channels] tensor (1 or 3 channels), uint8 or float in
            [0, 255].
        output_height: output height in pixels.
        output_width: output width in pixels.
        resize_side_min: smallest random size of the image's smaller side.
        resize_side_max: largest random size of the image's smaller side (inclusive).
        seed: optional op-level seed base for the random ops.

    Returns:
        float32 [output_height, output_width, channels] with the means subtracted.
    """
    image_ops.check_output_size(output_height, output_width)
    if not 0 < resize_side_min <= resize_side_max:
        raise ValueError(
            f"need 0 < resize_side_min <= resize_side_max, got {resize_side_min}, {resize_side_max}"
        )
    channels = image_ops.static_channels(image)
    seeds = image_ops.op_seeds(seed)
    resize_side = tf.random.uniform(
        [], minval=resize_side_min, maxval=resize_side_max + 1, dtype=tf.int32, seed=next(seeds)
    )
    # A smaller side of at least max(output) lets the crop fit in both directions.
    resize_side = tf.maximum(resize_side, max(output_height, output_width))
    image = image_ops.aspect_preserving_resize(image, resize_side)
    image = tf.image.random_crop(image, [output_height, output_width, channels], seed=next(seeds))
    image = tf.image.random_flip_left_right(image, seed=next(seeds))
    return subtract_means(image)


def preprocess_for_eval(image, output_height, output_width, resize_side=RESIZE_SIDE_MIN, seed=None):
    """Aspect-preserving resize, central crop, mean subtraction.

    Args:
        image: [height, width, channels] tensor (1 or 3 channels), uint8 or float in
            [0, 255].
        output_height: output height in pixels.
        output_width: output width in pixels.
        resize_side: size of the image's smaller side before the crop (raised to
            max(output_height, output_width) when smaller).
        seed: ignored (evaluation is deterministic); accepted so that callers can pass
            the same keyword arguments in both modes.

    Returns:
        float32 [output_height, output_width, channels] with the means subtracted.
    """
    del seed
    image_ops.check_output_size(output_height, output_width)
    channels = image_ops.static_channels(image)
    resize_side = max(int(resize_side), output_height, output_width)
    image = image_ops.aspect_preserving_resize(image, resize_side)
    image = _central_crop(image, output_height, output_width)
    image.set_shape([output_height, output_width, channels])
    return subtract_means(image)


def preprocess_image(image, output_height, output_width, is_training=False, **kwargs):
    """Training or evaluation preprocessing; `kwargs` go to the chosen function.

    For TF-Slim compatibility, evaluation also accepts `resize_side_min` as the resize
    side (and ignores `resize_side_max`).
    """
    if is_training:
        return preprocess_for_train(image, output_height, output_width, **kwargs)
    if "resize_side_min" in kwargs:
        kwargs["resize_side"] = kwargs.pop("resize_side_min")
    kwargs.pop("resize_side_max", None)
    return preprocess_for_eval(image, output_height, output_width, **kwargs)
