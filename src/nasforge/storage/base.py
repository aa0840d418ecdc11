"""Run records: one frozen :class:`Record` per trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasforge.evaluators.base import Result
from nasforge.spaces.base import Architecture


@dataclass(frozen=True)
class Record:
    """A finished trial as stored: number, architecture, seed and result."""

    number: int
    arch: Architecture
    seed: int
    result: Result
    cached_from: int | None = None
    finished_at: float = 0.0
    task: str | None = None  # the task id, in runs over several tasks

    @property
    def arch_id(self) -> str:
        return self.arch.arch_id

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def val_acc(self) -> float:
        return self.result.val_acc

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "arch": self.arch.to_json(),
            "arch_id": self.arch_id,
            "seed": self.seed,
            "cached_from": self.cached_from,
            **({"task": self.task} if self.task is not None else {}),
            **self.result.to_json(),
        }
