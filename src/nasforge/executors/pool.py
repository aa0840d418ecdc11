"""Shared-state jobs on a local process pool: ``map_jobs(fn, shared, payloads)``.

The job interface PBT-NAS needs (the ``local`` executor's ``map`` only evaluates architectures):
``fn(shared, payload)`` runs for every payload; ``shared`` (e.g. a member trainer) is sent to each
worker once. ``workers == 1`` runs in the calling process. A worker that dies (a crash, an
out-of-memory kill) breaks the pool: the pool is rebuilt and the jobs that had not returned are
submitted again from their payloads (their last checkpoints), at most ``max_restarts`` times.
:class:`nasforge.executors.ray.RayExecutor` implements the same ``map_jobs`` on Ray.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from nasforge.logging import get_logger

_logger = get_logger(__name__)
_SHARED: Any = None


def _init(blob: bytes, threads: int) -> None:
    global _SHARED
    torch.set_num_threads(threads)
    _SHARED = pickle.loads(blob)


def _call(fn: Callable[[Any, Any], Any], payload: Any) -> Any:
    return fn(_SHARED, payload)


class JobPool:
    """A process pool for ``fn(shared, payload)`` jobs (see the module docstring); workers start
    with ``start_method`` ("spawn", the default, is safe in threaded drivers)."""

    def __init__(
        self, workers: int = 1, threads: int = 1, max_restarts: int = 3,
        start_method: str = "spawn",
    ) -> None:
        self.workers = max(1, int(workers))
        self.start_method = start_method
        self.threads = max(1, int(threads))
        self.max_restarts = int(max_restarts)
        self.restarts = 0
        self._pool: cf.ProcessPoolExecutor | None = None
        self._shared_id: int | None = None

    def _get(self, shared: Any) -> cf.ProcessPoolExecutor:
        if self._pool is None or self._shared_id != id(shared):
            self.close()
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=mp.get_context(self.start_method),
                initializer=_init, initargs=(pickle.dumps(shared), self.threads),
            )
            self._shared_id = id(shared)
        return self._pool

    def map_jobs(
        self, fn: Callable[[Any, Any], Any], shared: Any, payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, fn(shared, payloads[i]))`` in completion order, each index once."""
        if self.workers == 1 or (len(payloads) <= 1 and self._pool is None):
            for i, p in enumerate(payloads):
                yield i, fn(shared, p)
            return
        todo = list(range(len(payloads)))
        tries = 0
        while todo:
            pool = self._get(shared)
            futures = {pool.submit(_call, fn, payloads[i]): i for i in todo}
            try:
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    out = fut.result()
                    todo.remove(i)
                    yield i, out
            except BrokenProcessPool:
                tries += 1
                self.restarts += 1
                self.close()
                if tries > self.max_restarts:
                    raise
                _logger.warning(
                    "a worker died; restarting the pool and re-running %d job(s) from their "
                    "last checkpoints (restart %d of %d)", len(todo), tries, self.max_restarts,
                )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._shared_id = None
