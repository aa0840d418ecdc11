"""PBT-NAS run reports: fitness per population slot over rounds, and the lineage of members.

Pure functions that turn a run's ``pbt`` series into plain values, read by ``Run.summary``
(``nasforge show``) and drawn by :func:`nasforge.viz.pbt.plot_pbt`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

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
