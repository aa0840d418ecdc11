"""Plots of stored runs: pure info functions plus lazy matplotlib renderers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasforge.exceptions import RunDirError
from nasforge.run import Run, pareto_front
from nasforge.strategies.base import STRATEGIES
from nasforge.viz._info import HistoryInfo, history_info
from nasforge.viz.alphas import render_alphas
from nasforge.viz.controller import plot_controller
from nasforge.viz.metarl import plot_metarl
from nasforge.viz.pbt import plot_pbt
from nasforge.viz.plots import plot_history, plot_pareto

STRATEGY_PLOTS: dict[str, Callable[[Run, Path], Path]] = {"meta_a2c": plot_metarl}
"""Extra plots by strategy name (a frozen meta_a2c run stores no series): name -> renderer."""

RUN_PLOTS: dict[str, Callable[[Run, Path], Path]] = {
    "pbt": plot_pbt,
    "controller": plot_controller,
    "alphas": render_alphas,
}
"""Extra plots by stored series kind (e.g. DARTS alphas, PBT members): kind -> renderer."""


RECORD_UNITS = {"darts": "epoch", "oneshot": "epoch", "metanas": "meta-test (every eval_freq "
                "meta-epochs)", "pbt": "trial (one member trained for one round)"}
"""What one stored record is, by the strategy's loop (``phase``): the history plot's x axis."""


def _record_unit(run: Run) -> str:
    name = str(run.config.strategy.get("name"))
    if name not in STRATEGIES:
        return "trial"
    return RECORD_UNITS.get(str(getattr(STRATEGIES.get(name), "phase", None)), "trial")


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write the run's plots and return their paths: the trial history (accuracy per trial with
    the best-so-far line) and one plot per registered series kind the run stored."""

    run = Run(run_dir)
    out_path = Path(out) if out is not None else run.dir / "history.png"
    if out_path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise RunDirError(f"plot output {str(out_path)!r} must end in .png, .pdf or .svg")
    paths = []
    trials = run.trials
    obj = run.objective
    label = "validation accuracy" if obj.name == "val_acc" else obj.label
    if trials:
        info = history_info(trials)
        if obj.direction == "minimize":  # stored utilities -> scores in their own units
            info = info._replace(
                values=[-v for v in info.values], best_so_far=[-v for v in info.best_so_far]
            )
        paths.append(plot_history(info, out_path, title=run.config.name, label=label,
                                  xlabel=_record_unit(run)))
    if run.config.pareto and trials:
        pts = [(t.result.params, obj.score(t.val_acc) or 0.0) for t in trials if t.ok]
        front = [(p["params"], p["score"]) for p in pareto_front(trials, obj)]
        pareto_out = out_path.with_name(f"{out_path.stem}_pareto{out_path.suffix}")
        paths.append(plot_pareto(pts, front, pareto_out, label=label, title=run.config.name))
    for kind in run.series_kinds():
        renderer = RUN_PLOTS.get(kind)
        if renderer is not None:
            extra = out_path.with_name(f"{out_path.stem}_{kind}{out_path.suffix}")
            paths.append(renderer(run, extra))
    strat = STRATEGY_PLOTS.get(str(run.config.strategy.get("name")))
    if strat is not None and trials:
        name = str(run.config.strategy.get("name"))
        paths.append(strat(run, out_path.with_name(f"{out_path.stem}_{name}{out_path.suffix}")))
    if not paths:
        raise RunDirError(f"{str(run.dir)!r} has nothing to plot yet")
    return paths


__all__ = ["RUN_PLOTS", "STRATEGY_PLOTS", "HistoryInfo", "history_info", "plot_run"]
