"""Executors run evaluations; they never write to the run store (the driver does)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from nasforge.evaluators.base import Evaluator, Result
from nasforge.registry import Registry
from nasforge.spaces.base import Architecture


class Executor(ABC):
    """Evaluates batches of architectures, yielding ``(index, Result)`` as they complete, and
    runs general jobs (``map_jobs``: PBT-NAS member steps, MetaNAS task adaptations).

    ``workers``: how many jobs run at once; ``restarts``: worker deaths survived so far (a lost
    job is re-run from its payload, never stored as failed).
    """

    name: ClassVar[str]
    workers: int = 1
    restarts: int = 0

    @abstractmethod
    def map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        """Evaluate ``archs[i]`` with ``seeds[i]``; yield each index once, in completion order."""

    def map_jobs(
        self, fn: Callable[[Any, Any], Any], shared: Any, payloads: Sequence[Any], *,
        threads: int | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, fn(shared, payloads[i]))`` once per index, in completion order.

        ``fn`` must be a module-level function (it is sent to workers); ``shared`` is sent once
        per call. ``threads``: torch threads per worker for these jobs (executors with worker
        processes honour it; default: their own setting). The base runs the jobs one by one in
        this process."""
        for i, p in enumerate(payloads):
            yield i, fn(shared, p)

    def check(self) -> None:  # noqa: B027  (optional hook)
        """Raise :class:`~nasforge.exceptions.ConfigError` if this executor cannot run here
        (a missing package, an unreachable cluster); called by ``search`` before the run
        directory is created, and quickly (seconds)."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release workers. Safe to call twice."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EXECUTORS: Registry[type[Executor]] = Registry("executor")
