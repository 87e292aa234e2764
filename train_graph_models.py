"""Trains the graph models: GCN and GraphSAGE node classification.

    python train_graph_models.py --task=node_classification --model_name=... --train_dir=D ...

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
FAMILY = "graph"

if __name__ == "__main__":
    trainer.define_task_flag("node_classification", FAMILY)
    app.run(trainer.main_for(FAMILY, "node_classification"))
