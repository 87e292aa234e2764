"""Fixtures of the training-machinery tests: flag-default parameters and a step evaluator."""

import types

import pytest


@pytest.fixture
def params():
    """params(**overrides) -> a namespace holding every flag's default, overridden.

    The training modules read their settings as attributes of FLAGS; a namespace built
    from the real flag defaults checks that they pick up exactly those names.
    """
    import flags

    defaults = {name: flags.FLAGS[name].default for name in flags.FLAGS}

    def make(**overrides):
        unknown = set(overrides) - set(defaults)
        if unknown:
            raise KeyError(f"not flags: {sorted(unknown)}")
        return types.SimpleNamespace(**dict(defaults, **overrides))

    return make
