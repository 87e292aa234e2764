"""Process-wide TensorFlow set-up shared by the entry points."""

import logging as py_logging

from slim_compat import tf


def configure_tf_runtime():
    """Graph mode with TF1 tensor semantics; TensorFlow's Python logs through absl only.

    Tensor equality off (TF1's identity `==` and id hashing) is what tf-slim was written
    for, and it halves graph-building time of the big nets: tf_keras's legacy layers put
    every graph variable in a set for each new variable, and a TF2 tensor hash is slow.
    """
    tf.disable_eager_execution()
    tf.disable_tensor_equality()
    tf_logger = tf.get_logger()
    for handler in list(tf_logger.handlers):
        if isinstance(handler, py_logging.StreamHandler):
            tf_logger.removeHandler(handler)
