"""Trains tests/training/toy_task.py's task in one rank, through the shared trainer.

Launched by tests/training/test_trainer.py as `mpirun -np N python task_driver.py OUT_DIR
--flags...` (or directly for one process). Writes OUT_DIR/rank{r}.npz with the trainable
weights at the end and OUT_DIR/rank{r}.json with the log and the eval results, as
horovod_driver.py does for the image task. TFZOO_TEST_RANK_LOCAL=1 trains the variant
whose item table each rank holds alone (toy_task.ToyRankLocal).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

import horovod_driver  # noqa: E402  (its weight-dumping hook)
import toy_task  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

import flags  # noqa: E402, F401  (defines the flags)
from training import runtime, trainer  # noqa: E402


def main():
    out_dir = sys.argv[1]
    absl_flags.FLAGS([sys.argv[0]] + sys.argv[2:])
    runtime.configure_tf_runtime()
    hook = horovod_driver.DumpWeightsHook(out_dir)
    toy = toy_task.ToyRankLocal() if os.environ.get("TFZOO_TEST_RANK_LOCAL") else None
    result = trainer.train(toy or toy_task.ToyRegression(), absl_flags.FLAGS, extra_hooks=[hook])
    import numpy as np

    rank = result["rank"]
    np.savez(
        os.path.join(out_dir, f"rank{rank}.npz"),
        **{f"end/{k}": v for k, v in (hook.end_values or {}).items()},
    )
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "rank": rank,
                "size": result["size"],
                "log": {int(s): {k: float(x) for k, x in v.items()} for s, v in result["log"]},
                "eval": [(s, m) for s, m in result["eval"]],
                "checkpoint": result["checkpoint"],
            },
            f,
        )


if __name__ == "__main__":
    main()
