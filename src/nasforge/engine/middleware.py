"""Middleware applied to every evaluation, for every executor.

An executor only runs evaluations (each worker captures its own failures as ``failed``
Results, :func:`nasforge.evaluators.base.evaluate_safely`). What must hold whichever executor
runs them is applied here, in the driver: the evaluator's persistent evaluation cache
(``cache_dir``), keyed by the task's *content* hash, the architecture, the evaluator settings and
the seed (:func:`nasforge.evaluators.cache.cache_key`). The driver is the cache's only writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from nasforge.evaluators.base import Evaluator, Result
from nasforge.evaluators.cache import cached_map
from nasforge.executors.base import Executor
from nasforge.spaces.base import Architecture


def evaluate_all(
    executor: Executor,
    evaluator: Evaluator,
    archs: Sequence[Architecture],
    seeds: Sequence[int],
) -> Iterator[tuple[int, Result]]:
    """``executor.map(evaluator, archs, seeds)`` behind the evaluator's persistent cache:
    yields ``(index, Result)`` once per index (cache hits first, then in completion order)."""
    yield from cached_map(executor.map, evaluator, archs, seeds)
