"""PBT-NAS plots: fitness per population slot over rounds, and the lineage of members.

The info functions (:mod:`nasforge.strategies.pbt.report`) turn the run's ``pbt`` series into
plain values; :func:`plot_pbt` renders them and is registered as ``RUN_PLOTS["pbt"]``.
"""

from __future__ import annotations

import math
from pathlib import Path

from nasforge.plotting import integer_ticks, pyplot, save_figure
from nasforge.run import Run
from nasforge.strategies.pbt.report import fitness_info, lineage_info

__all__ = ["fitness_info", "lineage_info", "plot_pbt"]


def plot_pbt(run: Run, out: str | Path) -> Path:
    """Two panels: fitness per slot over rounds (x: a child entered) and the lineage graph
    (one row per slot; arrows from the base (solid) and donor (dashed) to each child)."""
    series = run.series("pbt")
    info, lin = fitness_info(series), lineage_info(series)
    obj = run.objective
    sign = obj.sign  # stored fitness is a utility: show the score in its own units
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s, vals in info.fitness.items():
        ax1.plot(info.rounds, [sign * v for v in vals], marker=".", lw=1, label=f"slot {s}")
    ax1.plot(info.rounds, [sign * v for v in info.best], color="k", lw=2, label="best")
    for r, s in info.children:
        if r < len(info.rounds) and math.isfinite(info.fitness[s][r]):
            ax1.scatter([r], [sign * info.fitness[s][r]], marker="x", color="r", s=25,
                        zorder=3)
    ax1.set_xlabel("round")
    ax1.set_ylabel("validation accuracy" if obj.name == "val_acc" else obj.label)
    integer_ticks(ax1.xaxis)
    ax1.set_title("fitness per member (x: replaced after this round)")
    ax1.grid(alpha=0.3)
    if len(info.fitness) <= 12:
        ax1.legend(fontsize=7, ncol=2)
    for mid, (first, last, slot) in lin.members.items():
        ax2.plot([first, last], [slot, slot], color="C0", lw=2, alpha=0.6)
        ax2.annotate(str(mid), (first, slot), fontsize=6, xytext=(0, 3),
                     textcoords="offset points")
    for e in lin.edges:
        a, b = lin.members.get(e.parent), lin.members.get(e.child)
        if a is None or b is None:
            continue
        style = "-" if e.kind == "base" else "--"
        ax2.annotate("", xy=(e.round + 1, b[2]), xytext=(e.round, a[2]),
                     arrowprops={"arrowstyle": "->", "linestyle": style, "lw": 0.8,
                                 "color": "C3" if e.kind == "donor" else "C2"})
    ax2.set_xlabel("round")
    ax2.set_ylabel("slot")
    integer_ticks(ax2.xaxis, ax2.yaxis)
    ax2.set_title("lineage (solid: base, dashed: donor)")
    ax2.grid(alpha=0.3)
    fig.suptitle(run.config.name)
    return save_figure(fig, plt, out)
