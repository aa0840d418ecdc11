"""LocalExecutor: in-process (``workers: 1``) or a spawn process pool.

Each worker receives the evaluator once (pool initializer), sets its torch thread count, and then
evaluates chunks of a batch with ``evaluate_batch`` (so batched trainers work inside workers).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from nasforge.evaluators.base import Evaluator, Result, evaluate_safely
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.spaces.base import Architecture

_WORKER_EVALUATOR: Evaluator | None = None


def _init_worker(blob: bytes, threads: int) -> None:
    global _WORKER_EVALUATOR
    torch.set_num_threads(threads)
    _WORKER_EVALUATOR = pickle.loads(blob)


def _eval_chunk(
    indices: list[int], archs: list[Architecture], seeds: list[int]
) -> list[tuple[int, Result]]:
    assert _WORKER_EVALUATOR is not None
    results = _WORKER_EVALUATOR.evaluate_batch(archs, seeds)
    return list(zip(indices, results))


class LocalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workers: int = Field(default=1, ge=1, description="processes; 1 evaluates in the driver")
    threads_per_worker: int = Field(default=0, ge=0, description="0: cores // workers")
    chunk_size: int = Field(default=0, ge=0, description="architectures per job; 0: even split")


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    name: ClassVar[str] = "local"
    Params: ClassVar[type[BaseModel]] = LocalParams

    def __init__(self, *, workers: int = 1, threads_per_worker: int = 0, chunk_size: int = 0) -> None:
        self.workers = workers
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
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
        if self.workers == 1 or len(archs) == 1:
            if getattr(evaluator, "prefers_batches", False):
                yield from enumerate(evaluator.evaluate_batch(list(archs), list(seeds)))
            else:
                for i, (a, s) in enumerate(zip(archs, seeds)):
                    yield i, evaluate_safely(evaluator, a, seed=s)
            return
        pool = self._get_pool(evaluator)
        n = len(archs)
        size = self.chunk_size or max(1, -(-n // self.workers))
        futures: list[cf.Future[Any]] = []
        for start in range(0, n, size):
            idx = list(range(start, min(n, start + size)))
            futures.append(
                pool.submit(_eval_chunk, idx, [archs[i] for i in idx], [seeds[i] for i in idx])
            )
        for fut in cf.as_completed(futures):
            yield from fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pool_for = None
