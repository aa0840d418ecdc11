"""LocalExecutor: in-process (``workers: 1``) or a spawn process pool.

Each worker receives the evaluator once (pool initializer), sets its torch thread count (default:
usable cores // workers, so the pool never oversubscribes the CPU), and then evaluates chunks of
a batch with ``evaluate_batch`` (so batched trainers work inside workers: a batch is split evenly
into one population per worker). The driver stays the single writer of the run store and of the
evaluator's persistent cache (:mod:`nasforge.engine.middleware`): workers only return Results.

Failure isolation: an exception escaping ``evaluate_batch`` (a bug) falls back to one-by-one
evaluation of that chunk. Workers run on :class:`~nasforge.executors.pool.JobPool`: a worker that
dies (killed, out of memory) loses only its own chunk, which is evaluated again in a fresh worker
with the same seeds (never stored as failed), at most ``max_restarts`` times; workers end when
the driver dies.

Exactness: with ``workers > 1`` every trial is evaluated in a worker (a lone trial too, e.g. the
rest of a resumed batch), always with ``threads_per_worker`` torch threads, so a resumed run
stores the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from nasforge.evaluators.base import Evaluator, Result, evaluate_safely
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.executors.pool import JobPool
from nasforge.logging import get_logger
from nasforge.spaces.base import Architecture

_logger = get_logger(__name__)


def _batch_safely(
    evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
) -> list[Result]:
    try:
        results = evaluator.evaluate_batch(list(archs), list(seeds))
        if len(results) == len(archs):
            return results
    except Exception as err:  # fall back to one by one
        _logger.warning("evaluate_batch failed (%s: %s); evaluating one by one",
                        type(err).__name__, err)
    return [evaluate_safely(evaluator, a, seed=s) for a, s in zip(archs, seeds)]


def _eval_chunk(
    evaluator: Evaluator, job: tuple[list[int], list[Architecture], list[int]]
) -> list[tuple[int, Result]]:
    indices, archs, seeds = job
    return list(zip(indices, _batch_safely(evaluator, archs, seeds)))


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workers: int = Field(default=1, ge=1, description="processes; 1 evaluates in the driver")
    threads_per_worker: int = Field(default=0, ge=0, description="0: cores // workers")
    chunk_size: int = Field(default=0, ge=0, description="architectures per job; 0: even split")
    max_restarts: int = Field(
        default=3, ge=0, description="re-runs of a chunk whose worker died, then an error"
    )


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    name: ClassVar[str] = "local"
    Params: ClassVar[type[BaseModel]] = LocalParams

    def __init__(
        self, *, workers: int = 1, threads_per_worker: int = 0, chunk_size: int = 0,
        max_restarts: int = 3,
    ) -> None:
        self.workers = workers
        self.threads = threads_per_worker or max(1, usable_cores() // workers)
        self.chunk_size = chunk_size
        self.max_restarts = max_restarts
        self._pools: dict[int, JobPool] = {}  # torch threads per worker -> its pool

    def _pool(self, threads: int | None = None) -> JobPool:
        """The worker pool for jobs run with ``threads`` torch threads (default: the
        executor's ``threads_per_worker``); one pool per thread count, started lazily."""
        t = threads or self.threads
        if t not in self._pools:
            self._pools[t] = JobPool(workers=self.workers, threads=t,
                                     max_restarts=self.max_restarts)
        return self._pools[t]

    @property
    def restarts(self) -> int:  # type: ignore[override]
        """Worker deaths survived so far."""
        return sum(p.restarts for p in self._pools.values())

    def map_jobs(
        self, fn: Callable[[Any, Any], Any], shared: Any, payloads: Sequence[Any], *,
        threads: int | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Jobs on the worker pool (in this process with ``workers: 1``)."""
        yield from self._pool(threads).map_jobs(fn, shared, payloads)

    def map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        """Evaluate in the driver or the pool (the persistent cache is the engine's
        middleware, :mod:`nasforge.engine.middleware`, applied for every executor)."""
        yield from self._map(evaluator, archs, seeds)

    def _map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        if self.workers == 1:
            if evaluator.prefers_batches:
                yield from enumerate(_batch_safely(evaluator, archs, seeds))
            else:
                for i, (a, s) in enumerate(zip(archs, seeds)):
                    yield i, evaluate_safely(evaluator, a, seed=s)
            return
        n = len(archs)
        size = self.chunk_size or max(1, -(-n // self.workers))
        jobs = []
        for start in range(0, n, size):
            idx = list(range(start, min(n, start + size)))
            jobs.append((idx, [archs[i] for i in idx], [int(seeds[i]) for i in idx]))
        for _, chunk in self._pool().map_jobs(_eval_chunk, evaluator, jobs):
            yield from chunk

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
