"""A NAS-Bench-201-style single-cell supernet over the ``nb201`` cell space (Dong & Yang, 2020).

One set of alphas (6 edges x the space's ops) is shared by every cell of NB201's macro skeleton,
built with the space's own blocks (``nasforge.spaces.cell``: stem, ``stages`` x
``cells_per_stage`` cells, ResNet reduction blocks, BN-ReLU, GAP, linear). Node ``j`` sums the
mixed ops of its edges ``j <- i``; the cell output is node 3. Ops are built with
``affine=False`` as in NB201's DARTS search. Discretisation: per edge the strongest op,
``none`` excluded unless ``allow_none`` (NB201's own DARTS baseline keeps it), giving the 6 op
tokens of the ``nb201`` space, whose ``build`` is the stand-alone network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasforge.spaces.base import Architecture
from nasforge.spaces.cell import (
    EDGES,
    NUM_NODES,
    CellSpace,
    conv_bn_stem,
    image_shape_of,
    make_op,
    stage_layers,
)
from nasforge.spaces.darts.supernet import (
    Alphas,
    Fan,
    ForwardState,
    MixedOp,
    SupernetOptions,
    SupernetSpecBase,
    run_fans,
)

NODE_EDGES: list[list[int]] = [
    [k for k, (to, _) in enumerate(EDGES) if to == j] for j in range(1, NUM_NODES)
]


def nb201_op_builder(name: str, c: int, stride: int) -> nn.Module:
    return make_op(name, c, affine=False, track_running_stats=True)


class NB201SearchCell(nn.Module):
    """Mixed NB201 cell; the edges leaving a node are computed together (``MixedOp``)."""

    def __init__(
        self,
        ops: Sequence[str],
        channels: int,
        *,
        pc_k: int = 1,
        aux_skip: bool = False,
        batch_edges: bool = True,
    ) -> None:
        super().__init__()
        fans = []
        for src in range(NUM_NODES - 1):
            all_rows = [k for k, (_, frm) in enumerate(EDGES) if frm == src]
            for rows in [all_rows] if batch_edges else [[r] for r in all_rows]:
                targets = [EDGES[k][0] - 1 for k in rows]  # node j is intermediate node j - 1
                block = MixedOp(ops, nb201_op_builder, channels, 1, n_edges=len(rows),
                                pc_k=pc_k, aux_skip=aux_skip)
                fans.append(Fan(rows, targets, block, src))
        self.fans = nn.ModuleList(fans)

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        edge_w: torch.Tensor | None,
        active: list[list[int]],
        state: ForwardState,
    ) -> torch.Tensor:
        states = run_fans(list(self.fans), [x], NUM_NODES - 1, w, edge_w, active, state)  # type: ignore[arg-type]
        return states[-1]


class NB201Supernet(nn.Module):
    """NB201's TinyNetwork with mixed cells; ``forward(x, alphas)``."""

    def __init__(
        self,
        ops: Sequence[str],
        *,
        in_channels: int,
        num_classes: int,
        channels: int,
        cells_per_stage: int,
        stages: int,
        pc_k: int = 1,
        aux_skip: bool = False,
        batch_edges: bool = True,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.state = ForwardState()
        self.image_shape = image_shape
        self.stem = conv_bn_stem(in_channels, channels)
        layers, c = stage_layers(
            channels, stages, cells_per_stage,
            lambda width: NB201SearchCell(
                ops, width, pc_k=pc_k, aux_skip=aux_skip, batch_edges=batch_edges
            ),
        )
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, alphas: Alphas) -> torch.Tensor:
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        w = alphas.weights("cell", self.state.weighting)
        e = alphas.edge_weights("cell")
        act = alphas.active("cell")
        h = self.stem(x)
        for layer in self.cells:
            h = layer(h, w, e, act, self.state) if isinstance(layer, NB201SearchCell) else layer(h)
        out: torch.Tensor = self.classifier(self.pool(self.lastact(h)).flatten(1))
        return out


class NB201SupernetSpec(SupernetSpecBase):
    """One-shot view of an ``nb201`` space (same interface as ``DartsSupernetSpec``)."""

    groups = ("cell",)
    skip_group = "cell"

    def __init__(self, space: object, opts: SupernetOptions, *, allow_none: bool = False) -> None:
        assert isinstance(space, CellSpace)
        self.space = space
        self.opts = opts
        self.ops = space.ops
        self.allow_none = allow_none
        self.num_edges = len(EDGES)
        self.node_edges = NODE_EDGES

    def new_supernet(
        self, input_shape: tuple[int, ...], num_classes: int, *, layers: int | None = None
    ) -> NB201Supernet:
        """``layers`` (P-DARTS depth) overrides ``cells_per_stage``."""
        shape = image_shape_of(tuple(input_shape))
        return NB201Supernet(
            self.ops, in_channels=shape[0], num_classes=num_classes,
            channels=self.opts.channels,
            cells_per_stage=self.opts.layers if layers is None else layers,
            stages=self.space.stages, pc_k=self.opts.pc_k, aux_skip=self.opts.aux_skip,
            batch_edges=self.opts.batch_edges,
            image_shape=None if len(input_shape) == 3 else shape,
        )

    def discretize_weights(
        self, weights: dict[str, np.ndarray], edges: dict[str, np.ndarray | None]
    ) -> Architecture:
        w = np.asarray(weights["cell"], dtype=np.float64)
        allowed = np.array([self.allow_none or o != "none" for o in self.ops])
        masked = np.where(allowed[None, :] & (w > 0), w, -np.inf)
        tokens = []
        for row, raw in zip(masked, w):
            k = int(np.argmax(row)) if np.isfinite(row).any() else int(np.argmax(raw))
            tokens.append(self.ops[k])
        return Architecture(tuple(tokens))

    def chosen_edges(self, arch: Architecture, group: str) -> list[tuple[int, str]]:
        return [(k, str(op)) for k, op in enumerate(arch.tokens)]

    def skip_count(self, arch: Architecture) -> int:
        return sum(1 for t in arch.tokens if t == "skip_connect")
