"""`nasforge tabulate`: exhaustive tables, dedup, resume after SIGKILL without loss or repeats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nasforge.cli.main import main
from nasforge.evaluators.table import Table, TabularEvaluator
from nasforge.exceptions import ConfigError
from nasforge.spaces import make_space
from nasforge.tabulate import tabulate


def config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "tab",
        "seed": 0,
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "cnn", "kernels": [1, 3], "filters": [2], "num_layers": 2},
        "evaluator": {"name": "train", "max_epochs": 1, "batch_size": 0, "patience": 0},
        "executor": {"name": "local", "workers": 1},
        "tabulate": {"seeds": 2, "batch": 2},
    }
    cfg.update(over)
    return cfg


def log_jobs(out: Path) -> list[tuple[int, int]]:
    lines = (out.parent / (out.name + ".parts") / "results.jsonl").read_text().splitlines()
    return [(d["i"], d["k"]) for d in map(json.loads, lines) if "i" in d]


def test_tabulate_writes_a_table_the_evaluator_reads(tmp_path: Path) -> None:
    out = tmp_path / "t.npz"
    assert tabulate(config(), out) == out
    table = Table.load(out)
    space = make_space(config()["space"])
    assert table.num_rows == space.size() == 4 and table.num_seeds == 2
    assert np.isfinite(table.val_acc).all()
    assert table.meta["wall_seconds"] >= 0 and table.meta["sessions"][0]["workers"] == 1
    assert sorted(log_jobs(out)) == [(i, k) for i in range(4) for k in range(2)]
    ev = TabularEvaluator(space=space, table=str(out), seed_mode="mean")
    assert 0 < ev.optimum() <= 1
    # a second call finds everything done and rewrites the same table
    tabulate(config(), out)
    assert np.array_equal(Table.load(out).val_acc, table.val_acc)
    with pytest.raises(ConfigError, match="different config"):
        tabulate(config(seed=1), out)


def test_dedup_trains_one_member_per_class(tmp_path: Path) -> None:
    space_spec = {"name": "nb201", "ops": ["none", "skip_connect"], "channels": 2,
                  "cells_per_stage": 1, "stages": 1}
    out = tmp_path / "cells.npz"
    tabulate(config(space=space_spec, tabulate={"seeds": 2, "batch": 8, "dedup": True}), out)
    table = Table.load(out)
    space = make_space(space_spec)
    classes = {space.canonical(a) for a in space.enumerate()}
    assert table.num_rows == 64 and table.meta["trained_architectures"] == len(classes) < 64
    assert len(log_jobs(out)) == 2 * len(classes)
    rows = {a: i for i, a in enumerate(space.enumerate())}
    for a in space.enumerate():
        rep = space.canonical(a)
        assert np.array_equal(table.val_acc[rows[a]], table.val_acc[rows[rep]])


def test_torn_last_line_is_dropped(tmp_path: Path) -> None:
    out = tmp_path / "t.npz"
    assert tabulate(config(tabulate={"seeds": 2, "batch": 2, "limit": 3}), out) is None
    log = out.parent / "t.npz.parts" / "results.jsonl"
    with log.open("a") as f:
        f.write('{"i": 3, "k": 1, "status": "comp')  # killed mid-write
    tabulate(config(), out)
    jobs = log_jobs(out)
    assert sorted(jobs) == sorted(set(jobs)) and len(jobs) == 8


def test_resume_after_sigkill_loses_and_repeats_nothing(tmp_path: Path) -> None:
    cfg = config(
        space={"name": "cnn", "kernels": [1, 3], "filters": [2], "num_layers": 3},
        evaluator={"name": "train", "max_epochs": 2, "batch_size": 64, "patience": 0},
        tabulate={"seeds": 2, "batch": 1, "sync_every": 1},
    )
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "t.npz"
    code = (
        "import sys; from nasforge.cli.main import main; "
        f"sys.exit(main(['tabulate', {str(path)!r}, '--out', {str(out)!r}, '--no-progress']))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    log = tmp_path / "t.npz.parts" / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log_jobs(out)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = dict.fromkeys(log_jobs(out))
    assert 3 <= len(before) < 16, "the kill should land mid-table"
    assert not out.exists()
    done_lines = {
        (d["i"], d["k"]): d for d in map(json.loads, log.read_text().splitlines()) if "i" in d
    }
    assert main(["tabulate", str(path), "--out", str(out), "--no-progress"]) == 0
    jobs = log_jobs(out)
    assert len(jobs) == len(set(jobs)) == 16  # nothing repeated, nothing lost
    table = Table.load(out)
    assert np.isfinite(table.val_acc).all() and len(table.meta["sessions"]) == 2
    for (i, k), d in done_lines.items():  # results from before the kill are kept as they were
        assert table.val_acc[i, k] == pytest.approx(d["val"])


def test_variable_length_spaces_are_padded(tmp_path: Path) -> None:
    space_spec = {"name": "mlp", "widths": [2], "activations": ["ReLU"], "max_len": 4}
    cfg = config(
        task={"name": "moons", "n_samples": 100},
        space=space_spec,
        evaluator={"name": "train", "max_epochs": 1, "batch_size": 0, "patience": 0},
        tabulate={"seeds": 2, "batch": 8},
    )
    out = tmp_path / "mlp.npz"
    tabulate(cfg, out)
    space = make_space(space_spec)
    table = Table.load(out)
    assert table.num_rows == space.size() and (table.indices == -1).any()
    ev = TabularEvaluator(space=space, table=str(out), seed_mode="mean")
    for arch in space.enumerate():
        assert ev.evaluate(arch, seed=0).ok


def test_a_space_too_large_to_enumerate_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "d.yaml"
    cfg.write_text(yaml.safe_dump({"name": "d", "task": {"name": "digits"},
                                   "space": {"name": "darts"}, "evaluator": {"name": "train"}}))
    out = tmp_path / "t.npz"
    assert main(["tabulate", str(cfg), "--out", str(out)]) == 2
    assert "architectures; tabulate trains every one" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [cfg]
