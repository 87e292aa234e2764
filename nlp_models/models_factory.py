"""THE map of text models: name -> (builder, hyper-parameters).

One entry per named configuration, like image_models/nets_factory.py: the builder is the
model class, the config its hyper-parameters (tensor2tensor's named hparams sets as data).
Sizes the data decide (the vocabulary) are given as overrides.

    config = models_factory.get_config("transformer_base", vocab_size=8000)
    model = models_factory.get_builder("transformer_base")(config, is_training=True)
"""

import collections

from nlp_models import transformer

ModelEntry = collections.namedtuple("ModelEntry", ["builder", "config", "family"])
ModelEntry.__doc__ = """builder(config, is_training, compute_dtype) -> model; config: its
hyper-parameters; family: which task reads it ('translation', ...)."""

_BASE = transformer.TransformerConfig()  # the paper's base model (Vaswani et al. table 3)

MODELS = {
    # For tests: two layers of width 32.
    "transformer_tiny": ModelEntry(
        transformer.Transformer,
        _BASE.replace(hidden_size=32, filter_size=64, num_layers=2, num_heads=4),
        "translation",
    ),
    # tensor2tensor's transformer_small, with the paper's dropout: a few minutes on 2 cores.
    "transformer_small": ModelEntry(
        transformer.Transformer,
        _BASE.replace(hidden_size=256, filter_size=1024, num_layers=2, num_heads=4),
        "translation",
    ),
    "transformer_base": ModelEntry(transformer.Transformer, _BASE, "translation"),
    # The paper's big model (its en-de dropout 0.3).
    "transformer_big": ModelEntry(
        transformer.Transformer,
        _BASE.replace(
            hidden_size=1024,
            filter_size=4096,
            num_heads=16,
            dropout=0.3,
            attention_dropout=0.3,
            relu_dropout=0.3,
        ),
        "translation",
    ),
    # The seeds' (Hetu's) IWSLT de-en hparams; they train with lr 3e-4 and 4000 warmup steps.
    "hetu": ModelEntry(
        transformer.Transformer,
        _BASE.replace(dropout=0.3, attention_dropout=0.3, relu_dropout=0.3),
        "translation",
    ),
}


def _entry(name):
    if name not in MODELS:
        raise ValueError(f"Unknown text model {name!r}; expected one of: {', '.join(MODELS)}")
    return MODELS[name]


def get_config(name, **overrides):
    """The hyper-parameters of model `name` with `overrides` (e.g. vocab_size=8000)."""
    return _entry(name).config.replace(**overrides)


def get_builder(name):
    """The model class of `name` (builder(config, is_training, compute_dtype))."""
    return _entry(name).builder


def names(family=None):
    """Registered model names, of one family (e.g. 'translation') or all."""
    return [n for n, e in MODELS.items() if family is None or e.family == family]
