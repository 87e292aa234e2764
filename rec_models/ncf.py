"""Neural Collaborative Filtering: GMF, MLP and their fusion NeuMF.

He, Liao, Zhang, Nie, Hu, Chua 2017, "Neural Collaborative Filtering" (WWW). Implicit
feedback: a user-item pair scores one logit, trained with binary cross-entropy against
sampled negatives.

* GMF: the element-wise product of a user and an item embedding (mf_dim 8), then a
  linear layer to one logit (a learned, weighted matrix factorisation).
* MLP: user and item embeddings of layers[0] / 2 each, concatenated (layers[0] wide),
  then ReLU layers of layers[1:] units (the paper's tower [64, 32, 16, 8]: embeddings of
  32, then 32, 16, 8 units), then a linear layer to one logit.
* NeuMF: both with their own embeddings; the GMF vector and the last MLP layer are
  concatenated before the one output layer.

    logits, end_points = ncf.neumf(users, items, num_users, num_items, Embeddings())

Variable scopes: gmf/{user,item}_embedding, mlp/{user,item}_embedding, mlp/tower/layer_i,
prediction (the output layer).
"""

import collections

from rec_models import layers
from slim_compat import tf

NCFConfig = collections.namedtuple("NCFConfig", ["mf_dim", "layers"])
#: The NCF paper's and Hetu's defaults.
DEFAULT_CONFIG = NCFConfig(mf_dim=8, layers=(64, 32, 16, 8))


def _check(config):
    if config.layers and config.layers[0] % 2:
        raise ValueError(
            f"NCF layers[0] is the concatenated user+item embedding and must be even, "
            f"got layers={list(config.layers)}"
        )


def _gmf_vector(users, items, num_users, num_items, embeddings, dtype, config):
    with tf.variable_scope("gmf"):
        user = embeddings.lookup("user_embedding", users, num_users, config.mf_dim, dtype)
        item = embeddings.lookup("item_embedding", items, num_items, config.mf_dim, dtype)
    return user * item


def _mlp_vector(users, items, num_users, num_items, embeddings, dtype, config):
    half = config.layers[0] // 2
    with tf.variable_scope("mlp"):
        user = embeddings.lookup("user_embedding", users, num_users, half, dtype)
        item = embeddings.lookup("item_embedding", items, num_items, half, dtype)
        return layers.mlp(tf.concat([user, item], axis=-1), config.layers[1:], "tower")


def _predict(vectors, end_points):
    x = tf.concat(vectors, axis=-1) if len(vectors) > 1 else vectors[0]
    logits = tf.squeeze(layers.dense(x, 1, "prediction"), axis=-1)
    end_points["logits"] = logits = tf.cast(logits, tf.float32)
    return logits, end_points


def gmf(users, items, num_users, num_items, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG):
    """Generalised matrix factorisation. users, items: int [batch] -> (logits [batch], end_points)."""
    vector = _gmf_vector(users, items, num_users, num_items, embeddings, dtype, config)
    return _predict([vector], {"gmf": vector})


def mlp(users, items, num_users, num_items, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG):
    """The MLP half of NCF (the tower config.layers). Same arguments as gmf."""
    _check(config)
    vector = _mlp_vector(users, items, num_users, num_items, embeddings, dtype, config)
    return _predict([vector], {"mlp": vector})


def neumf(users, items, num_users, num_items, embeddings, dtype=tf.float32, config=DEFAULT_CONFIG):
    """GMF and MLP fused before one output layer. Same arguments as gmf."""
    _check(config)
    g = _gmf_vector(users, items, num_users, num_items, embeddings, dtype, config)
    m = _mlp_vector(users, items, num_users, num_items, embeddings, dtype, config)
    return _predict([g, m], {"gmf": g, "mlp": m})
