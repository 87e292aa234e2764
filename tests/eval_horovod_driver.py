"""Runs eval_image_classifiers.evaluate() in one rank and saves its results for the tests.

Launched as `mpirun -np N python eval_horovod_driver.py OUT_DIR --flags...` through
tests/training/test_horovod.py's launch(). Writes OUT_DIR/rank{r}.json with rank, size and
the evaluated checkpoints' metrics (and an empty rank{r}.npz, which launch() also reads).

When OUT_DIR/hold_first_restore exists, rank 0's first checkpoint restore writes
OUT_DIR/restoring and waits for OUT_DIR/go before it reads the files: the test changes the
training directory in between (e.g. deletes the checkpoint rank 0 has just chosen).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags as absl_flags  # noqa: E402
from absl import logging  # noqa: E402

import eval_image_classifiers  # noqa: E402
from slim_compat import tf  # noqa: E402
from training import distributed, runtime  # noqa: E402

HOLD_SECS = 120  # longest wait for the test's go-ahead


def hold_first_restore(out_dir):
    original = tf.train.Saver.restore
    held = []

    def restore(self, sess, save_path):
        if not held:
            held.append(save_path)
            open(os.path.join(out_dir, "restoring"), "w").write(save_path)
            deadline = time.monotonic() + HOLD_SECS
            while not os.path.exists(os.path.join(out_dir, "go")):
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never wrote its go-ahead file")
                time.sleep(0.1)
        return original(self, sess, save_path)

    tf.train.Saver.restore = restore


def main():
    out_dir = sys.argv[1]
    absl_flags.FLAGS([sys.argv[0]] + sys.argv[2:])
    runtime.configure_tf_runtime()
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    dist = distributed.init(absl_flags.FLAGS)
    if dist.is_chief and os.path.exists(os.path.join(out_dir, "hold_first_restore")):
        hold_first_restore(out_dir)
    results = eval_image_classifiers.evaluate()
    if isinstance(results, dict):
        results = [results]
    import numpy as np

    np.savez(os.path.join(out_dir, f"rank{dist.rank}.npz"))
    with open(os.path.join(out_dir, f"rank{dist.rank}.json"), "w") as f:
        json.dump({"rank": dist.rank, "size": dist.size, "results": results}, f)


if __name__ == "__main__":
    main()
