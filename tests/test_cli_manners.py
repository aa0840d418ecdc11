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
from tests.conftest import tiny_config

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
        sources = list(CONFIGS.rglob(f.name))
        assert len(sources) == 1 and f.read_text() == sources[0].read_text(), f.name


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


@pytest.mark.parametrize("rows, expect", [
    ([(4, [1]), (0, [2])], "best architecture (*, trial 4)"),
    ([(1, [1]), (0, [2])], "best architecture (trial 4; * marks trial 1, the same architecture)"),
    ([(0, [2])], "best architecture (trial 4, not in the rows above)"),
])
def test_best_line_says_which_row_the_star_marks(
    rows: list[tuple[int, list[int]]], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PBT-NAS pick is a late trial whose architecture an earlier row may show: the star
    must not be read as the pick's own trial."""
    summary = {
        "run_dir": "r", "trials": 5, "failed": 0, "cached": 0, "errors": [],
        "top": [{"trial": t, "score": 0.9, "params": 1, "epochs": 1, "arch": {"tokens": a}}
                for t, a in rows],
        "best": {"trial": 4, "arch": {"tokens": [1]}, "score": 0.8, "test_acc": None},
        "final": {},
    }
    print_summary(summary)
    out = capsys.readouterr().out
    assert expect in out
    assert out.count("*") == (0 if "not in the rows" in expect else 2)


def test_history_plot_axes_name_what_a_record_is(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The x axis says epoch for one-shot runs, trial for black-box ones; whole-number
    ticks; the legend does not sit on the best points of a minimised objective."""
    from nasforge import viz
    from nasforge.viz import plots

    seen: dict[str, object] = {}
    real = plots.plot_history

    def spy(info: object, out: object, **kw: object) -> object:
        seen.update(kw)
        return real(info, out, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(viz, "plot_history", spy)
    run = nasforge.search(tiny_config(budget=2, objective="val_loss", final={"seeds": 0}),
                          run_dir=tmp_path / "r", progress=False)
    viz.plot_run(run.dir)
    assert seen["xlabel"] == "trial" and seen["label"] == "val_loss (minimize)"
    assert viz._record_unit(SimpleNamespace(  # type: ignore[arg-type]
        config=SimpleNamespace(strategy={"name": "darts"}), series=lambda k: [])) == "epoch"
    assert viz._record_unit(SimpleNamespace(  # type: ignore[arg-type]
        config=SimpleNamespace(strategy={"name": "metanas"}), series=lambda k: [])
    ).startswith("meta-test")


def test_config_mistakes_each_get_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def one_line(args: list[str], want: str) -> None:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and want in err, (args, err)

    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    one_line(["search", str(empty), "--run-dir", str(tmp_path / "r0")], "is empty")
    assert not (tmp_path / "r0").exists()
    run = nasforge.search(tiny_config(budget=1, final={"seeds": 0}), run_dir=tmp_path / "r",
                          progress=False)
    one_line(["search", str(run.dir)], "is a run directory, not a config; to continue it")
    one_line(["bench", str(run.dir), "--out", str(tmp_path / "b")], "is a run directory")
    # a dotted --set into a section the config leaves out keeps that section's default name
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({k: v for k, v in tiny_config(budget=1).items()
                                   if k != "executor"}))
    assert main(["search", str(cfg), "--run-dir", str(tmp_path / "r2"), "--no-progress",
                 "--set", "executor.workers=1"]) == 0
    capsys.readouterr()
    # tpe without optuna: one line naming the extra, not a ModuleNotFoundError
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "optuna" else real(n, *a))
    one_line(["search", str(cfg), "--run-dir", str(tmp_path / "r3"), "--set",
              "strategy.name=tpe"], "pip install 'nasforge[optuna]'")
    assert not (tmp_path / "r3").exists()


def test_a_bench_table_path_is_relative_to_its_config(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    import numpy as np

    from nasforge.evaluators.table import Table
    from nasforge.exceptions import DataError
    from nasforge.spaces.base import make_space

    space = make_space({"name": "nb201", "ops": ["none", "skip_connect"]})
    archs = list(space.enumerate())
    with pytest.raises(DataError, match="only NaN"):
        Table.from_arrays(space, archs, np.full(len(archs), np.nan))
    (tmp_path / "cfgs").mkdir()
    Table.from_arrays(space, archs, np.linspace(0, 1, len(archs))).save(tmp_path / "cfgs/t.npz")
    cfg = tmp_path / "cfgs" / "b.yaml"
    cfg.write_text(yaml.safe_dump({
        "seeds": 1, "budget": 3, "checkpoints": [3], "space": space.spec(),
        "evaluator": {"name": "table", "table": "t.npz"},
        "strategies": {"random": {"name": "random", "batch_size": 1}}}))
    monkeypatch.chdir(tmp_path)  # elsewhere: the path is the config's, not the cwd's
    assert main(["bench", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    capsys.readouterr()
    cfg.write_text(cfg.read_text().replace("t.npz", "gone.npz"))
    assert main(["bench", str(cfg), "--out", str(tmp_path / "out2"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "table file" in err and "gone.npz" in err and "not found" in err


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from nasforge.cli.main import main; sys.exit(main(['list']))")
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1", shell=True,
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.stdout.strip() == "strategies:" and "error" not in p.stderr, p.stderr
