"""The CLI in process: search, show, plot, export, and every bad-input case (exit 2, one line,
nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import nasforge
from nasforge.cli.main import main
from tests.conftest import tiny_config


def _write(tmp_path: Path, cfg: dict, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_search_show_plot_export_load(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "search",
                str(tiny_yaml),
                "--run-dir",
                str(run_dir),
                "--no-progress",
                "--budget",
                "6",
                "--set",
                "final.seeds=2",
            ]
        )
        == 0
    )
    assert (run_dir / "run.sqlite").is_file() and (run_dir / "config.yaml").is_file()
    capsys.readouterr()
    assert main(["show", str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"] == 6 and summary["failed"] == 0
    best = summary["best"]
    assert set(best) >= {"arch", "val_acc", "test_acc"} and 0.5 <= best["test_acc"] <= 1.0
    assert len(summary["final"]["test_accs"]) == 2
    assert main(["show", str(run_dir), "--top", "3"]) == 0
    assert "best architecture" in capsys.readouterr().out
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert main(["export", str(run_dir), "--out", str(tmp_path / "exp")]) == 0
    model = nasforge.load(tmp_path / "exp")
    assert isinstance(model, torch.nn.Module) and not model.training
    # the exported weights are the retrained best model: same predictions as in the run
    run = nasforge.load_run(run_dir)
    assert run.final is not None
    space = nasforge.SequenceSpace(max_len=4)
    ref = space.build(space.arch_from_json(run.final.arch), (2,), 2)
    ref.load_state_dict(torch.load(run_dir / "best_model.pt"))
    ref.eval()
    x = torch.randn(32, 2)
    assert torch.equal(model(x), ref(x))
    doc = json.loads((tmp_path / "exp" / "architecture.json").read_text())
    assert doc["arch"] == best["arch"] and doc["test_acc"] == best["test_acc"]


BAD_CASES = [
    ({"bogus": 1}, "unknown config key 'bogus'; allowed keys: name, seed"),
    ({"budget": "many"}, "bad config value budget"),
    ({"space": {"name": "transformer"}}, "unknown space 'transformer'; allowed: "),
    (
        {"task": {"name": "imagenet"}},
        "unknown task 'imagenet'; allowed: cifar10, digits, digits_rot, file",
    ),
    ({"strategy": {"name": "magic"}}, "unknown strategy 'magic'; allowed: "),
    ({"strategy": {"name": "random", "lr": 1}}, "unknown config key 'strategy.lr'; allowed keys:"),
    (
        {"evaluator": {"name": "train", "optimizer": "adamax"}},
        "bad config value evaluator.optimizer",
    ),
    ({"final": {"seeds": -1}}, "bad config value final.seeds"),
    ({"device": "tpu"}, "unknown device 'tpu'; allowed: auto, cpu, cuda"),
    (
        {"task": {"name": "file", "path": "/nonexistent/x.csv"}},
        "data file '/nonexistent/x.csv' not found",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD_CASES)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: dict, message: str
) -> None:
    cfg = _write(tmp_path, tiny_config(**override))
    run_dir = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not run_dir.exists()


def test_bad_arguments_exit_2(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["search", str(tmp_path / "missing.yaml")], "config file"),
        (["search", str(tiny_yaml), "--budget", "0"], "expected a positive integer"),
        (["search", str(tiny_yaml), "--set", "budget"], "--set expects KEY=VALUE"),
        (["frobnicate"], "invalid choice"),
        (["show", str(tmp_path)], "is not a nasforge run"),
        (["export", str(tmp_path)], "required: --out"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err, (argv, err)
        assert err.count("\n") == 0


def test_unparsable_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n")
    assert main(["search", str(p), "--run-dir", str(tmp_path / "r")]) == 2
    assert "cannot parse config" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_existing_run_dir_needs_resume(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("mine")
    assert main(["search", str(tiny_yaml), "--run-dir", str(run_dir), "--no-progress"]) == 2
    assert "already exists; use --resume" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == ["keep.txt"]
    assert main(["search", str(tiny_yaml), "--run-dir", str(tmp_path / "new"), "--resume"]) == 2
    assert "is not a nasforge run" in capsys.readouterr().err


def test_resume_refuses_a_different_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    cfg = _write(tmp_path, tiny_config(budget=2, final={"seeds": 0}))
    assert main(["search", str(cfg), "--run-dir", str(run_dir), "--no-progress"]) == 0
    other = _write(tmp_path, tiny_config(budget=2, seed=5, final={"seeds": 0}), "other.yaml")
    before = (run_dir / "run.sqlite").read_bytes()
    assert main(["search", str(other), "--run-dir", str(run_dir), "--resume"]) == 2
    assert "differs from the run's stored config at seed" in capsys.readouterr().err
    assert (run_dir / "run.sqlite").read_bytes() == before
