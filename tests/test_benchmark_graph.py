"""scripts/benchmark_graph.py: a tiny run of the GCN sides and the report it prints."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark_graph.py")


def _module():
    spec = importlib.util.spec_from_file_location("benchmark_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_rows_and_ratio():
    module = _module()
    cfg = dict(
        num_nodes=1000,
        features=8,
        classes=3,
        p_in=0.01,
        p_out=0.001,
        sage_batch_size=64,
        fanouts="5,3",
    )
    row = {"edges": 10, "train_nodes": 30, "steps_per_epoch": 1}
    results = {
        "tfzoo_gcn": dict(row, seconds_per_epoch=[0.010, 0.012, 0.011]),
        "keras_gcn": dict(row, seconds_per_epoch=[0.030, 0.033]),
        "tfzoo_graphsage_mean": {"error": "timed out after 5 s"},
    }
    text = module.report(cfg, results)
    assert "| tfzoo | gcn | full batch | 10 | 30 | 1 | 11.0 (10.0-12.0) | 90.91 |" in text
    assert "| Keras 3 model.fit | gcn | full batch | 10 | 30 | 1 | 31.5 (30.0-33.0) |" in text
    assert "error: timed out after 5 s" in text
    assert "tfzoo / Keras: 2.86x" in text


@pytest.mark.slow
def test_tiny_run_of_both_gcn_sides(tmp_path):
    out = tmp_path / "g.json"
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--num_nodes=600",
            "--features=8",
            "--p_in=0.02",
            "--p_out=0.002",
            "--train_per_class=20",
            "--epochs=2",
            "--repeats=1",
            "--warmup_epochs=1",
            "--rounds=1",
            "--only=tfzoo_gcn,keras_gcn",
            f"--output_json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    for side in ("tfzoo_gcn", "keras_gcn"):
        assert "error" not in results[side], results[side]
        assert results[side]["nodes"] == 600 and len(results[side]["seconds_per_epoch"]) == 1
    assert results["tfzoo_gcn"]["edges"] == results["keras_gcn"]["edges"]  # the same graph
    assert "GCN epoch rate tfzoo / Keras" in proc.stdout
