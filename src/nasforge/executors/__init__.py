"""Executors: where evaluations run (in process, a local process pool, or Ray)."""

from nasforge.executors.base import EXECUTORS, Executor
from nasforge.executors.local import LocalExecutor
from nasforge.executors.pool import JobPool
from nasforge.executors.ray import RayExecutor

__all__ = ["EXECUTORS", "Executor", "JobPool", "LocalExecutor", "RayExecutor"]
