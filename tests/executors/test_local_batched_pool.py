"""LocalExecutor feeds the batched trainer, in process and through a 2-process pool."""

from __future__ import annotations

from typing import Any

from nasforge.data import make_task
from nasforge.evaluators import Result, TrainEvaluator
from nasforge.executors.local import LocalExecutor
from nasforge.spaces import Architecture, SequenceSpace
from nasforge.spaces.base import Token

TOKENS: list[tuple[Token, ...]] = [(8, "ReLU"), ("Tanh", 4), (16, "Sigmoid", 2), (2,), (4, "ReLU")]
ARCHS = [Architecture(t) for t in TOKENS]
SEEDS = [1, 2, 3, 4, 5]


class _Counting(TrainEvaluator):
    calls: list[int] = []

    def evaluate_batch(self, archs: Any, seeds: Any) -> list[Result]:
        type(self).calls.append(len(archs))
        return super().evaluate_batch(archs, seeds)


def test_pool_equals_in_process_and_batches_reach_the_evaluator() -> None:
    kw: dict[str, Any] = {"max_epochs": 3, "patience": 0}
    ev = _Counting(space=SequenceSpace(grammar="free"), task=make_task("moons"), **kw)
    with LocalExecutor(workers=1) as ex:
        local = dict(ex.map(ev, ARCHS, SEEDS))
    assert _Counting.calls == [5]  # the whole batch in one call: one population
    pool = LocalExecutor(workers=2, threads_per_worker=1)
    assert pool.threads == 1
    with pool as ex:
        pooled = dict(ex.map(ev, ARCHS, SEEDS))
    assert sorted(pooled) == list(range(5))
    for i in range(5):
        assert pooled[i].ok and pooled[i].val_acc == local[i].val_acc
        assert pooled[i].epochs == local[i].epochs
