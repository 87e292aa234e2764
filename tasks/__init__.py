"""THE tasks: importing this package registers every task in training.task.TASKS.

One module per family; each registers its tasks with training.task.register_task when
imported. Add a family's module here (one line).
"""

from tasks import (
    image_classification,  # noqa: F401
    node_classification,  # noqa: F401
)
