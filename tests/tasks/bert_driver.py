"""Trains a BERT task in one rank through the shared trainer (for mpirun in the tests).

    mpirun -np N python tests/tasks/bert_driver.py OUT_DIR --task=NAME --flags...

Writes OUT_DIR/rank{r}.npz (the trainable weights at the end) and OUT_DIR/rank{r}.json
(rank, size, the step log), as tests/training/task_driver.py does for the toy task.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "training"))

import horovod_driver  # noqa: E402  (its weight-dumping hook)
from absl import flags as absl_flags  # noqa: E402

import flags  # noqa: E402
from training import runtime, trainer  # noqa: E402
from training import task as task_lib  # noqa: E402


def main():
    out_dir = sys.argv[1]
    trainer.define_task_flag("bert_pretraining", "nlp")
    absl_flags.FLAGS([sys.argv[0]] + sys.argv[2:])
    runtime.configure_tf_runtime()
    hook = horovod_driver.DumpWeightsHook(out_dir)
    task = task_lib.get_task(flags.FLAGS.task, "nlp")
    result = trainer.train(task, flags.FLAGS, extra_hooks=[hook])
    import numpy as np

    rank = result["rank"]
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **(hook.end_values or {}))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        log = {int(s): {k: float(x) for k, x in v.items()} for s, v in result["log"]}
        json.dump({"rank": rank, "size": result["size"], "log": log}, f)


if __name__ == "__main__":
    main()
