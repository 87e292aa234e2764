"""THE map from preprocessing name to preprocessing module.

Every module in `PREPROCESSINGS` provides

    preprocess_image(image, output_height, output_width, is_training=False, **kwargs)

taking one [height, width, channels] image (uint8, or float; see each module for the float
range) and returning a float32 [output_height, output_width, channels] image. Every
function accepts `seed=` (an op-level seed base for its random ops; ignored when nothing is
random). Modules that can decode only the part of a JPEG they keep also provide
`preprocess_jpeg(encoded_jpeg, output_height, output_width, is_training=False, **kwargs)`,
returned by `get_jpeg_preprocessing`.

Which network uses which preprocessing is recorded in `image_models/nets_factory.py`.

The functions returned here, and `ensure_channels`, are marked for AutoGraph not to
convert: they branch only on Python values, and converting their call trees each time a
`tf.data` map function is traced costs seconds per pipeline.

    fn = get_preprocessing("inception", is_training=True)
    image = fn(image, 224, 224)
"""

import functools

from preprocessing import (
    cifarnet_preprocessing,
    inception_preprocessing,
    lenet_preprocessing,
    vgg_preprocessing,
)
from slim_compat import tf

PREPROCESSINGS = {
    "cifarnet": cifarnet_preprocessing,
    "inception": inception_preprocessing,
    "lenet": lenet_preprocessing,
    "vgg": vgg_preprocessing,
}


def _module(name):
    if name not in PREPROCESSINGS:
        raise ValueError(
            f"unknown preprocessing {name!r}; valid names: {', '.join(sorted(PREPROCESSINGS))}"
        )
    return PREPROCESSINGS[name]


def get_preprocessing(name, is_training=False):
    """The preprocessing function called `name`, in training or evaluation mode.

    Args:
        name: a key of `PREPROCESSINGS`.
        is_training: training-time augmentation (True) or deterministic evaluation (False).

    Returns:
        fn(image, output_height, output_width, **kwargs) -> float32
        [output_height, output_width, channels] tensor.

    Raises:
        ValueError: if `name` is not a key of `PREPROCESSINGS`.
    """
    module = _module(name)

    @tf.autograph.experimental.do_not_convert
    @functools.wraps(module.preprocess_image)
    def preprocessing_fn(image, output_height, output_width, **kwargs):
        return module.preprocess_image(
            image, output_height, output_width, is_training=is_training, **kwargs
        )

    return preprocessing_fn


def get_jpeg_preprocessing(name, is_training=False):
    """The fused decode-and-preprocess function for JPEG bytes, or None if `name` has none.

    Args:
        name: a key of `PREPROCESSINGS`.
        is_training: training or evaluation mode.

    Returns:
        fn(encoded_jpeg, output_height, output_width, **kwargs) -> float32
        [output_height, output_width, channels] tensor, or None: the caller then decodes
        the image itself and uses `get_preprocessing`.

    Raises:
        ValueError: if `name` is not a key of `PREPROCESSINGS`.
    """
    module = _module(name)
    if not hasattr(module, "preprocess_jpeg"):
        return None

    @tf.autograph.experimental.do_not_convert
    @functools.wraps(module.preprocess_jpeg)
    def jpeg_preprocessing_fn(encoded_jpeg, output_height, output_width, **kwargs):
        return module.preprocess_jpeg(
            encoded_jpeg, output_height, output_width, is_training=is_training, **kwargs
        )

    return jpeg_preprocessing_fn


@tf.autograph.experimental.do_not_convert
def ensure_channels(image, channels):
    """Converts a [height, width, c] image to `channels` channels (1 or 3).

    Grayscale becomes RGB by repeating the channel; RGB becomes grayscale by the ITU-R
    BT.601 luma weights (`tf.image.rgb_to_grayscale`). An image whose channel count is
    only known at run time (e.g. from `tf.io.decode_image`) is converted by a run-time
    branch; the result always has a static channel count.

    Args:
        image: [height, width, c] tensor with c in {1, 3} (a 4th, alpha, channel is
            dropped first).
        channels: 1 or 3.

    Returns:
        the image with `channels` channels and the same dtype.

    Raises:
        ValueError: for `channels` other than 1 or 3, or a static c other than 1, 3 or 4.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    image = tf.convert_to_tensor(image)
    if image.get_shape().ndims != 3:
        raise ValueError(f"image must be [height, width, channels], got shape {image.get_shape()}")
    have = image.get_shape()[-1]
    if have is None:
        image = image[:, :, :3]  # drop a possible alpha channel; no-op for 1 or 3
        have_rgb = tf.equal(tf.shape(image)[-1], 3)
        if channels == 3:
            image = tf.cond(
                have_rgb, lambda: image, lambda: tf.image.grayscale_to_rgb(image[:, :, :1])
            )
        else:
            image = tf.cond(have_rgb, lambda: _rgb_to_gray(image), lambda: image[:, :, :1])
        image.set_shape([None, None, channels])
        return image
    have = int(have)
    if have == 4:
        image, have = image[:, :, :3], 3
    if have not in (1, 3):
        raise ValueError(f"image has {have} channels, expected 1, 3 or 4 (RGBA)")
    if have == channels:
        return image
    if channels == 3:
        return tf.image.grayscale_to_rgb(image)
    return _rgb_to_gray(image)


def _rgb_to_gray(image):
    """`tf.image.rgb_to_grayscale`, rounded back for integer images."""
    if image.dtype.is_floating:
        return tf.image.rgb_to_grayscale(image)
    gray = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
    return tf.cast(tf.round(gray), image.dtype)
