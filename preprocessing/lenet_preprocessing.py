"""LeNet preprocessing (TF-Slim's `lenet_preprocessing`): crop or pad, then scale to [-1, 1).

The same for training and evaluation: no augmentation. Pixel values v in [0, 255] become
(v - 128) / 128.
"""

from preprocessing import image_ops
from slim_compat import tf


def preprocess_image(image, output_height, output_width, is_training=False, seed=None):
    """Center-crops or zero-pads `image` to the output size and scales it to [-1, 1).

    Args:
        image: [height, width, channels] tensor, uint8 or float in [0, 255].
        output_height: output height in pixels.
        output_width: output width in pixels.
        is_training: accepted for the common signature; LeNet preprocessing has no
            training-time augmentation.
        seed: ignored (nothing is random); accepted for the common signature.

    Returns:
        float32 [output_height, output_width, channels].
    """
    del is_training, seed  # identical in both modes and nothing random, as in TF-Slim
    image_ops.check_output_size(output_height, output_width)
    image = tf.cast(image, tf.float32)
    image = tf.image.resize_image_with_crop_or_pad(image, output_height, output_width)
    return (image - 128.0) / 128.0
