"""Runs trainer.train() of the node_classification task in one rank; saves what tests compare.

Launched as `mpirun -np N python graph_horovod_driver.py OUT_DIR --flags...` (or with one
process, no launcher). Writes OUT_DIR/rank{r}.npz with the trainable weights at the start and the end
and OUT_DIR/rank{r}.json with rank, size, the logged losses and the eval metrics.
"{rank}" in a flag value is replaced by this process's rank.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import flags as absl_flags  # noqa: E402

import flags  # noqa: E402
from slim_compat import tf  # noqa: E402
from tasks import node_classification  # noqa: E402
from training import runtime, trainer  # noqa: E402


class DumpWeightsHook(tf.train.SessionRunHook):
    """Keeps the trainable weights' values at the start (after broadcast) and the end."""

    def __init__(self):
        self.values = {}

    def begin(self):
        self._vars = {v.op.name: v for v in tf.trainable_variables()}

    def after_create_session(self, session, coord):
        self._start = session.run(self._vars)

    def end(self, session):
        self.values = {f"start/{k}": v for k, v in self._start.items()}
        self.values.update({f"end/{k}": v for k, v in session.run(self._vars).items()})


def main():
    if os.environ.get("TFZOO_TEST_DUMP_AFTER"):  # a hang: print every thread's stack, exit
        import faulthandler

        faulthandler.dump_traceback_later(int(os.environ["TFZOO_TEST_DUMP_AFTER"]), exit=True)
    out_dir, argv = sys.argv[1], sys.argv[2:]
    rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("HOROVOD_RANK", "0"))
    argv = [a.replace("{rank}", rank) for a in argv]
    runtime.configure_tf_runtime()
    flags.define_flags()
    task = node_classification.NodeClassificationTask()
    task.define_flags(absl_flags)
    absl_flags.FLAGS(["driver"] + argv)
    hook = DumpWeightsHook()
    result = trainer.train(task, params=absl_flags.FLAGS, extra_hooks=[hook])
    import numpy as np

    np.savez(os.path.join(out_dir, f"rank{result['rank']}.npz"), **hook.values)
    info = {
        "rank": result["rank"],
        "size": result["size"],
        "losses": {str(step): values for step, values in result["log"]},
        "eval": [[step, metrics] for step, metrics in result["eval"]],
    }
    with open(os.path.join(out_dir, f"rank{result['rank']}.json"), "w") as f:
        json.dump(info, f, default=float)


if __name__ == "__main__":
    main()
