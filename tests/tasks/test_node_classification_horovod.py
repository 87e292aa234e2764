"""node_classification under Horovod for real: mpirun -np 2 against one process.

tests/tasks/graph_horovod_driver.py runs the trainer's train() on the task in each rank
and saves the final weights, the step log and the eval metrics.
"""

import os
import types

import numpy as np
import pytest

from tasks import node_classification as nc
from tests.training.test_horovod import assert_same_weights, launch

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graph_horovod_driver.py")
# Full-batch GCN without dropout, plain SGD, no LR scaling: every rank gets the whole graph,
# so 2 ranks must train like one process, and the exact eval must count every node once.
PLANTED = "nodes=300,classes=3,p_in=0.05,p_out=0.005,features=6,val=50,test=100"
FULL = [
    "--model_name=gcn",
    "--dataset_name=planted_partition",
    f"--graph_planted_partition={PLANTED}",
    "--graph_hidden_units=8",
    "--dropout_keep_prob=1.0",
    "--weight_decay=0",
    "--optimizer=sgd",
    "--learning_rate=0.2",
    "--learning_rate_decay_type=fixed",
    "--lr_scaling=none",
    "--log_every_n_steps=1",
    "--stop_at_step=4",
    "--eval_every_n_steps=4",
]


def _train_two_ranks_and_one(tmp_path, flags, two_flags=(), one_flags=()):
    """Runs `flags` on 2 ranks under mpirun and in one process; checks that the ranks agree,
    that both runs end with the same weights and that they trained. Returns (two, one)."""
    two, _ = launch(
        str(tmp_path / "two"),
        flags + list(two_flags) + [f"--train_dir={tmp_path}/two/rank{{rank}}"],
        driver=DRIVER,
    )
    one, _ = launch(
        str(tmp_path / "one"),
        flags + list(one_flags) + [f"--train_dir={tmp_path}/one/rank0"],
        np_=1,
        launcher="none",
        driver=DRIVER,
    )
    assert [r["size"] for r in two] == [2, 2] and one[0]["size"] == 1
    assert_same_weights(two[0]["weights"], two[1]["weights"])
    assert_same_weights(two[0]["weights"], one[0]["weights"], rtol=1e-4, atol=1e-6)
    weights = one[0]["weights"]
    assert not any(  # it trained
        np.allclose(weights[k], weights[k.replace("end/", "start/")])
        for k in weights
        if k.startswith("end/")
    )
    return two, one


def test_full_batch_training_on_two_ranks_equals_one_process_and_eval_counts_once(tmp_path):
    two, one = _train_two_ranks_and_one(tmp_path, FULL)
    # Exact full-graph evaluation: the 2 ranks' shares sum to the one process's metrics.
    (step_two, metrics_two), (step_one, metrics_one) = two[0]["eval"][-1], one[0]["eval"][-1]
    assert step_two == step_one == 4
    assert metrics_two["count"] == metrics_one["count"] == 50
    for name in ("accuracy", "val_accuracy", "test_accuracy", "train_accuracy", "loss"):
        assert metrics_two[name] == pytest.approx(metrics_one[name], rel=1e-4), name


# Sampled GraphSAGE-mean, no dropout and no weight decay (its regularization is then the
# constant 0 that hung 2 ranks before distributed.run_time_input): 60 train targets, so
# 2 batches an epoch and 4 steps = 2 epochs, each with a padded last batch.
SAMPLED = [
    "--model_name=graphsage_mean",
    "--graph_batching=sampled",
    "--dataset_name=planted_partition",
    f"--graph_planted_partition={PLANTED}",
    "--graph_fanouts=5,3",
    "--graph_hidden_units=8",
    "--dropout_keep_prob=1.0",
    "--weight_decay=0",
    "--optimizer=sgd",
    "--learning_rate=0.2",
    "--learning_rate_decay_type=fixed",
    "--lr_scaling=none",
    "--log_every_n_steps=1",
    "--save_summaries_steps=2",
    "--stop_at_step=4",
    "--eval_every_n_steps=4",
]


def _graphsage_full_graph_logits(weights, features, mean):
    """numpy GraphSAGE-mean over the whole graph: [h, D^-1 A h] @ W + b, ReLU between."""
    h = features
    for layer in (1, 2):
        kernel = weights[f"end/graphsage_mean/layer_{layer}/dense/weights"]
        bias = weights[f"end/graphsage_mean/layer_{layer}/dense/biases"]
        h = np.concatenate([h, mean @ h], axis=1) @ kernel + bias
        if layer == 1:
            h = np.maximum(h, 0.0)
    return h


def test_sampled_training_on_two_ranks_equals_one_process_and_eval_is_exact(tmp_path):
    """2 ranks x 16 targets against 1 process x 32 on the same (seed, epoch, step) samples."""
    two, one = _train_two_ranks_and_one(
        tmp_path, SAMPLED, two_flags=["--batch_size=16"], one_flags=["--batch_size=32"]
    )
    # The logged loss is the global batch's mean, step by step (the padded steps too).
    assert sorted(one[0]["losses"], key=int) == ["1", "2", "3", "4"]
    for step, values in one[0]["losses"].items():
        assert two[0]["losses"][step]["loss"] == pytest.approx(values["loss"], rel=1e-4), step
    # Exact full-graph evaluation: the ranks' shares add up to numpy's count on the whole
    # graph with the trained weights.
    params = types.SimpleNamespace(
        dataset_name="planted_partition",
        dataset_dir=None,
        graph_files=None,
        graph_planted_partition=PLANTED,
        graph_directed=False,
        graph_normalize_features=None,
    )
    graph = nc.load_graph(params)
    mean = nc.mean_adjacency(graph).toarray()
    for result in (two[0], two[1], one[0]):
        logits = _graphsage_full_graph_logits(result["weights"], graph.features, mean)
        correct = np.argmax(logits, axis=1) == graph.labels
        step, metrics = result["eval"][-1]
        assert step == 4 and metrics["count"] == int(graph.val_mask.sum()) == 50
        for name in ("train", "val", "test"):
            mask = getattr(graph, f"{name}_mask")
            assert metrics[f"{name}_accuracy"] == pytest.approx(correct[mask].mean(), abs=1e-9)
