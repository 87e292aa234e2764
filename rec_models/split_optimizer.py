"""Two optimizers in one: FTRL for the wide (linear) part, another for the rest.

Wide&Deep (Cheng et al. 2016) trains its wide part with FTRL-Proximal (McMahan et al.
2013, L1 for sparse weights) and its deep part with AdaGrad. tfzoo's trainer builds one
optimizer from --optimizer; `--optimizer=wide_ftrl` (registered by
tasks/recommendation.py) is this one, which hands every variable under the wide scope
(ctr.WIDE_SCOPE) to FTRL and the others to --deep_optimizer. It is a TF1 optimizer like
any other, so loss scaling, accumulation and Horovod's reduction around it are unchanged.
"""

from slim_compat import tf


class SplitOptimizer(tf.train.Optimizer):
    """Applies `scoped` to variables whose name starts with one of `scopes`, `default` else.

    Args:
        scoped: the optimizer of the scoped variables (FTRL for the wide part).
        default: the optimizer of every other variable.
        scopes: variable-scope prefixes (without the trailing '/').
    """

    def __init__(self, scoped, default, scopes, name="SplitOptimizer"):
        super().__init__(use_locking=False, name=name)
        self.scoped, self.default = scoped, default
        self.prefixes = tuple(s.rstrip("/") + "/" for s in scopes)

    def owns(self, var):
        """Whether `var` goes to the scoped optimizer."""
        return var.op.name.startswith(self.prefixes)

    def compute_gradients(self, *args, **kwargs):
        return self.default.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        scoped = [(g, v) for g, v in grads_and_vars if self.owns(v)]
        rest = [(g, v) for g, v in grads_and_vars if not self.owns(v)]
        updates = []
        if scoped:
            updates.append(self.scoped.apply_gradients(scoped, name="scoped"))
        if rest:
            updates.append(self.default.apply_gradients(rest, name="default"))
        with tf.control_dependencies(updates):
            if global_step is None:
                return tf.group(*updates, name=name or self.get_name())
            # One step, however many optimizers updated.
            return tf.assign_add(global_step, 1, name=name or self.get_name()).op

    def get_slot_names(self):
        return sorted(set(self.scoped.get_slot_names()) | set(self.default.get_slot_names()))

    def get_slot(self, var, name):
        owner = self.scoped if self.owns(var) else self.default
        return owner.get_slot(var, name) if name in owner.get_slot_names() else None

    def variables(self):
        return self.scoped.variables() + self.default.variables()
