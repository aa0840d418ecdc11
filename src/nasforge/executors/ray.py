"""RayExecutor: evaluations and PBT member steps as Ray tasks, on one machine or a cluster.

The only nasforge module that imports ray, and only inside methods (``pip install nasforge[ray]``).

* ``map(evaluator, archs, seeds)``: the generic executor interface, so black-box searches
  (random, evolution, ...) run on Ray too: one task per architecture.
* ``map_jobs(fn, shared, payloads)``: the job interface PBT-NAS uses (also implemented by the
  local :class:`~nasforge.executors.pool.JobPool`): ``fn(shared, payload)`` as one Ray task per
  payload; ``shared`` (the member trainer) is put in the object store once per call, and the
  payloads (member checkpoints) travel through the object store as task arguments.

Fault tolerance: tasks run with ``max_retries=0`` and the driver resubmits a task whose worker
died (``WorkerCrashedError``, a lost node or object) from the payload it still holds (the member's
last checkpoint), at most ``max_restarts`` times per job; errors raised by the job itself are
re-raised. The driver alone writes the run store; workers only return values.

Params: ``address`` joins a running cluster (``ray.init(address=...)``, e.g. ``"auto"`` or
``"10.0.0.1:6379"``); without it a local Ray is started with ``num_cpus`` and ``temp_dir``. If Ray
is already initialised in the process, it is used as it is and left running on ``close``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from nasforge.evaluators.base import Evaluator, Result, evaluate_safely
from nasforge.exceptions import ConfigError
from nasforge.executors import _reaper
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.logging import get_logger
from nasforge.spaces.base import Architecture

_logger = get_logger(__name__)


def _ray() -> ModuleType:
    try:
        import ray
    except ImportError as err:  # pragma: no cover
        raise ConfigError("executor 'ray' needs ray: pip install 'nasforge[ray]'") from err
    return ray


def _call(fn: Callable[[Any, Any], Any], shared: Any, payload: Any) -> Any:
    return fn(shared, payload)


def _evaluate(evaluator: Evaluator, job: tuple[Architecture, int]) -> Result:
    import torch

    torch.set_num_threads(max(1, evaluator.threads or 1))
    return evaluate_safely(evaluator, job[0], seed=job[1])


class RayParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str | None = Field(
        default=None, description="join a running cluster (e.g. 'auto', 'host:6379'); "
        "None: start a local Ray"
    )
    num_cpus: int | None = Field(default=None, ge=1, description="local Ray only; None: all")
    temp_dir: str | None = Field(default=None, description="local Ray's temp/session folder")
    cpus_per_task: float = Field(default=1.0, gt=0, description="CPUs Ray reserves per task")
    max_restarts: int = Field(default=3, ge=0, description="resubmissions of a crashed job")
    include_dashboard: bool = False
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="how long check() waits for a given address to answer"
    )


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs jobs as Ray tasks; see the module docstring."""

    name: ClassVar[str] = "ray"
    Params: ClassVar[type[BaseModel]] = RayParams

    def __init__(
        self, *, address: str | None = None, num_cpus: int | None = None,
        temp_dir: str | None = None, cpus_per_task: float = 1.0, max_restarts: int = 3,
        include_dashboard: bool = False, connect_timeout_s: float = 5.0,
    ) -> None:
        self.address, self.num_cpus, self.temp_dir = address, num_cpus, temp_dir
        self.cpus_per_task, self.max_restarts = cpus_per_task, max_restarts
        self.include_dashboard = include_dashboard
        self.connect_timeout_s = connect_timeout_s
        self.restarts = 0
        self._reaper: subprocess.Popen[bytes] | None = None
        self._owns = False
        self._remote: Any = None

    def _ensure(self) -> ModuleType:
        ray = _ray()
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": self.include_dashboard}
            if self.address is not None:
                kw["address"] = self.address
            else:
                if self.num_cpus is not None:
                    kw["num_cpus"] = self.num_cpus
                if self.temp_dir is not None:
                    kw["_temp_dir"] = self.temp_dir
            _logger.info("starting ray: %s", kw)
            if self.address is None:
                self._start_reaper()  # before ray.init: a kill during start-up is covered too
            try:
                ray.init(**kw)
            except BaseException:
                self._stop_reaper()
                raise
            finally:  # Ray's processes are started and tagged; the driver's later ones are not
                os.environ.pop(_reaper.TAG_VAR, None)
            self._owns = True
        if self._remote is None:
            self._remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(_call)
        return ray

    def check(self) -> None:
        """Ray installed; a given cluster address answers within ``connect_timeout_s``."""
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("executor 'ray' needs ray: pip install 'nasforge[ray]'")
        addr = self.address
        if addr is None or addr in ("auto", "local") or _ray().is_initialized():
            return
        hostport = addr.split("://", 1)[-1].rsplit("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"executor.address {addr!r} is not host:port (e.g. '10.0.0.1:6379'), "
                "'ray://host:10001', 'auto' or None"
            )
        try:
            socket.create_connection((host, int(port)), timeout=self.connect_timeout_s).close()
        except OSError as err:
            raise ConfigError(
                f"executor.address {addr!r}: no Ray cluster answers there within "
                f"{self.connect_timeout_s:g} s ({err.strerror or err})"
            ) from None

    def _start_reaper(self) -> None:
        """A watchdog that ends this local Ray's processes if the driver dies (SIGKILL too)."""
        if not sys.platform.startswith("linux") or self._reaper is not None:
            return
        tag = f"{os.getpid()}-{time.time_ns()}"
        os.environ[_reaper.TAG_VAR] = tag  # inherited by every process Ray starts
        self._reaper = subprocess.Popen(  # by file: a small process that imports no torch
            [sys.executable, "-I", _reaper.__file__, str(os.getpid()), tag],
            stdin=subprocess.PIPE, start_new_session=True,
        )

    def _stop_reaper(self) -> None:
        r, self._reaper = self._reaper, None
        if r is not None and r.stdin is not None:
            with contextlib.suppress(OSError):
                r.stdin.write(b"done\n")
                r.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.wait(timeout=10)

    def map_jobs(
        self, fn: Callable[[Any, Any], Any], shared: Any, payloads: Sequence[Any], *,
        threads: int | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, fn(shared, payloads[i]))`` in completion order; see the module docstring.
        ``threads`` is not used: a Ray task's threads follow its ``cpus_per_task``."""
        ray = self._ensure()
        from ray import exceptions as rex

        shared_ref = ray.put(shared)
        pending = {self._remote.remote(fn, shared_ref, p): i for i, p in enumerate(payloads)}
        tries = [0] * len(payloads)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                i = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except rex.RayTaskError as err:  # the job itself raised: not a worker failure
                    raise err.as_instanceof_cause() from None
                except rex.RayError as err:
                    tries[i] += 1
                    self.restarts += 1
                    if tries[i] > self.max_restarts:
                        raise
                    _logger.warning(
                        "job %d lost its worker (%s); resubmitting it from its last checkpoint "
                        "(restart %d of %d)", i, type(err).__name__, tries[i], self.max_restarts,
                    )
                    pending[self._remote.remote(fn, shared_ref, payloads[i])] = i
                    continue
                yield i, out
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        jobs = list(zip(archs, (int(s) for s in seeds)))
        for i, res in self.map_jobs(_evaluate, evaluator, jobs):
            if isinstance(res, Result) and res.ok and not math.isfinite(res.val_acc):
                res = Result.failed("non-finite objective", metrics=res.metrics)
            yield i, res

    def close(self) -> None:
        if self._owns:
            ray = _ray()
            if ray.is_initialized():
                ray.shutdown()
            self._owns = False
            self._stop_reaper()
        self._remote = None
