"""scripts/benchmark_bert.py's MFU ceiling: the step's matmul shapes and their worker."""

import importlib.util
import json
import math
import os

from nlp_models import bert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark_bert.py")


def _module():
    spec = importlib.util.spec_from_file_location("benchmark_bert", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_step_matmul_shapes_hold_the_steps_flops():
    """Forward + both gradients of every matmul: the FLOPs of the MFU's numerator, less
    the pooler and the next-sentence head (2 H^2 + 4 H per sequence, times 3)."""
    module = _module()
    for name, batch, seq, predictions in (("bert_base", 32, 128, 20), ("bert_tiny", 3, 16, 2)):
        config = bert.get_config(name)
        shapes = module.training_matmul_shapes(config, batch, seq, predictions)
        total = sum(2 * b * m * k * n * count for _, b, m, k, n, count in shapes)
        h = config.hidden_size
        expected = bert.pretraining_flops_per_example(config, seq, predictions) * batch
        assert total == expected - batch * 3 * 2 * (h * h + 2 * h)
        # Each forward matmul of a layer and its two gradients appear (3 x 5 + 5 rows).
        assert len(shapes) == 20 and all(count >= 1 for *_, count in shapes)


def test_the_shapes_worker_times_every_shape(tmp_path):
    module = _module()
    result_file = str(tmp_path / "shapes.json")
    cfg = dict(
        model="bert_tiny",
        precision="fp32",
        batch_size=2,
        seq_length=16,
        predictions=2,
        shape_seconds=0.01,
        result_file=result_file,
    )
    module.run_shapes_worker(cfg)
    with open(result_file) as f:
        result = json.load(f)
    assert len(result["shapes"]) == 20
    assert all(math.isfinite(r["gflops"]) and r["gflops"] > 0 for r in result["shapes"])
    rate = result["step_matmul_gflop"] / result["step_matmul_seconds"]
    assert math.isclose(rate, result["model_matmul_gflops"], rel_tol=1e-9)
