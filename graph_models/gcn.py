"""Graph convolutional networks, and the feature-only MLP they are measured against.

Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional Networks"
(ICLR 2017): Z = softmax(A_hat ReLU(A_hat X W0) W1) with A_hat = D^-1/2 (A + I) D^-1/2,
16 hidden units, dropout 0.5 on the input of both layers, L2 weight decay 5e-4 on the
first layer only, Glorot initialisation, no biases (their code's default); 81.5% test
accuracy on Cora.

The seeds' variant follows Hetu's GNN example (examples/gnn, `sparse_model`): integer
node features are looked up in one embedding table (width = the hidden size, 128;
normal init with stddev 0.1), the K embeddings of a node are concatenated, then a GCN
layer of 128 ReLU units and a linear GCN layer to the classes.

    logits, end_points = gcn.gcn(
        {"features": x, "adjacency": a_hat}, num_classes=7, is_training=True)

`inputs` is a dict: "features" [N, F] float (a tf.SparseTensor for bag-of-words rows) or,
for gcn_embedding, [N, K] int ids; "adjacency" the SparseTensor A_hat [N, N]; optional
"output_adjacency", rows A_hat[R] [R, N]: the last layer then computes the logits of
those R nodes only (all a training loss over R target nodes needs).
end_points holds each layer's output and "regularization_loss" (fp32).
"""

from graph_models import layers
from slim_compat import tf
from training import precision


def _l2(kernel, weight_decay):
    """weight_decay * sum(w^2) / 2 in float32 (tf.nn.l2_loss, as Kipf's code uses)."""
    return weight_decay * tf.nn.l2_loss(tf.cast(kernel, tf.float32))


def _output_adjacency(inputs):
    """The last layer's propagation: rows of A_hat for the outputs wanted, else all of it."""
    return inputs.get("output_adjacency", inputs["adjacency"])


def gcn(
    inputs,
    num_classes,
    is_training=True,
    hidden_units=16,
    dropout_rate=0.5,
    weight_decay=5e-4,
    compute_dtype=tf.float32,
    scope="gcn",
):
    """Kipf & Welling's two-layer GCN; returns (fp32 logits [N, num_classes], end_points)."""
    end_points = {}
    with tf.variable_scope(scope):
        net = layers.dropout(inputs["features"], dropout_rate, is_training)
        net, first_kernel = layers.graph_convolution(
            net, inputs["adjacency"], hidden_units, compute_dtype, tf.nn.relu, scope="layer_1"
        )
        end_points["layer_1"] = net
        net = layers.dropout(net, dropout_rate, is_training)
        net, _ = layers.graph_convolution(
            net, _output_adjacency(inputs), num_classes, compute_dtype, scope="layer_2"
        )
        logits = tf.cast(net, tf.float32)
    end_points["logits"] = logits
    end_points["regularization_loss"] = _l2(first_kernel, weight_decay)
    return logits, end_points


def gcn_embedding(
    inputs,
    num_classes,
    is_training=True,
    hidden_units=128,
    num_ids=None,
    dropout_rate=0.0,
    weight_decay=0.0,
    compute_dtype=tf.float32,
    scope="gcn_embedding",
):
    """Hetu's GCN over embedded integer features; returns (fp32 logits, end_points).

    Args:
        inputs: dict with "features" [N, K] integer ids in [0, num_ids) and "adjacency".
        num_classes: output classes.
        is_training: dropout on.
        hidden_units: the embedding width and the hidden layer's units (Hetu: 128).
        num_ids: rows of the embedding table.
        dropout_rate: dropout on the input of both GCN layers (Hetu: none).
        weight_decay: L2 on the embedding rows looked up and the first layer (Hetu: none).
        compute_dtype: the trainer's compute dtype.
        scope: the variable scope.
    """
    if not num_ids:
        raise ValueError(f"gcn_embedding needs num_ids (the embedding table's rows), got {num_ids}")
    ids = inputs["features"]
    end_points = {}
    with tf.variable_scope(scope):
        # fp32 table, rows cast after the gather (training/precision.py).
        table = tf.get_variable(
            "embeddings",
            [num_ids, hidden_units],
            dtype=tf.float32,
            initializer=tf.random_normal_initializer(stddev=0.1),
        )
        rows = precision.embedding_lookup(table, ids, compute_dtype)
        width = int(ids.shape[-1]) * hidden_units
        net = tf.reshape(rows, [-1, width])
        end_points["embeddings"] = net
        net = layers.dropout(net, dropout_rate, is_training)
        net, first_kernel = layers.graph_convolution(
            net, inputs["adjacency"], hidden_units, compute_dtype, tf.nn.relu, scope="layer_1"
        )
        end_points["layer_1"] = net
        net = layers.dropout(net, dropout_rate, is_training)
        net, _ = layers.graph_convolution(
            net, _output_adjacency(inputs), num_classes, compute_dtype, scope="layer_2"
        )
        logits = tf.cast(net, tf.float32)
    end_points["logits"] = logits
    end_points["regularization_loss"] = _l2(first_kernel, weight_decay) + _l2(rows, weight_decay)
    return logits, end_points


def mlp(
    inputs,
    num_classes,
    is_training=True,
    hidden_units=16,
    dropout_rate=0.5,
    weight_decay=5e-4,
    compute_dtype=tf.float32,
    scope="mlp",
):
    """GCN with the graph taken away (A_hat = I): the features-only baseline of the paper.

    Same widths, dropout, decay and initialisation as `gcn`, plus biases; ignores
    inputs["adjacency"] if present.
    """
    end_points = {}
    with tf.variable_scope(scope):
        net = layers.dropout(inputs["features"], dropout_rate, is_training)
        net, first_kernel = layers.dense(
            net, hidden_units, compute_dtype, tf.nn.relu, scope="layer_1"
        )
        end_points["layer_1"] = net
        net = layers.dropout(net, dropout_rate, is_training)
        net, _ = layers.dense(net, num_classes, compute_dtype, scope="layer_2")
        logits = tf.cast(net, tf.float32)
    end_points["logits"] = logits
    end_points["regularization_loss"] = _l2(first_kernel, weight_decay)
    return logits, end_points
