"""End-to-end run of scripts/benchmark.py on its smallest configuration (no timing assertions).

lenet, fp32, 1 repeat of 2 steps, the Keras peer on, scaling off: checks that the script
runs its workers (machine, tfzoo, Keras) as separate processes and reports every field,
each a positive finite number, in the markdown table and in the JSON.
"""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")


def run_script(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def positive_finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_smallest_configuration_reports_every_field(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_script(
        "--models=lenet",
        "--batch_sizes=4",
        "--precisions=fp32",
        "--repeats=1",
        "--steps=2",
        "--block_seconds=0",  # exactly --steps per block
        "--warmup_steps=1",
        "--matmul_size=128",
        "--no_scaling",
        f"--output_json={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["tensorflow"]
    assert positive_finite(machine["matmul"]["fp32"]["gflops_per_sec"])
    assert machine["precisions"] == ["fp32"] and list(machine["matmul"]) == ["fp32"]
    lenet = machine["models"]["lenet"]
    assert (lenet["image_size"], lenet["channels"], lenet["num_classes"]) == (28, 1, 10)
    # Profiler count, batch 2 minus batch 1: one image's forward+backward is about 3x forward.
    assert 2.5 < lenet["train_flops_per_image"] / lenet["forward_flops_per_image"] < 3.5
    # LeNet's forward multiply-adds: conv1 28*28*32*25, conv2 14*14*64*800, fc 3136*1024, fc 1024*10.
    macs = 28 * 28 * 32 * 25 + 14 * 14 * 64 * 800 + 3136 * 1024 + 1024 * 10
    assert 2 * macs <= lenet["forward_flops_per_image"] < 2.2 * macs

    (run,) = report["runs"]
    assert (run["model"], run["input"], run["precision"], run["batch_size"]) == (
        "lenet",
        "synthetic",
        "fp32",
        4,
    )
    tfzoo, keras = run["tfzoo"], run["keras"]
    assert "error" not in tfzoo, tfzoo.get("error")
    assert "error" not in keras, keras.get("error")
    for side in (tfzoo, keras):
        for key in (
            "images_per_sec",
            "images_per_sec_min",
            "images_per_sec_max",
            "ms_per_step",
            "steps_per_sec",
            "peak_rss_mib",
        ):
            assert positive_finite(side[key]), (key, side[key])
        assert side["images_per_sec_min"] <= side["images_per_sec"] <= side["images_per_sec_max"]
        assert len(side["block_seconds"]) == 1 and side["loss_finite"]
        assert side["steps_per_block"] == 2
        # ms/step and img/s describe the same timed block.
        assert side["images_per_sec"] == pytest.approx(4 * 1000.0 / side["ms_per_step"])
    for key in ("train_gflop_per_image", "achieved_gflops_per_sec", "mfu"):
        assert positive_finite(tfzoo[key]), (key, tfzoo[key])
    assert keras["keras_model"] == "Sequential (LeNet)"
    # The Keras LeNet has tfzoo's layer sizes: the same 3,274,634 parameters (10 classes, 1 channel).
    assert (
        keras["parameters"]
        == 5 * 5 * 1 * 32 + 32 + 5 * 5 * 32 * 64 + 64 + 3136 * 1024 + 1024 + 10250
    )
    assert positive_finite(run["tfzoo_over_keras"])
    assert report["scaling"] is None and report["allreduce"] is None
    assert report["notes"]

    printed = proc.stdout
    assert "| lenet | synthetic | 28x28x1 | 4 | fp32 |" in printed
    assert "| lenet | Sequential (LeNet) | 4 | fp32 |" in printed
    for header in ("img/s (min-max)", "ms/step", "steps/s", "peak RSS MiB", "MFU", "GFLOP/s"):
        assert header in printed
    assert "### Notes" in printed


def test_blocks_last_block_seconds_and_at_least_steps(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "scripts"))
    import benchmark

    cfg = {"block_seconds": 6.0, "steps": 1}
    assert benchmark._steps_per_block(cfg, 0.01) == 600  # a small net: many steps per block
    assert benchmark._steps_per_block(cfg, 11.6) == 1  # resnet_v1_50 on 2 cores: one
    assert benchmark._steps_per_block(dict(cfg, steps=5), 11.6) == 5
    assert benchmark._steps_per_block(dict(cfg, block_seconds=0), 0.01) == 1


def test_default_precisions_are_the_machines_native_ones(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "scripts"))
    import benchmark

    assert benchmark.parse_args([]).precisions is None  # resolved by the machine worker
    zen3 = {"avx2", "fma"}
    assert benchmark.machine_precisions([], zen3) == ["fp32"]
    assert benchmark.machine_precisions([], zen3 | {"amx_bf16"}) == ["fp32", "bf16"]
    assert benchmark.machine_precisions(["/physical_device:GPU:0"], zen3) == [
        "fp32",
        "fp16",
        "bf16",
    ]
    assert benchmark.parse_args(["--precisions=fp32,bf16"]).precisions == ["fp32", "bf16"]


def test_unknown_names_are_usage_errors():
    proc = run_script("--precisions=fp8", timeout=60)
    assert proc.returncode == 2 and "unknown precision 'fp8'" in proc.stderr
    proc = run_script("--input=disk", timeout=60)
    assert proc.returncode == 2 and "unknown input 'disk'" in proc.stderr


def test_unknown_model_lists_the_valid_names():
    proc = run_script("--models=resnet_v1_51", "--no_scaling", "--no_peer", timeout=180)
    assert proc.returncode != 0
    assert "unknown model(s) resnet_v1_51; valid names:" in proc.stderr
    assert "resnet_v1_50" in proc.stderr
