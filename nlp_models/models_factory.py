"""THE map of text models: name -> (builder, hyper-parameters, family).

One entry per named configuration, like image_models/nets_factory.py: the builder is the
model class, the config its hyper-parameters (tensor2tensor's named hparams sets as data).
Sizes the data decide (the vocabulary) are given as overrides. Two families:

* 'translation': the Transformer (nlp_models/transformer.py), read by --task=translation.
* 'bert': google-research/bert's sizes (nlp_models/bert.py's BERT_CONFIGS, bert_tiny ...
  bert_large), read by --task=bert_pretraining and sequence_classification; a google
  bert_config.json is the other source of a BERT's config (`config_from_file`).

    config = models_factory.get_config("transformer_base", vocab_size=8000)
    model = models_factory.get_builder("transformer_base")(config, is_training=True)
    config = models_factory.get_config("bert_base", family="bert", vocab_size=30522)
    config = models_factory.config_from_file("uncased_L-12_H-768_A-12/bert_config.json")
"""

import collections

from nlp_models import bert, transformer

ModelEntry = collections.namedtuple("ModelEntry", ["builder", "config", "family"])
ModelEntry.__doc__ = """builder: the model class (transformer.Transformer(config, is_training),
bert.BertModel(config, input_ids, ...)); config: its hyper-parameters; family: which tasks
read it ('translation' or 'bert')."""

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
    # google-research/bert's sizes, one entry each (vocab_size: google's 30522, replaced
    # by the records' vocabulary in the BERT tasks).
    **{
        name: ModelEntry(bert.BertModel, config, "bert")
        for name, config in bert.BERT_CONFIGS.items()
    },
}

#: The families whose configs can also come from a file, and the reader of that file.
CONFIG_FILE_READERS = {"bert": bert.config_from_json_file}


def _entry(name, family=None):
    valid = names(family)
    if name not in valid:
        kind = f"{family} model" if family else "text model"
        raise ValueError(f"Unknown {kind} {name!r}; expected one of: {', '.join(valid)}")
    return MODELS[name]


def _replace(config, overrides):
    """config with overrides: a Transformer's dataclass checks them, a BertConfig here."""
    if hasattr(config, "replace"):
        return config.replace(**overrides)
    unknown = sorted(set(overrides) - set(config._fields))
    if unknown:
        raise ValueError(f"Unknown BERT config fields {unknown}; valid: {list(config._fields)}")
    return config._replace(**overrides)


def get_config(name, family=None, **overrides):
    """The hyper-parameters of model `name` with `overrides` (e.g. vocab_size=8000).

    Args:
        name: a key of MODELS.
        family: when given, `name` must be a model of this family ('translation', 'bert');
            the error lists that family's names.
        **overrides: fields to replace; an unknown field raises a ValueError listing them.
    """
    entry = _entry(name, family)
    config = _replace(entry.config, overrides)
    if entry.family == "bert":
        bert.check_config(config, f"BERT model {name!r}")
    return config


def config_from_file(path, family="bert"):
    """The config a family's own file describes (for 'bert': a google bert_config.json)."""
    if family not in CONFIG_FILE_READERS:
        raise ValueError(
            f"Family {family!r} has no config file; families that do: "
            f"{', '.join(CONFIG_FILE_READERS)}"
        )
    return CONFIG_FILE_READERS[family](path)


def get_builder(name):
    """The model class of `name` (builder(config, is_training, compute_dtype))."""
    return _entry(name).builder


def names(family=None):
    """Registered model names, of one family (e.g. 'translation') or all."""
    return [n for n, e in MODELS.items() if family is None or e.family == family]
