"""Trains the recommendation models: NCF (MovieLens) and CTR models (Wide&Deep, DeepFM, DCN on Criteo).

    python train_rec_models.py --task=ncf --model_name=... --train_dir=D ...

Selects a task by --task (a registered task of FAMILY below) and runs the shared trainer
(training/trainer.py): Horovod under mpirun / horovodrun, --precision, accumulation,
auto-resume on the same --train_dir, finetune rules, evaluation during training. An
unknown task name lists the valid ones.
"""

if __name__ == "__main__":
    from training import allocator

    allocator.use_tcmalloc()  # before TensorFlow loads; TFZOO_MALLOC=system opts out

from absl import app

from training import trainer

#: The Task.family this entry point trains (tasks/ registers them).
FAMILY = "rec"

if __name__ == "__main__":
    trainer.define_task_flag("ncf", FAMILY)
    app.run(trainer.main_for(FAMILY, "ncf"))
