"""THE map from graph model name to model: one entry per model.

A model function has the signature

    fn(inputs, num_classes, is_training=True, hidden_units=..., dropout_rate=...,
       weight_decay=..., compute_dtype=tf.float32, **kwargs) -> (logits, end_points)

with `inputs` a dict of tensors (see each model's module), fp32 logits [nodes, classes]
and end_points["regularization_loss"] a fp32 scalar the loss adds. Each entry records
what the task must hand the model, so adding a model is one function and one line here.
"""

import collections

from graph_models import gcn, graphsage

ModelEntry = collections.namedtuple(
    "ModelEntry", ["fn", "graph_input", "feature_kind", "batchings", "hidden_units"]
)
ModelEntry.__doc__ = """One graph model.

fn: the model function (module docstring).
graph_input: what inputs carries besides "features": 'adjacency' (the GCN-normalised
    A_hat [N, N]), 'blocks' (GraphSAGE blocks: sampled, or D^-1 A per layer for the whole
    graph) or None (features only).
feature_kind: 'float' ([N, F] float or sparse features) or 'ids' ([N, K] int64 ids).
batchings: the --graph_batching modes it trains with, the default first.
hidden_units: its default hidden width.
"""

MODELS = {
    "gcn": ModelEntry(gcn.gcn, "adjacency", "float", ("full",), 16),
    "gcn_embedding": ModelEntry(gcn.gcn_embedding, "adjacency", "ids", ("full",), 128),
    "mlp": ModelEntry(gcn.mlp, None, "float", ("full",), 16),
    "graphsage_mean": ModelEntry(
        graphsage.graphsage_mean, "blocks", "float", ("sampled", "full"), 256
    ),
}


def get_model(name):
    """The ModelEntry of `name`.

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown graph model {name!r}; expected one of: {', '.join(MODELS)}")
    return MODELS[name]
