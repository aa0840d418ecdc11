"""Resume is exact on the pool path: a run interrupted mid-batch and resumed stores the same
numbers (train_loss included, compared with ==) as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import nasforge
from nasforge.strategies.base import Callback
from tests.conftest import tiny_config


class _StopAfter(Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_trial(self, record: object, ctx: object) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def _table(run: nasforge.Run) -> list[tuple[Any, ...]]:
    return [
        (t.number, t.arch_id, t.seed, t.result.status, t.val_acc, t.result.epochs,
         t.result.params, {k: v for k, v in t.result.metrics.items() if k != "population"})
        for t in run.trials
    ]


@pytest.mark.timeout(300)
def test_pool_resume_is_bit_exact(tmp_path: Path) -> None:
    cfg = tiny_config(
        budget=3, final={"seeds": 0}, executor={"name": "local", "workers": 2},
        strategy={"name": "random", "batch_size": 3},
        evaluator={"name": "train", "max_epochs": 6, "patience": 6, "batch_size": 32,
                   "trainer": "auto"},  # MLP children train as batched populations
    )
    ref = nasforge.search(cfg, run_dir=tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        nasforge.search(cfg, run_dir=tmp_path / "cut", callbacks=[_StopAfter(2)])
    assert 1 <= len(nasforge.load_run(tmp_path / "cut").trials) < 3  # cut inside the batch
    cut = nasforge.search(cfg, run_dir=tmp_path / "cut", resume=True)
    # the one stored difference: metrics["population"], how many children trained together in
    # the worker (the rest of a cut batch trains in smaller groups); every number is equal
    assert _table(cut) == _table(ref)
    assert all("train_loss" in t.result.metrics for t in ref.trials)
