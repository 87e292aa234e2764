"""GraphSAGE with the mean aggregator, on sampled blocks or on the whole graph.

Hamilton, Ying & Leskovec, "Inductive Representation Learning on Large Graphs" (NIPS
2017): layer k computes h_v = ReLU(W_k [h_v, mean_{u in S(v)} h_u]) over S(v), a uniform
sample of v's neighbours (fanouts S1 = 25, S2 = 10), trained on mini-batches of target
nodes. Like DGL's and PyG's supervised examples, the last layer is linear (the logits) and
the hidden states are not L2-normalised; dropout on the input of each layer.

    logits, end_points = graphsage.graphsage_mean(
        {"features": x_src, "blocks": [(mean_0, n_dst_0), (mean_1, n_dst_1)]},
        num_classes=41, is_training=True)

"features" are the input states of blocks[0]'s src nodes; each block is (SparseTensor
[n_dst, n_src] averaging sampled neighbours, n_dst) in the order the layers apply them
(datasets.graphs.sample_neighbors). For exact full-graph inference give every layer the
whole graph: ((D^-1 A), N) for each block.
"""

from graph_models import layers
from slim_compat import tf


def graphsage_mean(
    inputs,
    num_classes,
    is_training=True,
    hidden_units=256,
    dropout_rate=0.5,
    weight_decay=0.0,
    compute_dtype=tf.float32,
    scope="graphsage_mean",
):
    """len(blocks) GraphSAGE-mean layers; returns (fp32 logits [n_dst_last, C], end_points).

    weight_decay: L2 on every layer's weights (0: none, GraphSAGE's supervised default).
    """
    blocks = inputs["blocks"]
    if not blocks:
        raise ValueError("graphsage_mean needs at least one block (one per layer)")
    end_points = {}
    regularization = tf.constant(0.0)
    net = tf.cast(inputs["features"], compute_dtype)
    with tf.variable_scope(scope):
        for i, (mean_matrix, num_dst) in enumerate(blocks):
            last = i == len(blocks) - 1
            net = layers.dropout(net, dropout_rate, is_training)
            net, kernel = layers.sage_mean_convolution(
                net,
                mean_matrix,
                num_dst,
                num_classes if last else hidden_units,
                compute_dtype,
                activation=None if last else tf.nn.relu,
                scope=f"layer_{i + 1}",
            )
            end_points[f"layer_{i + 1}"] = net
            if weight_decay:
                regularization += weight_decay * tf.nn.l2_loss(tf.cast(kernel, tf.float32))
        logits = tf.cast(net, tf.float32)
    end_points["logits"] = logits
    end_points["regularization_loss"] = regularization
    return logits, end_points
