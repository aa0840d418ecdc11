"""A user's own objective: ``fn(arch, ctx) -> float | dict`` as an evaluator (Optuna-style).

``nasforge.search(config, objective=fn, direction="minimize")`` or ``objective: my_module:fn``
in YAML. ``ctx`` (:class:`ObjectiveContext`) gives the space, the task (None when the config's
evaluator needs none), the trial seed and device, and ``ctx.build(arch)`` for a fresh network of
the task's shape. ``fn`` returns the score, or a dict with the score under the objective's name
(or ``"score"``) plus any other numbers, kept as metrics (``"params"`` fills the parameter
count). An exception or a non-finite score makes the trial ``failed``; the search goes on.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from nasforge.data.base import Task
from nasforge.evaluators.base import Evaluator, Result
from nasforge.evaluators.limits import count_params
from nasforge.exceptions import ConfigError
from nasforge.objectives import Objective
from nasforge.spaces.base import Architecture, SearchSpace

ObjectiveFn = Callable[[Architecture, "ObjectiveContext"], "float | dict[str, Any]"]


@dataclass(frozen=True)
class ObjectiveContext:
    """What a user objective gets besides the architecture."""

    space: SearchSpace
    task: Task | None
    seed: int
    device: torch.device
    objective: Objective

    def build(self, arch: Architecture) -> nn.Module:
        """A fresh network for the task (input shape and class count), on ``device``."""
        if self.task is None:
            raise ValueError("this run has no task; build the network yourself")
        return self.space.build(arch, self.task.input_shape, self.task.num_classes).to(
            self.device
        )


def import_function(ref: str, base: Path | None = None) -> ObjectiveFn:
    """``"my_module:fn"`` -> the function (the module is imported by the user's request; the
    config's folder is searched first)."""
    mod_name, sep, attr = ref.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"objective {ref!r} must be 'module:function'")
    module = import_plugin(mod_name, base)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"objective {ref!r}: module {mod_name!r} has no function {attr!r}")
    return fn


def import_plugin(name: str, base: Path | None = None) -> Any:
    """Import a user module named in a config (``plugins:`` or ``objective:``)."""
    if base is not None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        return importlib.import_module(name)
    except ImportError as err:
        where = f"the config's folder {str(base)!r}, " if base is not None else ""
        raise ConfigError(
            f"cannot import plugin module {name!r}: {err} (searched {where}the working "
            "directory and PYTHONPATH)"
        ) from None


class FunctionEvaluator(Evaluator):
    """Scores an architecture by calling the user's objective function."""

    name: ClassVar[str] = "function"

    def __init__(
        self,
        fn: ObjectiveFn,
        objective: Objective,
        *,
        space: SearchSpace,
        task: Task | None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.fn = fn
        self.objective = objective
        self.space = space
        self.task = task
        self.device = torch.device(device)

    def objectives(self) -> list[str]:
        return [self.objective.name]

    def settings(self) -> dict[str, Any]:
        ref = f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', '?')}"
        return {"name": self.name, "fn": ref, "objective": self.objective.to_json()}

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        ctx = ObjectiveContext(self.space, self.task, seed, self.device, self.objective)
        start = time.perf_counter()
        out = self.fn(arch, ctx)
        secs = time.perf_counter() - start
        metrics: dict[str, Any] = {}
        params = 0
        if isinstance(out, dict):
            key = self.objective.name if self.objective.name in out else "score"
            if key not in out:
                raise ValueError(
                    f"objective returned keys {sorted(out)}; one must be "
                    f"{self.objective.name!r} or 'score'"
                )
            score = float(out[key])
            params = int(out.get("params", 0) or 0)
            metrics = {k: v for k, v in out.items() if k not in (key, "params")}
        else:
            score = float(out)
        if not params and self.task is not None:
            try:  # the network's size, for max_params and the Pareto front
                params = count_params(ctx.build(arch))
            except Exception:
                params = 0
        if not math.isfinite(score):
            return Result.failed("non-finite objective", metrics=metrics)
        metrics[self.objective.name] = score
        return Result(
            status="complete",
            val_acc=self.objective.utility(score),
            params=params,
            train_seconds=secs,
            metrics=metrics,
        )
