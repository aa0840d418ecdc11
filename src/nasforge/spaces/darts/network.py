"""The stand-alone network of a DARTS genotype (DARTS' ``NetworkCIFAR`` without auxiliary head).

Stem conv3x3 (stride ``stem_stride``) + BN to ``stem_multiplier * C`` channels; ``layers``
cells, the reduction cells (at ``reductions``) halving the spatial size and multiplying the
width by ``channel_growth``; global average pooling and a linear head. A cell reads cells k-2
and k-1, preprocessed by ReLU-conv1x1-BN (FactorizedReduce when cell k-1 reduced), and node
``i`` sums its two ops. The output concatenates the ``concat`` nodes. ``drop_path_prob`` (set by
the trainer, 0 by default) drops whole non-identity op outputs per example during training, as
in DARTS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nasforge.ops.cells import FactorizedReduce, ReLUConvBN, make_op
from nasforge.spaces.cell import conv_bn_stem
from nasforge.spaces.darts.genotype import Genotype, Pair


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole examples with probability ``prob`` and rescale the rest (DARTS' DropPath)."""
    if prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep) * mask


class Cell(nn.Module):
    def __init__(
        self,
        pairs: Sequence[Pair],
        concat: Sequence[int],
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0: nn.Module = (
            FactorizedReduce(c_pp, c, True) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, True)
        )
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, True)
        self.inputs = [int(j) for _, j in pairs]
        self.concat = [int(k) for k in concat]
        self.ops = nn.ModuleList(
            make_op(op, c, c, 2 if reduction and j < 2 else 1, True) for op, j in pairs
        )
        self.identity = [isinstance(op, nn.Identity) for op in self.ops]
        self.drop_path_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(len(self.ops) // 2):
            total: torch.Tensor | None = None
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and not self.identity[k]:
                    h = drop_path(h, self.drop_path_prob)
                total = h if total is None else total + h
            assert total is not None
            states.append(total)
        return torch.cat([states[k] for k in self.concat], dim=1)


class DartsNetwork(nn.Module):
    """Stand-alone network of a genotype; see the module docstring."""

    def __init__(
        self,
        genotype: Genotype,
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        layers: int = 8,
        reductions: Sequence[int] | None = None,
        stem_multiplier: int = 3,
        channel_growth: int = 2,
        stem_stride: int = 1,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = image_shape

        def make_cell(
            c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
        ) -> tuple[nn.Module, int]:
            pairs, concat = (
                (genotype.reduce, genotype.reduce_concat)
                if reduction
                else (genotype.normal, genotype.normal_concat)
            )
            cell = Cell(pairs, concat, c_pp, c_p, c, reduction, reduction_prev)
            return cell, len(concat) * c

        self.stem, self.cells, c_p = stem_and_cells(
            in_channels, channels, layers, reductions, stem_multiplier, channel_growth,
            stem_stride, make_cell,
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            assert isinstance(cell, Cell)
            cell.drop_path_prob = float(prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        out: torch.Tensor = self.classifier(self.pool(s1).flatten(1))
        return out


CellFactory = Callable[[int, int, int, bool, bool], tuple[nn.Module, int]]
"""``(c_pp, c_p, c, reduction, reduction_prev) -> (cell, the cell's output channels)``."""


def stem_and_cells(
    in_channels: int,
    channels: int,
    layers: int,
    reductions: Sequence[int] | None,
    stem_multiplier: int,
    channel_growth: int,
    stem_stride: int,
    make_cell: CellFactory,
) -> tuple[nn.Sequential, nn.ModuleList, int]:
    """DARTS' macro skeleton (stand-alone network and supernet alike): the stem (conv3x3 + BN
    to ``stem_multiplier * channels``), then ``layers`` cells, cell k reading cells k-2 and k-1;
    the reduction cells (``reductions``, default :func:`default_reductions`) multiply the width
    by ``channel_growth``. Returns the stem, the cells and the last cell's output channels."""
    reds = set(default_reductions(layers) if reductions is None else reductions)
    c_stem = stem_multiplier * channels
    stem = conv_bn_stem(in_channels, c_stem, stem_stride)
    c_pp, c_p, c = c_stem, c_stem, channels
    cells = nn.ModuleList()
    reduction_prev = False
    for i in range(layers):
        reduction = i in reds
        if reduction:
            c *= channel_growth
        cell, c_out = make_cell(c_pp, c_p, c, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        c_pp, c_p = c_p, c_out
    return stem, cells, c_p


def default_reductions(layers: int) -> list[int]:
    """DARTS' reduction positions: cells ``layers // 3`` and ``2 * layers // 3`` (deduplicated)."""
    if layers < 3:
        return [layers - 1] if layers >= 2 else []
    return sorted({layers // 3, 2 * layers // 3})
