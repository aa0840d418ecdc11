"""Executors: where evaluations run (in process, a local process pool, or Ray)."""

from nasforge.executors.base import EXECUTORS, Executor
from nasforge.executors.local import LocalExecutor

__all__ = ["EXECUTORS", "Executor", "LocalExecutor"]
