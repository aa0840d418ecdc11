"""What a run optimises: an :class:`Objective` (name, direction, unit) declared by every run.

Evaluators score an architecture under the objective's name (``metrics[name]``, in its own units)
and put the *utility* in ``Result.val_acc``: the score when maximising, minus the score when
minimising. Strategies therefore always rank "higher is better" and need no change; display code
(``show``, ``--json``, plots, bench tables) converts back with :meth:`Objective.score` and labels
the value by name and direction. Runs stored before objectives existed have no ``objective`` meta
and read as ``val_acc`` / maximize, where utility and score are the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nasforge.exceptions import ConfigError

if TYPE_CHECKING:
    from nasforge.storage.base import Record

Direction = Literal["maximize", "minimize"]
DIRECTIONS: tuple[Direction, ...] = ("maximize", "minimize")

#: objectives the train evaluator computes: name -> (direction, unit, task kinds)
BUILTIN: dict[str, tuple[Direction, str, tuple[str, ...]]] = {
    "val_acc": ("maximize", "accuracy", ("classification",)),
    "val_loss": ("minimize", "loss", ("classification", "regression")),
    "val_rmse": ("minimize", "target units", ("regression",)),
    "val_r2": ("maximize", "R^2", ("regression",)),
    "val_balanced_acc": ("maximize", "balanced accuracy", ("classification",)),
    "val_f1": ("maximize", "macro F1", ("classification",)),
}


def class_metric(metric: str, y: Any, pred: Any) -> float:
    """``acc``, ``balanced_acc`` (the mean over the classes present in ``y`` of their recall)
    or ``f1`` (macro F1 over the classes in ``y`` or ``pred``) of predicted class labels."""
    y, pred = np.asarray(y).reshape(-1), np.asarray(pred).reshape(-1)
    if metric == "acc" or len(y) == 0:
        return float(np.mean(pred == y)) if len(y) else math.nan
    if metric == "balanced_acc":
        return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))
    if metric == "f1":
        f1s = []
        for c in np.union1d(np.unique(y), np.unique(pred)):
            tp = float(np.sum((pred == c) & (y == c)))
            denom = float(np.sum(pred == c) + np.sum(y == c))
            f1s.append(2 * tp / denom if denom else 0.0)
        return float(np.mean(f1s))
    raise ValueError(f"unknown classification metric {metric!r}; allowed: acc, balanced_acc, f1")


@dataclass(frozen=True)
class Objective:
    """The score a run optimises: its ``name``, ``direction`` and ``unit`` (for labels)."""

    name: str = "val_acc"
    direction: Direction = "maximize"
    unit: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(
                f"objective direction {self.direction!r} is not allowed; allowed: "
                f"{', '.join(DIRECTIONS)}"
            )

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0

    def utility(self, score: float) -> float:
        """Higher is better: the score, or its negative for a minimised objective."""
        return self.sign * float(score)

    def score(self, utility: float | None) -> float | None:
        """The score in its own units from a stored utility (inverse of :meth:`utility`)."""
        return None if utility is None else self.sign * float(utility)

    @property
    def test_name(self) -> str:
        """``val_rmse`` -> ``test_rmse``; other names get a ``test_`` prefix."""
        return "test_" + self.name.removeprefix("val_")

    @property
    def decimals(self) -> int:
        """Decimals a score is shown with: 1 for RL returns (tens to hundreds), else 4."""
        return 1 if self.name == "return" else 4

    @property
    def label(self) -> str:
        """``val_rmse (minimize)``: how tables and plots name it."""
        return f"{self.name} ({self.direction})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "unit": self.unit}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Objective:
        if not d:
            return DEFAULT
        return cls(str(d.get("name", "val_acc")), d.get("direction", "maximize"),
                   str(d.get("unit", "")))

    @classmethod
    def builtin(cls, name: str) -> Objective:
        if name not in BUILTIN:
            raise ConfigError(
                f"unknown objective {name!r}; allowed: {', '.join(BUILTIN)} or "
                "'my_module:function' (a function fn(arch, ctx) -> float or dict)"
            )
        direction, unit, _ = BUILTIN[name]
        return cls(name, direction, unit)


DEFAULT = Objective("val_acc", "maximize", "accuracy")


def task_objectives(kind: str, first: str) -> list[str]:
    """The built-in objectives that can score a task of ``kind``, ``first`` first."""
    names = [n for n, (_, _, kinds) in BUILTIN.items() if kind in kinds]
    return sorted(names, key=lambda n: n != first)


def utility(record: Record) -> float:
    """The helper strategies rank by: a record's utility (higher is better, any direction)."""
    return record.result.val_acc
