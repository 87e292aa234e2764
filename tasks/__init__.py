"""The tasks; importing this package registers every one of them (training/task.py)."""

from tasks import translation  # noqa: F401
