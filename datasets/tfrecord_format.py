"""The TF-Slim image tfrecord format: feature keys, the parser and the example writer.

Every tfzoo dataset stores one `tf.train.Example` per image with the keys TF-Slim's
converters write, so records made by TF-Slim's `download_and_convert_data.py` and by
tfzoo's converters can be read by either:

    image/encoded      bytes   PNG or JPEG file contents, or raw uint8 pixels (HWC order)
    image/format       bytes   b'png', b'jpeg' or b'raw'
    image/class/label  int64   class id (ImageNet: 1..1000, 0 is the background class)
    image/height       int64   pixels
    image/width        int64   pixels
    image/class/text   bytes   human-readable class name (ImageNet only, optional)
    image/object/bbox/{xmin,ymin,xmax,ymax}  float lists, normalized to [0, 1] (optional)

The parser decodes with a fixed channel count per dataset, so the channel dimension is
static and a batch of one dataset always has the same depth.
"""

import functools

from slim_compat import tf

KEY_ENCODED = "image/encoded"
KEY_FORMAT = "image/format"
KEY_LABEL = "image/class/label"
KEY_HEIGHT = "image/height"
KEY_WIDTH = "image/width"
KEY_CLASS_TEXT = "image/class/text"
KEY_BBOX_XMIN = "image/object/bbox/xmin"
KEY_BBOX_YMIN = "image/object/bbox/ymin"
KEY_BBOX_XMAX = "image/object/bbox/xmax"
KEY_BBOX_YMAX = "image/object/bbox/ymax"

FORMAT_PNG = b"png"
FORMAT_JPEG = b"jpeg"
FORMAT_RAW = b"raw"
IMAGE_FORMATS = (FORMAT_PNG, FORMAT_JPEG, FORMAT_RAW)


def _feature_spec(with_class_text=False, with_bboxes=False):
    spec = {
        KEY_ENCODED: tf.io.FixedLenFeature([], tf.string),
        # An absent format means "sniff the encoded bytes" (PNG and JPEG both decode).
        KEY_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value=""),
        KEY_LABEL: tf.io.FixedLenFeature([], tf.int64),
        KEY_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        KEY_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }
    if with_class_text:
        spec[KEY_CLASS_TEXT] = tf.io.FixedLenFeature([], tf.string, default_value="")
    if with_bboxes:
        for key in (KEY_BBOX_YMIN, KEY_BBOX_XMIN, KEY_BBOX_YMAX, KEY_BBOX_XMAX):
            spec[key] = tf.io.VarLenFeature(tf.float32)
    return spec


def decode_image(encoded, image_format, height, width, channels):
    """Decodes one image of any supported format to uint8 [H, W, channels].

    Args:
      encoded: scalar string tensor, the 'image/encoded' bytes.
      image_format: scalar string tensor, the 'image/format' value.
      height: scalar int64 tensor; used only by the raw format.
      width: scalar int64 tensor; used only by the raw format.
      channels: Python int, the dataset's channel count (1 or 3).

    Returns:
      uint8 tensor [H, W, channels] with a static channel dimension.
    """

    def decode_raw():
        pixels = tf.io.decode_raw(encoded, tf.uint8)
        return tf.reshape(pixels, tf.stack([height, width, tf.constant(channels, tf.int64)]))

    def decode_encoded():
        # decode_image sniffs PNG / JPEG (and GIF / BMP) from the bytes themselves, so a
        # record whose 'image/format' is missing or mislabelled still decodes.
        return tf.io.decode_image(encoded, channels=channels, expand_animations=False)

    image = tf.cond(tf.equal(image_format, FORMAT_RAW), decode_raw, decode_encoded)
    image.set_shape([None, None, channels])
    return image


def parse_features(serialized_example):
    """The raw features of one example: encoded bytes, format, label, height, width."""
    return tf.io.parse_single_example(serialized_example, _feature_spec())


def is_jpeg(encoded, image_format):
    """True for JPEG bytes (by their magic number, whatever 'image/format' says) not stored raw."""
    return tf.logical_and(
        tf.not_equal(image_format, FORMAT_RAW),
        tf.equal(tf.strings.substr(encoded, 0, 3), b"\xff\xd8\xff"),
    )


def parse_example(serialized_example, channels):
    """Parses one serialized TF-Slim image example.

    Args:
      serialized_example: scalar string tensor.
      channels: channel count to decode to.

    Returns:
      (image uint8 [H, W, channels], label int64 scalar).
    """
    features = tf.io.parse_single_example(serialized_example, _feature_spec())
    image = decode_image(
        features[KEY_ENCODED],
        features[KEY_FORMAT],
        features[KEY_HEIGHT],
        features[KEY_WIDTH],
        channels,
    )
    return image, features[KEY_LABEL]


def parse_example_with_bboxes(serialized_example, channels):
    """Like `parse_example`, and also returns the object boxes and the class text.

    Returns:
      (image uint8 [H, W, channels], label int64 scalar, bboxes float32 [N, 4] as
      (ymin, xmin, ymax, xmax) in [0, 1] (N may be 0), class_text string scalar).
    """
    spec = _feature_spec(with_class_text=True, with_bboxes=True)
    features = tf.io.parse_single_example(serialized_example, spec)
    image = decode_image(
        features[KEY_ENCODED],
        features[KEY_FORMAT],
        features[KEY_HEIGHT],
        features[KEY_WIDTH],
        channels,
    )
    coords = [
        tf.sparse.to_dense(features[key])
        for key in (KEY_BBOX_YMIN, KEY_BBOX_XMIN, KEY_BBOX_YMAX, KEY_BBOX_XMAX)
    ]
    bboxes = tf.stack(coords, axis=1)
    return image, features[KEY_LABEL], bboxes, features[KEY_CLASS_TEXT]


def make_parse_fn(channels):
    """Returns parse_fn(serialized_example) -> (image, label) for a fixed channel count."""
    fn = functools.partial(parse_example, channels=channels)
    fn.__doc__ = f"Parses a TF-Slim image example to (uint8 [H, W, {channels}], int64 label)."
    return fn


def make_example(encoded, image_format, height, width, label, class_text=None, bboxes=None):
    """Builds one TF-Slim image `tf.train.Example`.

    Args:
      encoded: bytes, the PNG / JPEG file contents or raw HWC uint8 pixels.
      image_format: one of b'png', b'jpeg', b'raw' (str is accepted too).
      height: image height in pixels.
      width: image width in pixels.
      label: integer class id.
      class_text: optional human-readable class name (str or bytes).
      bboxes: optional list of (xmin, ymin, xmax, ymax) normalized boxes.

    Returns:
      a `tf.train.Example`.
    """
    if isinstance(image_format, str):
        image_format = image_format.encode("ascii")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format {image_format!r} is not one of {IMAGE_FORMATS}")

    def bytes_feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int64_feature(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def float_feature(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))

    feature = {
        KEY_ENCODED: bytes_feature(encoded),
        KEY_FORMAT: bytes_feature(image_format),
        KEY_LABEL: int64_feature(label),
        KEY_HEIGHT: int64_feature(height),
        KEY_WIDTH: int64_feature(width),
    }
    if class_text is not None:
        if isinstance(class_text, str):
            class_text = class_text.encode("utf-8")
        feature[KEY_CLASS_TEXT] = bytes_feature(class_text)
    if bboxes:
        xmin, ymin, xmax, ymax = zip(*bboxes, strict=True)
        feature[KEY_BBOX_XMIN] = float_feature(xmin)
        feature[KEY_BBOX_YMIN] = float_feature(ymin)
        feature[KEY_BBOX_XMAX] = float_feature(xmax)
        feature[KEY_BBOX_YMAX] = float_feature(ymax)
    return tf.train.Example(features=tf.train.Features(feature=feature))
