"""Matplotlib renderers (matplotlib is imported lazily, with the Agg backend)."""

from __future__ import annotations

from pathlib import Path

from nasforge.plotting import integer_ticks, pyplot, save_figure
from nasforge.viz._info import HistoryInfo

__all__ = ["plot_history", "plot_pareto", "pyplot", "save_figure"]


def plot_history(
    info: HistoryInfo, out: str | Path, *, title: str = "", label: str = "validation accuracy",
    xlabel: str = "trial",
) -> Path:
    """Validation score per trial (or per epoch: ``xlabel``), with the best-so-far line and
    failed trials marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(info.numbers, info.values, s=8, alpha=0.5, label=f"trial {label}")
    ax.plot(info.numbers, info.best_so_far, color="C3", lw=2, label="best so far")
    if info.failed:
        ax.scatter(
            info.failed,
            [0.0] * len(info.failed),
            marker="x",
            color="k",
            s=12,
            label=f"failed ({len(info.failed)})",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    integer_ticks(ax.xaxis)
    ax.legend(loc="best")  # not over the best points, whichever way the objective goes
    return save_figure(fig, plt, out)


def plot_pareto(
    points: list[tuple[int, float]], front: list[tuple[int, float]], out: str | Path, *,
    label: str, title: str = "",
) -> Path:
    """Score vs trainable parameters of every completed trial, the Pareto front joined."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter([p for p, _ in points], [s for _, s in points], s=10, alpha=0.5, label="trials")
    ax.step([p for p, _ in front], [s for _, s in front], where="post", color="C3", lw=2,
            marker="o", label=f"Pareto front ({len(front)})")
    ax.set_xscale("symlog")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return save_figure(fig, plt, out)


