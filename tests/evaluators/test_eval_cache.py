"""The persistent evaluation cache (evaluator param ``cache_dir``) prevents retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nasforge.data import make_task
from nasforge.engine.middleware import evaluate_all
from nasforge.evaluators import TrainEvaluator
from nasforge.evaluators.cache import EvalCache, cache_key
from nasforge.executors.base import Executor
from nasforge.executors.local import LocalExecutor
from nasforge.spaces import Architecture, SequenceSpace
from nasforge.spaces.base import Token

TOKENS: list[tuple[Token, ...]] = [(8, "ReLU"), ("Tanh", 4), (16, "Sigmoid", 2)]
ARCHS = [Architecture(t) for t in TOKENS]


def _ev(cache: Path, **kw: Any) -> TrainEvaluator:
    params: dict[str, Any] = {"max_epochs": 3, "patience": 0, "cache_dir": str(cache), **kw}
    return TrainEvaluator(space=SequenceSpace(grammar="free"), task=make_task("moons"), **params)


def _map(ev: TrainEvaluator, archs: list[Architecture], seeds: list[int]) -> list[Any]:
    with LocalExecutor() as ex:
        got = dict(evaluate_all(ex, ev, archs, seeds))
    return [got[i] for i in range(len(archs))]


def test_the_cache_prevents_retraining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _map(_ev(tmp_path), ARCHS, [1, 2, 3])
    assert all(r.ok and "cache" not in r.metrics for r in first)
    assert len(EvalCache(tmp_path)) == 3

    # a fresh evaluator (another run, another process) with the same settings: nothing trains
    again = _ev(tmp_path)

    def no_training(*a: Any, **k: Any) -> Any:
        raise AssertionError("trained although cached")

    monkeypatch.setattr(again, "evaluate_batch", no_training)
    monkeypatch.setattr(again, "fit", no_training)
    hits = _map(again, ARCHS, [1, 2, 3])
    for a, b in zip(first, hits):
        assert b.metrics["cache"] == "hit" and b.train_seconds == 0.0
        assert b.val_acc == a.val_acc and b.epochs == a.epochs
        assert b.metrics["cached_train_seconds"] == a.train_seconds


def test_the_key_is_task_arch_settings_and_seed(tmp_path: Path) -> None:
    ev = _ev(tmp_path)
    base = cache_key(ev, ARCHS[0], 1)
    assert base == cache_key(_ev(tmp_path / "elsewhere", trainer="single", bucket="shape"),
                             ARCHS[0], 1)  # execution-only params are not part of the key
    assert base != cache_key(ev, ARCHS[1], 1)
    assert base != cache_key(ev, ARCHS[0], 2)
    assert base != cache_key(_ev(tmp_path, lr=0.02), ARCHS[0], 1)
    other_task = TrainEvaluator(space=SequenceSpace(grammar="free"),
                                task=make_task({"name": "moons", "noise": 0.3}),
                                max_epochs=3, patience=0)
    assert base != cache_key(other_task, ARCHS[0], 1)


def test_misses_train_and_only_complete_results_are_stored(tmp_path: Path) -> None:
    ev = _ev(tmp_path)
    _map(ev, ARCHS[:1], [1])
    mixed = _map(ev, ARCHS[:2], [1, 2])  # one hit, one miss
    assert mixed[0].metrics.get("cache") == "hit" and "cache" not in mixed[1].metrics
    assert len(EvalCache(tmp_path)) == 2
    with LocalExecutor() as ex:  # no cache_dir: no cache file anywhere
        plain = TrainEvaluator(space=SequenceSpace(grammar="free"), task=make_task("moons"),
                               max_epochs=2, patience=0)
        assert plain.cache_path is None
        assert len(dict(ex.map(plain, ARCHS[:1], [1]))) == 1


class _Recording(Executor):
    """Any executor (Ray included) gets the cache: the middleware sits in front of ``map``."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def map(self, evaluator, archs, seeds):  # type: ignore[no-untyped-def]
        self.calls.append(len(archs))
        for i, (a, s) in enumerate(zip(archs, seeds)):
            yield i, evaluator.evaluate(a, seed=s)


def test_the_cache_applies_to_every_executor(tmp_path: Path) -> None:
    ev = _ev(tmp_path)
    ex = _Recording()
    first = dict(evaluate_all(ex, ev, ARCHS, [1, 2, 3]))
    again = dict(evaluate_all(ex, ev, ARCHS, [1, 2, 3]))
    assert ex.calls == [3]  # the second pass never reached the executor
    assert all(again[i].metrics["cache"] == "hit" for i in range(3))
    assert [again[i].val_acc for i in range(3)] == [first[i].val_acc for i in range(3)]


def test_a_replaced_data_file_is_a_new_task(tmp_path: Path) -> None:
    import numpy as np

    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2)).astype(np.float32)
    np.savez(data, x=x, y=(x[:, 0] > 0).astype(np.int64))
    params: dict[str, Any] = {"max_epochs": 3, "patience": 0, "cache_dir": str(tmp_path / "c")}
    space = SequenceSpace(grammar="free")
    ev = TrainEvaluator(space=space, task=make_task({"name": "file", "path": str(data)}), **params)
    _map(ev, ARCHS[:1], [1])
    np.savez(data, x=x, y=(x[:, 1] > 0).astype(np.int64))  # same path, other labels
    task2 = make_task({"name": "file", "path": str(data)})
    ev2 = TrainEvaluator(space=space, task=task2, **params)
    (res,) = _map(ev2, ARCHS[:1], [1])
    assert res.metrics.get("cache") is None  # trained again, not a stale hit
