"""The one Evaluator interface and its frozen Result record.

An evaluator scores an architecture: ``evaluate(arch, seed=...) -> Result``. Failure is a state,
not an exception: a child that raises, diverges to NaN or cannot be built gives a ``failed``
Result carrying its error, and the search goes on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from nasforge.exceptions import ConfigError
from nasforge.objectives import BUILTIN, DEFAULT, Objective
from nasforge.registry import Registry
from nasforge.spaces.base import Architecture

if TYPE_CHECKING:
    from torch import nn

Status = Literal["complete", "failed"]


@dataclass(frozen=True)
class Result:
    """What one evaluation produced. ``val_acc`` is the objective's *utility* (higher is
    better: the score, negated for a minimised objective); ``metrics[objective.name]`` holds the
    score itself (see :mod:`nasforge.objectives`)."""

    status: Status
    val_acc: float = math.nan
    params: int = 0
    train_seconds: float = 0.0
    epochs: int = 0
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    @classmethod
    def failed(cls, error: str, **kw: Any) -> Result:
        return cls(status="failed", error=error, **kw)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "val_acc": None if math.isnan(self.val_acc) else self.val_acc,
            "params": self.params,
            "train_seconds": self.train_seconds,
            "epochs": self.epochs,
            "error": self.error,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        va = d.get("val_acc")
        return cls(
            status=d["status"],
            val_acc=math.nan if va is None else float(va),
            params=int(d.get("params") or 0),
            train_seconds=float(d.get("train_seconds") or 0.0),
            epochs=int(d.get("epochs") or 0),
            error=d.get("error"),
            metrics=dict(d.get("metrics") or {}),
        )


class Evaluator(ABC):
    """Scores architectures. Constructed once per run; must be picklable for process pools.

    ``cost_key`` names the metric that measures an evaluation's cost (for budgets in simulated
    seconds); ``train_seconds`` by default.
    """

    name: ClassVar[str]
    objective: Objective = DEFAULT
    needs_task: ClassVar[bool] = True
    """Whether the evaluator trains on a task's data (false: an RL member trainer, a table)."""
    threads: int = 0
    """Torch threads a worker running this evaluator should use (0: the executor decides)."""

    def objectives(self) -> list[str]:
        """Names of the objectives this evaluator can score (the first is its default)."""
        return [self.objective.name]

    def set_objective(self, objective: Objective) -> None:
        """Score under ``objective``; :class:`ConfigError` naming the allowed ones if unknown."""
        if objective.name not in self.objectives():
            task = getattr(self, "task", None)
            kinds = BUILTIN.get(objective.name, (None, None, ()))[2]
            hint = ""
            if task is not None and kinds and task.kind not in kinds:
                hint = (
                    f" (task {task.name!r} is a {task.kind} task with {task.num_classes} "
                    "classes; for a numeric target set task.kind: regression)"
                    if task.kind == "classification" else
                    f" (task {task.name!r} is a {task.kind} task)"
                )
            raise ConfigError(
                f"evaluator {self.name!r} cannot score objective {objective.name!r} on this "
                f"task{hint}; allowed: {', '.join(self.objectives())}"
            )
        self.objective = objective

    @abstractmethod
    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        """Score one architecture. May raise; callers use :func:`evaluate_safely`."""

    def evaluate_batch(self, archs: Sequence[Architecture], seeds: Sequence[int]) -> list[Result]:
        """Score several architectures; the default evaluates them one by one."""
        return [evaluate_safely(self, a, seed=s) for a, s in zip(archs, seeds)]

    def settings(self) -> dict[str, Any]:
        """The settings that change results (part of the evaluation cache key)."""
        return {"name": self.name, **_objective_setting(self.objective)}

    @property
    def prefers_batches(self) -> bool:
        """Whether ``evaluate_batch`` is faster than one-by-one (the batched trainer): executors
        then hand it whole batches even in the driver."""
        return False

    @property
    def driver_threads(self) -> int:
        """Torch threads the driver should use while this evaluator runs in it (tiny children
        train faster on one thread); 0 leaves the driver's setting."""
        return 0

    @property
    def noisy(self) -> bool:
        """Whether the score depends on the seed (a repeat then tells something new: it is
        evaluated again); false: a repeat is answered from the reward cache, free."""
        return True


@runtime_checkable
class Retrainable(Protocol):
    """An evaluator whose architectures can be retrained and tested at the end of a run (the
    train evaluator and its kin): the final report retrains the top candidates with it."""

    def fit(self, arch: Architecture, *, seed: int) -> tuple[nn.Module | None, Result]:
        """Train ``arch`` with ``seed``: the model (``None`` on failure) and its Result."""
        ...

    def test_accuracy(self, model: nn.Module) -> float:
        """The objective's score of a trained model on the test split (its own units)."""
        ...


@runtime_checkable
class ReportsTestMetrics(Protocol):
    """An evaluator that reports every metric of its task on the test split (e.g. test_acc beside
    a val_loss objective)."""

    def test_metrics(self, model: nn.Module) -> dict[str, float]: ...


def _objective_setting(objective: Objective) -> dict[str, Any]:
    """The objective as part of an evaluation cache key (absent for the default, so the keys of
    runs before objectives existed stay the same)."""
    return {} if objective == DEFAULT else {"objective": objective.to_json()}


def evaluate_safely(evaluator: Evaluator, arch: Architecture, *, seed: int) -> Result:
    """Run ``evaluate``; any exception or non-finite score becomes a ``failed`` Result."""
    try:
        result = evaluator.evaluate(arch, seed=seed)
    except Exception as err:
        return Result.failed(f"{type(err).__name__}: {err}")
    if result.ok and not math.isfinite(result.val_acc):
        return Result.failed("non-finite objective", metrics=result.metrics)
    return result


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")
