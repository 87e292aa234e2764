"""THE map from optimizer name to a builder: TF-Slim / FastNN's seven, AdamW and LAMB.

Only the TF1 optimizers (`tf.compat.v1.train.*` and subclasses of it) work in graph mode
with tfzoo's train op (training/train_op.py: its own Horovod allreduce, accumulation and
loss scaling around `compute_gradients` / `apply_gradients`); Keras 3 optimizers do not.

A builder is `fn(learning_rate, params) -> tf.compat.v1.train.Optimizer`, reading its
hyper-parameters as attributes of `params` (the flags). A task family adds its own with
`register_optimizer(name, fn)`; an unknown name is a ValueError listing the valid ones.

AdamW is google-research/bert's AdamWeightDecayOptimizer (Loshchilov & Hutter 2019,
"Decoupled Weight Decay Regularization"): Adam without bias correction, plus a weight
decay that is added to the update, not to the loss, and skipped for variables whose name
matches an excluded pattern (LayerNorm, layer_norm, bias by default). LAMB (You et al.
2020, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes") scales
each variable's bias-corrected AdamW update by the trust ratio ||w|| / ||update||, with
the same exclusions from weight decay and from that layer adaptation.
"""

import re

from slim_compat import tf
from training import sparse_adagrad


def _adadelta(lr, p):
    return tf.train.AdadeltaOptimizer(lr, rho=p.adadelta_rho, epsilon=p.opt_epsilon)


def _adagrad(lr, p):
    # The stock optimizer's arithmetic; its sparse (embedding-row) update is vectorised.
    return sparse_adagrad.AdagradOptimizer(
        lr, initial_accumulator_value=p.adagrad_initial_accumulator_value
    )


def _adam(lr, p):
    return tf.train.AdamOptimizer(lr, beta1=p.adam_beta1, beta2=p.adam_beta2, epsilon=p.opt_epsilon)


def _ftrl(lr, p):
    return tf.train.FtrlOptimizer(
        lr,
        learning_rate_power=p.ftrl_learning_rate_power,
        initial_accumulator_value=p.ftrl_initial_accumulator_value,
        l1_regularization_strength=p.ftrl_l1,
        l2_regularization_strength=p.ftrl_l2,
    )


def _momentum(lr, p):
    return tf.train.MomentumOptimizer(lr, momentum=p.momentum, name="Momentum")


def _sgd(lr, p):
    return tf.train.GradientDescentOptimizer(lr)


def _rmsprop(lr, p):
    return tf.train.RMSPropOptimizer(
        lr, decay=p.rmsprop_decay, momentum=p.rmsprop_momentum, epsilon=p.opt_epsilon
    )


def _decoupled_kwargs(p):
    return dict(
        weight_decay=p.decoupled_weight_decay,
        beta1=p.adam_beta1,
        beta2=p.adam_beta2,
        epsilon=p.adamw_epsilon,
        exclude_from_weight_decay=p.decoupled_weight_decay_exclude,
    )


def _adamw(lr, p):
    return AdamWeightDecayOptimizer(lr, **_decoupled_kwargs(p))


def _lamb(lr, p):
    return LambOptimizer(lr, **_decoupled_kwargs(p))


OPTIMIZERS = {
    "adadelta": _adadelta,
    "adagrad": _adagrad,
    "adam": _adam,
    "ftrl": _ftrl,
    "momentum": _momentum,
    "sgd": _sgd,
    "rmsprop": _rmsprop,
    "adamw": _adamw,
    "adamweightdecay": _adamw,  # FastNN's name for it
    "lamb": _lamb,
}
#: The optimizers of this module; tasks may register more (e.g. recommendation's wide_ftrl).
BUILTIN_OPTIMIZERS = tuple(OPTIMIZERS)


def register_optimizer(name, fn):
    """Adds `fn(learning_rate, params) -> optimizer` under `name` (a new name only)."""
    if name in OPTIMIZERS:
        raise ValueError(f"Optimizer {name!r} is already registered")
    OPTIMIZERS[name] = fn


def check_name(name):
    """Raises ValueError for an optimizer name that is not registered, listing the valid ones."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of: {', '.join(OPTIMIZERS)}")


def configure_optimizer(name, learning_rate, params):
    """Returns the optimizer `name` with the learning rate and the flags' hyper-parameters.

    Args:
        name: a key of OPTIMIZERS.
        learning_rate: scalar tensor or float.
        params: object with the optimizer flags as attributes (adadelta_rho, opt_epsilon,
            adagrad_initial_accumulator_value, adam_beta1, adam_beta2,
            ftrl_learning_rate_power, ftrl_initial_accumulator_value, ftrl_l1, ftrl_l2,
            momentum, rmsprop_momentum, rmsprop_decay, decoupled_weight_decay,
            decoupled_weight_decay_exclude, adamw_epsilon).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    check_name(name)
    return OPTIMIZERS[name](learning_rate, params)


def _patterns(exclude):
    if exclude is None:
        return []
    if isinstance(exclude, str):
        exclude = exclude.split(",")
    return [re.compile(p.strip()) for p in exclude if p.strip()]


class AdamWeightDecayOptimizer(tf.train.Optimizer):
    """Adam with decoupled weight decay, as google-research/bert's optimization.py.

    Per variable w with gradient g: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    update = m / (sqrt(v) + eps) (+ weight_decay * w unless excluded), w -= lr * update.
    The moment slots are `m` and `v`, stored as `<var>/adam_m` and `<var>/adam_v`: the
    names in google-research/bert's pretraining checkpoints. Sparse gradients are
    densified: the moments of every row decay each step, as in a dense update.

    `fused=True` (the default) runs the step through TensorFlow's fused Adam kernel, one
    pass over var, m and v instead of a chain of element-wise ops (10% of a bert_base
    step): with beta1_power = beta2_power = 0 the kernel's bias correction is 1, so it
    computes exactly m / (sqrt(v) + eps) without correction, as google's; the decoupled
    decay w -= lr * weight_decay * w goes first, which is exact because the Adam step does
    not read w. `fused=False` builds the same formula from element-wise ops. (The kernel
    takes 1 - beta2 in fp32, 0.00099998713 for 0.999 where the ops use float64's 0.001:
    a beta2 of 0.99900001, which changes nothing measurable in training.)
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=0.01,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-6,
        exclude_from_weight_decay=("LayerNorm", "layer_norm", "bias"),
        use_locking=False,
        name="AdamWeightDecay",
        fused=True,
    ):
        super().__init__(use_locking, name)
        self._fused = bool(fused)
        self._lr = learning_rate
        self._weight_decay = float(weight_decay)
        self._beta1 = float(beta1)
        self._beta2 = float(beta2)
        self._epsilon = float(epsilon)
        self._exclude = _patterns(exclude_from_weight_decay)

    def _excluded(self, var):
        """True for a variable whose name matches an excluded pattern (LayerNorm, bias)."""
        return any(p.search(var.op.name) for p in self._exclude)

    def _decays(self, var):
        return bool(self._weight_decay) and not self._excluded(var)

    def _create_slots(self, var_list):
        for v in var_list:
            self._zeros_slot(v, "m", "adam_m")
            self._zeros_slot(v, "v", "adam_v")

    def _adam_direction(self, grad, var):
        """Updates the moments; returns (their assign ops, the update direction)."""
        b1, b2 = self._beta1, self._beta2
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        grad = tf.cast(grad, var.dtype.base_dtype)
        m_new = b1 * m + (1.0 - b1) * grad
        v_new = b2 * v + (1.0 - b2) * tf.square(grad)
        moments = [m.assign(m_new, use_locking=self._use_locking)]
        moments.append(v.assign(v_new, use_locking=self._use_locking))
        return moments, m_new, v_new

    def _direction(self, m_new, v_new, var):
        update = m_new / (tf.sqrt(v_new) + self._epsilon)
        if self._decays(var):
            update += self._weight_decay * var
        return update

    def _apply_fused(self, grad, var):
        """The decay, then google's Adam step in TensorFlow's fused kernel (see the class)."""
        dtype = var.dtype.base_dtype
        lr = tf.cast(self._lr, dtype)
        decay = []
        grad = tf.cast(grad, dtype)
        if self._decays(var):
            # After the gradient: the forward and backward passes read w before it decays.
            with tf.control_dependencies([grad]):
                decay.append(
                    var.assign_sub(lr * self._weight_decay * var, use_locking=self._use_locking)
                )
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        # 0 ** t: the kernel's lr * sqrt(1 - beta2^t) / (1 - beta1^t) is then lr itself.
        no_correction = tf.constant(0.0, dtype)
        constants = dict(
            beta1_power=no_correction,
            beta2_power=no_correction,
            lr=lr,
            beta1=tf.constant(self._beta1, dtype),
            beta2=tf.constant(self._beta2, dtype),
            epsilon=tf.constant(self._epsilon, dtype),
            grad=grad,
            use_locking=self._use_locking,
        )
        with tf.control_dependencies(decay):
            if isinstance(var, tf.Variable) and var.dtype._is_ref_dtype:  # noqa: SLF001
                return tf.raw_ops.ApplyAdam(var=var, m=m, v=v, **constants).op
            return tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, **constants)

    def _apply(self, grad, var):
        if self._fused:
            return self._apply_fused(grad, var)
        moments, m_new, v_new = self._adam_direction(grad, var)
        update = self._direction(m_new, v_new, var)
        lr = tf.cast(self._lr, var.dtype.base_dtype)
        step = var.assign_sub(self._scale(update, var) * lr, use_locking=self._use_locking)
        return tf.group(step, *moments)

    def _scale(self, update, var):
        return update

    def _apply_dense(self, grad, var):
        return self._apply(grad, var)

    def _resource_apply_dense(self, grad, handle):
        return self._apply(grad, handle)

    def _densify(self, grad, var, indices):
        return tf.math.unsorted_segment_sum(grad, indices, tf.shape(var, out_type=indices.dtype)[0])

    def _apply_sparse(self, grad, var):
        return self._apply(self._densify(grad.values, var, grad.indices), var)

    def _resource_apply_sparse(self, grad, handle, indices):
        return self._apply(self._densify(grad, handle, indices), handle)


class LambOptimizer(AdamWeightDecayOptimizer):
    """LAMB: the bias-corrected AdamW update of each variable scaled by ||w|| / ||update||.

    Variables excluded from weight decay (LayerNorm, biases) are excluded from the layer
    adaptation too (trust ratio 1), as in the paper's BERT recipe. The ratio is 1 when
    either norm is zero (a zero-initialised variable takes a plain Adam step).
    """

    def __init__(self, learning_rate, name="LAMB", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self._fused = False  # the trust ratio needs the update before it is applied

    def _create_slots(self, var_list):
        super()._create_slots(var_list)
        first = min(var_list, key=lambda v: v.name)
        self._create_non_slot_variable(self._beta1, "beta1_power", first)
        self._create_non_slot_variable(self._beta2, "beta2_power", first)

    def _powers(self):
        graph = tf.get_default_graph()
        return (
            self._get_non_slot_variable("beta1_power", graph=graph),
            self._get_non_slot_variable("beta2_power", graph=graph),
        )

    def _direction(self, m_new, v_new, var):
        b1_power, b2_power = self._powers()
        dtype = var.dtype.base_dtype
        m_hat = m_new / (1.0 - tf.cast(b1_power, dtype))
        v_hat = v_new / (1.0 - tf.cast(b2_power, dtype))
        update = m_hat / (tf.sqrt(v_hat) + self._epsilon)
        if self._decays(var):
            update += self._weight_decay * var
        return update

    def _scale(self, update, var):
        if self._excluded(var):
            return update
        w_norm = tf.norm(var)
        u_norm = tf.norm(update)
        ratio = tf.where(
            tf.logical_and(w_norm > 0.0, u_norm > 0.0), w_norm / tf.maximum(u_norm, 1e-30), 1.0
        )
        return ratio * update

    def _finish(self, update_ops, name_scope):
        b1_power, b2_power = self._powers()
        with tf.control_dependencies(update_ops):
            with tf.colocate_with(b1_power):
                more = [
                    b1_power.assign(b1_power * self._beta1, use_locking=self._use_locking),
                    b2_power.assign(b2_power * self._beta2, use_locking=self._use_locking),
                ]
        return tf.group(*update_ops, *more, name=name_scope)
