"""Simple scikit-learn baselines fitted on a tabular task's training split.

``show``, the summary and ``--json`` put them beside the searched network, so a user sees at once
whether the network is worth it: a linear model (logistic / ridge regression) and gradient
boosting (``HistGradientBoosting*``), both with scikit-learn's defaults and fixed seeds, fitted on
the same (standardised) training rows the children train on and scored on validation and test.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from nasforge.data.base import Task
from nasforge.logging import get_logger
from nasforge.objectives import class_metric

_logger = get_logger(__name__)


def _models(kind: str, extra: bool) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if kind == "regression":
        models: dict[str, Any] = {
            "ridge": Ridge(),
            "gradient_boosting": HistGradientBoostingRegressor(random_state=0),
        }
        if extra:
            from sklearn.neural_network import MLPRegressor

            models["mlp_sklearn"] = MLPRegressor(max_iter=2000, random_state=0)
        return models
    models = {
        "logistic_regression": LogisticRegression(max_iter=5000),
        "gradient_boosting": HistGradientBoostingClassifier(random_state=0),
    }
    if extra:
        from sklearn.neural_network import MLPClassifier

        models["mlp_sklearn"] = MLPClassifier(max_iter=2000, random_state=0)
    return models


def score(kind: str, metric: str, y: np.ndarray, pred: np.ndarray, y_std: float = 1.0) -> float:
    """``metric`` of predictions: acc, balanced_acc, f1 (classes), rmse (in the target's
    units), r2."""
    if kind != "regression":
        return class_metric(metric, y, pred)
    if metric == "r2":
        ss = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else math.nan
    return float(np.sqrt(np.mean((y - pred) ** 2))) * y_std


def baselines(task: Task, *, extra: bool = False, objective: str | None = None
              ) -> dict[str, dict[str, float]] | None:
    """``{model: {"val_<m>": .., "test_<m>": ..}}`` for tabular tasks (None for others).

    Metrics: accuracy for classification, plus the run's ``objective`` where it is balanced
    accuracy or macro F1; RMSE (target units) and R^2 for regression. ``extra`` adds
    scikit-learn's MLP (the benchmark compares against it too).
    """
    if not task.tabular:
        return None
    y_std = float(task.preprocess.get("y_std", 1.0))
    xs = {k: getattr(task, k).x.reshape(len(getattr(task, k)), -1).numpy() for k in
          ("train", "val", "test")}
    ys = {k: getattr(task, k).y.numpy() for k in ("train", "val", "test")}
    metrics = ["rmse", "r2"] if task.kind == "regression" else ["acc"]
    if task.kind != "regression" and objective in ("val_balanced_acc", "val_f1"):
        metrics.append(objective.removeprefix("val_"))
    out: dict[str, dict[str, float]] = {}
    for name, model in _models(task.kind, extra).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model.fit(xs["train"], ys["train"])
            except ValueError as err:  # e.g. a class missing from the training split
                _logger.warning("baseline %s failed: %s", name, err)
                continue
        row: dict[str, float] = {}
        for split in ("val", "test"):
            pred = model.predict(xs[split])
            for m in metrics:
                row[f"{split}_{m}"] = score(task.kind, m, ys[split], pred, y_std)
        out[name] = row
    return out
