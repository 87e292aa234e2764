"""The tasks; importing this package registers every task in training.task.TASKS."""

from tasks import recommendation  # noqa: F401
