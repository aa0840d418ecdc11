"""MetaNAS' pure pieces: temperature schedule, Reptile update, pruning, pairwise discretisation,
sparse parameter count, and the Conv-4 baseline network (``ALGORITHMS.md`` §1.1-1.2)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.spaces.darts.genotype import Genotype, edge_index
from nasforge.spaces.darts.supernet import Alphas


def temperature(s: int, steps: int, t_max: float, t_min: float) -> float:
    """``T_s = t_max - s (t_max - t_min) / (S - 1)``, ``s`` capped at ``S - 1`` (S = 1: t_max)."""
    if steps <= 1:
        return t_max
    s = min(max(0, s), steps - 1)
    return t_max - s * (t_max - t_min) / (steps - 1)


@torch.no_grad()
def reptile_update(
    params: Mapping[str, torch.Tensor],
    task_params: Sequence[Mapping[str, torch.Tensor]],
    touched: set[str],
    lr: float,
) -> list[str]:
    """Reptile meta-step, written explicitly (Q2: no ``.grad`` round trip that ``zero_grad``
    could silently void): ``p <- p + lr * mean_t(p_t - p)`` for every name in ``touched`` (the
    parameters that got an inner-loop gradient); others stay. Returns the names moved."""
    moved = []
    for name, p in params.items():
        if name not in touched or not task_params:
            continue
        delta = torch.stack([tp[name] - p for tp in task_params]).mean(0)
        p.add_(delta, alpha=lr)
        moved.append(name)
    return moved


@torch.no_grad()
def merge_adam_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One Adam ``state_dict`` from the ones tasks adapted in parallel ended with (all from
    the same start): per parameter, the task-wise mean of every moment over the tasks holding
    a state for it, and the largest step count; ``param_groups`` of the first. Independent of
    the order the tasks finished in (they are given in task order)."""
    if not states:
        raise ValueError("merge_adam_states needs at least one state")
    keys = sorted({k for st in states for k in st["state"]})
    merged: dict[Any, dict[str, Any]] = {}
    for k in keys:
        have = [st["state"][k] for st in states if k in st["state"]]
        entry: dict[str, Any] = {}
        for name, first in have[0].items():
            vals = [h[name] for h in have]
            if name == "step":
                entry[name] = (torch.stack(vals).amax(0) if isinstance(first, torch.Tensor)
                               else max(vals))
            else:
                entry[name] = torch.stack(vals).mean(0)
        merged[k] = entry
    return {"state": merged, "param_groups": copy.deepcopy(list(states[0]["param_groups"]))}


@torch.no_grad()
def prune_alphas(alphas: Alphas, t_min: float, threshold: float) -> int:
    """Meta-model pruning: mask (for good) every op logit and input-pair logit whose weight at
    the final temperature ``t_min`` is below ``threshold``; keeps at least the best entry of
    each softmax. Returns the entries newly pruned."""
    old = alphas.temperature
    alphas.temperature = t_min
    newly = 0
    try:
        for g in alphas.groups:
            w = alphas.weights(g)
            keep = (w >= threshold) | (w == w.max(-1, keepdim=True).values)
            m = alphas.mask(g)
            newly += int((m & ~keep).sum())
            m &= keep
            if alphas.pairwise:
                pm, start = alphas.pair_mask(g), 0
                for p in alphas.pair_weights(g):
                    sl = slice(start, start + len(p))
                    k = (p >= threshold) | (p == p.max())
                    newly += int((pm[sl] & ~k).sum())
                    pm[sl] &= k
                    start += len(p)
    finally:
        alphas.temperature = old
    return newly


def discretize_pairwise(
    weights: Mapping[str, np.ndarray],
    pairs: Mapping[str, Sequence[np.ndarray]],
    node_pairs: Sequence[Sequence[tuple[int, int]]],
    ops: Sequence[str],
    nodes: int,
) -> Genotype:
    """Per node the argmax input pair, then the argmax op (never ``none``) on each of its two
    edges; concat = all nodes (§1.1, pairwise alphas)."""
    cells = {}
    allowed = np.array([o != "none" for o in ops])
    for g in ("normal", "reduce"):
        cell: list[tuple[str, int]] = []
        for i in range(nodes):
            a, b = node_pairs[i][int(np.argmax(pairs[g][i]))]
            for row in (a, b):
                w = np.where(allowed, weights[g][row], -np.inf)
                cell.append((ops[int(np.argmax(w))], row - edge_index(i, 0)))
        cells[g] = tuple(cell)
    concat = tuple(range(2, nodes + 2))
    return Genotype(cells["normal"], concat, cells["reduce"], concat)


def sparse_params(net: nn.Module, alphas: Alphas, t_min: float, threshold: float) -> int:
    """Parameters of the "sparsified" supernet: every weight outside the mixed ops, plus, per
    edge, the ops whose weight at ``t_min`` is at least ``threshold`` on edges of the pairs
    at least ``threshold`` (grouped ops count their per-edge share)."""
    old = alphas.temperature
    alphas.temperature = t_min
    try:
        keep_op = {g: (alphas.weights(g) >= threshold).cpu().numpy() for g in alphas.groups}
        keep_edge = {g: np.ones(len(keep_op[g]), bool) for g in alphas.groups}
        if alphas.pairwise:
            for g in alphas.groups:
                keep_edge[g][:] = False
                for pairs, p in zip(alphas.node_pairs, alphas.pair_weights(g)):
                    for (a, b), v in zip(pairs, p.tolist()):
                        if v >= threshold:
                            keep_edge[g][[a, b]] = True
    finally:
        alphas.temperature = old
    total = 0
    op_params: set[int] = set()
    for cell in getattr(net, "cells", []):
        g = "reduce" if getattr(cell, "reduction", False) else "normal"
        for fan in cell.fans:
            block = fan.block
            n_e = len(fan.rows_list)
            for k, name in enumerate(block.names):
                if name not in block.ops:
                    continue
                mod = block.ops[name]
                size = sum(p.numel() for p in mod.parameters())
                op_params.update(id(p) for p in mod.parameters())
                kept = sum(1 for r in fan.rows_list if keep_op[g][r, k] and keep_edge[g][r])
                total += size * kept // max(1, n_e)
    total += sum(p.numel() for p in net.parameters() if id(p) not in op_params)
    return int(total)


class Conv4(nn.Module):
    """The standard few-shot backbone (Vinyals et al.; Reptile): 4 x [conv3x3 (C), BN, ReLU,
    maxpool 2], a linear head. ``forward(x, alphas=None)`` so it runs where a supernet runs."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 32,
                 image_hw: int = 28) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, hw = in_channels, image_hw
        for _ in range(4):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels),
                       nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c, hw = channels, math.ceil(hw / 2)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * hw * hw, num_classes)

    def forward(self, x: torch.Tensor, alphas: Alphas | None = None) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return out


__all__ = ["Conv4", "discretize_pairwise", "merge_adam_states", "prune_alphas",
           "reptile_update", "sparse_params", "temperature"]
