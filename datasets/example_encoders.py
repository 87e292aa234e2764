"""Turn one converter input item (a pixel array or an image file) into a TF-Slim image example.

These are the `encode_fn`s that `sharded_conversion.convert_splits` runs in its worker
processes, so they are module-level functions of picklable items.
"""

import io

import numpy as np
from PIL import Image

from datasets import tfrecord_format
from datasets.sharded_conversion import UnreadableItem

# PNG files in these modes decode with TensorFlow to the same 8-bit pixels PIL sees; other
# modes (16-bit, 1-bit, float) are re-encoded as 8-bit RGB PNG.
_PNG_MODES_KEPT = ("L", "LA", "RGB", "RGBA", "P")
# JPEG files in these modes are stored as they are (TensorFlow cannot decode CMYK JPEGs).
_JPEG_MODES_KEPT = ("L", "RGB")


def encode_png(pixels):
    """PNG bytes of a uint8 array [H, W, 1] or [H, W, 3] (deterministic for given pixels)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"expected uint8 [H, W, 1 or 3] pixels, got {pixels.dtype} {pixels.shape}")
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_pixels(item):
    """(pixels uint8 [H, W, C], label) -> a PNG-encoded example (MNIST, CIFAR, digits)."""
    pixels, label = item
    return tfrecord_format.make_example(
        encode_png(pixels), b"png", pixels.shape[0], pixels.shape[1], int(label)
    )


def encode_image_file(item):
    """(path, label, class_text or None, bboxes or None) -> an example of that image file.

    JPEG and PNG files are stored byte for byte (as TF-Slim stores them); images in other
    formats or modes that PIL can read are re-encoded as RGB PNG.

    Raises:
      UnreadableItem: the file cannot be read or is not a complete, decodable image.
    """
    path, label, class_text, bboxes = item
    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decode every pixel: truncated files fail here
            image_format, mode, (width, height) = image.format, image.mode, image.size
            if image_format == "JPEG" and mode in _JPEG_MODES_KEPT:
                encoded, record_format = data, b"jpeg"
            elif image_format == "PNG" and mode in _PNG_MODES_KEPT:
                encoded, record_format = data, b"png"
            else:
                encoded = encode_png(np.asarray(image.convert("RGB")))
                record_format = b"png"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableItem(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    return tfrecord_format.make_example(
        encoded, record_format, height, width, label, class_text=class_text, bboxes=bboxes
    )
