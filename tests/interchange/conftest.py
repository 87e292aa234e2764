"""Fixtures of the interchange tests: informative random weights."""

import numpy as np
import pytest

from slim_compat import tf


@pytest.fixture
def perturb_constant_variables():
    """perturb(session, seed=0): gives every constant-initialized variable random values.

    Fresh biases, batch-norm betas and moving means are all zeros and gammas / moving
    variances all ones, so a converter that dropped them (or grappler, which removes
    additions of zeros) would still pass a parity check. Zeros become N(0, 0.1) and ones
    U(0.8, 1.2), which keeps activations at their usual scale.
    """

    def perturb(session, seed=0):
        rng = np.random.RandomState(seed)
        variables = [
            v
            for v in session.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
            if v.dtype.base_dtype == tf.float32
        ]
        values = session.run(variables)
        assigns = {}
        for variable, value in zip(variables, values):
            if value.size and np.all(value == 0):
                assigns[variable] = rng.normal(0.0, 0.1, value.shape).astype(np.float32)
            elif value.size and np.all(value == 1):
                assigns[variable] = rng.uniform(0.8, 1.2, value.shape).astype(np.float32)
        # One run through the initializers, their initial values fed: a run per variable
        # costs ~0.1 s on a graph of hundreds of layers.
        session.run(
            [v.initializer for v in assigns],
            {v.initializer.inputs[1]: value for v, value in assigns.items()},
        )
        return len(assigns)

    return perturb
