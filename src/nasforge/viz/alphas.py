"""Alpha evolution of a DARTS run (series ``alphas``): a pure info function and its renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nasforge.plotting import integer_ticks, pyplot, save_figure
from nasforge.run import Run


class AlphaInfo(NamedTuple):
    epochs: list[int]
    ops: list[str]
    groups: list[str]
    weights: dict[str, np.ndarray]   # group -> (epochs, edges, ops) softmax weights
    skips: list[int]                 # skip connections of the derived cell per epoch
    archs: list[list[Any]]           # derived architecture tokens per epoch


def alpha_info(series: list[tuple[int, str | None, Any]]) -> AlphaInfo:
    """From ``run.series("alphas")`` to per-group weight arrays over the epochs."""
    rows = sorted(((step, data) for step, _, data in series), key=lambda t: t[0])
    if not rows:
        return AlphaInfo([], [], [], {}, [], [])
    ops = list(rows[0][1]["ops"])
    groups = list(rows[0][1]["groups"])
    weights = {
        g: np.asarray([data["groups"][g]["weights"] for _, data in rows], dtype=np.float64)
        for g in groups
    }
    archs = [list(data.get("arch", [])) for _, data in rows]
    skips = [sum(1 for t in a if t == "skip_connect") for a in archs]
    return AlphaInfo([s for s, _ in rows], ops, groups, weights, skips, archs)


def render_alphas(run: Run, out: Path) -> Path:
    """One panel per edge and cell type: the op weights over the epochs."""

    info = alpha_info(run.series("alphas"))
    plt = pyplot()
    n_edges = max((w.shape[1] for w in info.weights.values()), default=1)
    cols = min(n_edges, 7)
    rows_per = (n_edges + cols - 1) // cols
    n_rows = max(1, rows_per * len(info.groups))
    fig, axes = plt.subplots(n_rows, cols, figsize=(2.4 * cols, 1.9 * n_rows + 0.8),
                             squeeze=False, sharex=True, sharey=True)
    for gi, g in enumerate(info.groups):
        w = info.weights[g]
        for e in range(w.shape[1]):
            ax = axes[gi * rows_per + e // cols][e % cols]
            for k, op in enumerate(info.ops):
                ax.plot(info.epochs, w[:, e, k], lw=1.2, label=op)
            ax.set_title(f"{g} edge {e}", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax_row in axes:
        for ax in ax_row:
            if not ax.lines:
                ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[-1]:
        if ax.lines:
            ax.set_xlabel("epoch", fontsize=7)
            integer_ticks(ax.xaxis)
    for ax_row in axes:
        if ax_row[0].lines:
            ax_row[0].set_ylabel("op weight", fontsize=7)
    fig.suptitle(f"{run.config.name}: op weights per edge over epochs", y=0.995, fontsize=9)
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 8), fontsize=7,
               bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return save_figure(fig, plt, out, layout=False)
