"""Table.from_arrays: any tabular benchmark (a loss to minimise included) via nasforge bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nasforge.cli.main import main
from nasforge.evaluators.table import Table, TabularEvaluator
from nasforge.exceptions import ConfigError, DataError
from nasforge.spaces import StateSpace


def _space() -> StateSpace:
    space = StateSpace(num_layers=1, buildable=False)
    space.add_state("lr", [0.001, 0.01, 0.1])
    space.add_state("units", [8, 16])
    return space


def _loss_table() -> tuple[Table, dict[tuple, float]]:
    space = _space()
    archs = list(space.enumerate())
    loss = {a.tokens: abs(np.log10(a.tokens[0]) + 2) + 16 / a.tokens[1] for a in archs}
    rng = np.random.default_rng(0)
    scores = np.array([[loss[a.tokens] + rng.normal(0, 0.01) for _ in range(2)] for a in archs])
    table = Table.from_arrays(space, archs, scores, objective="val_loss", direction="minimize")
    return table, loss


def test_from_arrays_round_trip_and_utilities(tmp_path: Path) -> None:
    table, loss = _loss_table()
    table.save(tmp_path / "t.npz")
    back = Table.load(tmp_path / "t.npz")
    assert back.objective.direction == "minimize" and back.num_rows == 6 and back.num_seeds == 2
    ev = TabularEvaluator(space=_space(), table=str(tmp_path / "t.npz"), seed_mode="mean")
    best = min(loss, key=lambda k: loss[k])
    assert ev.optimum() == pytest.approx(-float(back.mean_val().min()))
    r = ev.evaluate(_space().decode([1, 1]), seed=0)
    assert r.val_acc == pytest.approx(-r.metrics["val_loss"])  # utility = -loss
    assert best == (0.01, 16)
    with pytest.raises(DataError, match="do not match 6 architectures"):
        Table.from_arrays(_space(), list(_space().enumerate()), np.zeros(5))


def test_a_loss_table_runs_through_nasforge_bench(tmp_path: Path) -> None:
    table, loss = _loss_table()
    table.save(tmp_path / "t.npz")
    # YAML reads 1e-3 as a string and 8.0 as a float: both are matched as numbers
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        "name: hpo\nseeds: 2\nbudget: 6\ncheckpoints: [3, 6]\n"
        "space: {name: state, num_layers: 1, buildable: false, states: "
        "[{name: lr, values: [1e-3, 1e-2, 1e-1]}, {name: units, values: [8.0, 16]}]}\n"
        f"evaluator: {{name: table, table: {tmp_path / 't.npz'}, seed_mode: mean}}\n"
        "strategies:\n  random: {name: random}\n"
    )
    out = tmp_path / "out"
    assert main(["bench", str(cfg), "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["objective"]["direction"] == "minimize"
    assert res["optimum"] == pytest.approx(float(table.mean_val().min()), abs=1e-4)
    mean = res["strategies"]["random"]["mean"]
    assert mean[-1] == pytest.approx(res["optimum"], abs=1e-4)  # 6 queries see all 6 rows
    assert all(m >= res["optimum"] - 1e-9 for m in mean)  # a loss: never below the optimum
    md = (out / "table.md").read_text()
    assert "val_loss (minimize)" in md and "val acc" not in md
    # a loss is shown to 4 significant digits (0.0725 is not rounded to 0.07)
    assert f"{res['strategies']['random']['mean'][-1]:.4g} +- " in md


def test_space_mismatch_shows_both_sides(tmp_path: Path) -> None:
    table, _ = _loss_table()
    table.save(tmp_path / "t.npz")
    other = StateSpace(num_layers=2, buildable=False)
    other.add_state("lr", [0.001, 0.01, 0.1])
    other.add_state("units", [8, 16])
    with pytest.raises(ConfigError, match=r"differs at num_layers \(table 1 vs config 2\)"):
        TabularEvaluator(space=other, table=str(tmp_path / "t.npz"))
