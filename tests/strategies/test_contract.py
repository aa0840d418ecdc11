"""Every registered black-box (ask/tell) strategy passes the contract suite on a toy table."""

from __future__ import annotations

import pytest

from nasforge.testing.contracts import StrategyContract, black_box_strategies
from nasforge.testing.toys import ToyTable, ToyTableEvaluator, toy_space

STRATEGY_NAMES = black_box_strategies()


def test_registry_has_the_benchmarked_strategies() -> None:
    for name in ("random", "evolution", "tpe", "bo_evolution"):
        assert name in STRATEGY_NAMES


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_strategy_contract(name: str) -> None:
    report = StrategyContract(name).run()
    assert report.passed, report.summary()


def test_toy_table_has_a_unique_optimum_and_fails_deterministically() -> None:
    table = ToyTable(5, 4, seed=0)
    assert table.rank(table.best_tokens) == 0
    assert (table.acc == table.acc.max()).sum() == 1
    space = toy_space(5, 4)
    ev = ToyTableEvaluator(table, space=space, fail_fraction=0.3)
    archs = list(space.enumerate())
    fails = [ev.fails(a) for a in archs]
    assert 0.2 < sum(fails) / len(fails) < 0.4
    assert fails == [ev.fails(a) for a in archs]


def test_contract_detects_a_broken_strategy() -> None:
    """A strategy that asks more than it is given fails the budget check (the suite can fail)."""
    from nasforge.spaces.base import Architecture
    from nasforge.strategies.blackbox.random_search import RandomSearch

    class Greedy(RandomSearch):
        def ask(self, n: int) -> list[Architecture]:
            return super().ask(n + 1)

    report = StrategyContract(
        "greedy", budget=10, seeds=2, factory=lambda seed: Greedy(seed=seed, batch_size=1)
    ).run()
    assert not report.checks["budget"]
    assert not report.passed
