"""README "Extending tfzoo", followed literally: its examples are run as they are written."""

import math
import os
import re
import types

import numpy as np
import pytest

from slim_compat import tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_example(heading):
    """The first python block under `### heading` of README.md, as a fresh module."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split(f"\n### {heading}\n", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType(heading.replace(" ", "_"))
    exec(compile(code, f"README.md ({heading})", "exec"), module.__dict__)
    return module


@pytest.fixture
def registries():
    """Leaves the registries as they were, whatever the examples register."""
    from preprocessing import preprocessing_factory
    from training import learning_rates, optimizers, task

    saved = [(r, dict(r)) for r in (task.TASKS, optimizers.OPTIMIZERS, learning_rates.SCHEDULES)]
    saved.append((preprocessing_factory.PREPROCESSINGS, dict(preprocessing_factory.PREPROCESSINGS)))
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


def test_the_task_optimizer_and_schedule_of_the_guide_train_together(tmp_path, registries):
    from absl import flags as absl_flags

    import flags  # noqa: F401  (defines the flags)
    from training import task, trainer

    readme_example("A task")
    readme_example("An optimizer")
    readme_example("A learning-rate schedule")
    assert "linear_regression" in task.tasks_of_family("nlp")
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(
        [
            "test",
            f"--train_dir={tmp_path}",
            "--optimizer=my_sgd",
            "--learning_rate_decay_type=cosine",
            "--learning_rate=0.1",
            "--batch_size=16",
            "--stop_at_step=40",
            "--log_every_n_steps=10",
            "--eval_every_n_steps=40",
            "--eval_batch_size=50",
        ]
    )
    try:
        with tf.Graph().as_default():
            result = trainer.train(task.get_task("linear_regression", family="nlp"))
    finally:
        absl_flags.FLAGS.unparse_flags()
    log = dict(result["log"])
    assert log[40]["loss"] < 0.05 * log[1]["loss"]
    # The rate of the last update, at step 39 of 40: near the cosine's end.
    assert log[40]["lr"] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 39 / 40)), rel=1e-4)
    ((step, metrics),) = result["eval"]
    assert step == 40 and metrics["count"] == 256 and metrics["mse"] < 0.05 * log[1]["loss"]


def test_the_preprocessing_of_the_guide_plugs_into_the_factory(graph, registries):
    from preprocessing import preprocessing_factory

    example = readme_example("A preprocessing")
    preprocessing_factory.PREPROCESSINGS["my"] = example
    fn = preprocessing_factory.get_preprocessing("my", is_training=False)
    image = tf.constant(np.full([8, 6, 3], 255, np.uint8))
    with tf.Session() as session:
        out = session.run(fn(image, 4, 4))
    assert out.shape == (4, 4, 3) and np.allclose(out, 1.0)
