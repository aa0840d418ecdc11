"""PBT-NAS on a user's feature rows: the ``gene_mlp`` space with ``pbt_train`` (classification
under the run's objective, regression on MSE / RMSE), exported with the task's preprocessing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_wine

from nasforge.cli.main import main
from nasforge.data.base import make_task
from nasforge.evaluators.pbt import PBTClassifierTrainer
from nasforge.exceptions import ConfigError
from nasforge.objectives import Objective
from nasforge.run import export, load
from nasforge.search import search
from nasforge.spaces.base import Architecture
from nasforge.spaces.genes import GeneACSpace, GeneCNNSpace, GeneMLPSpace


def cfg(task: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "seed": 1, "budget": 24, "task": task,
        "space": {"name": "gene_mlp", "hidden": 16, "num_layers": 2},
        "strategy": {"name": "pbt_nas", "population_size": 4, "step_units": 3},
        "evaluator": {"name": "pbt_train", "lr": 0.01, "batch_size": 32},
        "executor": {"name": "local", "workers": 1}, **top,
    }


def test_gene_mlp_genes_own_their_layers_and_flatten_any_input() -> None:
    space = GeneMLPSpace(hidden=8, num_layers=3)
    arch = Architecture(("linear", "relu", "residual_2", "id", "id", "tanh"))
    net = space.build(arch, (2, 3), 5)
    assert net(torch.zeros(7, 2, 3)).shape == (7, 5)
    names = [n for n, _ in net.named_parameters()]
    for g, gene in enumerate(space.genes):
        owned = [n for n in names if any(n.startswith(p + ".") for p in gene.prefixes)]
        if gene.name == "layer0.op":
            assert owned == ["layers.0.op.weight", "layers.0.op.bias"]
        elif gene.name in ("layer1.op",):
            assert owned and all(n.startswith("layers.1.") for n in owned)
        else:  # activations and the id op own nothing
            assert owned == [], (g, owned)
    assert space.size() == (4 * 4) ** 3
    with pytest.raises(ConfigError, match="unknown gene_mlp op 'conv3'; allowed: id, linear"):
        GeneMLPSpace(ops=["conv3"])


def test_pbt_train_refuses_spaces_it_cannot_train() -> None:
    rows = make_task({"name": "sklearn", "dataset": "iris"})
    with pytest.raises(ConfigError, match="gene_cnn needs image inputs .* use space gene_mlp"):
        PBTClassifierTrainer(space=GeneCNNSpace(), task=rows)
    with pytest.raises(ConfigError, match="gene_ac is an actor-critic space for evaluator pbt_rl"):
        PBTClassifierTrainer(space=GeneACSpace(), task=rows)


def test_pbt_nas_on_csv_rows_learns_and_exports_raw_row_predictions(tmp_path: Path) -> None:
    x, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])
    lines = [",".join([f"f{i}" for i in range(x.shape[1])] + ["cultivar"])]
    lines += [",".join([*(f"{v:g}" for v in row), names[c]]) for row, c in zip(x, y)]
    (tmp_path / "wine.csv").write_text("\n".join(lines) + "\n")
    config = tmp_path / "pbt.yaml"
    config.write_text(
        "seed: 1\nbudget: 24\n"
        "task: {name: file, path: wine.csv, header: true, label_column: cultivar}\n"
        "space: {name: gene_mlp, hidden: 16, num_layers: 2}\n"
        "strategy: {name: pbt_nas, population_size: 4, step_units: 3}\n"
        "evaluator: {name: pbt_train, lr: 0.01, batch_size: 32}\n"
    )
    run = search(config, run_dir=tmp_path / "run", progress=False)
    final = run.final
    assert final is not None and final.test_acc is not None
    assert final.val_acc > 0.8 and final.test_acc > 0.8  # chance is 0.4
    assert run.summary()["baselines"]  # sklearn baselines beside a tabular PBT-NAS result
    export(run.dir, tmp_path / "exp")
    model = load(tmp_path / "exp")
    pred = model.predict(x)  # raw rows, not standardised: the export carries the preprocessing
    assert float(np.mean(pred == names[y])) > 0.8  # the CSV's own label strings


def test_pbt_nas_regression_scores_rmse_in_target_units(tmp_path: Path) -> None:
    run = search(cfg({"name": "sklearn", "dataset": "diabetes"}), run_dir=tmp_path / "r",
                 progress=False)
    summary = run.summary()
    assert summary["objective"]["name"] == "val_rmse"
    assert summary["objective"]["direction"] == "minimize"
    final = run.final
    assert final is not None and final.test_acc is not None
    x, y = load_diabetes(return_X_y=True)
    spread = float(np.std(y))  # predicting the mean scores about this RMSE
    assert 30 < final.test_acc < spread  # in the target's units, and better than the mean
    export(run.dir, tmp_path / "exp")
    pred = load(tmp_path / "exp").predict(x)
    rmse = math.sqrt(float(np.mean((np.asarray(pred, dtype=float).reshape(-1) - y) ** 2)))
    assert rmse < spread


def test_pbt_train_scores_the_chosen_objective() -> None:
    task = make_task({"name": "sklearn", "dataset": "iris"})
    space = GeneMLPSpace(hidden=8, num_layers=1)
    trainer = PBTClassifierTrainer(space=space, task=task)
    assert trainer.objectives()[0] == "val_acc"
    arch = Architecture(("linear", "relu"))
    before = trainer.settings()
    trainer.set_objective(Objective.builtin("val_loss"))
    assert trainer.settings() != before  # another objective is another cache / resume key
    out = trainer.train_step(arch, trainer.init_member(arch, 0), 2, seed=0, eval_seed=0)
    assert out.fitness < 0  # utility = minus the validation cross-entropy
    with pytest.raises(ConfigError, match="cannot score objective 'val_rmse'"):
        trainer.set_objective(Objective.builtin("val_rmse"))


def test_packaged_tabular_pbt_example_runs_and_reports_test_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", "tabular_pbt_nas", "--run-dir", str(tmp_path / "r"), "--no-progress",
            "--set", "budget=8", "--set", "strategy.population_size=4",
            "--set", "strategy.step_units=1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "val_loss" in out and "test metrics (as trained): test_acc" in out
    assert "logistic_regression" in out
