"""Trains the translation task in one rank through the shared trainer (for mpirun tests).

`mpirun -np N python translation_driver.py OUT_DIR --flags...` (or directly for one
process). Writes OUT_DIR/rank{r}.npz with the trainable weights at the end and
OUT_DIR/rank{r}.json with the step log, as tests/training/task_driver.py does.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "training"))

import horovod_driver  # noqa: E402  (its weight-dumping hook)
import numpy as np  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

from tasks import translation  # noqa: E402
from training import runtime, trainer  # noqa: E402


def main():
    out_dir = sys.argv[1]
    trainer.define_task_flag("translation", "nlp")
    absl_flags.FLAGS([sys.argv[0]] + sys.argv[2:])
    runtime.configure_tf_runtime()
    hook = horovod_driver.DumpWeightsHook(out_dir)
    result = trainer.train(translation.TranslationTask(), absl_flags.FLAGS, extra_hooks=[hook])
    rank = result["rank"]
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **(hook.end_values or {}))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "rank": rank,
                "size": result["size"],
                "log": {int(s): {k: float(x) for k, x in v.items()} for s, v in result["log"]},
            },
            f,
        )


if __name__ == "__main__":
    main()
