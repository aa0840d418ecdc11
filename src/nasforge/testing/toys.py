"""Tiny synthetic search problems for contract tests: a small table space and its evaluator.

:func:`toy_space` is an ordinary :class:`~nasforge.spaces.state_space.StateSpace` with one layer
of ``steps`` categorical decisions (``d0``, ``d1``, ...) of ``options`` values each. A
:class:`ToyTable` gives every architecture a deterministic accuracy: a per-decision (additive)
part plus interactions of neighbouring decisions, scaled into [0.1, 0.95], with a unique optimum.
:class:`ToyTableEvaluator` looks it up in microseconds, optionally with observation noise and a
deterministic set of architectures that always fail (to test failure handling).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from nasforge.evaluators.base import Evaluator, Result
from nasforge.exceptions import InvalidArchitecture
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.state_space import StateSpace


def toy_space(steps: int = 5, options: int = 4) -> StateSpace:
    """``options ** steps`` architectures: one layer of ``steps`` integer decisions."""
    return StateSpace(
        states=[{"name": f"d{t}", "values": list(range(options))} for t in range(steps)],
        num_layers=1,
        buildable=False,  # scored by a toy evaluator, never built
    )


class ToyTable:
    """A deterministic accuracy for every architecture of :func:`toy_space` (unique optimum)."""

    def __init__(
        self, steps: int = 5, options: int = 4, *, seed: int = 0, interaction: float = 0.5
    ) -> None:
        rng = np.random.default_rng(seed)
        w = rng.normal(size=(steps, options))
        pair = interaction * rng.normal(size=(max(steps - 1, 0), options, options))
        self.steps, self.options = steps, options
        grid = np.array(list(itertools.product(range(options), repeat=steps)), dtype=np.int64)
        score = w[np.arange(steps), grid].sum(1)
        for t in range(steps - 1):
            score = score + pair[t, grid[:, t], grid[:, t + 1]]
        score = score + 1e-6 * rng.normal(size=len(grid))  # break ties: a unique optimum
        lo, hi = score.min(), score.max()
        self.acc = 0.1 + 0.85 * (score - lo) / (hi - lo)
        self.radix = options ** np.arange(steps - 1, -1, -1)
        self.best_index = int(np.argmax(self.acc))
        self.best_tokens = tuple(int(v) for v in grid[self.best_index])

    def index(self, tokens: tuple[Any, ...]) -> int:
        if len(tokens) != self.steps or any(
            not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.options
            for t in tokens
        ):
            raise InvalidArchitecture(f"{tokens} is not an architecture of this toy table")
        return int(np.dot(self.radix, tokens))

    def value(self, tokens: tuple[Any, ...]) -> float:
        return float(self.acc[self.index(tokens)])

    def rank(self, tokens: tuple[Any, ...]) -> int:
        """0 for the optimum, 1 for the runner-up, ..."""
        return int((self.acc > self.value(tokens)).sum())


class ToyTableEvaluator(Evaluator):
    """Looks architectures up in a :class:`ToyTable`.

    ``noise``: standard deviation of Gaussian observation noise drawn from the query seed.
    ``fail_fraction``: that fraction of architectures (chosen by a hash of the architecture,
    never the optimum) raise, so callers see ``failed`` results; ``fail_seed`` picks the set.
    """

    name: ClassVar[str] = "toy_table"
    needs_task: ClassVar[bool] = False

    def __init__(
        self,
        table: ToyTable,
        *,
        space: SearchSpace | None = None,
        noise: float = 0.0,
        fail_fraction: float = 0.0,
        fail_seed: int = 0,
    ) -> None:
        self.table = table
        self.space = space
        self.noise = noise
        self.fail_fraction = fail_fraction
        self.fail_seed = fail_seed
        self.calls = 0

    def fails(self, arch: Architecture) -> bool:
        if self.fail_fraction <= 0 or tuple(arch.tokens) == self.table.best_tokens:
            return False
        h = int(arch.arch_id, 16) ^ (self.fail_seed * 0x9E3779B1)
        return (h % 10_000) < self.fail_fraction * 10_000

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        self.calls += 1
        if self.fails(arch):
            raise RuntimeError(f"toy failure for {arch}")
        acc = self.table.value(tuple(arch.tokens))
        if self.noise:
            acc += float(np.random.default_rng(seed).normal(0.0, self.noise))
        return Result(status="complete", val_acc=acc, train_seconds=1.0, metrics={})

    @property
    def noisy(self) -> bool:
        return self.noise > 0

    def mean_val(self, arch: Architecture) -> float:
        return self.table.value(tuple(arch.tokens))

    def optimum(self) -> float:
        return float(self.table.acc.max())

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "noise": self.noise, "fail_fraction": self.fail_fraction}
