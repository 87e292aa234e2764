"""Tasks self-register when imported; import every task module here."""

from tasks import node_classification  # noqa: F401
