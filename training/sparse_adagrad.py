"""Adagrad whose sparse (embedding-row) update is gather -> arithmetic -> scatter.

tf.compat.v1.train.AdagradOptimizer hands an IndexedSlices gradient to TensorFlow's
ResourceSparseApplyAdagrad kernel, which updates the touched rows one at a time: on a
DeepFM step (batch 8192 x 26 ids, ~190,000 distinct rows of a 1M x 16 table) a traced
step spent 96 ms in it for the two tables (plus 57 ms in their two `unique`s). This
optimizer computes the same update with ops that work on all touched rows at once
(the same trace after: about 45 ms of gathers and scatters for both tables):

    accum_rows = accum[ids] + g * g          (a gather)
    var_rows = var[ids] - lr * g * rsqrt(accum_rows)
    accum[ids] = accum_rows; var[ids] = var_rows   (two scatter_updates, a row copy each)

which is the kernel's arithmetic (update_slots=True, no epsilon) on the same fp32 values.
Repeated ids are summed first, as the stock optimizer does (unique + unsorted_segment_sum);
a gradient whose indices are the output of a `Unique` op (rec_models/layers.py dedupes a
batch's ids once, before the lookup) is known to be distinct and skips that step. Dense
gradients take the stock path unchanged.

The forward pass has already gathered var[ids] for the lookup, from the same variable
value the update starts from (nothing writes the table between the step's lookup and its
update, and the update depends on those rows, so it cannot run before them). A lookup
that registers its gathered rows (`register_lookup`) spares the update its gather of var:
at 1M rows that gather was 18 ms of a traced DeepFM step. The values are the same, so the
update is bitwise unchanged; indices that do not trace back to a registered lookup (an
allgathered or accumulated gradient) gather var as before.
"""

import weakref

from slim_compat import tf

#: Op types a tensor may pass through between a Unique op and the gradient's indices
#: without losing the distinctness of its values.
_VALUE_PRESERVING = ("Identity", "Reshape")

#: graph -> [(variable op name, source of the ids, rows of the variable at them)]. Not a
#: graph collection: a saver's meta graph export warns on every save about Python tuples.
_LOOKUPS = weakref.WeakKeyDictionary()


def _source(tensor):
    """`tensor` with Identity and Reshape ops (which keep the values' order) peeled off."""
    for _ in range(16):
        if tensor.op.type not in _VALUE_PRESERVING or not tensor.op.inputs:
            break
        tensor = tensor.op.inputs[0]
    return tensor


def register_lookup(var, ids, rows):
    """Records that `rows` (fp32) are `var`'s rows at `ids`, gathered in the forward pass.

    An update of `var` whose gradient indices trace back to the same `ids` tensor (through
    Identity/Reshape) then reads `rows` instead of gathering var again.
    """
    _LOOKUPS.setdefault(rows.graph, []).append((var.op.name, _source(ids), rows))


def _registered_rows(var, indices):
    """The rows register_lookup recorded for `var` at `indices`, or None."""
    source = _source(indices)
    for name, ids, rows in _LOOKUPS.get(indices.graph, ()):
        if name == var.op.name and ids is source and rows.dtype == var.dtype.base_dtype:
            return rows
    return None


def indices_are_unique(indices):
    """Whether `indices` is (an identity or reshape of) the first output of a Unique op."""
    source = _source(indices)
    return source.op.type == "Unique" and source.value_index == 0


class AdagradOptimizer(tf.train.AdagradOptimizer):
    """tf.compat.v1.train.AdagradOptimizer (same slots, names and dense update) with a
    vectorised sparse update; see the module docstring."""

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices):
        if not indices_are_unique(indices):
            unique, positions = tf.unique(indices)
            grad = tf.math.unsorted_segment_sum(grad, positions, tf.shape(unique)[0])
            indices = unique
        return self._resource_apply_sparse(grad, handle, indices)

    def _resource_apply_sparse(self, grad, var, indices):
        accumulator = self.get_slot(var, "accumulator")
        learning_rate = tf.cast(self._learning_rate_tensor, grad.dtype)
        accumulator_rows = tf.gather(accumulator, indices) + tf.square(grad)
        old_rows = _registered_rows(var, indices)
        if old_rows is None:
            old_rows = tf.gather(var, indices)
        else:
            old_rows = tf.reshape(old_rows, tf.shape(grad))
        var_rows = old_rows - learning_rate * grad * tf.math.rsqrt(accumulator_rows)
        return tf.group(
            tf.scatter_update(accumulator, indices, accumulator_rows, use_locking=False),
            tf.scatter_update(var, indices, var_rows, use_locking=False),
        )
