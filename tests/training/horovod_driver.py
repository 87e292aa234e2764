"""Runs train_image_classifiers.train() in one rank and saves what the Horovod tests compare.

Launched by the tests as `mpirun -np N python horovod_driver.py OUT_DIR --flags...` or with
horovodrun. Writes OUT_DIR/rank{r}.npz with the trainable weights at the start (after init,
restore and broadcast) and at the end, plus OUT_DIR/rank{r}.json with rank, size and the
logged losses. "{rank}" in any flag value is replaced by this process's rank (from the
launcher's environment), e.g. --train_dir=D/rank{rank} to see which ranks write files.

Faults for the tests, injected here and never in tfzoo's code, each as RANK:RUN (RUN
counts the runs of the train op from 0 in this process):
    TFZOO_TEST_OVERFLOW=1:2   on rank 1, multiply the loss of run 2 by
                              TFZOO_TEST_LOSS_FACTOR (default 1e4): finite in fp32, but with
                              --precision=fp16 its loss-scaled gradients overflow fp16.
                              The other runs' losses are multiplied by TFZOO_TEST_LOSS_BASE
                              (default 1), e.g. 1e-3 so that lenet's gradients never
                              overflow at the default loss scale by themselves.
    TFZOO_TEST_KILL=1:3       rank 1 kills itself (SIGKILL) after run 3, after writing
                              OUT_DIR/killed_at (its time.time()).
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import flags as absl_flags  # noqa: E402
from absl import logging  # noqa: E402

import train_image_classifiers  # noqa: E402
from slim_compat import tf  # noqa: E402
from tasks import image_classification as classifier  # noqa: E402
from training import runtime  # noqa: E402


class DumpWeightsHook(tf.train.SessionRunHook):
    def __init__(self, out_dir):
        self._out = out_dir
        self.start = self.end_values = None

    def begin(self):
        self._vars = {v.op.name: v for v in tf.trainable_variables()}
        # The loss-scale state too (fp16): its scale and skip count on every rank.
        self._vars.update(
            {v.op.name: v for v in tf.global_variables() if v.op.name.startswith("loss_scale/")}
        )

    def after_create_session(self, session, coord):
        self.start = session.run(self._vars)

    def end(self, session):
        self.end_values = session.run(self._vars)


def _fault(name, rank):
    """The run index of fault `name` for this rank, or None."""
    value = os.environ.get(name)
    if not value:
        return None
    fault_rank, run = value.split(":")
    return int(run) if int(fault_rank) == int(rank) else None


class FaultHook(tf.train.SessionRunHook):
    """Feeds the loss factor on the overflow run; kills this process after the kill run."""

    def __init__(self, out_dir, factor, overflow_run, kill_run):
        self._out = out_dir
        self._factor = factor
        self._value = float(os.environ.get("TFZOO_TEST_LOSS_FACTOR", "1e4"))
        self._overflow_run = overflow_run
        self._kill_run = kill_run
        self._run = 0

    def before_run(self, run_context):
        if self._run == self._overflow_run:
            return tf.train.SessionRunArgs(None, feed_dict={self._factor: self._value})
        return None

    def after_run(self, run_context, run_values):
        if self._run == self._kill_run:
            with open(os.path.join(self._out, "killed_at"), "w") as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
        self._run += 1


def scale_loss_by(factor):
    """Makes the trainer's classification loss `factor` times larger (a test-only fault)."""
    original = classifier.classification_loss

    def scaled(*args, **kwargs):
        total_loss, cross_entropy = original(*args, **kwargs)
        return total_loss * factor, cross_entropy

    classifier.classification_loss = scaled


def main():
    out_dir = sys.argv[1]
    rank = os.environ.get("HOROVOD_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
    absl_flags.FLAGS([sys.argv[0]] + [a.replace("{rank}", rank) for a in sys.argv[2:]])
    runtime.configure_tf_runtime()
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    hook = DumpWeightsHook(out_dir)
    extra_hooks = [hook]
    overflow_run = _fault("TFZOO_TEST_OVERFLOW", rank)
    kill_run = _fault("TFZOO_TEST_KILL", rank)
    # Every rank builds the same graph (Horovod matches allreduces by tensor name); only
    # the faulty rank feeds the factor.
    if os.environ.get("TFZOO_TEST_OVERFLOW") or os.environ.get("TFZOO_TEST_KILL"):
        base = float(os.environ.get("TFZOO_TEST_LOSS_BASE", "1"))
        factor = tf.placeholder_with_default(base, [], name="test_loss_factor")
        scale_loss_by(factor)
        extra_hooks.append(FaultHook(out_dir, factor, overflow_run, kill_run))
    result = train_image_classifiers.train(extra_hooks=extra_hooks)
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
                "log": {int(s): {k: float(x) for k, x in v.items()} for s, v in result["log"]},
                "eval": [(s, m) for s, m in result["eval"]],
                "checkpoint": result["checkpoint"],
            },
            f,
        )


if __name__ == "__main__":
    main()
