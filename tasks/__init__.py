"""THE tasks: importing this package registers every task in training.task.TASKS.

One module per family; each registers its tasks with training.task.register_task when
imported. Add a family's module here: one line `import tasks.<module>  # noqa: F401`.
"""

import tasks.bert  # noqa: F401
import tasks.image_classification  # noqa: F401
import tasks.node_classification  # noqa: F401
import tasks.recommendation  # noqa: F401
import tasks.translation  # noqa: F401
