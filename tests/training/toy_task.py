"""A task defined in the tests: regression on synthetic data through the shared trainer.

Features are a dict: "x" (float [B, 4]), "item" (an integer id in [0, NUM_ITEMS)) and
"y" (float [B]). The model is a linear layer on x plus a per-item bias looked up in an
embedding table; the loss is the mean squared error. The data are fixed (numpy, seed 0)
and never shuffled: the training stream cycles through TRAIN_SIZE examples, a global
batch of batch_size x ranks consecutive examples per micro-step, each rank taking its
consecutive slice, so 2 ranks at batch b read exactly what 1 process at batch 2b reads.
A resume skips the batches already trained on. Evaluation shards the EVAL_SIZE examples
by index over the ranks and sums squared errors and counts.
"""

import numpy as np

from slim_compat import tf
from training import precision, task

NUM_ITEMS = 10
NUM_FEATURES = 4
TRAIN_SIZE = 48
EVAL_SIZE = 37


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([n, NUM_FEATURES]).astype(np.float32)
    item = rng.integers(0, NUM_ITEMS, n).astype(np.int64)
    true_w = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    true_bias = np.linspace(-1.0, 1.0, NUM_ITEMS).astype(np.float32)
    y = (x @ true_w + true_bias[item]).astype(np.float32)
    return {"x": x, "item": item, "y": y}


TRAIN = make_data(TRAIN_SIZE, seed=0)
EVAL = make_data(EVAL_SIZE, seed=1)


def predict(weights, data):
    """The model in numpy, from {variable name: value}."""
    w = weights["toy/w"][:, 0]
    return data["x"] @ w + weights["toy/item_bias"][data["item"], 0] + weights["toy/b"][0]


class ToyRegression(task.Task):
    name = "toy_regression"

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        if is_training:
            k = params.backward_passes_per_step
            dataset = tf.data.Dataset.from_tensor_slices(TRAIN).repeat()
            dataset = dataset.batch(batch_size * size, drop_remainder=True)
            dataset = dataset.skip(start_step * k)  # a resume goes on where training stopped
            dataset = dataset.map(
                lambda d: {k: v[rank * batch_size : (rank + 1) * batch_size] for k, v in d.items()}
            )
            return task.InputData(dataset, TRAIN_SIZE, f"toy train data, rank {rank} of {size}")
        dataset = tf.data.Dataset.from_tensor_slices(EVAL).shard(size, rank).batch(batch_size)
        return task.InputData(dataset, EVAL_SIZE, "toy eval data")

    def build_model(self, features, params, is_training, compute_dtype):
        with tf.variable_scope("toy"):
            w = tf.get_variable("w", [NUM_FEATURES, 1], compute_dtype, tf.zeros_initializer())
            b = tf.get_variable("b", [1], compute_dtype, tf.zeros_initializer())
            table = tf.get_variable("item_bias", [NUM_ITEMS, 1], initializer=tf.zeros_initializer())
            bias = precision.embedding_lookup(table, features["item"], compute_dtype)
            linear = tf.matmul(tf.cast(features["x"], compute_dtype), w) + b
            return {"prediction": tf.cast(linear + bias, tf.float32)[:, 0]}

    def build_losses(self, features, outputs, params):
        mse = tf.reduce_mean(tf.square(outputs["prediction"] - features["y"]))
        return task.Losses(mse, {"mse": mse})

    def train_metrics(self, features, outputs):
        return {"mean_abs_error": tf.reduce_mean(tf.abs(outputs["prediction"] - features["y"]))}

    def eval_statistics(self, features, outputs):
        return {
            "squared_error": tf.reduce_sum(tf.square(outputs["prediction"] - features["y"])),
            "count": tf.cast(tf.size(features["y"]), tf.float64),
        }

    def metrics_from_sums(self, sums):
        return {"mse": sums["squared_error"] / sums["count"], "count": int(sums["count"])}

    def batch_counts(self, features):
        return {"examples": tf.size(features["y"])}

    def export_signature(self, params):
        features = {
            "x": tf.placeholder(tf.float32, [None, NUM_FEATURES], name="x"),
            "item": tf.placeholder(tf.int64, [None], name="item"),
        }
        outputs = self.build_model(features, params, False, tf.float32)
        return task.ExportSignature(features, outputs)


task.register_task(ToyRegression.name, ToyRegression)


class ToyRankLocal(ToyRegression):
    """The toy task with its item table held by each rank alone (a model-parallel shard).

    Each rank starts its table at rank + 1 and trains it on its own batches only.
    """

    name = "toy_rank_local"

    def build_inputs(self, params, split, is_training, rank, size, batch_size, seed, start_step=0):
        self._rank = rank
        return super().build_inputs(
            params, split, is_training, rank, size, batch_size, seed, start_step
        )

    def build_model(self, features, params, is_training, compute_dtype):
        from training import distributed

        with tf.variable_scope("toy"):
            init = tf.constant_initializer(float(self._rank + 1))
            table = tf.get_variable("item_bias", [NUM_ITEMS, 1], initializer=init)
        if is_training:
            tf.add_to_collection(distributed.RANK_LOCAL_VARIABLES, table)
        with tf.variable_scope(tf.get_variable_scope(), reuse=tf.AUTO_REUSE):
            return super().build_model(features, params, is_training, compute_dtype)


task.register_task(ToyRankLocal.name, ToyRankLocal)
