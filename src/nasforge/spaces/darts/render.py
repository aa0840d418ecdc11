"""Cell diagrams of DARTS genotypes drawn with matplotlib (graphviz is not needed).

Layout per cell: the two inputs ``c_{k-2}``, ``c_{k-1}`` on the left, intermediate nodes in a
column left to right, the output ``c_{k}`` on the right; each kept edge is an arrow labelled with
its op, and every concat node has a dashed arrow into the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasforge.plotting import pyplot, save_figure
from nasforge.spaces.darts.genotype import Genotype, Pair


def _draw_cell(ax: Any, pairs: tuple[Pair, ...], concat: tuple[int, ...], title: str) -> None:
    n = len(pairs) // 2
    pos: dict[int, tuple[float, float]] = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for i in range(n):
        y = 1.5 - 3.0 * i / max(1, n - 1) if n > 1 else 0.0
        pos[i + 2] = (2.0 + 1.6 * i, y)
    out_pos = (2.0 + 1.6 * n + 0.6, 0.0)
    names = {0: "c_{k-2}", 1: "c_{k-1}", **{i + 2: str(i) for i in range(n)}}
    colours = {0: "#9ecae1", 1: "#9ecae1"}
    for k, (op, j) in enumerate(pairs):
        dst = k // 2 + 2
        (x0, y0), (x1, y1) = pos[j], pos[dst]
        rad = 0.15 if (k % 2) else -0.15
        ax.annotate(
            "", xy=(x1, y1), xytext=(x0, y0),
            arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.2,
                        "shrinkA": 14, "shrinkB": 14, "connectionstyle": f"arc3,rad={rad}"},
        )
        # midpoint of matplotlib's arc3 Bezier: M + rad / 2 * (dy, -dx)
        mx = (x0 + x1) / 2 + rad / 2 * (y1 - y0)
        my = (y0 + y1) / 2 - rad / 2 * (x1 - x0)
        ax.text(mx, my, op, fontsize=7, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    for c in concat:
        (x0, y0), (x1, y1) = pos[c], out_pos
        ax.annotate(
            "", xy=(x1, y1), xytext=(x0, y0),
            arrowprops={"arrowstyle": "-|>", "color": "#aaaaaa", "lw": 0.8, "ls": "--",
                        "shrinkA": 14, "shrinkB": 14},
        )
    for node, (x, y) in pos.items():
        ax.text(x, y, names[node], ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "fc": colours.get(node, "#fdd0a2"),
                      "ec": "#333333"})
    ax.text(out_pos[0], out_pos[1], "c_{k}", ha="center", va="center", fontsize=9,
            bbox={"boxstyle": "round,pad=0.4", "fc": "#c7e9c0", "ec": "#333333"})
    ax.set_xlim(-0.8, out_pos[0] + 0.8)
    ax.set_ylim(-2.3, 2.3)
    ax.set_title(title)
    ax.axis("off")


def render_genotype(genotype: Genotype, out: str | Path, *, title: str = "") -> Path:
    """Write a PNG (or PDF/SVG, by suffix) with the normal and the reduction cell side by side."""

    plt = pyplot()
    width = 3.0 + 1.6 * genotype.nodes
    fig, axes = plt.subplots(1, 2, figsize=(2 * width, 4.2))
    _draw_cell(axes[0], genotype.normal, genotype.normal_concat, "normal cell")
    _draw_cell(axes[1], genotype.reduce, genotype.reduce_concat, "reduction cell")
    if title:
        fig.suptitle(title)
    return save_figure(fig, plt, out)
