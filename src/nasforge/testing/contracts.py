"""The contract every black-box (ask/tell) strategy must pass, on a tiny synthetic table.

Each check runs the strategy through its real ask/tell loop
(:func:`nasforge.bench.run_in_memory`: in-memory run store, reward cache, trial seeds) on
:func:`~nasforge.testing.toys.toy_space` with a :class:`~nasforge.testing.toys.ToyTable`:

* ``budget``: exactly ``budget`` trials are evaluated (answers from the reward cache are free and
  not counted) and no ``ask(n)`` returns more than ``n``.
* ``deterministic``: two runs with the same seed ask the same architectures in the same order.
* ``failures``: with a fraction of architectures failing, the run still completes its budget.
* ``better_than_random``: over ``seeds`` runs, the table's optimum is found within ``budget``
  queries more often than by random search (skipped for ``random`` itself, the baseline).

Usage (pytest)::

    from nasforge.testing.contracts import StrategyContract
    report = StrategyContract("evolution").run()
    assert report.passed, report.summary()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nasforge.strategies  # noqa: F401
from nasforge.bench import run_in_memory
from nasforge.config import build_component
from nasforge.spaces.base import Architecture
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, AskTellStrategy
from nasforge.testing.toys import ToyTable, ToyTableEvaluator, toy_space

_RANDOM_BASELINE: dict[tuple[int, ...], int] = {}


@dataclass
class ContractReport:
    strategy: str
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def summary(self) -> str:
        parts = [f"{k}={'ok' if v else 'FAILED'}" for k, v in self.checks.items()]
        return f"{self.strategy}: " + ", ".join(parts) + f"; details {self.details}"


class StrategyContract:
    """Runs the contract checks for one registered ask/tell strategy.

    Args:
        spec: a strategy name or ``{"name": ..., **params}``.
        steps, options: the toy space (``options ** steps`` architectures).
        budget: queries per run.
        seeds: runs for the better-than-random check.
        table_seed: which synthetic table.
        fail_fraction: share of failing architectures in the failure check.
        factory: ``seed -> strategy`` for a strategy that is not registered (``spec`` then
            only names it in the report).
    """

    def __init__(
        self,
        spec: str | dict[str, Any],
        *,
        steps: int = 5,
        options: int = 4,
        budget: int = 50,
        seeds: int = 6,
        table_seed: int = 0,
        fail_fraction: float = 0.3,
        factory: Callable[[int], Any] | None = None,
    ) -> None:
        self.spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        self.factory = factory
        self.steps, self.options = steps, options
        self.budget, self.seeds = budget, seeds
        self.table_seed = table_seed
        self.table = ToyTable(steps, options, seed=table_seed)
        self.fail_fraction = fail_fraction

    # ------------------------------------------------------------------ runs
    def make_strategy(self, seed: int, spec: dict[str, Any] | None = None) -> Any:

        if self.factory is not None and spec is None:
            strategy = self.factory(seed)
        else:
            strategy = build_component(STRATEGIES, "strategy", spec or self.spec, seed=seed)
        if not isinstance(strategy, AskTellStrategy):
            raise TypeError(f"{self.spec['name']!r} is not an ask/tell strategy")
        return strategy

    def run_once(
        self, seed: int, *, spec: dict[str, Any] | None = None, fail_fraction: float = 0.0
    ) -> tuple[list[Record], list[tuple[int, int]]]:
        """Records of one run, and ``(n asked for, n returned)`` of every ``ask``."""

        strategy = self.make_strategy(seed, spec)
        asks: list[tuple[int, int]] = []
        original = strategy.ask

        def ask(n: int) -> list[Architecture]:
            out: list[Architecture] = original(n)
            asks.append((n, len(out)))
            return out

        strategy.ask = ask
        strategy.transient = (*type(strategy).transient, "ask")  # the wrapper is not state
        space = toy_space(self.steps, self.options)
        evaluator = ToyTableEvaluator(self.table, space=space, fail_fraction=fail_fraction)
        records = run_in_memory(strategy, space, evaluator, seed=seed, budget=self.budget)
        return records, asks

    def found_optimum(self, records: list[Record]) -> bool:
        best = tuple(self.table.best_tokens)
        return any(r.ok and tuple(r.arch.tokens) == best for r in records)

    # ---------------------------------------------------------------- checks
    def run(self) -> ContractReport:
        rep = ContractReport(self.spec["name"])
        records, asks = self.run_once(0)
        over = [(n, k) for n, k in asks if k > n]
        evaluated = sum(1 for r in records if r.cached_from is None)
        rep.checks["budget"] = evaluated == self.budget and not over
        rep.details["trials"] = len(records)
        rep.details["evaluated"] = evaluated
        if over:
            rep.details["ask_overflow"] = over[:3]

        again, _ = self.run_once(0)
        seq1 = [r.arch.tokens for r in records]
        seq2 = [r.arch.tokens for r in again]
        rep.checks["deterministic"] = seq1 == seq2

        failing, _ = self.run_once(1, fail_fraction=self.fail_fraction)
        n_failed = sum(1 for r in failing if not r.ok)
        n_eval = sum(1 for r in failing if r.cached_from is None)
        rep.checks["failures"] = n_eval == self.budget and n_failed > 0
        rep.details["failed_trials"] = n_failed

        if self.spec["name"] != "random":
            ours = sum(self.found_optimum(self.run_once(s)[0]) for s in range(self.seeds))
            key = (self.steps, self.options, self.budget, self.seeds, self.table_seed)
            if key not in _RANDOM_BASELINE:
                base_spec = {"name": "random", "batch_size": 1}
                _RANDOM_BASELINE[key] = sum(
                    self.found_optimum(self.run_once(s, spec=base_spec)[0])
                    for s in range(self.seeds)
                )
            base = _RANDOM_BASELINE[key]
            rep.checks["better_than_random"] = ours > base
            rep.details["optimum_found"] = f"{ours}/{self.seeds} vs random {base}/{self.seeds}"
        return rep


def black_box_strategies() -> list[str]:
    """Names of every registered ask/tell strategy."""

    names = []
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        if isinstance(cls, type) and issubclass(cls, AskTellStrategy):
            names.append(name)
    return names
