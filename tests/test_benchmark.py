"""End-to-end run of scripts/benchmark.py on its smallest configuration (no timing assertions).

lenet, fp32, 1 repeat of 2 steps, the Keras peer on (on tfzoo's malloc, plus a glibc-malloc
row), scaling off: checks that the script runs its workers (machine, tfzoo, Keras) as
separate processes and reports every field, each a positive finite number, in the markdown
table and in the JSON, and that the printed report holds measured values only.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from training import allocator

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
        "--keras_allocators=tfzoo,system",
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
    (keras_glibc,) = run["keras_extra"]
    assert "error" not in tfzoo, tfzoo.get("error")
    assert "error" not in keras, keras.get("error")
    assert "error" not in keras_glibc, keras_glibc.get("error")
    # Like for like: the compared peer runs on tfzoo's malloc (tcmalloc where installed).
    tfzoo_malloc = "tcmalloc" if allocator.tcmalloc_path() else "glibc malloc"
    assert report["allocators"] == {"tfzoo": tfzoo_malloc, "keras": [tfzoo_malloc, "glibc malloc"]}
    assert keras["allocator"] == tfzoo_malloc and keras_glibc["allocator"] == "glibc malloc"
    assert run["tfzoo_over_keras"] == keras["tfzoo_over_keras"]
    for side in (tfzoo, keras, keras_glibc):
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
    assert positive_finite(keras_glibc["tfzoo_over_keras"])
    assert report["scaling"] is None and report["allreduce"] is None
    assert "notes" not in report

    printed = proc.stdout
    assert "| lenet | synthetic | 28x28x1 | 4 | fp32 |" in printed
    assert f"| lenet | Sequential (LeNet) | {tfzoo_malloc} | 4 | fp32 |" in printed
    if tfzoo_malloc != "glibc malloc":
        assert "| lenet | Sequential (LeNet) | glibc malloc | 4 | fp32 |" in printed
    for header in ("img/s (min-max)", "ms/step", "Keras malloc", "peak RSS MiB", "MFU", "GFLOP/s"):
        assert header in printed
    # Measured values only: tables, headings, the machine / settings line, the matmul
    # table's caption and measured one-liners; the narrative notes live in README.md.
    prose = [line for line in printed.splitlines() if line and not line.startswith(("|", "#"))]
    assert prose[0].startswith("Machine: ")
    assert f"tfzoo on {tfzoo_malloc}, the Keras peer on {tfzoo_malloc}, glibc malloc." in prose[0]
    ratio = lenet["train_flops_per_image"] / lenet["forward_flops_per_image"]
    assert prose[1:] == [
        "Matmul throughput (the MFU denominator):",
        f"- Training / forward FLOPs counted: {ratio:.2f}-{ratio:.2f}.",
    ]


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


def test_keras_peer_runs_on_tfzoos_malloc_unless_asked_otherwise(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "scripts"))
    import benchmark

    assert benchmark.parse_args([]).keras_allocators == ["tfzoo"]
    fake = "/opt/fake/libtcmalloc_minimal.so.4"
    monkeypatch.setattr(allocator, "tcmalloc_path", lambda: fake)
    monkeypatch.setenv("LD_PRELOAD", f"{fake}:/opt/other.so")  # e.g. the driver under tcmalloc
    launcher = benchmark.Launcher(str(tmp_path), 60)
    tfzoo_env = launcher.environment("tfzoo")
    assert tfzoo_env["LD_PRELOAD"].split(":")[0] == fake
    assert launcher.environment("keras")["LD_PRELOAD"] == tfzoo_env["LD_PRELOAD"]
    assert launcher.resolve_allocator("tfzoo") == "tcmalloc"
    # glibc's malloc: nothing of the tcmalloc preload is inherited, other preloads are.
    assert launcher.environment("keras", "system")["LD_PRELOAD"] == "/opt/other.so"
    assert "tcmalloc" not in launcher.environment("machine").get("LD_PRELOAD", "")

    # TFZOO_MALLOC=system puts tfzoo on glibc's malloc, and the peer follows it.
    monkeypatch.delenv("LD_PRELOAD")
    launcher = benchmark.Launcher(str(tmp_path), 60, tfzoo_allocator="system")
    assert launcher.resolve_allocator("tfzoo") == "system"
    assert "LD_PRELOAD" not in launcher.environment("keras")
    # tcmalloc not installed: tfzoo runs on glibc's, and asking for tcmalloc is a failed row.
    monkeypatch.setattr(allocator, "tcmalloc_path", lambda: None)
    launcher = benchmark.Launcher(str(tmp_path), 60)
    assert launcher.resolve_allocator("tfzoo") == "system"
    failed = launcher.run("keras", {}, allocator_name="tcmalloc")
    assert "libtcmalloc_minimal.so.4 is not installed" in failed["error"]


def test_unknown_names_are_usage_errors():
    proc = run_script("--precisions=fp8", timeout=60)
    assert proc.returncode == 2 and "unknown precision 'fp8'" in proc.stderr
    proc = run_script("--keras_allocators=jemalloc", timeout=60)
    assert proc.returncode == 2
    assert "unknown Keras allocator 'jemalloc'; valid: tfzoo, tcmalloc, system" in proc.stderr
    proc = run_script("--input=disk", timeout=60)
    assert proc.returncode == 2 and "unknown input 'disk'" in proc.stderr


def test_unknown_model_lists_the_valid_names():
    proc = run_script("--models=resnet_v1_51", "--no_scaling", "--no_peer", timeout=180)
    assert proc.returncode != 0
    assert "unknown model(s) resnet_v1_51; valid names:" in proc.stderr
    assert "resnet_v1_50" in proc.stderr
