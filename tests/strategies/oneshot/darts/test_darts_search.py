"""End-to-end DARTS searches on tiny data: learning, resume, variants, final report, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import nasforge
from nasforge.exceptions import ConfigError
from nasforge.spaces.base import make_space
from nasforge.storage.base import Record
from nasforge.strategies.base import Callback, SearchContext
from nasforge.viz.alphas import alpha_info, render_alphas
from tests.strategies.oneshot.darts._darts_helpers import tiny_config


def _logits(run: nasforge.Run, epoch: int) -> np.ndarray:
    data = [d for s, _, d in run.series("alphas") if s == epoch][0]
    return np.asarray(data["groups"]["normal"]["logits"])


def test_two_epochs_move_alphas_and_lower_training_loss(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg["final"] = {"seeds": 1}
    run = nasforge.search(cfg, run_dir=tmp_path / "run")
    recs = run.trials
    assert [r.number for r in recs] == [0, 1]
    assert recs[1].result.metrics["train_loss"] < recs[0].result.metrics["train_loss"]
    assert np.abs(_logits(run, 1)).max() > 20 * 1e-3  # init: 1e-3 * N(0, 1)
    assert np.abs(_logits(run, 1) - _logits(run, 0)).max() > 1e-3
    final = run.final
    assert final is not None and final.arch == recs[-1].arch.to_json()
    assert final.test_acc is not None and 0.0 <= final.test_acc <= 1.0
    assert len(final.retrainings) == 1
    out = nasforge.export(run.dir, tmp_path / "export", torch_export=True)
    model = nasforge.load(out)
    assert model(torch.zeros(2, 1, 6, 6)).shape == (2, 3)
    program = torch.export.load(str(out / "model.pt2")).module()
    x = torch.randn(5, 1, 6, 6)
    with torch.no_grad():
        assert torch.allclose(program(x), model(x), atol=1e-5)
    info = alpha_info(run.series("alphas"))
    assert info.epochs == [0, 1] and info.weights["normal"].shape == (2, 5, 4)
    assert np.allclose(info.weights["normal"].sum(-1), 1.0)
    assert render_alphas(run, tmp_path / "alphas.png").is_file()
    assert (run.dir / "genotype.png").is_file()


class _StopAfter(Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_trial(self, record: Record, ctx: SearchContext) -> None:
        if record.number + 1 >= self.n:
            raise KeyboardInterrupt


def test_resume_continues_from_the_last_epoch(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, epochs=3, darts_minus={}, pdarts={"stages": 3, "keep": [3, 2]})
    full = nasforge.search(cfg, run_dir=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        nasforge.search(cfg, run_dir=tmp_path / "cut", callbacks=[_StopAfter(2)])
    assert len(nasforge.Run(tmp_path / "cut").trials) == 2
    resumed = nasforge.search(cfg, run_dir=tmp_path / "cut", resume=True)
    a, b = full.trials, resumed.trials
    assert [r.number for r in b] == [0, 1, 2]
    assert [r.val_acc for r in a] == [r.val_acc for r in b]
    losses = [[r.result.metrics["train_loss"] for r in t] for t in (a, b)]
    assert losses[0] == losses[1]
    assert np.array_equal(_logits(full, 2), _logits(resumed, 2))


VARIANTS: dict[str, dict[str, Any]] = {
    "second_order": {"order": 2},
    "darts_minus": {"darts_minus": {}},
    "pc_darts": {"pc": {"k": 2}},
    "p_darts": {"pdarts": {"stages": 2, "keep": [2], "layers": [1, 2],
                           "skip_dropout": [0.0, 0.5], "skip_limit": 1}},
    "sharp": {"sharp": {}},
    "tse": {"tse": {"steps": 2}},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_run(tmp_path: Path, variant: str) -> None:
    cfg = tiny_config(tmp_path, **VARIANTS[variant])
    run = nasforge.search(cfg, run_dir=tmp_path / "run")
    recs = run.trials
    assert len(recs) == 2 and all(r.ok for r in recs)
    space = make_space(run.meta("space"))
    space.validate(recs[-1].arch)
    m = [r.result.metrics for r in recs]
    if variant == "darts_minus":
        assert m[0]["aux_beta_first"] == 1.0 and m[1]["aux_beta_last"] == 0.0
        assert m[0]["aux_beta_last"] > m[1]["aux_beta_first"]
    if variant == "p_darts":
        last = [d for s, _, d in run.series("alphas") if s == 1][0]
        mask = np.asarray(last["groups"]["normal"]["mask"])
        assert (mask[:, 1:].sum(1) == 2).all()  # 2 non-none ops kept per edge
        assert m[0]["skip_dropout"] == 0.0 and m[1]["skip_dropout"] == 0.5
        assert m[1]["skip_connects"] <= 1
    if variant == "sharp":
        assert m[0]["w_lr"] > m[1]["w_lr"] and m[0]["alpha_lr"] > m[1]["alpha_lr"]


def test_nb201_space_search(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, pc={"k": 2})
    cfg["space"] = {"name": "nb201", "channels": 4, "cells_per_stage": 1, "stages": 2}
    run = nasforge.search(cfg, run_dir=tmp_path / "run")
    arch = run.trials[-1].arch
    assert len(arch.tokens) == 6 and "none" not in arch.tokens
    make_space(run.meta("space")).validate(arch)


@pytest.mark.parametrize(
    ("override", "space"),
    [({"order": 2, "tse": {}}, None), ({"pc": {"k": 3}}, None),
     ({"pdarts": {"stages": 2, "keep": [3, 2]}}, None), ({}, {"name": "mlp"}),
     ({"layers": 2, "reductions": [5]}, None)],
)
def test_bad_settings_raise_config_errors(tmp_path: Path, override: dict[str, Any],
                                          space: dict[str, Any] | None) -> None:
    cfg = tiny_config(tmp_path, **override)
    if space is not None:
        cfg["space"] = space
    with pytest.raises(ConfigError):
        nasforge.search(cfg, run_dir=tmp_path / "run")


def test_table_rank_of_a_found_cell(tmp_path: Path) -> None:
    from nasforge.evaluators.table import Table
    from nasforge.spaces.cell import CellSpace
    from nasforge.strategies.oneshot.darts.oneshot import table_rank

    space = CellSpace(ops=["none", "skip_connect", "nor_conv_3x3"], channels=4,
                      cells_per_stage=1, stages=1)
    archs = list(space.enumerate())
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.1, 0.9, (len(archs), 2))
    table = Table(indices=np.array([space.encode(a) for a in archs]), val_acc=acc,
                  train_seconds=np.ones_like(acc), params=np.zeros(len(archs), dtype=np.int64),
                  meta={"space": space.spec()})
    path = table.save(tmp_path / "t.npz")
    arch = archs[17]
    info = table_rank(space, arch, str(path))
    mean = acc.mean(1)
    assert info["table_val_acc"] == pytest.approx(mean[17], abs=1e-6)
    assert info["table_rank"] == int((mean > mean[17] + 1e-6).sum()) + 1
    assert info["table_rows"] == 729
    other = CellSpace(ops=["none", "skip_connect", "nor_conv_3x3"], channels=8,
                      cells_per_stage=1, stages=1)
    with pytest.raises(ConfigError):
        table_rank(other, arch, str(path))
