"""``export --torch-export``: the network as a torch.export program that needs only torch, the
same outputs as ``nasforge.load`` for any batch size, and nothing left behind on failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import nasforge
from nasforge.cli.main import main
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tx") / "run"
    nasforge.search(tiny_config(budget=3), run_dir=d, progress=False)
    return d


def test_the_program_answers_like_the_loaded_model(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exp"
    assert main(["export", str(run_dir), "--out", str(out), "--torch-export"]) == 0
    assert "torch.export.load" in capsys.readouterr().out
    program = torch.export.load(str(out / "model.pt2")).module()
    model = nasforge.load(out)
    for n in (1, 3, 17):  # the batch size is dynamic
        x = torch.randn(n, *model.input_shape)
        with torch.no_grad():
            assert torch.allclose(program(x), model(x), atol=1e-6)


def test_a_failed_trace_leaves_nothing(run_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("data-dependent control flow\nmore")

    monkeypatch.setattr(torch.export, "export", boom)
    fresh = tmp_path / "fresh"
    assert main(["export", str(run_dir), "--out", str(fresh), "--torch-export"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "could not trace" in err and "without --torch-export" in err
    assert not fresh.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main(["export", str(run_dir), "--out", str(kept), "--torch-export"]) == 2
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_tabular_preprocessing_is_inside_the_program(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3)) * [1, 100, 0.01] + [0, 500, 3]
    x[5, 1] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(int))
    cfg = {"name": "t", "seed": 0, "budget": 1, "device": "cpu", "baselines": False,
           "task": {"name": "file", "path": str(tmp_path / "d.npz")},
           "space": {"name": "tabular", "max_layers": 1}, "strategy": {"name": "random"},
           "evaluator": {"name": "train", "max_epochs": 3, "threads": 1},
           "final": {"seeds": 1, "candidates": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    out = nasforge.export(run.dir, tmp_path / "exp", torch_export=True)
    program = torch.export.load(str(out / "model.pt2")).module()
    raw = torch.tensor([[0.5, 480.0, 3.0], [-1.0, float("nan"), 2.99]], dtype=torch.float32)
    with torch.no_grad():  # raw features in: standardisation and the NaN fill are in the graph
        assert torch.allclose(program(raw), nasforge.load(out)(raw), atol=1e-5)
