"""Process-wide TensorFlow set-up shared by the entry points."""

import logging as py_logging

from slim_compat import tf


def configure_tf_runtime():
    """Graph mode, and TensorFlow's Python logs through absl's handler only (no double lines)."""
    tf.disable_eager_execution()
    tf_logger = tf.get_logger()
    for handler in list(tf_logger.handlers):
        if isinstance(handler, py_logging.StreamHandler):
            tf_logger.removeHandler(handler)
