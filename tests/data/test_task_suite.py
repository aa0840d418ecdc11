"""Runs over several tasks: a task suite in the config, task ids on trials, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import tiny_config

import nasforge
from nasforge.data.base import suite_ids
from nasforge.exceptions import ConfigError
from nasforge.strategies.base import Callback, SearchContext


class _Seen(Callback):
    def __init__(self) -> None:
        self.tasks: dict[str, tuple[int, ...]] = {}

    def on_start(self, ctx: SearchContext) -> None:
        self.tasks = {k: t.input_shape for k, t in ctx.tasks.items()}


def _suite(**over: object) -> dict:
    cfg = tiny_config(budget=5, final={"seeds": 0}, **over)
    cfg.pop("task")
    cfg["tasks"] = [{"name": "moons"}, "digits", {"name": "moons", "noise": 0.3}]
    return cfg


def test_suite_ids_number_repeated_names() -> None:
    assert suite_ids([{"name": "a"}, {"name": "b"}, {"name": "a"}]) == ["a#0", "b", "a#1"]


def test_a_task_suite_is_exposed_and_recorded(tmp_path: Path) -> None:
    seen = _Seen()
    run = nasforge.search(_suite(), run_dir=tmp_path / "r", callbacks=[seen])
    assert seen.tasks == {"moons#0": (2,), "digits": (1, 8, 8), "moons#1": (2,)}
    assert [r.task for r in run.trials] == ["moons#0"] * 5  # black-box: the primary task
    assert [t["id"] for t in run.meta("tasks")] == ["moons#0", "digits", "moons#1"]
    assert run.trials[0].to_json()["task"] == "moons#0"


def test_single_task_runs_record_no_task_id(tmp_path: Path) -> None:
    run = nasforge.search(tiny_config(budget=3, final={"seeds": 0}), run_dir=tmp_path / "r")
    assert {r.task for r in run.trials} == {None} and run.meta("tasks") is None


def test_a_resumed_suite_run_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    full = nasforge.search(_suite(), run_dir=tmp_path / "full")
    nasforge.search(_suite(), budget=2, run_dir=tmp_path / "part")
    resumed = nasforge.search(_suite(), run_dir=tmp_path / "part", resume=True,
                              budget=_suite()["budget"])  # a resume keeps 2 unless told
    sig = lambda run: [(r.number, r.arch_id, r.seed, r.val_acc, r.task) for r in run.trials]  # noqa: E731
    assert sig(resumed) == sig(full)


def test_task_and_tasks_together_is_an_error() -> None:
    cfg = _suite()
    cfg["task"] = {"name": "digits"}
    with pytest.raises(ConfigError, match="either task or tasks"):
        nasforge.search(cfg)
    cfg = _suite()
    cfg["tasks"] = []
    with pytest.raises(ConfigError, match="at least one task"):
        nasforge.search(cfg)
