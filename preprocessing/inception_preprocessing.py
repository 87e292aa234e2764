"""Inception preprocessing (TF-Slim's `inception_preprocessing`), after Szegedy et al.,
"Going Deeper with Convolutions" (CVPR 2015), section 6: random crops covering 8% to 100%
of the image with aspect ratios in [3/4, 4/3], plus photometric distortions.

Training: sample a distorted bounding box (covering at least 10% of the given object box,
aspect ratio in [0.75, 1.33], area in [5%, 100%] of the image), crop it, resize it to the
output size, flip left-right at random, distort the colors, scale to [-1, 1].
Evaluation: take the central 87.5% of the image, resize it to the output size, scale to
[-1, 1].

Input range: integer images are converted with `tf.image.convert_image_dtype`, so uint8
[0, 255] becomes [0, 1]; float images must already be in [0, 1] (TF-Slim's convention,
unlike the other preprocessings, which take floats on the [0, 255] scale).

`preprocess_jpeg_for_train` / `preprocess_jpeg_for_eval` take the encoded JPEG bytes
instead and decode only the crop window (`tf.image.decode_and_crop_jpeg`), which saves
most of the decoding work when the crop is small.
"""

from preprocessing import image_ops
from slim_compat import tf

MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
CENTRAL_FRACTION = 0.875

# Colour distortion strengths, as fractions of the [0, 1] range.
BRIGHTNESS_MAX_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)
HUE_MAX_DELTA = 0.2
CONTRAST_RANGE = (0.5, 1.5)

# The order in which each distortion ordering applies its adjustments.
_COLOR_ORDERINGS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)


def _to_unit_float(image):
    """float32 image in [0, 1]: integer images are rescaled, float images only cast."""
    if image.dtype.is_floating:
        return tf.cast(image, tf.float32)
    return tf.image.convert_image_dtype(image, tf.float32)


def _to_signed_unit(image):
    """Maps [0, 1] to [-1, 1]."""
    return (image - 0.5) * 2.0


def _object_boxes(bbox):
    """Boxes as float32 [1, num_boxes, 4] ([ymin, xmin, ymax, xmax], relative); whole image
    when `bbox` is None."""
    if bbox is None:
        return tf.constant([[[0.0, 0.0, 1.0, 1.0]]], dtype=tf.float32)
    return tf.reshape(tf.cast(bbox, tf.float32), [1, -1, 4])


def sample_crop_window(
    image_size,
    bbox=None,
    min_object_covered=MIN_OBJECT_COVERED,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    area_range=AREA_RANGE,
    max_attempts=MAX_ATTEMPTS,
    seed=None,
):
    """Samples a random crop window that covers part of the object boxes.

    Args:
        image_size: int32 [3] tensor, [height, width, channels] of the image.
        bbox: optional float [num_boxes, 4] or [1, num_boxes, 4] tensor of object boxes
            [ymin, xmin, ymax, xmax] relative to the image; None means the whole image.
        min_object_covered: the crop contains at least this fraction of some box.
        aspect_ratio_range: allowed width / height of the crop.
        area_range: allowed crop area as a fraction of the image area.
        max_attempts: tries before falling back to the whole image.
        seed: optional op-level seed.

    Returns:
        int32 [4] tensor [offset_height, offset_width, crop_height, crop_width], the
        `crop_window` format of `tf.image.decode_and_crop_jpeg`.
    """
    # The raw op, because tf.image's v1 wrapper logs a deprecation warning on every call
    # and its v2 wrapper ignores the graph-level seed when no op seed is given.
    graph_seed, op_seed = tf.get_seed(seed)
    begin, size, _ = tf.raw_ops.SampleDistortedBoundingBoxV2(
        image_size=image_size,
        bounding_boxes=_object_boxes(bbox),
        min_object_covered=tf.cast(min_object_covered, tf.float32),
        seed=graph_seed or 0,
        seed2=op_seed or 0,
        aspect_ratio_range=list(aspect_ratio_range),
        area_range=list(area_range),
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def central_crop_window(image_size, central_fraction=CENTRAL_FRACTION):
    """The crop window of `tf.image.central_crop(image, central_fraction)`.

    Returns:
        int32 [4] tensor [offset_height, offset_width, crop_height, crop_width].
    """
    height = tf.cast(image_size[0], tf.int32)
    width = tf.cast(image_size[1], tf.int32)

    def offset(side):
        # The same float64 arithmetic as tf.image.central_crop, so that the fused JPEG path
        # crops exactly the same pixels.
        side = tf.cast(side, tf.float64)
        return tf.cast((side - side * central_fraction) / 2.0, tf.int32)

    offset_height = offset(height)
    offset_width = offset(width)
    return tf.stack(
        [offset_height, offset_width, height - 2 * offset_height, width - 2 * offset_width]
    )


def _random_resize(image, output_height, output_width, fast_mode, seed):
    """Bilinear in fast mode, else one of the four TF1 resize methods chosen at random."""
    size = [output_height, output_width]
    if fast_mode:
        return image_ops.resize_tf1(image, size)
    methods = image_ops.TF1_RESIZE_METHODS
    choice = tf.random.uniform([], maxval=len(methods), dtype=tf.int32, seed=seed)
    branches = [(lambda m=method: image_ops.resize_tf1(image, size, m)) for method in methods]
    resized = tf.switch_case(choice, branches)
    resized.set_shape([output_height, output_width, image.get_shape()[-1]])
    return resized


def distort_color(image, ordering=0, fast_mode=True, seed=None):
    """Random photometric distortions of a float image in [0, 1], clipped back to [0, 1].

    Args:
        image: float32 [height, width, channels] in [0, 1]. One-channel images get only
            the brightness and contrast distortions.
        ordering: which of the 4 orderings of the adjustments to apply (0..3).
        fast_mode: only brightness and saturation (ordering 0: brightness first,
            otherwise saturation first); the slow mode adds hue and contrast.
        seed: optional op-level seed base.

    Returns:
        the distorted float32 image in [0, 1].
    """
    seeds = image_ops.op_seeds(seed)
    is_color = image_ops.static_channels(image) == 3
    adjust = {
        "brightness": lambda x: tf.image.random_brightness(
            x, max_delta=BRIGHTNESS_MAX_DELTA, seed=next(seeds)
        ),
        "saturation": lambda x: tf.image.random_saturation(x, *SATURATION_RANGE, seed=next(seeds)),
        "hue": lambda x: tf.image.random_hue(x, max_delta=HUE_MAX_DELTA, seed=next(seeds)),
        "contrast": lambda x: tf.image.random_contrast(x, *CONTRAST_RANGE, seed=next(seeds)),
    }
    if fast_mode:
        steps = ("brightness", "saturation") if ordering == 0 else ("saturation", "brightness")
    else:
        steps = _COLOR_ORDERINGS[ordering]
    for step in steps:
        if step in ("saturation", "hue") and not is_color:
            continue
        image = adjust[step](image)
    return tf.clip_by_value(image, 0.0, 1.0)


def _random_distort_color(image, fast_mode, seed):
    """`distort_color` with one ordering in fast mode, else one of four at random."""
    seeds = image_ops.op_seeds(seed)
    if fast_mode:
        return distort_color(image, 0, fast_mode=True, seed=next(seeds))
    choice = tf.random.uniform([], maxval=len(_COLOR_ORDERINGS), dtype=tf.int32, seed=next(seeds))
    branch_seed = next(seeds)
    branches = [
        (lambda o=ordering: distort_color(image, o, fast_mode=False, seed=branch_seed))
        for ordering in range(len(_COLOR_ORDERINGS))
    ]
    distorted = tf.switch_case(choice, branches)
    distorted.set_shape(image.get_shape())
    return distorted


def _train_after_crop(
    cropped, output_height, output_width, fast_mode, random_flip, color_distortion, seeds
):
    """Resize, flip, colour distortion and scaling of a cropped float image in [0, 1]."""
    image = _random_resize(cropped, output_height, output_width, fast_mode, next(seeds))
    if random_flip:
        image = tf.image.random_flip_left_right(image, seed=next(seeds))
    if color_distortion:
        image = _random_distort_color(image, fast_mode, next(seeds))
    else:
        # Bicubic resizing can overshoot; keep the output range [-1, 1] either way.
        image = tf.clip_by_value(image, 0.0, 1.0)
    return _to_signed_unit(image)


def preprocess_for_train(
    image,
    output_height,
    output_width,
    bbox=None,
    fast_mode=True,
    random_crop=True,
    random_flip=True,
    color_distortion=True,
    min_object_covered=MIN_OBJECT_COVERED,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    area_range=AREA_RANGE,
    max_attempts=MAX_ATTEMPTS,
    seed=None,
):
    """Distorted-box crop, resize, random flip, colour distortion, scale to [-1, 1].

    Args:
        image: [height, width, channels] tensor (1 or 3 channels): integer, or float in
            [0, 1].
        output_height: output height in pixels.
        output_width: output width in pixels.
        bbox: optional float [num_boxes, 4] or [1, num_boxes, 4] object boxes
            [ymin, xmin, ymax, xmax] relative to the image; None means the whole image.
        fast_mode: bilinear resizing and the two-step colour distortion only.
        random_crop: sample a distorted crop (False: use the whole image).
        random_flip: flip left-right with probability 1/2.
        color_distortion: apply the random photometric distortions.
        min_object_covered: see `sample_crop_window`.
        aspect_ratio_range: see `sample_crop_window`.
        area_range: see `sample_crop_window`.
        max_attempts: see `sample_crop_window`.
        seed: optional op-level seed base for the random ops.

    Returns:
        float32 [output_height, output_width, channels] in [-1, 1].
    """
    image_ops.check_output_size(output_height, output_width)
    channels = image_ops.static_channels(image)
    seeds = image_ops.op_seeds(seed)
    image = _to_unit_float(image)
    if random_crop:
        window = sample_crop_window(
            tf.shape(image),
            bbox,
            min_object_covered,
            aspect_ratio_range,
            area_range,
            max_attempts,
            seed=next(seeds),
        )
        image = tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])
        image.set_shape([None, None, channels])
    return _train_after_crop(
        image, output_height, output_width, fast_mode, random_flip, color_distortion, seeds
    )


def preprocess_for_eval(
    image, output_height, output_width, central_fraction=CENTRAL_FRACTION, seed=None
):
    """Central crop, bilinear resize, scale to [-1, 1].

    Args:
        image: [height, width, channels] tensor: integer, or float in [0, 1].
        output_height: output height in pixels.
        output_width: output width in pixels.
        central_fraction: fraction of each side kept by the central crop (None or 1.0:
            no crop).
        seed: ignored (evaluation is deterministic); accepted so that callers can pass
            the same keyword arguments in both modes.

    Returns:
        float32 [output_height, output_width, channels] in [-1, 1].
    """
    del seed
    image_ops.check_output_size(output_height, output_width)
    image_ops.static_channels(image)
    image = _to_unit_float(image)
    if central_fraction and central_fraction < 1.0:
        image = tf.image.central_crop(image, central_fraction=central_fraction)
    image = image_ops.resize_tf1(image, [output_height, output_width])
    return _to_signed_unit(image)


def preprocess_jpeg_for_train(
    encoded_jpeg,
    output_height,
    output_width,
    bbox=None,
    channels=3,
    fast_mode=True,
    random_flip=True,
    color_distortion=True,
    min_object_covered=MIN_OBJECT_COVERED,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    area_range=AREA_RANGE,
    max_attempts=MAX_ATTEMPTS,
    seed=None,
):
    """Training preprocessing that decodes only the sampled crop of a JPEG.

    Same distribution as `preprocess_for_train` on the decoded image; the crop window is
    sampled from the JPEG header's size and passed to `tf.image.decode_and_crop_jpeg`.

    Args:
        encoded_jpeg: scalar string tensor, the JPEG bytes.
        output_height: output height in pixels.
        output_width: output width in pixels.
        bbox: see `preprocess_for_train`.
        channels: channels to decode to (1 or 3).
        fast_mode: see `preprocess_for_train`.
        random_flip: see `preprocess_for_train`.
        color_distortion: see `preprocess_for_train`.
        min_object_covered: see `sample_crop_window`.
        aspect_ratio_range: see `sample_crop_window`.
        area_range: see `sample_crop_window`.
        max_attempts: see `sample_crop_window`.
        seed: optional op-level seed base for the random ops.

    Returns:
        float32 [output_height, output_width, channels] in [-1, 1].
    """
    image_ops.check_output_size(output_height, output_width)
    seeds = image_ops.op_seeds(seed)
    window = sample_crop_window(
        tf.image.extract_jpeg_shape(encoded_jpeg),
        bbox,
        min_object_covered,
        aspect_ratio_range,
        area_range,
        max_attempts,
        seed=next(seeds),
    )
    cropped = tf.image.decode_and_crop_jpeg(encoded_jpeg, window, channels=channels)
    cropped.set_shape([None, None, channels])
    return _train_after_crop(
        _to_unit_float(cropped),
        output_height,
        output_width,
        fast_mode,
        random_flip,
        color_distortion,
        seeds,
    )


def preprocess_jpeg_for_eval(
    encoded_jpeg,
    output_height,
    output_width,
    channels=3,
    central_fraction=CENTRAL_FRACTION,
    seed=None,
):
    """Evaluation preprocessing that decodes only the central crop of a JPEG.

    Same pixels as `preprocess_for_eval` on the decoded image.

    Args:
        encoded_jpeg: scalar string tensor, the JPEG bytes.
        output_height: output height in pixels.
        output_width: output width in pixels.
        channels: channels to decode to (1 or 3).
        central_fraction: see `preprocess_for_eval`.
        seed: ignored; accepted for the common signature.

    Returns:
        float32 [output_height, output_width, channels] in [-1, 1].
    """
    del seed
    image_ops.check_output_size(output_height, output_width)
    if central_fraction and central_fraction < 1.0:
        window = central_crop_window(tf.image.extract_jpeg_shape(encoded_jpeg), central_fraction)
        image = tf.image.decode_and_crop_jpeg(encoded_jpeg, window, channels=channels)
    else:
        image = tf.image.decode_jpeg(encoded_jpeg, channels=channels)
    image.set_shape([None, None, channels])
    image = image_ops.resize_tf1(_to_unit_float(image), [output_height, output_width])
    return _to_signed_unit(image)


def preprocess_image(image, output_height, output_width, is_training=False, **kwargs):
    """Training or evaluation preprocessing; `kwargs` go to the chosen function."""
    if is_training:
        return preprocess_for_train(image, output_height, output_width, **kwargs)
    return preprocess_for_eval(image, output_height, output_width, **kwargs)


def preprocess_jpeg(encoded_jpeg, output_height, output_width, is_training=False, **kwargs):
    """The fused decode-and-crop path for training or evaluation."""
    if is_training:
        return preprocess_jpeg_for_train(encoded_jpeg, output_height, output_width, **kwargs)
    return preprocess_jpeg_for_eval(encoded_jpeg, output_height, output_width, **kwargs)
