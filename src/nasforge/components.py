"""Importing this module registers every built-in component: tasks, spaces, evaluators,
executors and strategies (each package's ``__init__`` fills its registry). The driver
(``search``) and the readers of exported models (``run.load``) import it, so a name in a config
or an export always resolves."""

from nasforge import data, evaluators, executors, spaces, strategies

__all__ = ["data", "evaluators", "executors", "spaces", "strategies"]
