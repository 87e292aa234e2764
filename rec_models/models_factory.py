"""THE map from recommendation model name to model: one entry per model.

Each entry records the model function and the kind of input it eats, so a task knows
which models it can build and no test keeps its own list of names:

* kind "ncf": fn(users, items, num_users, num_items, embeddings, dtype, config)
  (MovieLens ids, rec_models/ncf.py; config an ncf.NCFConfig);
* kind "ctr": fn(dense, sparse, num_rows, embeddings, dtype, config)
  (Criteo fields, rec_models/ctr.py; config a ctr.CTRConfig).

Both return (logits [batch] fp32, end_points). `embeddings` is a layers.Embeddings, which
keeps tables whole or shards them over the ranks. Adding a model is a function in one of
those files and one line here.
"""

import collections

from rec_models import ctr, ncf

ModelEntry = collections.namedtuple("ModelEntry", ["fn", "kind", "default_config"])

MODELS = {
    "neumf": ModelEntry(ncf.neumf, "ncf", ncf.DEFAULT_CONFIG),
    "gmf": ModelEntry(ncf.gmf, "ncf", ncf.DEFAULT_CONFIG),
    "mlp": ModelEntry(ncf.mlp, "ncf", ncf.DEFAULT_CONFIG),
    "logistic_regression": ModelEntry(ctr.logistic_regression, "ctr", ctr.DEFAULT_CONFIG),
    "wide_deep": ModelEntry(ctr.wide_deep, "ctr", ctr.DEFAULT_CONFIG),
    "deepfm": ModelEntry(ctr.deepfm, "ctr", ctr.DEFAULT_CONFIG),
    "dcn": ModelEntry(ctr.dcn, "ctr", ctr.DEFAULT_CONFIG),
}
KINDS = ("ncf", "ctr")


def model_names(kind=None):
    """Registered names, all or those of one kind ('ncf' or 'ctr')."""
    return [name for name, entry in MODELS.items() if kind is None or entry.kind == kind]


def get_model(name, kind=None):
    """The ModelEntry of `name`; with `kind`, only a model of that kind.

    Raises:
        ValueError: unknown name (or one of another kind), listing the valid ones.
    """
    valid = model_names(kind)
    if name not in valid:
        what = f"{kind} model" if kind else "recommendation model"
        raise ValueError(f"Unknown {what} {name!r}; expected one of: {', '.join(valid)}")
    return MODELS[name]
