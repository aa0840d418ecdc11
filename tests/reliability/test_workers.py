"""Dead workers are survived: only the dead worker's job runs again, with the same seeds; a
worker killed while starting never hangs the driver; restarts are bounded."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from nasforge.exceptions import WorkerLost
from nasforge.executors.local import LocalExecutor
from nasforge.executors.pool import JobPool
from nasforge.spaces.base import Architecture
from tests.reliability._helpers import LoggingEvaluator

ARCHS = [Architecture((t, 0)) for t in range(4)]
SEEDS = [101, 202, 303, 404]


def _log(path: Path) -> list[tuple[int, ...]]:
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def _reference(tmp_path: Path) -> dict[int, float]:
    ev = LoggingEvaluator(tmp_path / "ref.log")
    return dict(
        (i, r.val_acc) for i, r in LocalExecutor(workers=1).map(ev, ARCHS, SEEDS)
    )


@pytest.mark.timeout(120)
def test_dead_worker_only_its_chunk_reruns_with_same_seeds(tmp_path: Path) -> None:
    log = tmp_path / "eval.log"
    ev = LoggingEvaluator(log, kill_tokens=(2,))  # the worker evaluating arch 2 dies once
    ex = LocalExecutor(workers=2, chunk_size=1)
    try:
        out = dict(ex.map(ev, ARCHS, SEEDS))
        assert ex.restarts == 1
    finally:
        ex.close()
    assert all(r.ok for r in out.values()), out  # nothing stored as failed
    assert {i: r.val_acc for i, r in out.items()} == _reference(tmp_path)
    calls = Counter(tok for tok, _, _ in _log(log))
    assert calls == {0: 1, 1: 1, 2: 2, 3: 1}  # only the dead worker's job ran twice
    seeds = {tok: {s for t, s, _ in _log(log) if t == tok} for tok in calls}
    assert seeds[2] == {SEEDS[2]}  # the re-run used the same seed


@pytest.mark.timeout(120)
def test_worker_killed_while_starting_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a 4 MB evaluator (as one holding its data): larger than a pipe buffer, which used to
    # block the driver forever in Popen._launch when the starting child died
    monkeypatch.setenv("DRIVER_PID", str(os.getpid()))
    ev = LoggingEvaluator(tmp_path / "eval.log", padding=4 << 20, die_on_load=True)
    ex = LocalExecutor(workers=2, chunk_size=2)
    try:
        out = dict(ex.map(ev, ARCHS, SEEDS))
        assert ex.restarts >= 1
    finally:
        ex.close()
    assert (tmp_path / "eval.log.died-on-load").exists()
    assert {i: r.val_acc for i, r in out.items()} == _reference(tmp_path)


@pytest.mark.timeout(120)
def test_restarts_are_bounded_then_one_clear_error(tmp_path: Path) -> None:
    ev = LoggingEvaluator(tmp_path / "eval.log", always=True)
    pool = JobPool(workers=2, max_restarts=1)
    with pytest.raises(WorkerLost, match="lost its worker process 2 times") as info:
        list(pool.map_jobs(_evaluate, ev, [(ARCHS[0], 1)]))
    assert "\n" not in str(info.value)
    assert pool.restarts == 2 and not pool.active


def _evaluate(ev: LoggingEvaluator, job: tuple[Architecture, int]) -> float:
    return ev.evaluate(job[0], seed=job[1]).val_acc
