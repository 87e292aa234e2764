"""Small image helpers shared by the preprocessing modules (no preprocessing of their own)."""

import itertools

from slim_compat import tf


def op_seeds(seed):
    """Yields one op-level seed per random op: `seed`, `seed + 1`, ... or None forever.

    Two random ops given the same op seed under the same graph seed draw the same numbers,
    so a preprocessing function that takes one `seed` hands each of its random ops a
    different one; with `seed=None` every op falls back to the graph seed as usual.
    """
    if seed is None:
        return itertools.repeat(None)
    return itertools.count(int(seed))


def static_channels(image, what="image"):
    """The statically known channel count of a [height, width, channels] image.

    Raises:
        ValueError: if the image is not rank 3 or its channel count is unknown.
    """
    shape = image.get_shape()
    if shape.ndims != 3:
        raise ValueError(f"{what} must be [height, width, channels], got shape {shape}")
    channels = shape[-1]
    if channels is None:
        raise ValueError(
            f"{what} has an unknown channel count (shape {shape}); decode with a fixed "
            "`channels=` or call preprocessing_factory.ensure_channels first"
        )
    return int(channels)


def check_output_size(output_height, output_width):
    """Raises ValueError unless both output sizes are positive integers."""
    for name, value in (("output_height", output_height), ("output_width", output_width)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


# TF1 resize kernels, called through tf.raw_ops because tf.image's v1 wrappers log a
# deprecation warning and its v2 `tf.image.resize` uses half-pixel centers, which would
# shift every image by half a pixel relative to what TF-Slim's checkpoints were trained on.
_TF1_RESIZE_OPS = {
    "bilinear": tf.raw_ops.ResizeBilinear,
    "nearest": tf.raw_ops.ResizeNearestNeighbor,
    "bicubic": tf.raw_ops.ResizeBicubic,
    "area": tf.raw_ops.ResizeArea,
}
TF1_RESIZE_METHODS = tuple(_TF1_RESIZE_OPS)


def resize_tf1(image, size, method="bilinear"):
    """Resizes a [height, width, channels] image with TF1 semantics (align_corners=False).

    Args:
        image: [height, width, channels] tensor of any real dtype.
        size: [new_height, new_width], ints or an int32 tensor.
        method: one of `TF1_RESIZE_METHODS`.

    Returns:
        float32 [new_height, new_width, channels].
    """
    if method not in _TF1_RESIZE_OPS:
        raise ValueError(
            f"unknown resize method {method!r}; valid: {', '.join(TF1_RESIZE_METHODS)}"
        )
    size = tf.cast(size, tf.int32)
    batch = tf.expand_dims(tf.cast(image, tf.float32), 0)
    resized = tf.squeeze(_TF1_RESIZE_OPS[method](images=batch, size=size, align_corners=False), [0])
    static_size = tf.get_static_value(size)
    static_size = [None, None] if static_size is None else [int(s) for s in static_size]
    resized.set_shape(static_size + [image.get_shape()[-1]])
    return resized


def aspect_preserving_resize(image, smallest_side):
    """Bilinearly resizes `image` so that its smaller side becomes `smallest_side` pixels.

    Args:
        image: [height, width, channels] tensor of any real dtype.
        smallest_side: int or int32 scalar tensor.

    Returns:
        float32 [new_height, new_width, channels].
    """
    smallest_side = tf.cast(smallest_side, tf.float32)
    shape = tf.shape(image)
    height = tf.cast(shape[0], tf.float32)
    width = tf.cast(shape[1], tf.float32)
    scale = smallest_side / tf.minimum(height, width)
    new_height = tf.cast(tf.math.rint(height * scale), tf.int32)
    new_width = tf.cast(tf.math.rint(width * scale), tf.int32)
    return resize_tf1(image, tf.stack([new_height, new_width]))
