"""The graph task through the public commands on Planetoid files as users have them (Python 2
pickles): train_graph_models.py with scripts/gcn_planetoid.flags, early stopping's best
weights in TRAIN_DIR/best, eval_models.py and export_model.py on them."""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from tests.datasets import planetoid_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
FLAGFILE = os.path.join(ROOT, "scripts", "gcn_planetoid.flags")


def _run(args):
    proc = subprocess.run(
        [sys.executable] + args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _json_line(output):
    return json.loads(next(ln for ln in reversed(output.splitlines()) if ln.startswith('{"')))


def write_citation_graph(directory, name="cora", seed=0):
    """A small citation-like graph in the Planetoid layout: bag-of-words rows that say a
    little about the class, edges that say more, test.index shuffled, a Citeseer-like gap
    (test ids without a row), duplicate and self-loop entries in the graph dict."""
    rng = np.random.default_rng(seed)
    classes, words, num_allx, num_test, gap = 3, 40, 560, 60, 4
    n = num_allx + num_test + gap
    labels = np.arange(n) % classes
    rng.shuffle(labels[:num_allx])
    prefs = rng.dirichlet(np.full(words, 0.3), size=classes)
    x = np.zeros((n, words), np.float32)
    for i in range(n):
        x[i, rng.choice(words, 6, p=0.3 * prefs[labels[i]] + 0.7 / words)] = 1.0
    graph = collections.defaultdict(list)
    for _ in range(3 * n):
        u = int(rng.integers(n))
        same = np.flatnonzero(labels == labels[u])
        v = int(rng.choice(same)) if rng.random() < 0.85 else int(rng.integers(n))
        graph[u].append(v)  # one direction only: the reader symmetrises
    graph[3] += [3, graph[3][0] if graph[3] else 4]  # a self loop and a duplicate
    test_ids = np.arange(num_allx, n)
    missing = rng.choice(test_ids[1:-1], gap, replace=False)  # isolated, without a row
    test_ids = rng.permutation(np.setdiff1d(test_ids, missing))
    for node in missing:
        graph.pop(int(node), None)
        for neighbours in graph.values():
            while int(node) in neighbours:
                neighbours.remove(int(node))
    onehot = np.eye(classes, dtype=np.int32)[labels]
    train = np.concatenate([np.flatnonzero(labels[:num_allx] == c)[:5] for c in range(classes)])
    order = np.concatenate([train, np.setdiff1d(np.arange(num_allx), train)])
    # Planetoid's x / y are the first rows of allx / ally: put the train nodes first.
    perm = np.concatenate([order, np.arange(num_allx, n)])
    inverse = np.empty(n, int)
    inverse[perm] = np.arange(n)
    graph = {int(inverse[u]): [int(inverse[v]) for v in vs] for u, vs in graph.items()}
    x, onehot = x[perm], onehot[perm]
    objects = {
        "x": sp.csr_matrix(x[: len(train)]),
        "y": onehot[: len(train)],
        "allx": sp.csr_matrix(x[:num_allx]),
        "ally": onehot[:num_allx],
        "tx": sp.csr_matrix(x[test_ids]),
        "ty": onehot[test_ids],
        "graph": collections.defaultdict(list, graph),
    }
    planetoid_files.write_planetoid(str(directory), name, objects, test_ids)
    return n


@pytest.mark.slow
def test_gcn_recipe_trains_keeps_the_best_weights_evaluates_and_exports_them(tmp_path):
    data = tmp_path / "planetoid"
    data.mkdir()
    n = write_citation_graph(data)
    run = str(tmp_path / "run")
    common = [f"--flagfile={FLAGFILE}", "--dataset_name=cora", f"--dataset_dir={data}"]
    log = _run(["train_graph_models.py", *common, "--stop_at_step=60", f"--train_dir={run}"])
    assert f"cora: the whole graph ({n} nodes" in log
    with open(os.path.join(run, "best", "best_eval.json")) as f:
        best = json.load(f)
    # The recipe's early stopping: the validation loss, the paper's window of 10.
    assert (best["metric"], best["mode"]) == ("loss", "min")
    assert best["checkpoint"] == f"model.ckpt-{best['step']}"
    assert f"Best eval: loss = {best['value']:.4f} at step {best['step']}" in log
    # GCN learned the graph's classes (chance is 1/3).
    assert best["metrics"]["test_accuracy"] > 0.6, best
    # eval_models.py on TRAIN_DIR/best gives the best eval's metrics back.
    metrics = _json_line(
        _run(
            [
                "eval_models.py",
                *common,
                "--task=node_classification",
                f"--checkpoint_path={run}/best",
            ]
        )
    )
    for name in ("accuracy", "val_accuracy", "test_accuracy", "train_accuracy"):
        assert metrics[name] == pytest.approx(best["metrics"][name], abs=1e-6), name
    out = str(tmp_path / "export")
    _run(
        [
            "export_model.py",
            *common,
            "--task=node_classification",
            f"--checkpoint={run}/best",
            "--format=saved_model",
            f"--output={out}",
        ]
    )
    assert os.path.isdir(out) and os.listdir(out)
