"""Several copies of one operation applied to the same input, computed as one grouped op.

In a DARTS cell every state feeds several edges (up to ``nodes``), and each edge runs every
candidate op on that same state. On CPU the cost of such small convolutions is dominated by the
per-call overhead, so the supernet computes the ``n`` edges leaving one state together: a chain
op (ReLU / Conv2d / BatchNorm2d / pooling / identity layers applied in order) becomes the same
chain with ``n`` times the channels, where the first convolution reads the shared input once
(a full conv with ``n * C_out`` outputs, or a repeat followed by a grouped depthwise conv) and
later convolutions are grouped by copy. Parameter-free ops stay shared (computed once).
The result is identical to ``n`` independent ops (``tests/strategies/oneshot/darts`` checks it via
:meth:`MultiOp.single`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.ops import cells
from nasforge.ops.cells import FactorizedReduce

_ELEMENTWISE = (nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.Identity)


class Repeat(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(1, self.n, 1, 1)


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def is_chain(module: nn.Module) -> bool:
    """Whether ``module`` is a known sequential chain of supported layers."""
    chains: tuple[type[nn.Module], ...] = (
        cells.ReLUConvBN, cells.DilConv, cells.SepConv, cells.FacConv, cells.SharpSepConv,
        cells.Pool, nn.Sequential, *_ELEMENTWISE,
    )
    if not isinstance(module, chains):
        return False
    if isinstance(module, nn.Sequential) and not all(is_chain(m) for m in module):
        return False
    return all(isinstance(m, (*_ELEMENTWISE, nn.Conv2d, nn.BatchNorm2d)) for m in _leaves(module))


class MultiOp(nn.Module):
    """``n`` copies of an op on one input; ``forward -> (B, n or 1, C, H, W)``."""

    n: int

    def single(self, e: int) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError


class MultiChain(MultiOp):
    """``n`` copies of a chain op (see the module docstring); output ``(B, n|1, C, H, W)``."""

    def __init__(self, single: nn.Module, n: int) -> None:
        super().__init__()
        self.n = n
        self.template = [copy.deepcopy(single)]  # a plain list: not a submodule
        layers: list[nn.Module] = []
        shared = True
        for m in _leaves(single):
            if isinstance(m, nn.Conv2d):
                if shared and m.groups > 1:
                    layers.append(Repeat(n))
                    shared = False
                groups = 1 if shared else n * m.groups
                c_in = m.in_channels if shared else n * m.in_channels
                layers.append(nn.Conv2d(
                    c_in, n * m.out_channels, m.kernel_size, m.stride, m.padding,  # type: ignore[arg-type]
                    m.dilation, groups=groups, bias=m.bias is not None,  # type: ignore[arg-type]
                ))
                shared = False
            elif isinstance(m, nn.BatchNorm2d):
                if shared and m.affine:
                    layers.append(Repeat(n))
                    shared = False
                layers.append(nn.BatchNorm2d(
                    m.num_features * (1 if shared else n), eps=m.eps, momentum=m.momentum,
                    affine=m.affine, track_running_stats=m.track_running_stats,
                ))
            elif isinstance(m, _ELEMENTWISE):
                layers.append(copy.deepcopy(m))
            else:
                raise TypeError(f"not a chain layer: {type(m).__name__}")
        self.body = nn.Sequential(*layers)
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.body(x)
        k = 1 if self.shared else self.n
        return y.view(y.shape[0], k, y.shape[1] // k, y.shape[2], y.shape[3])

    def single(self, e: int) -> nn.Module:
        """Copy ``e`` as a stand-alone op (weights and BN statistics copied)."""
        out = copy.deepcopy(self.template[0])
        mine = [m for m in self.body if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        theirs = [m for m in _leaves(out) if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        with torch.no_grad():
            for a, b in zip(mine, theirs):
                c = b.out_channels if isinstance(b, nn.Conv2d) else b.num_features
                width = a.out_channels if isinstance(a, nn.Conv2d) else a.num_features
                rows = slice(0, c) if width == c else slice(e * c, (e + 1) * c)
                for name in ("weight", "bias", "running_mean", "running_var"):
                    src, dst = getattr(a, name, None), getattr(b, name, None)
                    if src is not None and dst is not None:
                        dst.copy_(src[rows])
        return out


class MultiFactorizedReduce(MultiOp):
    """``n`` FactorizedReduce copies (ReLU shared, two grouped strided 1x1 convs, BN)."""

    def __init__(self, c_in: int, c_out: int, n: int, affine: bool) -> None:
        super().__init__()
        self.n, self.c1, self.c2 = n, c_out // 2, c_out - c_out // 2
        self.c_in, self.c_out, self.affine = c_in, c_out, affine
        self.conv_1 = nn.Conv2d(c_in, n * self.c1, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, n * self.c2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(n * c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        a, b = self.conv_1(x), self.conv_2(shifted)
        bsz, _, h, w = a.shape
        y = torch.cat(
            [a.reshape(bsz, self.n, self.c1, h, w), b.reshape(bsz, self.n, self.c2, h, w)], dim=2
        )
        y = self.bn(y.reshape(bsz, self.n * self.c_out, h, w))
        return y.view(bsz, self.n, self.c_out, h, w)

    def single(self, e: int) -> nn.Module:
        out = FactorizedReduce(self.c_in, self.c_out, self.affine)
        with torch.no_grad():
            out.conv_1.weight.copy_(self.conv_1.weight[e * self.c1 : (e + 1) * self.c1])
            out.conv_2.weight.copy_(self.conv_2.weight[e * self.c2 : (e + 1) * self.c2])
            rows = slice(e * self.c_out, (e + 1) * self.c_out)
            for name in ("weight", "bias", "running_mean", "running_var"):
                src, dst = getattr(self.bn, name, None), getattr(out.bn, name, None)
                if src is not None and dst is not None:
                    dst.copy_(src[rows])
        return out


class MultiFallback(MultiOp):
    """Any other op: ``n`` independent modules, outputs stacked."""

    def __init__(self, singles: list[nn.Module]) -> None:
        super().__init__()
        self.n = len(singles)
        self.ops = nn.ModuleList(singles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([op(x) for op in self.ops], dim=1)

    def single(self, e: int) -> nn.Module:
        return copy.deepcopy(self.ops[e])


def make_multi(build: object, n: int) -> MultiOp:
    """``build()`` makes one op; returns its ``n``-copy version."""
    assert callable(build)
    single = build()
    if isinstance(single, FactorizedReduce):
        conv = single.conv_1
        return MultiFactorizedReduce(conv.in_channels, single.bn.num_features, n,
                                     single.bn.affine)
    if is_chain(single):
        return MultiChain(single, n)
    return MultiFallback([single, *(build() for _ in range(n - 1))])
