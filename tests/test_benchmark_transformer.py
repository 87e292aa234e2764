"""End-to-end run of scripts/benchmark_transformer.py on a tiny model (no timing bounds).

transformer_tiny, fp32, 1 block of 1 step: the machine, tfzoo and Keras workers run as
separate processes; the table and the JSON carry measured positive values (or, without
keras-hub, the peer's row names what is missing).
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from nlp_models import models_factory, transformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark_transformer.py")


def positive_finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_flops_per_token_counts_every_matmul():
    config = models_factory.get_config("transformer_base", vocab_size=8000)
    d, f, v, n, s = 512, 2048, 8000, 6, 32
    # Per token: 2 FLOPs per multiply-add; encoder 4 d^2 + 2 d f + 2 s d products, the
    # decoder 4 d^2 (self) + 2 d^2 (cross q, output) + 2 d f + 2 s d + 2 s d, the cross
    # keys/values 2 d^2 per source token, the softmax d v; x3 for the backward pass.
    forward = 2 * (
        n * (4 * d * d + 2 * d * f + 2 * s * d)
        + n * (4 * d * d + 2 * d * d + 2 * d * f + 4 * s * d)
        + n * 2 * d * d
        + d * v
    )
    assert transformer.training_flops_per_token(config, s, s) == pytest.approx(3 * forward)


def _load_script():
    spec = importlib.util.spec_from_file_location("benchmark_transformer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tfzoo_drops_out_where_the_keras_hub_peer_does():
    # keras-hub's blocks have no dropout inside the feed-forward block: tfzoo's is off,
    # everything else is the registered config.
    config = _load_script()._model_config("transformer_base", 8000)
    registered = models_factory.get_config("transformer_base", vocab_size=8000)
    assert registered.relu_dropout > 0 and config.relu_dropout == 0.0
    assert config == registered.replace(relu_dropout=0.0)


@pytest.mark.slow
def test_tiny_run_reports_measured_rows(tmp_path):
    out = tmp_path / "report.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--model=transformer_tiny",
            "--vocab_size=64",
            "--batch_size=2",
            "--length=8",
            "--warmup_steps=1",
            "--steps=1",
            "--repeats=1",
            "--block_seconds=0",
            "--matmul_size=256",
            f"--output_json={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert positive_finite(report["machine"]["matmul_gflops"]["fp32"])
    assert positive_finite(report["flops_per_token"])
    run = report["runs"][0]
    assert run["precision"] == "fp32"
    tfzoo = run["tfzoo"]
    for key in ("tokens_per_sec", "ms_per_step", "mfu", "final_loss"):
        assert positive_finite(tfzoo[key]), key
    assert "| tfzoo fp32 |" in proc.stdout
    keras = run["keras"]
    if importlib.util.find_spec("keras_hub") is None:
        assert "keras-hub is not installed" in keras["error"]
    else:
        assert positive_finite(keras["tokens_per_sec"]) and positive_finite(run["speedup"])
        # The same architecture: the same parameters up to the peer's layer-norm layout.
        assert abs(keras["parameters"] - tfzoo["parameters"]) < 0.01 * tfzoo["parameters"]
