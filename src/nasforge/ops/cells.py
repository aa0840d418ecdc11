"""Cell operations by name, with one factory signature
``(c_in, c_out, stride, affine, track_running_stats)``: the one op registry of nasforge.

The DARTS primitives (Liu et al., ICLR 2019, arXiv:1806.09055), the few-shot set of seed 000
(MetaNAS / meta-fsl-nas: ``conv_1x5_5x1`` and the single-block ``conv_3x3``), the SharpDARTS set
(Hundt et al., arXiv:1903.09900: ``SharpSepConv`` blocks, ``flood`` = 4x wider middle) and the
NAS-Bench-201 convolutions. :data:`OP_SETS` names the standard primitive lists.

Every op accepts ``c_in != c_out`` (a 1x1 projection is added where the op itself cannot change
the channel count) and ``stride`` 1 or 2; at stride 2 every op maps ``H`` to ``ceil(H / 2)``, so
odd feature maps (MNIST's 7x7) work too. ``affine`` switches the BatchNorm scale and shift (off
in search supernets, on in stand-alone networks); ``track_running_stats`` (default on) whether
BatchNorm keeps running statistics (NAS-Bench-201's search supernets switch it off).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.registry import Registry

OpFactory = Callable[[int, int, int, bool, bool], nn.Module]
OPS: Registry[OpFactory] = Registry("op")
"""Operations by name: ``OPS.get(name)(c_in, c_out, stride, affine, track) -> nn.Module``."""


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (``c_out`` channels, strided)."""

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        if x.shape[1] == self.c_out:
            return x.mul(0.0)
        return x.new_zeros(x.shape[0], self.c_out, x.shape[2], x.shape[3])


class SeqOp(nn.Module):
    """A block whose whole computation is ``self.op`` (an ``nn.Sequential``)."""

    op: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.op(x)
        return out


class ReLUConvBN(SeqOp):
    """ReLU -> Conv2d (no bias, 'same' padding) -> BatchNorm."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool, dilation: int = 1,
        track: bool = True,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )


class DilConv(SeqOp):
    """One ReLU -> depthwise (dilated) conv -> pointwise conv -> BatchNorm block."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, affine: bool,
        track: bool = True,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, pad, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )


class SepConv(SeqOp):
    """DARTS separable conv: two :class:`DilConv` blocks (dilation 1), the first one strided."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track: bool = True
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            DilConv(c_in, c_in, kernel, stride, 1, affine, track),
            DilConv(c_in, c_out, kernel, 1, 1, affine, track),
        )


class FacConv(SeqOp):
    """Factorised ``1xk`` then ``kx1`` convolution (seed 000's ``conv_1x5_5x1``)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track: bool = True
    ) -> None:
        super().__init__()
        pad = (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, (1, kernel), (1, stride), (0, pad), bias=False),
            nn.Conv2d(c_in, c_out, (kernel, 1), (stride, 1), (pad, 0), bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )


class SharpSepConv(SeqOp):
    """SharpDARTS block: ReLU, depthwise, 1x1 to ``mid``, BN, ReLU, depthwise, 1x1, BN."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, mid: int,
        affine: bool, track: bool = True,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, pad, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid, affine=affine, track_running_stats=track),
            nn.ReLU(inplace=False),
            nn.Conv2d(mid, mid, kernel, 1, pad, dilation=dilation, groups=mid, bias=False),
            nn.Conv2d(mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two shifted strided 1x1 convs (concatenated), then BN.

    The shifted path pads odd inputs first, so both halves have ``ceil(H / 2)`` rows.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool, track: bool = True) -> None:
        super().__init__()
        if c_out < 2:
            raise ValueError(f"FactorizedReduce needs c_out >= 2, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        out: torch.Tensor = self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
        return out


class Pool(nn.Module):
    """3x3 max or average pooling, followed by a 1x1 projection when ``c_in != c_out``."""

    def __init__(
        self, kind: str, c_in: int, c_out: int, stride: int, affine: bool, track: bool = True
    ) -> None:
        super().__init__()
        self.pool: nn.Module = (
            nn.AvgPool2d(3, stride, 1, count_include_pad=False)
            if kind == "avg"
            else nn.MaxPool2d(3, stride, 1)
        )
        self.proj: nn.Module = (
            nn.Identity() if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, affine, track=track)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(self.pool(x))
        return out


def skip_op(c_in: int, c_out: int, stride: int, affine: bool, track: bool = True) -> nn.Module:
    """Identity; FactorizedReduce at stride 2; a 1x1 ReLU-conv-BN if only the width changes."""
    if stride == 2:
        return FactorizedReduce(c_in, c_out, affine, track)
    if c_in != c_out:
        return ReLUConvBN(c_in, c_out, 1, 1, affine, track=track)
    return nn.Identity()


def _reg(name: str, factory: OpFactory) -> None:
    OPS.add(name, factory)


# DARTS primitives (quark0/darts genotypes.PRIMITIVES)
_reg("none", lambda ci, co, s, a, t: Zero(co, s))
_reg("max_pool_3x3", lambda ci, co, s, a, t: Pool("max", ci, co, s, a, t))
_reg("avg_pool_3x3", lambda ci, co, s, a, t: Pool("avg", ci, co, s, a, t))
_reg("skip_connect", skip_op)
_reg("sep_conv_3x3", lambda ci, co, s, a, t: SepConv(ci, co, 3, s, a, t))
_reg("sep_conv_5x5", lambda ci, co, s, a, t: SepConv(ci, co, 5, s, a, t))
_reg("dil_conv_3x3", lambda ci, co, s, a, t: DilConv(ci, co, 3, s, 2, a, t))
_reg("dil_conv_5x5", lambda ci, co, s, a, t: DilConv(ci, co, 5, s, 2, a, t))
# seed 000's few-shot additions
_reg("conv_1x5_5x1", lambda ci, co, s, a, t: FacConv(ci, co, 5, s, a, t))
_reg("conv_3x3", lambda ci, co, s, a, t: DilConv(ci, co, 3, s, 1, a, t))
# SharpDARTS
_reg("sharp_sep_conv_3x3", lambda ci, co, s, a, t: SharpSepConv(ci, co, 3, s, 1, co, a, t))
_reg("flood_conv_3x3", lambda ci, co, s, a, t: SharpSepConv(ci, co, 3, s, 1, 4 * co, a, t))
_reg("sharp_dil_conv_3x3", lambda ci, co, s, a, t: SharpSepConv(ci, co, 3, s, 2, co, a, t))
_reg("dil_flood_conv_3x3", lambda ci, co, s, a, t: SharpSepConv(ci, co, 3, s, 2, 4 * co, a, t))
# NAS-Bench-201 convolutions
_reg("nor_conv_1x1", lambda ci, co, s, a, t: ReLUConvBN(ci, co, 1, s, a, track=t))
_reg("nor_conv_3x3", lambda ci, co, s, a, t: ReLUConvBN(ci, co, 3, s, a, track=t))
_reg("nor_conv_5x5", lambda ci, co, s, a, t: ReLUConvBN(ci, co, 5, s, a, track=t))

OP_SETS: dict[str, tuple[str, ...]] = {
    "darts": (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    ),
    "darts_small": (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3",
    ),
    "fewshot": (
        "max_pool_3x3", "avg_pool_3x3", "skip_connect", "conv_1x5_5x1", "conv_3x3",
        "sep_conv_3x3", "dil_conv_3x3",
    ),
    "sharp": (
        "avg_pool_3x3", "max_pool_3x3", "skip_connect", "sharp_sep_conv_3x3", "flood_conv_3x3",
        "sharp_dil_conv_3x3", "dil_flood_conv_3x3",
    ),
    "nb201": ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
}
"""Named primitive lists: DARTS, a cheaper DARTS subset, seed 000's few-shot set, SharpDARTS,
NAS-Bench-201. Order matters (alphas columns follow it)."""

PARAMETER_FREE = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})
"""Ops without weights at stride 1 and equal widths (DARTS search adds BN after the pools)."""


def make_op(
    name: str, c_in: int, c_out: int, stride: int, affine: bool, track: bool = True
) -> nn.Module:
    """``OPS.get(name)(c_in, c_out, stride, affine, track)``; unknown names raise
    ``UnknownName``."""
    return OPS.get(name)(c_in, c_out, stride, affine, track)
