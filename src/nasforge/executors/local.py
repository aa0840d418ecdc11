"""LocalExecutor: in-process (``workers: 1``) or a spawn process pool.

Each worker receives the evaluator once (pool initializer), sets its torch thread count (default:
usable cores // workers, so the pool never oversubscribes the CPU), and then evaluates chunks of
a batch with ``evaluate_batch`` (so batched trainers work inside workers: a batch is split evenly
into one population per worker). The driver stays the single writer of the run store and of the
evaluator's persistent cache (:mod:`nasforge.engine.middleware`): workers only return Results.

Failure isolation: an exception escaping ``evaluate_batch`` (a bug) falls back to one-by-one
evaluation of that chunk; a worker that dies (killed, out of memory) fails only the
architectures of its chunk, and the pool is rebuilt for the next batch.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import pickle
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from nasforge.evaluators.base import Evaluator, Result, evaluate_safely
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.logging import get_logger
from nasforge.spaces.base import Architecture

_logger = get_logger(__name__)
_WORKER_EVALUATOR: Evaluator | None = None


def _init_worker(blob: bytes, threads: int) -> None:
    global _WORKER_EVALUATOR
    torch.set_num_threads(threads)
    _WORKER_EVALUATOR = pickle.loads(blob)


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
    indices: list[int], archs: list[Architecture], seeds: list[int]
) -> list[tuple[int, Result]]:
    assert _WORKER_EVALUATOR is not None
    return list(zip(indices, _batch_safely(_WORKER_EVALUATOR, archs, seeds)))


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


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    name: ClassVar[str] = "local"
    Params: ClassVar[type[BaseModel]] = LocalParams

    def __init__(
        self, *, workers: int = 1, threads_per_worker: int = 0, chunk_size: int = 0
    ) -> None:
        self.workers = workers
        self.threads = threads_per_worker or max(1, usable_cores() // workers)
        self.chunk_size = chunk_size
        self._pool: cf.ProcessPoolExecutor | None = None
        self._pool_for: int | None = None

    def _get_pool(self, evaluator: Evaluator) -> cf.ProcessPoolExecutor:
        if self._pool is None or self._pool_for != id(evaluator):
            self.close()
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(pickle.dumps(evaluator), self.threads),
            )
            self._pool_for = id(evaluator)
        return self._pool

    def map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        """Evaluate in the driver or the pool (the persistent cache is the engine's
        middleware, :mod:`nasforge.engine.middleware`, applied for every executor)."""
        yield from self._map(evaluator, archs, seeds)

    def _map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        if self.workers == 1 or len(archs) == 1:
            if getattr(evaluator, "prefers_batches", False):
                yield from enumerate(_batch_safely(evaluator, archs, seeds))
            else:
                for i, (a, s) in enumerate(zip(archs, seeds)):
                    yield i, evaluate_safely(evaluator, a, seed=s)
            return
        pool = self._get_pool(evaluator)
        n = len(archs)
        size = self.chunk_size or max(1, -(-n // self.workers))
        futures: dict[cf.Future[Any], list[int]] = {}
        for start in range(0, n, size):
            idx = list(range(start, min(n, start + size)))
            fut = pool.submit(_eval_chunk, idx, [archs[i] for i in idx], [seeds[i] for i in idx])
            futures[fut] = idx
        broken = False
        for fut in cf.as_completed(futures):
            try:
                chunk = fut.result()
            except BrokenProcessPool as err:
                broken = True
                error = f"worker died: {err}"
                chunk = [(i, Result.failed(error)) for i in futures[fut]]
            yield from chunk
        if broken:
            _logger.warning("a worker process died; restarting the pool")
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pool_for = None
