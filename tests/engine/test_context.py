"""The search context: the only way strategies write a run."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nasforge
from nasforge.engine.context import Callback, SearchContext
from nasforge.evaluators.base import Result
from nasforge.exceptions import InvalidArchitecture
from nasforge.spaces import make_space
from nasforge.storage.base import Record
from nasforge.storage.sqlite import SQLiteRunStore
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


@pytest.mark.parametrize("kw", [
    {"val_acc": -0.0}, {"train_seconds": math.nan}, {"val_acc": math.nan, "status": "failed"},
    {"metrics": {"t": (1, 2), "k": {"n": [1.5]}}}, {"val_acc": 1, "params": 3},
])
def test_a_recorded_trial_is_exactly_what_the_store_reads_back(kw: dict[str, Any]) -> None:
    """``add_trial`` returns the record as stored (the batch is not read back): SQLite's
    conversions (NaN -> NULL, -0.0 -> 0.0, integer and text columns, JSON) are applied to it."""
    store = SQLiteRunStore(":memory:", create=True)
    arch = make_space("nb201").sample(np.random.default_rng(0))
    status = kw.pop("status", "complete")
    rec = Record(4, arch, 7, Result(status, **{"val_acc": 0.5, **kw}), cached_from=None,
                 finished_at=0.0, task="t")
    got = store.add_trial(rec)
    back = store.trials(range(4, 5))[0]
    assert repr(got) == repr(back)
    assert got.arch == back.arch and got.arch_id == back.arch_id


def test_a_mask_set_on_the_space_object_is_checked() -> None:
    space = make_space("nb201")
    arch = space.sample(np.random.default_rng(0))
    assert not space.masked and space.validate(arch) is arch
    space.allowed = lambda prefix: np.zeros(len(space.options(len(prefix))), dtype=bool)  # type: ignore[method-assign]
    assert space.masked
    with pytest.raises(InvalidArchitecture, match="not allowed"):
        space.validate(arch)
