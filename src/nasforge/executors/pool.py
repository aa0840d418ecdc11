"""Shared-state jobs on local worker processes: ``map_jobs(fn, shared, payloads)``.

``fn(shared, payload)`` runs for every payload; ``shared`` (an evaluator, a member trainer) is
sent to each worker once. ``workers == 1`` runs in the calling process. The ``local`` executor
(architecture chunks) and PBT-NAS (member steps) both run on :class:`JobPool`.

Reliability (docs/reliability.md):

* **One process per slot.** Each worker is its own one-process pool, so a worker that dies (a
  crash, an out-of-memory kill) loses only the job it was running: the other workers keep going,
  the dead slot is rebuilt, and only that job is submitted again from its payload (same seeds,
  same checkpoint), at most ``max_restarts`` times per job; then :class:`WorkerLost`, one line.
  Nothing is stored for a lost job, so an infrastructure failure never becomes a record.
* **No start-up hang.** The shared object reaches a worker through a private file, not through
  the spawn pipe: the data ``spawn`` writes to a starting child stays a few hundred bytes, so a
  child killed while starting can never block the driver in ``Popen._launch`` (the pipe write of
  a large payload to a dead child blocked forever).
* **No orphans.** A worker asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, Linux) and also runs a watchdog thread that exits the process
  once its parent pid changes (any POSIX system), so SIGKILLing the driver ends its workers
  within about a second.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from nasforge.exceptions import WorkerLost
from nasforge.logging import get_logger

_logger = get_logger(__name__)
_SHARED: Any = None
_PR_SET_PDEATHSIG = 1
_PREFIX = "nasforge-pool-"


def die_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """Make this process end when ``parent`` (its parent process) dies; see the module doc."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)

    def _watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=_watch, name="nasforge-parent-watchdog", daemon=True).start()


def _init(path: str, threads: int, parent: int) -> None:
    global _SHARED
    die_with_parent(parent)
    torch.set_num_threads(threads)
    # the driver's own object, written by the driver into its private 0700 folder just now
    with open(path, "rb") as f:
        _SHARED = pickle.load(f)


def _call(fn: Callable[[Any, Any], Any], payload: Any) -> Any:
    return fn(_SHARED, payload)


def _remove_stale_folders() -> None:
    """Remove the shared-object folders of pools whose driver died (SIGKILL skips clean-up)."""
    for d in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = d.name[len(_PREFIX):].split("-", 1)[0]
        try:
            mine = d.stat().st_uid == os.getuid()
        except OSError:
            continue
        if not pid.isdigit() or not mine:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


class JobPool:
    """Worker processes for ``fn(shared, payload)`` jobs (see the module docstring); workers
    start with ``start_method`` ("spawn", the default, is safe in threaded drivers)."""

    def __init__(
        self, workers: int = 1, threads: int = 1, max_restarts: int = 3,
        start_method: str = "spawn",
    ) -> None:
        self.workers = max(1, int(workers))
        self.start_method = start_method
        self.threads = max(1, int(threads))
        self.max_restarts = int(max_restarts)
        self.restarts = 0
        self._slots: list[cf.ProcessPoolExecutor | None] = []
        self._shared_id: int | None = None
        self._dir: Path | None = None
        self._blob: Path | None = None

    @property
    def active(self) -> bool:
        return any(s is not None for s in self._slots)

    def _prepare(self, shared: Any) -> None:
        if self._blob is not None and self._shared_id == id(shared):
            return
        self.close()
        _remove_stale_folders()
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))  # mode 0700
        self._blob = self._dir / "shared.pkl"
        self._blob.write_bytes(pickle.dumps(shared))
        self._shared_id = id(shared)
        self._slots = [None] * self.workers

    def _slot(self, k: int) -> cf.ProcessPoolExecutor:
        pool = self._slots[k]
        if pool is None:
            pool = cf.ProcessPoolExecutor(
                max_workers=1, mp_context=mp.get_context(self.start_method),
                initializer=_init, initargs=(str(self._blob), self.threads, os.getpid()),
            )
            self._slots[k] = pool
        return pool

    def _drop_slot(self, k: int) -> None:
        pool = self._slots[k]
        self._slots[k] = None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.shutdown(wait=True, cancel_futures=True)

    def map_jobs(
        self, fn: Callable[[Any, Any], Any], shared: Any, payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, fn(shared, payloads[i]))`` in completion order, each index once."""
        if self.workers == 1:
            for i, p in enumerate(payloads):
                yield i, fn(shared, p)
            return
        self._prepare(shared)
        queue = list(range(len(payloads)))
        tries = [0] * len(payloads)
        running: dict[cf.Future[Any], tuple[int, int]] = {}  # future -> (slot, job)
        try:
            while queue or running:
                busy = {k for k, _ in running.values()}
                for k in range(self.workers):
                    if queue and k not in busy:
                        i = queue.pop(0)
                        running[self._slot(k).submit(_call, fn, payloads[i])] = (k, i)
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    k, i = running.pop(fut)
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        self._lost(k, i, tries, len(payloads))
                        queue.insert(0, i)  # the same payload: same seeds, same checkpoint
                        continue
                    yield i, out
        finally:
            for fut in running:
                fut.cancel()
            if running:  # a consumer that stopped early or an error: no job keeps running
                self.close()

    def _lost(self, k: int, i: int, tries: list[int], n: int) -> None:
        tries[i] += 1
        self.restarts += 1
        self._drop_slot(k)
        if tries[i] > self.max_restarts:
            self.close()
            raise WorkerLost(
                f"job {i} of {n} lost its worker process {tries[i]} times (killed or out of "
                f"memory; max_restarts={self.max_restarts}); nothing was stored for it, the run "
                "can be resumed"
            )
        _logger.warning(
            "worker %d died; restarting it and re-running job %d from its payload "
            "(restart %d of %d)", k, i, tries[i], self.max_restarts,
        )

    def close(self) -> None:
        for k in range(len(self._slots)):
            self._drop_slot(k)
        self._slots = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self._blob = None
        self._shared_id = None
