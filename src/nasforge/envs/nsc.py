"""BlockQNN Network Structure Codes (NSC): rows, action sets, shapes, observation and build.

A network is a tuple of rows ``(index, type, kernel, pred1, pred2)``; index 0 is the input and
layers are numbered 1, 2, ... in order. Types: conv=1, maxpool=2, avgpool=3, identity=4, add=5,
concat=6, terminal=7 (ALGORITHMS.md §2.1).

Build rules: conv = ReLU, Conv2d(``filters``, k) and BatchNorm; pooling has window k and stride k;
``padding="valid"`` (the released code) or ``"same"`` (nasforge's default, quirk L4). ``add`` and
``concat`` zero-pad the smaller input to the larger spatial size (``add`` also zero-pads
channels). Rows never used as a predecessor are concatenated (zero-padded) into the output; a
terminal row ends the network. Head: flatten, Dense ``dense`` + ReLU, dropout, Dense(classes)
(the softmax lives in the cross-entropy loss).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from nasforge.exceptions import InvalidArchitecture

CONV, MAXPOOL, AVGPOOL, IDENTITY, ADD, CONCAT, TERMINAL = 1, 2, 3, 4, 5, 6, 7
TYPE_NAMES = {CONV: "conv", MAXPOOL: "maxpool", AVGPOOL: "avgpool", IDENTITY: "identity",
              ADD: "add", CONCAT: "concat", TERMINAL: "terminal"}
N_TYPES = 8  # one-hot slots 0..7 (0 = empty row)
N_KERNELS = 6  # kernel one-hot slots 0..5
MAX_LAYERS = 10

Row = tuple[int, int, int, int, int]
Padding = Literal["valid", "same"]
SpaceKind = Literal["chain", "multibranch"]


@dataclass(frozen=True)
class Action:
    """One action of an NSC space: append a layer, move a pointer, or terminate."""

    kind: Literal["layer", "pointer", "terminal"]
    type: int = 0
    kernel: int = 0
    pointer: int = 0  # 1 or 2, for pointer moves
    delta: int = 0  # +1 (up: further back) or -1 (down)

    @property
    def label(self) -> str:
        if self.kind == "pointer":
            return f"p{self.pointer}{'up' if self.delta > 0 else 'down'}"
        if self.kind == "terminal":
            return "terminal"
        return f"{TYPE_NAMES[self.type]}{self.kernel or ''}"


CHAIN_ACTIONS: tuple[Action, ...] = (
    Action("layer", CONV, 1), Action("layer", CONV, 3), Action("layer", CONV, 5),
    Action("layer", MAXPOOL, 2), Action("layer", MAXPOOL, 3),
    Action("layer", AVGPOOL, 2), Action("layer", AVGPOOL, 3),
    Action("terminal", TERMINAL),
)
"""The 8 actions of the chain space (``nasenv-chain.yml``)."""

MULTIBRANCH_ACTIONS: tuple[Action, ...] = CHAIN_ACTIONS + (
    Action("layer", ADD), Action("layer", CONCAT),
    Action("pointer", pointer=1, delta=1), Action("pointer", pointer=1, delta=-1),
    Action("pointer", pointer=2, delta=1), Action("pointer", pointer=2, delta=-1),
)
"""The 14 actions of the multi-branch space: the chain's, add, concat and four pointer moves."""


def actions_of(space: SpaceKind) -> tuple[Action, ...]:
    return CHAIN_ACTIONS if space == "chain" else MULTIBRANCH_ACTIONS


def nsc_hash(rows: Sequence[Row]) -> str:
    """sha1 of the rows sorted by index (so the hash never depends on insertion order)."""
    canon = sorted(tuple(int(v) for v in r) for r in rows)
    return hashlib.sha1(json.dumps(canon).encode()).hexdigest()


def layer_rows(rows: Sequence[Row]) -> list[Row]:
    """Rows up to (not including) a terminal row."""
    out = []
    for r in sorted(rows):
        if r[1] == TERMINAL:
            break
        out.append(r)
    return out


def _pool_out(h: int, k: int) -> int:
    return (h - k) // k + 1 if h >= k else 0


def shapes(
    rows: Sequence[Row],
    input_shape: tuple[int, ...],
    padding: Padding,
    filters: int | Sequence[int] = 32,
) -> dict[int, tuple[int, int, int]]:
    """``(C, H, W)`` of every row's output (0 = the input); raises
    :class:`InvalidArchitecture` for a bad predecessor or a spatial size below 1."""
    if len(input_shape) != 3:
        raise InvalidArchitecture(
            f"NSC networks take image inputs (C, H, W), got input shape {list(input_shape)}"
        )
    out: dict[int, tuple[int, int, int]] = {0: (int(input_shape[0]), int(input_shape[1]),
                                                int(input_shape[2]))}
    widths = [filters] if isinstance(filters, int) else list(filters)
    n_conv = 0
    for idx, typ, k, p1, p2 in layer_rows(rows):
        for p in (p1, p2) if typ in (ADD, CONCAT) else (p1,):
            if p not in out:
                raise InvalidArchitecture(f"row {idx}: predecessor {p} does not exist")
        c, h, w = out[p1]
        if typ == CONV:
            if padding == "valid":
                h, w = h - k + 1, w - k + 1
            c = widths[min(n_conv, len(widths) - 1)]
            n_conv += 1
        elif typ in (MAXPOOL, AVGPOOL):
            h, w = _pool_out(h, k), _pool_out(w, k)
        elif typ in (ADD, CONCAT):
            c2, h2, w2 = out[p2]
            h, w = max(h, h2), max(w, w2)
            c = max(c, c2) if typ == ADD else c + c2
        elif typ != IDENTITY:
            raise InvalidArchitecture(f"row {idx}: unknown layer type {typ}")
        if h < 1 or w < 1:
            raise InvalidArchitecture(
                f"row {idx} ({TYPE_NAMES[typ]} k={k}) shrinks the feature map below 1 pixel"
            )
        out[idx] = (c, h, w)
    return out


def unused(rows: Sequence[Row]) -> list[int]:
    """Indices of layer rows that no later row takes as a predecessor (0 if there are none)."""
    layers = layer_rows(rows)
    if not layers:
        return [0]
    used = set()
    for _, typ, _, p1, p2 in layers:
        used.add(p1)
        if typ in (ADD, CONCAT):
            used.add(p2)
    return [r[0] for r in layers if r[0] not in used]


def observation(rows: Sequence[Row], space: SpaceKind, max_layers: int = MAX_LAYERS) -> np.ndarray:
    """The ``max_layers x W`` observation: one row per layer (one-hot type 8, kernel 6, pred1
    ``max_layers+1``, plus pred2 for multi-branch), sorted by index, empty rows first.
    W = 25 (chain) or 36 (multi-branch) for 10 layers."""
    n_pred = max_layers + 1
    width = N_TYPES + N_KERNELS + n_pred * (2 if space == "multibranch" else 1)
    obs = np.zeros((max_layers, width), dtype=np.float32)
    body = sorted(rows)[-max_layers:]
    start = max_layers - len(body)
    for i, (_, typ, k, p1, p2) in enumerate(body):
        o = obs[start + i]
        o[typ] = 1.0
        o[N_TYPES + min(k, N_KERNELS - 1)] = 1.0
        o[N_TYPES + N_KERNELS + min(p1, n_pred - 1)] = 1.0
        if space == "multibranch":
            o[N_TYPES + N_KERNELS + n_pred + min(p2, n_pred - 1)] = 1.0
    return obs


def _pad_to(x: torch.Tensor, h: int, w: int, c: int | None = None) -> torch.Tensor:
    dh, dw = h - x.shape[2], w - x.shape[3]
    dc = 0 if c is None else c - x.shape[1]
    if dh or dw or dc:
        x = nn.functional.pad(x, (0, dw, 0, dh, 0, dc))
    return x


class NSCNet(nn.Module):
    """The network an NSC describes (see the module docstring for the rules)."""

    def __init__(
        self,
        rows: Sequence[Row],
        input_shape: tuple[int, ...],
        num_classes: int,
        padding: Padding = "same",
        filters: int | Sequence[int] = 32,
        dense: int = 1024,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        self.rows = layer_rows(rows)
        # the final protocol widens filters per conv layer (2^(4+i)); the search uses 32
        widths = [filters] * max(1, len(self.rows)) if isinstance(filters, int) else list(filters)
        self.padding = padding
        self.layers = nn.ModuleDict()
        self.out_rows = unused(self.rows)
        shp = shapes(self.rows, input_shape, padding, widths)
        conv_i = 0
        for row in self.rows:
            idx, typ, k, p1, _ = row
            if typ == CONV:
                f = widths[min(conv_i, len(widths) - 1)]
                conv_i += 1
                self.layers[str(idx)] = nn.Sequential(
                    nn.ReLU(),
                    nn.Conv2d(shp[p1][0], f, k, padding=0 if padding == "valid" else "same"),
                    nn.BatchNorm2d(f),
                )
            elif typ in (MAXPOOL, AVGPOOL):
                pool = nn.MaxPool2d if typ == MAXPOOL else nn.AvgPool2d
                self.layers[str(idx)] = pool(k, k, ceil_mode=False)
        self.shapes = shp
        h = max(shp[i][1] for i in self.out_rows)
        w = max(shp[i][2] for i in self.out_rows)
        c = sum(shp[i][0] for i in self.out_rows)
        self.out_hw = (h, w)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, dense), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's output: the unused rows, zero-padded and concatenated (before the head)."""
        outs: dict[int, torch.Tensor] = {0: x}
        for idx, typ, _, p1, p2 in self.rows:
            a = outs[p1]
            if typ in (ADD, CONCAT):
                b = outs[p2]
                h, w = max(a.shape[2], b.shape[2]), max(a.shape[3], b.shape[3])
                if typ == ADD:
                    c = max(a.shape[1], b.shape[1])
                    outs[idx] = _pad_to(a, h, w, c) + _pad_to(b, h, w, c)
                else:
                    outs[idx] = torch.cat([_pad_to(a, h, w), _pad_to(b, h, w)], 1)
            elif typ == IDENTITY:
                outs[idx] = a
            else:
                outs[idx] = self.layers[str(idx)](a)
        h, w = self.out_hw
        return torch.cat([_pad_to(outs[i], h, w) for i in self.out_rows], 1)
