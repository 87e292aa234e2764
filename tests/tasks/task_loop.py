"""A plain tf.Session loop over a Task's pieces (inputs, model, losses, eval statistics).

For model-level tests: one process, fp32, no trainer. It calls the task as the trainer's
contract says (training/task.py): the training stream, the model under one variable
scope (reused for evaluation), the loss, and the eval statistics summed over batches and
handed to metrics_from_sums.
"""

import types

import numpy as np

from slim_compat import tf


def params(**values):
    """A flags-like object with the recommendation flags' defaults, overridden by `values`."""
    defaults = dict(
        model_name="neumf",
        dataset_dir=None,
        ncf_mf_dim=8,
        ncf_layers="64,32,16,8",
        num_train_negatives=4,
        top_k=10,
        embedding_dim=16,
        ctr_hidden_units="256,256,256",
        num_cross_layers=3,
        auc_num_buckets=2**16,
        model_parallel_embeddings=False,
        min_sharded_rows=1000,
        weight_decay=0.0,
        shuffle_buffer_size=10000,
        train_dir=None,
        save_checkpoints_steps=1000,
    )
    defaults.update(values)
    return types.SimpleNamespace(**defaults)


def train_and_evaluate(task, p, steps, learning_rate=0.01, batch_size=256, seed=0, eval_split=None):
    """Trains `steps` Adam steps, then evaluates the held-out split: (metrics, eval fetches)."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        data = task.build_inputs(p, "train", True, 0, 1, batch_size, seed)
        features = tf.data.make_one_shot_iterator(data.dataset).get_next()
        with tf.variable_scope("model"):
            outputs = task.build_model(features, p, True, tf.float32)
        losses = task.build_losses(features, outputs, p)
        train_op = tf.train.AdamOptimizer(learning_rate).minimize(losses.total)
        eval_data = task.build_inputs(p, eval_split, False, 0, 1, 100, seed)
        eval_features = tf.data.make_one_shot_iterator(eval_data.dataset).get_next()
        with tf.variable_scope("model", reuse=True):
            eval_outputs = task.build_model(eval_features, p, False, tf.float32)
        statistics = task.eval_statistics(eval_features, eval_outputs)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for _ in range(steps):
                session.run(train_op)
            sums, fetched = {}, []
            while True:
                try:
                    values, f, o = session.run([statistics, eval_features, eval_outputs])
                except tf.errors.OutOfRangeError:
                    break
                fetched.append((f, o))
                for k, v in values.items():
                    sums[k] = sums.get(k, 0) + np.asarray(v, np.float64)
    return task.metrics_from_sums(sums), fetched
