"""Runs train_image_classifiers.train() in one rank and saves what the Horovod tests compare.

Launched by the tests as `mpirun -np N python horovod_driver.py OUT_DIR --flags...` or with
horovodrun. Writes OUT_DIR/rank{r}.npz with the trainable weights at the start (after init,
restore and broadcast) and at the end, plus OUT_DIR/rank{r}.json with rank, size and the
logged losses. "{rank}" in any flag value is replaced by this process's rank (from the
launcher's environment), e.g. --train_dir=D/rank{rank} to see which ranks write files.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import flags as absl_flags  # noqa: E402
from absl import logging  # noqa: E402

import train_image_classifiers  # noqa: E402
from slim_compat import tf  # noqa: E402
from training import runtime  # noqa: E402


class DumpWeightsHook(tf.train.SessionRunHook):
    def __init__(self, out_dir):
        self._out = out_dir
        self.start = self.end_values = None

    def begin(self):
        self._vars = {v.op.name: v for v in tf.trainable_variables()}

    def after_create_session(self, session, coord):
        self.start = session.run(self._vars)

    def end(self, session):
        self.end_values = session.run(self._vars)


def main():
    out_dir = sys.argv[1]
    rank = os.environ.get("HOROVOD_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
    absl_flags.FLAGS([sys.argv[0]] + [a.replace("{rank}", rank) for a in sys.argv[2:]])
    runtime.configure_tf_runtime()
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    hook = DumpWeightsHook(out_dir)
    result = train_image_classifiers.train(extra_hooks=[hook])
    rank = result["rank"]
    import numpy as np

    # A finished job (train_dir already at --stop_at_step) opens no session: no weights.
    arrays = {f"start/{k}": v for k, v in (hook.start or {}).items()}
    arrays.update({f"end/{k}": v for k, v in (hook.end_values or {}).items()})
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **arrays)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(
            {
                "rank": rank,
                "size": result["size"],
                "losses": {int(s): float(v["loss"]) for s, v in result["log"]},
                "eval": [(s, m) for s, m in result["eval"]],
                "checkpoint": result["checkpoint"],
            },
            f,
        )


if __name__ == "__main__":
    main()
