"""Executors run evaluations; they never write to the run store (the driver does)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

from nasforge.evaluators.base import Evaluator, Result
from nasforge.registry import Registry
from nasforge.spaces.base import Architecture


class Executor(ABC):
    """Evaluates batches of architectures, yielding ``(index, Result)`` as they complete."""

    name: ClassVar[str]

    @abstractmethod
    def map(
        self, evaluator: Evaluator, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> Iterator[tuple[int, Result]]:
        """Evaluate ``archs[i]`` with ``seeds[i]``; yield each index once, in completion order."""

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
