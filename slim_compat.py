"""Makes tf-slim 1.1.0 work on TensorFlow 2.21 in graph mode; import it before tf_slim.

tf-slim's last release (2020) reaches into TensorFlow internals at their pre-2.13
locations. TensorFlow has since moved each of them into a module of its own, and moved
the legacy Keras layers that `slim.batch_norm` uses into the separate `tf_keras`
package (upstream report: keras-team/keras#18839). This module puts every moved name
back where tf-slim looks for it, once, before tf-slim is imported:

* `ops.Tensor`, `ops.IndexedSlices`            (now `framework.tensor`, `framework.indexed_slices`)
* `array_ops.stack`, `array_ops.unstack`       (now `array_ops_stack`)
* `control_flow_ops.cond/case/while_loop/Assert` (now `cond`, `control_flow_case`,
  `while_loop`, `control_flow_assert`)
* `variable_scope.variable`                    (now `variable_v1.VariableV1`)
* `tf_keras.legacy_tf_layers` -> `tf_keras.src.legacy_tf_layers`, which
  `tensorflow.python.layers.normalization` imports lazily for `slim.batch_norm`.

Without these, batch norm, `slim.learning`, the metrics and the data decoder fail.

Usage everywhere in tfzoo:

    from slim_compat import slim, tf   # tf is tf.compat.v1
"""

import importlib
import sys

from training import tf_startup

# First: TensorFlow's CPU start-up banners stay off the console (training/tf_startup.py).
_tf2 = tf_startup.import_tensorflow()

from tensorflow.python.framework import ops as _ops  # noqa: E402
from tensorflow.python.ops import array_ops as _array_ops  # noqa: E402
from tensorflow.python.ops import control_flow_ops as _control_flow_ops  # noqa: E402
from tensorflow.python.ops import variable_scope as _variable_scope  # noqa: E402


def _set_missing(module, name, value):
    if not hasattr(module, name):
        setattr(module, name, value)


def _install():
    from tensorflow.python.framework import indexed_slices, tensor
    from tensorflow.python.ops import (
        array_ops_stack,
        cond,
        control_flow_assert,
        control_flow_case,
        variable_v1,
        while_loop,
    )

    _set_missing(_ops, "Tensor", tensor.Tensor)
    _set_missing(_ops, "IndexedSlices", indexed_slices.IndexedSlices)
    _set_missing(_array_ops, "stack", array_ops_stack.stack)
    _set_missing(_array_ops, "unstack", array_ops_stack.unstack)
    _set_missing(_control_flow_ops, "cond", cond.cond)
    _set_missing(_control_flow_ops, "case", control_flow_case.case)
    _set_missing(_control_flow_ops, "while_loop", while_loop.while_loop)
    _set_missing(_control_flow_ops, "Assert", control_flow_assert.Assert)
    _set_missing(_variable_scope, "variable", variable_v1.VariableV1)

    if "tf_keras.legacy_tf_layers" not in sys.modules:
        legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
        sys.modules["tf_keras.legacy_tf_layers"] = legacy
        for sub in (
            "base",
            "core",
            "convolutional",
            "normalization",
            "pooling",
            "variable_scope_shim",
        ):
            try:
                sys.modules[f"tf_keras.legacy_tf_layers.{sub}"] = importlib.import_module(
                    f"tf_keras.src.legacy_tf_layers.{sub}"
                )
            except ImportError:  # not every sub-module exists in every tf_keras release
                pass


_install()

import tf_slim as slim  # noqa: E402  (must follow _install)

tf = _tf2.compat.v1

__all__ = ["slim", "tf"]
