"""Evaluates an image classifier: top-1 and top-5 over a whole split.

Once:       python eval_image_classifiers.py --model_name=lenet --dataset_name=mnist \
                --dataset_dir=D --eval_split_name=test --checkpoint_path=TRAIN_DIR
Following:  add --follow to evaluate each new checkpoint of TRAIN_DIR as it appears, until
            --eval_timeout_secs pass without one.
Several ranks (mpirun / horovodrun) split the examples and sum the counts. Rank 0 alone
looks at --checkpoint_path and chooses each checkpoint (or decides to stop); the choice is
broadcast, so every rank restores the same checkpoint and all stop together. A checkpoint
that any rank fails to restore (deleted meanwhile, e.g. by the trainer's
--keep_checkpoint_max) is skipped by all of them.

Every example of the split is counted exactly once (the last partial batch included).
Without --eval_split_name the dataset's held-out split is evaluated (validation, else test).
"""

if __name__ == "__main__":
    # First, before TensorFlow loads: re-run this process on tcmalloc when it is installed
    # (faster CPU training; TFZOO_MALLOC=system opts out). See training/allocator.py.
    from training import allocator

    allocator.use_tcmalloc()

from absl import app

import flags
from tasks import image_classification
from training import evaluator, runtime

FLAGS = flags.FLAGS


def build_graph(dist):
    """The eval graph: dataset, network (is_training=False), counting ops, saver."""
    return evaluator.build_graph(image_classification.ImageClassificationTask(), dist, FLAGS)


def evaluate():
    """Evaluates --checkpoint_path once (metrics dict) or, with --follow, each new one (list)."""
    return evaluator.evaluate(image_classification.ImageClassificationTask())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    runtime.configure_tf_runtime()
    evaluate()


if __name__ == "__main__":
    app.run(main)
