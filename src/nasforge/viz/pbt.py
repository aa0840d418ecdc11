"""PBT-NAS plots: fitness per population slot over rounds, and the lineage of members.

Pure info functions (tested) turn the run's ``pbt`` series into plain values; :func:`plot_pbt`
renders them (matplotlib imported lazily) and is registered as ``RUN_PLOTS["pbt"]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from nasforge.run import Run

Series = list[tuple[int, str | None, Any]]


class FitnessInfo(NamedTuple):
    rounds: list[int]                   # 0 .. last trained round
    fitness: dict[int, list[float]]     # slot -> fitness per round (NaN if missing / failed)
    members: dict[int, list[int]]       # slot -> member id per round (-1 if missing)
    best: list[float]                   # best fitness per round
    children: list[tuple[int, int]]     # (round, slot): a child entered the slot after round


class LineageEdge(NamedTuple):
    round: int       # the exploit step after this training round
    parent: int      # member id
    child: int       # member id
    kind: str        # "base" (weights and most genes) or "donor" (replaced genes' layers)
    genes: int       # number of genes the edge carries (donor: replaced genes)


class LineageInfo(NamedTuple):
    members: dict[int, tuple[int, int, int]]  # id -> (first round alive, last round, slot)
    edges: list[LineageEdge]


def fitness_info(series: Series) -> FitnessInfo:
    train = [d for _, _, d in series if d.get("event") == "train"]
    if not train:
        return FitnessInfo([], {}, {}, [], [])
    last = max(int(d["round"]) for d in train)
    rounds = list(range(last + 1))
    slots = sorted({int(d["slot"]) for d in train})
    fit = {s: [math.nan] * len(rounds) for s in slots}
    mem = {s: [-1] * len(rounds) for s in slots}
    for d in train:
        f = d.get("fitness")
        fit[int(d["slot"])][int(d["round"])] = math.nan if f is None else float(f)
        mem[int(d["slot"])][int(d["round"])] = int(d["id"])
    best = []
    for r in rounds:
        vals = [fit[s][r] for s in slots if math.isfinite(fit[s][r])]
        best.append(max(vals) if vals else math.nan)
    children = sorted(
        (int(d["round"]), int(d["slot"])) for _, _, d in series if d.get("event") == "child"
    )
    return FitnessInfo(rounds, fit, mem, best, children)


def lineage_info(series: Series) -> LineageInfo:
    members: dict[int, tuple[int, int, int]] = {}
    edges: list[LineageEdge] = []
    n_genes = 0
    for _, _, d in series:
        ev = d.get("event")
        if ev in ("init", "train"):
            mid, r, slot = int(d["id"]), int(d["round"]), int(d["slot"])
            n_genes = max(n_genes, len(d.get("arch", [])))
            first = members.get(mid, (r, r, slot))[0]
            members[mid] = (min(first, r), r, slot)
        elif ev == "child":
            mid, r, slot = int(d["id"]), int(d["round"]), int(d["slot"])
            members.setdefault(mid, (r + 1, r + 1, slot))
            donor_genes = len(d.get("genes_from_donor", []))
            n = len(d.get("arch", [])) or n_genes
            if d["base"] == d["donor"]:
                edges.append(LineageEdge(r, int(d["base"]), mid, "base", n))
            else:
                edges.append(LineageEdge(r, int(d["base"]), mid, "base", n - donor_genes))
                edges.append(LineageEdge(r, int(d["donor"]), mid, "donor", donor_genes))
    return LineageInfo(members, edges)


def pbt_summary(series: Series) -> dict[str, Any] | None:
    """JSON of ``nasforge show`` for a PBT-NAS run: fitness per slot and round, and every child
    (its round, slot, id, parents and what it took from the donor); None for other runs."""
    info = fitness_info(series)
    if not info.rounds:
        return None
    children = [
        {k: d.get(k) for k in ("round", "slot", "id", "op", "base", "donor", "genes_from_donor",
                               "replaced_id", "replaced_fitness")}
        for _, _, d in series if d.get("event") == "child"
    ]
    return {
        "rounds": info.rounds,
        "fitness": {str(slot): [None if math.isnan(f) else f for f in fits]
                    for slot, fits in info.fitness.items()},
        "members": {str(slot): ids for slot, ids in info.members.items()},
        "best": [None if math.isnan(f) else f for f in info.best],
        "children": children,
    }


def plot_pbt(run: Run, out: str | Path) -> Path:
    """Two panels: fitness per slot over rounds (x: a child entered) and the lineage graph
    (one row per slot; arrows from the base (solid) and donor (dashed) to each child)."""
    from nasforge.viz.plots import pyplot, save_figure

    series = run.series("pbt")
    info, lin = fitness_info(series), lineage_info(series)
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s, vals in info.fitness.items():
        ax1.plot(info.rounds, vals, marker=".", lw=1, label=f"slot {s}")
    ax1.plot(info.rounds, info.best, color="k", lw=2, label="best")
    for r, s in info.children:
        if r < len(info.rounds) and math.isfinite(info.fitness[s][r]):
            ax1.scatter([r], [info.fitness[s][r]], marker="x", color="r", s=25, zorder=3)
    ax1.set_xlabel("round")
    ax1.set_ylabel("fitness")
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
    ax2.set_title("lineage (solid: base, dashed: donor)")
    ax2.grid(alpha=0.3)
    fig.suptitle(run.config.name)
    return save_figure(fig, plt, out)
