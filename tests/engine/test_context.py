"""The search context: the only way strategies write a run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nasforge
from nasforge.engine.context import Callback, SearchContext
from nasforge.storage.base import Record
from tests.conftest import tiny_config

STRATEGIES = Path(nasforge.__file__).parent / "strategies"


def test_no_strategy_touches_the_store() -> None:
    hits = [
        f"{p.relative_to(STRATEGIES)}:{i}"
        for p in sorted(STRATEGIES.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\.store\b", line)
    ]
    assert hits == []


class _Watch(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, float | None]] = []

    def on_trial(self, record: Record, ctx: SearchContext) -> None:
        best = ctx.best()
        # a callback sees the trial already committed, and the best up to date
        self.seen.append((record.number, ctx.count_trials(), best.val_acc if best else None))


def test_callbacks_see_committed_trials_and_a_current_best(tmp_path: Path) -> None:
    watch = _Watch()
    run = nasforge.search(tiny_config(budget=4, final={"seeds": 0}), run_dir=tmp_path / "r",
                          callbacks=[watch])
    assert [n for n, _, _ in watch.seen] == [0, 1, 2, 3]
    assert all(count == n + 1 for n, count, _ in watch.seen)
    vals = [r.val_acc for r in run.trials]
    assert [b for _, _, b in watch.seen] == [max(vals[: i + 1]) for i in range(4)]


class _Stop(Callback):
    def on_trial(self, record: Record, ctx: SearchContext) -> None:
        raise KeyboardInterrupt


def test_a_callback_that_stops_the_run_cannot_undo_the_trial(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        nasforge.search(tiny_config(budget=4), run_dir=tmp_path / "r", callbacks=[_Stop()])
    assert len(nasforge.Run(tmp_path / "r").trials) == 1
