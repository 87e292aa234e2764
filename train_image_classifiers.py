"""Trains an image classifier: pretrain from scratch or finetune a checkpoint.

One process:            python train_image_classifiers.py --model_name=resnet_v1_50 --train_dir=D
Several ranks:          mpirun -np 2 python train_image_classifiers.py ...   (or horovodrun -np 2)
From a flagfile:        python train_image_classifiers.py --flagfile=job.flags

A second run on the same --train_dir resumes from its last checkpoint. The task
(tasks/image_classification.py: dataset -> network -> TF-Slim's loss -> top-1/top-5) runs
on the shared trainer (training/trainer.py: Horovod, precision, optimizer, hooks, loop).
"""

if __name__ == "__main__":
    # First, before TensorFlow loads: re-run this process on tcmalloc when it is installed
    # (faster CPU training; TFZOO_MALLOC=system opts out). See training/allocator.py.
    from training import allocator

    allocator.use_tcmalloc()

from absl import app

import flags
from tasks import image_classification
from training import runtime, trainer

FLAGS = flags.FLAGS

# The pipeline with the flags' knobs, for tools and tests that build it alone.
make_dataset = image_classification.make_dataset


def train(extra_hooks=()):
    """Runs one training job from FLAGS; returns its checkpoint, log and eval results.

    Args:
        extra_hooks: more SessionRunHooks, run after tfzoo's own (so after the broadcast).
    """
    return trainer.train(image_classification.ImageClassificationTask(), FLAGS, extra_hooks)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments (not --flags): {' '.join(argv[1:])}")
    runtime.configure_tf_runtime()
    train()


if __name__ == "__main__":
    app.run(main)
