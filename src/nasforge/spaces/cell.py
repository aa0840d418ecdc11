"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020), registered as ``nb201``.

A cell is a DAG of 4 nodes; every edge ``j <- i`` (``i < j``) carries one operation and node ``j``
is the sum of its incoming edges. The architecture's tokens are the 6 op names in NAS-Bench-201
edge order (the order of its arch strings ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``)::

    (node1 <- 0, node2 <- 0, node2 <- 1, node3 <- 0, node3 <- 1, node3 <- 2)

``ops`` defaults to the 5 NB201 ops in NB201 order (none, skip_connect, nor_conv_1x1,
nor_conv_3x3, avg_pool_3x3): 5^6 = 15,625 cells. A sub-list of ops gives a smaller space whose
architectures are still NB201 cells (``nb201_key`` maps them into the full table).

Network (``build``), as in NB201's ``TinyNetwork``: a 3x3 conv + BN stem with ``channels``
channels; ``stages`` stages of ``cells_per_stage`` copies of the cell, with a ResNet basic block
(stride 2, channels doubled) between stages; BN, ReLU, global average pooling and a linear head.
Ops: ``nor_conv_kxk`` = ReLU -> Conv(k, stride 1, same padding, no bias) -> BN; ``avg_pool_3x3``
= 3x3 average pooling, stride 1, padding 1, ``count_include_pad=False``; ``skip_connect`` =
identity; ``none`` = zeros. Deviation: flat inputs whose length is a square (e.g. 64 = 8x8) are
viewed as one-channel images; other non-image inputs are rejected.

The building blocks (:data:`CELL_OPS`, :func:`make_op`, :class:`ResNetBlock`,
:data:`EDGES`, :func:`conv_bn_stem`, :func:`stage_layers`, :func:`image_shape_of`) are public so
that one-shot strategies (DARTS) can build a supernet over exactly this space and token format
(the stem and the input-shape check serve the ``darts`` space's networks too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from nasforge import ops
from nasforge.exceptions import InvalidArchitecture
from nasforge.ops.cells import ReLUConvBN
from nasforge.spaces.base import SPACES, Architecture, JSONDict, SearchSpace, Token

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
"""The NAS-Bench-201 operations, in the benchmark's index order (table keys use these indices)."""

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""Cell edges as ``(to_node, from_node)``, in token order."""

NUM_NODES = 4


CELL_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "nor_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)
"""The ops a cell edge may use (stride 1, equal widths), built by the one op registry."""


def make_op(
    name: str, channels: int, *, affine: bool = True, track_running_stats: bool = True
) -> nn.Module:
    """Build one cell operation by name (raises :class:`InvalidArchitecture` on unknown names)."""
    if name not in CELL_OPS:
        raise InvalidArchitecture(f"unknown cell op {name!r}; allowed: {', '.join(CELL_OPS)}")
    return ops.make_op(name, channels, channels, 1, affine, track_running_stats)


class ResNetBlock(nn.Module):
    """NB201's reduction block: a stride-2 ResNet basic block that changes the channel count."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, True)
        self.shortcut: nn.Module
        if stride == 2:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, 1, bias=False),
            )
        elif c_in != c_out:
            self.shortcut = ReLUConvBN(c_in, c_out, 1, 1, True)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.shortcut(x) + self.conv_b(self.conv_a(x))
        return out


def conv_bn_stem(in_channels: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """The network stem: a 3x3 conv (no bias, padding 1) and BatchNorm (NB201 and DARTS)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    )


def stage_layers(
    channels: int, stages: int, cells_per_stage: int, make_cell: Callable[[int], nn.Module]
) -> tuple[list[nn.Module], int]:
    """NB201's macro skeleton: ``stages`` x ``cells_per_stage`` cells (``make_cell(width)``),
    a stride-2 :class:`ResNetBlock` doubling the width between two stages.

    Returns the layers in order and the final width.
    """
    layers: list[nn.Module] = []
    c = channels
    for s in range(stages):
        if s > 0:
            layers.append(ResNetBlock(c, 2 * c, 2))
            c *= 2
        layers += [make_cell(c) for _ in range(cells_per_stage)]
    return layers, c


class Cell(nn.Module):
    """One fixed NB201 cell: node ``j`` = sum over ``i < j`` of ``op_ij(node_i)``."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise InvalidArchitecture(f"a cell has {len(EDGES)} edges, got {len(ops)} ops")
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            total: torch.Tensor | None = None
            for k, (to, frm) in enumerate(EDGES):
                if to != j or self.ops[k] == "none":
                    continue
                out = self.edges[k](nodes[frm])
                total = out if total is None else total + out
            nodes.append(total if total is not None else x.mul(0.0))
        return nodes[-1]


class CellNetwork(nn.Module):
    """Stem, ``stages`` x (``cells_per_stage`` cells), reduction blocks, GAP and a linear head."""

    def __init__(
        self,
        cell_ops: Sequence[str],
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        cells_per_stage: int = 5,
        stages: int = 3,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = image_shape
        self.stem = conv_bn_stem(in_channels, channels)
        layers, c = stage_layers(
            channels, stages, cells_per_stage, lambda width: Cell(cell_ops, width)
        )
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        h = self.lastact(self.cells(self.stem(x)))
        out: torch.Tensor = self.classifier(self.pool(h).flatten(1))
        return out


def image_shape_of(input_shape: Sequence[int], space: str = "nb201") -> tuple[int, int, int]:
    """``(C, H, W)`` for an image input; a flat square input (e.g. 64) becomes ``(1, 8, 8)``.

    Other shapes raise :class:`InvalidArchitecture`, naming ``space`` and ``input_shape``.
    """
    if len(input_shape) == 3:
        return (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    if len(input_shape) == 1:
        side = math.isqrt(int(input_shape[0]))
        if side * side == int(input_shape[0]):
            return (1, side, side)
    raise InvalidArchitecture(
        f"{space} cells need image inputs (C, H, W) or a flat square length; got {input_shape}"
    )


# ------------------------------------------------------------------ space
class CellParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ops: list[str] = Field(default=list(NB201_OPS), min_length=1)
    channels: int = Field(default=16, ge=1, description="stem / first-stage channels (NB201: 16)")
    cells_per_stage: int = Field(default=5, ge=1, description="cells per stage (NB201: 5)")
    stages: int = Field(default=3, ge=1, description="stages; a reduction block between two")

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if o not in CELL_OPS]
        if bad:
            raise ValueError(f"unknown op {bad[0]!r}; allowed: {', '.join(CELL_OPS)}")
        if len(set(v)) != len(v):
            raise ValueError("ops must not repeat")
        return v


@SPACES.register("nb201")
class CellSpace(SearchSpace):
    """NAS-Bench-201 cells: one op per edge, 6 edges; tokens are op names in NB201 edge order.

    >>> space = CellSpace()
    >>> space.size()
    15625
    >>> arch = space.from_nb201_key("333133")
    >>> space.to_arch_str(arch)[:32]
    '|nor_conv_3x3~0|+|nor_conv_3x3~0'
    >>> space.nb201_key(arch)
    '333133'
    """

    name: ClassVar[str] = "nb201"
    Params: ClassVar[type[BaseModel]] = CellParams

    def __init__(
        self,
        *,
        ops: Sequence[str] = NB201_OPS,
        channels: int = 16,
        cells_per_stage: int = 5,
        stages: int = 3,
    ) -> None:
        p = CellParams(
            ops=list(ops), channels=channels, cells_per_stage=cells_per_stage, stages=stages
        )
        self.ops: tuple[str, ...] = tuple(p.ops)
        self.channels = p.channels
        self.cells_per_stage = p.cells_per_stage
        self.stages = p.stages

    def spec(self) -> JSONDict:
        return {
            "name": self.name,
            "ops": list(self.ops),
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
            "stages": self.stages,
        }

    # ------------------------------------------------------------- decisions
    def max_steps(self) -> int:
        return len(EDGES)

    def options(self, step: int) -> tuple[Token, ...]:
        return self.ops

    def decode(self, indices: Sequence[int]) -> Architecture:
        return Architecture(tuple(self.ops[int(i)] for i in indices))

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        if len(arch.tokens) != len(EDGES):
            raise InvalidArchitecture(
                f"{self.name}: {arch} has {len(arch.tokens)} tokens; expected {len(EDGES)} op "
                "names (edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)"
            )
        out = []
        for t, v in enumerate(arch.tokens):
            if not isinstance(v, str) or v not in self.ops:
                to, frm = EDGES[t]
                raise InvalidArchitecture(
                    f"{self.name}: op {v!r} on edge {to}<-{frm} (position {t}) of {arch} is not "
                    f"allowed; allowed: {', '.join(self.ops)}"
                )
            out.append(self.ops.index(v))
        return tuple(out)

    def size(self) -> int:
        return len(self.ops) ** len(EDGES)

    # ------------------------------------------------------------- helpers
    def edges(self, arch: Architecture) -> list[tuple[int, int, str]]:
        """``[(to, from, op), ...]`` in token order."""
        self.validate(arch)
        return [(to, frm, str(op)) for (to, frm), op in zip(EDGES, arch.tokens)]

    def to_arch_str(self, arch: Architecture) -> str:
        """NB201's arch string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        self.validate(arch)
        return arch_str(arch.tokens)

    def from_arch_str(self, s: str) -> Architecture:
        """Parse an NB201 arch string into an architecture of this space."""
        return self.validate(Architecture(parse_arch_str(s)))

    def nb201_key(self, arch: Architecture) -> str:
        """The 6-digit NAS-Bench-201 table key (indices into :data:`NB201_OPS`), e.g. '333133'."""
        self.validate(arch)
        return nb201_key(arch.tokens)

    def from_nb201_key(self, key: str) -> Architecture:
        return self.validate(Architecture(ops_from_nb201_key(key)))

    def canonical(self, arch: Architecture) -> Architecture:
        """A representative of ``arch``'s equivalence class (``arch`` itself without ``none``).

        Edges that cannot reach the output, and edges leaving a node that is always zero, are
        set to ``none`` (repeatedly); when edge 2<-1 is ``none``, nodes 1 and 2 are
        interchangeable and the smaller of the two orderings is kept. Equivalent cells compute
        the same function family, except that a conv edge from an always-zero node adds a
        learnable per-channel constant (BatchNorm's shift), which is ignored here, as in
        NAS-Bench-201's own isomorphism count. ``nasforge tabulate`` with ``dedup: true`` trains
        one representative per class.
        """
        self.validate(arch)
        if "none" not in self.ops:
            return arch
        return Architecture(canonical_ops([str(t) for t in arch.tokens]))

    def describe(self, arch: Architecture) -> str:
        return self.to_arch_str(arch)

    # ----------------------------------------------------------------- build
    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        self.validate(arch)
        shape = image_shape_of(tuple(input_shape))
        return CellNetwork(
            [str(t) for t in arch.tokens],
            in_channels=shape[0],
            num_classes=num_classes,
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
            stages=self.stages,
            image_shape=None if len(input_shape) == 3 else shape,
        )


# ------------------------------------------------------- free functions
def arch_str(ops: Sequence[Token]) -> str:
    """NB201 arch string of 6 op names in edge order."""
    if len(ops) != len(EDGES):
        raise InvalidArchitecture(f"a cell has {len(EDGES)} edges, got {len(ops)} ops")
    nodes = []
    for j in range(1, NUM_NODES):
        parts = [f"{ops[k]}~{frm}" for k, (to, frm) in enumerate(EDGES) if to == j]
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


def parse_arch_str(s: str) -> tuple[str, ...]:
    """Op names in edge order from an NB201 arch string."""
    nodes = s.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise InvalidArchitecture(
            f"NB201 arch string needs {NUM_NODES - 1} nodes joined by '+': {s!r}"
        )
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        parts = [p for p in node.strip("|").split("|") if p]
        if len(parts) != j:
            raise InvalidArchitecture(f"node {j} of {s!r} needs {j} inputs, got {len(parts)}")
        for i, part in enumerate(parts):
            op, _, frm = part.partition("~")
            if frm != str(i):
                raise InvalidArchitecture(f"bad edge {part!r} in {s!r}: expected '<op>~{i}'")
            ops.append(op)
    return tuple(ops)


def canonical_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """Prune dead edges to ``none`` and order interchangeable nodes (see ``canonical``)."""
    cur = list(ops)
    changed = True
    while changed:
        changed = False
        live = {0}
        for j in range(1, NUM_NODES):
            if any(to == j and frm in live and op != "none" for (to, frm), op in zip(EDGES, cur)):
                live.add(j)
        useful = {NUM_NODES - 1}
        for j in range(NUM_NODES - 2, -1, -1):
            if any(frm == j and to in useful and o != "none" for (to, frm), o in zip(EDGES, cur)):
                useful.add(j)
        for k, (to, frm) in enumerate(EDGES):
            if cur[k] != "none" and (frm not in live or to not in useful):
                cur[k] = "none"
                changed = True
    out = tuple(cur)
    if cur[2] == "none":
        swapped = (cur[1], cur[0], "none", cur[3], cur[5], cur[4])
        out = min(out, swapped)
    return out


def nb201_key(ops: Sequence[Token]) -> str:
    """6-digit table key: each op's index in :data:`NB201_OPS`."""
    try:
        return "".join(str(NB201_OPS.index(str(o))) for o in ops)
    except ValueError:
        bad = next(o for o in ops if o not in NB201_OPS)
        raise InvalidArchitecture(
            f"op {bad!r} is not a NAS-Bench-201 op; allowed: {', '.join(NB201_OPS)}"
        ) from None


def ops_from_nb201_key(key: str) -> tuple[str, ...]:
    if len(key) != len(EDGES) or any(c not in "01234" for c in key):
        raise InvalidArchitecture(f"NB201 key must be 6 digits in 0-4, got {key!r}")
    return tuple(NB201_OPS[int(c)] for c in key)
