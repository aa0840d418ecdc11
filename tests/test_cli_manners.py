"""CLI and API manners: --version, -v after the subcommand, help on every argument, list,
init and packaged examples, progress units for own-loop strategies."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import nasforge
from nasforge.cli.main import _config_path, build_parser, main
from nasforge.objectives import DEFAULT
from nasforge.progress import ProgressCallback
from nasforge.report import print_summary

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_version_and_verbose_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert nasforge.__version__ in capsys.readouterr().out
    args = build_parser().parse_args(["show", "somewhere", "-v"])
    assert args.verbose is True
    assert build_parser().parse_args(["-v", "show", "x"]).verbose is True
    assert build_parser().parse_args(["show", "x"]).verbose is False


def test_every_argument_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, p in sub.choices.items():
        for action in p._actions:
            if not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{name} {action.dest}")
    assert not missing, missing


def test_list_init_and_packaged_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("strategies:", "spaces:", "tasks:", "evaluators:", "tabular", "examples"):
        assert word in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "max_layers=3" in out  # parameters with their defaults
    monkeypatch.chdir(tmp_path)
    assert main(["init", "tabular"]) == 0
    assert yaml.safe_load((tmp_path / "tabular.yaml").read_text())["space"]["name"] == "tabular"
    assert main(["init", "tabular"]) == 2  # never overwrites
    assert main(["init", "nope"]) == 2 and "allowed: " in capsys.readouterr().err
    assert Path(_config_path("demo")).read_text() == (CONFIGS / "demo.yaml").read_text()
    # the packaged examples are the repository's configs, byte for byte
    root = Path(nasforge.__file__).parent / "examples"
    for f in root.glob("*.yaml"):
        assert f.read_text() == (CONFIGS / f.name).read_text(), f.name


@pytest.mark.parametrize(("phase", "unit"), [("darts", "epochs"), ("metanas", "meta-epochs"),
                                             ("pbt", "rounds")])
def test_own_loop_strategies_count_epochs_and_rounds_not_trials(phase: str, unit: str) -> None:
    cb = ProgressCallback()
    ctx = SimpleNamespace(
        config=SimpleNamespace(name="d"), budget=100, objective=DEFAULT,
        count_trials=lambda: 0, best=lambda: None,
    )
    cb.on_start(ctx)  # type: ignore[arg-type]
    rec = SimpleNamespace(ok=True, val_acc=0.5)
    cb.on_trial(rec, ctx)  # type: ignore[arg-type]
    cb.on_step(1, 8, {"phase": phase, "val_acc": 0.5}, ctx)  # type: ignore[arg-type]
    cb.on_trial(rec, ctx)  # type: ignore[arg-type]
    cb.on_step(2, 8, {"phase": phase, "val_acc": 0.6}, ctx)  # type: ignore[arg-type]
    task = cb.progress.tasks[cb.task_id]
    cb.on_end(ctx)  # type: ignore[arg-type]
    assert (task.completed, task.total) == (2, 8) and f"({unit})" in task.description


def test_summary_lines_wrap_within_80_columns_with_a_hanging_indent(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    why = "best mean val_loss over 3 retrainings among the top 5 trials by val_loss " * 2
    summary = {
        "run_dir": "r", "trials": 1, "failed": 0, "cached": 0, "errors": [],
        "objective": {"name": "val_loss", "direction": "minimize"},
        "top": [{"trial": 0, "score": 0.5, "params": 10, "epochs": 1, "arch": {"tokens": [1]}}],
        "best": {"trial": 0, "arch": {"tokens": [1]}, "describe": "[8, Tanh] x [3]",
                 "why": why, "score": 0.5, "test_acc": None},
        "final": {},
    }
    print_summary(summary)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  picked: "))
    assert lines[at + 1].startswith(" " * 6) and lines[at + 1][6] != " "  # hanging indent
    assert "[8, Tanh] x [3]" in "\n".join(lines)  # brackets are text, not markup
