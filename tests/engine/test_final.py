"""The one final report: its JSON round trip, old runs' layouts, and what every family stores."""

from __future__ import annotations

from pathlib import Path

import pytest

import nasforge
from nasforge.engine.final import FinalReport, Retraining
from nasforge.objectives import DEFAULT, Objective
from nasforge.report import print_summary
from tests.conftest import tiny_config


def test_json_round_trip_keeps_every_field() -> None:
    rep = FinalReport(
        objective=DEFAULT, arch={"tokens": [1, 2]}, arch_id="abc", describe="1-2", trial=3,
        val_acc=0.9, params=120, retrainings=(Retraining(7, 0.91, 0.88), Retraining(8, 0.9, 0.86)),
        test_acc=0.87, test_std=0.01, candidates=(3, 1), test_metrics={"test_loss": 0.3},
        extra={"picked_by": "best mean observation"},
    )
    back = FinalReport.from_json(rep.to_json(), DEFAULT)
    assert back == rep
    assert back.score == 0.9 and back.test_score == 0.87 and back.retrained


def test_a_minimised_objective_reports_its_score_in_its_units() -> None:
    obj = Objective("val_loss", "minimize", "loss")
    rep = FinalReport.from_json({"arch": {"tokens": [0]}, "val_acc": -0.25}, obj)
    assert rep.score == 0.25 and rep.objective.test_name == "test_loss"


def test_old_rl_reports_read_their_return_as_the_test_score() -> None:
    old = {"arch": {"tokens": [0, 1]}, "val_acc": 120.0, "fitness": 120.0,
           "test_return": 150.5, "test_return_std": 3.0, "population": []}
    rep = FinalReport.from_json(old, Objective("return", "maximize"))
    assert (rep.test_acc, rep.test_std) == (150.5, 3.0)
    assert "test_return" not in rep.extra and rep.extra["fitness"] == 120.0


def test_nothing_completed_is_an_error_report() -> None:
    rep = FinalReport.from_json({"arch": None, "error": "no trial completed"})
    assert rep.arch is None and rep.error == "no trial completed" and rep.score is None
    assert rep.to_json() == {"arch": None, "error": "no trial completed"}


def test_a_run_reads_back_the_report_its_strategy_built(tmp_path: Path) -> None:
    run = nasforge.search(tiny_config(budget=3, final={"seeds": 2}), run_dir=tmp_path / "r",
                          progress=False)
    rep = run.final
    assert isinstance(rep, FinalReport) and rep.objective == run.objective
    assert len(rep.retrainings) == 2 and rep.test_acc is not None
    assert run.meta("final") == rep.to_json()
    assert run.summary()["best"]["test_score"] == rep.test_score


def test_the_printed_pick_of_a_minimised_objective_is_in_its_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = nasforge.search(tiny_config(budget=3, objective="val_loss"), run_dir=tmp_path / "r",
                          progress=False)
    print_summary(run.summary())
    out = " ".join(capsys.readouterr().out.split())
    pick = run.meta("pick")
    assert pick["mean_val_acc"] < 0  # stored as a utility
    assert f"mean val_loss {-pick['mean_val_acc']:.4f}" in out
