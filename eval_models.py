"""Evaluates a checkpoint of any task (--task): its metrics over a whole split.

Once:       python eval_models.py --task=NAME ... --checkpoint_path=TRAIN_DIR
Following:  add --follow to evaluate each new checkpoint of TRAIN_DIR as it appears, until
            --eval_timeout_secs pass without one.
Several ranks (mpirun / horovodrun) split the examples and sum the task's statistics.
The task's own flags are those of its training run; see training/evaluator.py for how the
ranks agree on each checkpoint. Prints one JSON line of metrics per checkpoint.
"""

if __name__ == "__main__":
    from training import allocator

    allocator.use_tcmalloc()  # before TensorFlow loads; TFZOO_MALLOC=system opts out

from absl import app

import flags
import tasks  # noqa: F401  (registers every task)
from training import evaluator, runtime, task, trainer

FLAGS = flags.FLAGS
trainer.define_task_flag("image_classification")  # --task, and every task's own flags


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    runtime.configure_tf_runtime()
    evaluator.evaluate(task.get_task(trainer.task_name("image_classification")))


if __name__ == "__main__":
    app.run(main)
