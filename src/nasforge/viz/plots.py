"""Matplotlib renderers (matplotlib is imported lazily, with the Agg backend)."""

from __future__ import annotations

from pathlib import Path

from nasforge.plotting import pyplot, save_figure
from nasforge.viz._info import HistoryInfo

__all__ = ["plot_history", "pyplot", "save_figure"]


def plot_history(info: HistoryInfo, out: str | Path, *, title: str = "") -> Path:
    """Validation accuracy per trial, with the best-so-far line and failed trials marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(info.numbers, info.values, s=8, alpha=0.5, label="trial val acc")
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
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, plt, out)


