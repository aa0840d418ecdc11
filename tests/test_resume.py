"""A run killed with SIGKILL halfway and resumed ends with exactly ``budget`` distinct trials,
loses no finished trial and evaluates none twice; and equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import nasforge
from nasforge.cli.main import main
from tests.conftest import tiny_config

BUDGET = 24


def _rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT number, arch_id, seed, status, val_acc, epochs, finished_at FROM trials"
            " ORDER BY number"
        ).fetchall()
    finally:
        con.close()


def _count(db: Path) -> int:
    try:
        return len(_rows(db))
    except sqlite3.Error:
        return 0


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    cfg = tiny_config(
        budget=BUDGET,
        final={"seeds": 0},
        evaluator={"name": "train", "max_epochs": 25, "patience": 25, "batch_size": 32},
    )
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    db = run_dir / "run.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nasforge.cli.main",
            "search",
            str(cfg_path),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while _count(db) < 7 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(db)
    assert 7 <= len(before) < BUDGET, "the run must be killed halfway"

    nasforge.search(cfg_path, run_dir=run_dir, resume=True)
    after = _rows(db)
    assert [r[0] for r in after] == list(range(BUDGET))  # exactly budget distinct trials
    assert after[: len(before)] == before  # finished trials kept as they were, not redone

    fresh = tmp_path / "fresh"
    nasforge.search(cfg_path, run_dir=fresh)
    strip = lambda rows: [r[:6] for r in rows]  # noqa: E731  (everything but the clock)
    assert strip(_rows(fresh / "run.sqlite")) == strip(after)


def test_resume_with_a_larger_budget_continues(tmp_path: Path) -> None:
    cfg = tiny_config(budget=4, final={"seeds": 0})
    run_dir = tmp_path / "run"
    nasforge.search(cfg, run_dir=run_dir)
    run = nasforge.search(cfg, run_dir=run_dir, resume=True, budget=9)
    assert [r.number for r in run.trials] == list(range(9))
    straight = nasforge.search(cfg, run_dir=tmp_path / "straight", budget=9)
    assert [r.arch_id for r in straight.trials] == [r.arch_id for r in run.trials]


def test_resume_keeps_the_runs_budget_unless_budget_is_given(tmp_path: Path) -> None:
    """A run started with ``budget=3`` and resumed from its original config (whose budget is
    6) stays at 3 trials; only an explicit budget raises it."""
    cfg = tiny_config(budget=6, final={"seeds": 0})
    run_dir = tmp_path / "run"
    nasforge.search(cfg, run_dir=run_dir, budget=3, progress=False)
    run = nasforge.search(cfg, run_dir=run_dir, resume=True, progress=False)
    assert len(run.trials) == 3 and run.config.budget == 3
    run = nasforge.search(cfg, run_dir=run_dir, resume=True, overrides=["budget=5"],
                          progress=False)
    assert len(run.trials) == 5


def test_an_edited_or_emptied_config_yaml_does_not_change_a_resumed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store's config is the one a resume is checked against: resuming from the run's own
    ``config.yaml`` after it was emptied or edited fails in one line (exit 2) and changes
    nothing, neither the file nor the store."""
    cfg = tiny_config(budget=3, final={"seeds": 0})
    run_dir = tmp_path / "run"
    nasforge.search(cfg, run_dir=run_dir, progress=False)
    db = run_dir / "run.sqlite"
    rows = _rows(db)
    for text in ("", "budget: 6\n", yaml.safe_dump({**cfg, "seed": 99})):
        (run_dir / "config.yaml").write_text(text)
        capsys.readouterr()
        code = main(["search", str(run_dir / "config.yaml"), "--run-dir", str(run_dir),
                     "--resume", "--budget", "5", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, err
        want = "is empty" if not text else "config differs from the run's stored config"
        assert want in err, err
        assert (run_dir / "config.yaml").read_text() == text
        assert _rows(db) == rows
