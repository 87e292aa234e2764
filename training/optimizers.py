"""The seven optimizers of TF-Slim / FastNN, built from flags.

Only the TF1 optimizers (`tf.compat.v1.train.*`) work in graph mode with Horovod's
DistributedOptimizer and slim's train ops; Keras 3 optimizers do not.
"""

from slim_compat import tf

OPTIMIZERS = ("adadelta", "adagrad", "adam", "ftrl", "momentum", "sgd", "rmsprop")


def configure_optimizer(name, learning_rate, params):
    """Returns the tf.compat.v1.train optimizer `name`.

    Args:
        name: one of OPTIMIZERS.
        learning_rate: scalar tensor or float.
        params: object with the optimizer flags as attributes (adadelta_rho, opt_epsilon,
            adagrad_initial_accumulator_value, adam_beta1, adam_beta2,
            ftrl_learning_rate_power, ftrl_initial_accumulator_value, ftrl_l1, ftrl_l2,
            momentum, rmsprop_momentum, rmsprop_decay).

    Raises:
        ValueError: unknown name.
    """
    if name == "adadelta":
        return tf.train.AdadeltaOptimizer(
            learning_rate, rho=params.adadelta_rho, epsilon=params.opt_epsilon
        )
    if name == "adagrad":
        return tf.train.AdagradOptimizer(
            learning_rate, initial_accumulator_value=params.adagrad_initial_accumulator_value
        )
    if name == "adam":
        return tf.train.AdamOptimizer(
            learning_rate,
            beta1=params.adam_beta1,
            beta2=params.adam_beta2,
            epsilon=params.opt_epsilon,
        )
    if name == "ftrl":
        return tf.train.FtrlOptimizer(
            learning_rate,
            learning_rate_power=params.ftrl_learning_rate_power,
            initial_accumulator_value=params.ftrl_initial_accumulator_value,
            l1_regularization_strength=params.ftrl_l1,
            l2_regularization_strength=params.ftrl_l2,
        )
    if name == "momentum":
        return tf.train.MomentumOptimizer(learning_rate, momentum=params.momentum, name="Momentum")
    if name == "sgd":
        return tf.train.GradientDescentOptimizer(learning_rate)
    if name == "rmsprop":
        return tf.train.RMSPropOptimizer(
            learning_rate,
            decay=params.rmsprop_decay,
            momentum=params.rmsprop_momentum,
            epsilon=params.opt_epsilon,
        )
    raise ValueError(f"Unknown optimizer {name!r}; expected one of: {', '.join(OPTIMIZERS)}")
