"""GAN gene spaces for PBT-NAS (seed 004, ALGORITHMS.md 5.1), after AdversarialNAS, at CPU size.

An architecture is a flat tuple of gene values; every gene owns the parameter-name prefixes of
its layers (quirk P2: exact match, ``name == prefix`` or ``name.startswith(prefix + ".")``), so
PBT-NAS moves a gene's layers (generator, discriminator and the generator's EMA copy) between
members. ``build`` returns a :class:`GAN` module holding ``gen``, ``dis`` and ``gen_ema`` (the
exponential moving average of ``gen``, which scores and samples); ``GAN(z)`` samples images from
the EMA generator.

* ``gan_hard`` ("GanHard"): the generator genes, the projection genes and the discriminator genes.
* ``gan`` (the easy "Gan" space): the generator's cell genes only; the projection is fixed (all of
  ``z`` to the bottom resolution) and the discriminator fixed (every edge conv3x3, downsampling by
  average pooling).

Generator (``num_cells = log2(resolution / bottom)`` cells, 3 at the defaults): cell ``i`` has
genes ``up0``, ``up1`` in {nearest, bilinear, deconv} (deconv = ConvTranspose 4x4 stride 2, owns
its weights) and edges ``c0..c4`` in {none, skip, conv1x1, conv3x3, conv5x5, dil_conv3x3,
dil_conv5x5} (ReLU -> conv, width ``channels``). Fixed wiring::

    u0, u1 = up0(x), up1(x)
    a   = c0(u0) + c1(u1)
    b   = c2(a)  + c3(u0)
    out = c4(a)  + b        (+ the upsampled output of the previous cell: a cross-scale skip)

A node whose every incoming edge is ``none`` falls back to its first input (so a cell always
passes a signal). Output: BN -> ReLU -> conv3x3 -> tanh to the image channels.

Projection genes (11, GanHard only): three linear projections of ``z`` to ``channels x bottom x
bottom``, each added at the input of one cell (upsampled to its resolution). ``proj{k}.input`` in
{all, third} (all of ``z`` or the k-th third of it), ``proj{k}.to`` in {cell0, ...} (where it is
added), ``proj1.on`` / ``proj2.on`` in {on, off} (projection 0 is always on), ``proj1.up`` /
``proj2.up`` in {nearest, bilinear} (projection 0 uses nearest), and ``proj.dropout`` in {0, 0.1,
0.2} on the projections' output. Deviation: the seed's "target size" options (bottom / previous /
target width, 6 options) become the choice of the cell the projection enters.

Discriminator (GanHard: 4 blocks x 10 genes): a fixed stem (spectral-norm conv3x3 from the image
channels to ``df_channels``), then blocks of width ``df_channels``. Block ``j`` genes: ``c0..c6``
(block 0's ``c0..c2`` from 5 activation-free convolutions, the rest from the 7 generator edge ops
with ReLU before the conv), ``down`` in {on, off} and ``down0`` / ``down1`` in {in_avg, in_max,
avg, max, conv3x3, conv5x5, dil_conv3x3, dil_conv5x5}. Wiring::

    n1 = c0(x);  n2 = c1(x) + c2(n1)
    branch1 = down0(c3(n1) + c4(n2));  branch2 = down1(c5(x) + c6(n2));  out = branch1 + branch2

``down0``/``down1`` act only when ``down`` is on and the map is at least 2 wide (avg / max pool
2x2; a stride-2 conv; ``in_avg`` / ``in_max`` pool the branch and add the pooled block input).
Quirk P1: the released block returns branch 1 only; ``d_branches: sum`` (default) sums both,
``branch1`` reproduces the release. Head: ReLU -> spatial sum -> spectral-norm linear -> 1 logit.
Every discriminator conv and linear is spectral-normalised (``torch.nn.utils.parametrizations``:
``weight`` is computed from ``parametrizations.weight.original`` and the power-iteration vectors
``._u`` / ``._v``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.spaces.base import SPACES, Architecture, JSONDict
from nasforge.spaces.genes import Gene, GeneSpace

EDGE_OPS: tuple[str, ...] = (
    "none", "skip", "conv1x1", "conv3x3", "conv5x5", "dil_conv3x3", "dil_conv5x5",
)
FIRST_D_OPS: tuple[str, ...] = ("conv1x1", "conv3x3", "conv5x5", "dil_conv3x3", "dil_conv5x5")
UP_OPS: tuple[str, ...] = ("nearest", "bilinear", "deconv")
DOWN_OPS: tuple[str, ...] = (
    "in_avg", "in_max", "avg", "max", "conv3x3", "conv5x5", "dil_conv3x3", "dil_conv5x5",
)
_CONV: dict[str, tuple[int, int]] = {  # name -> (kernel, dilation)
    "conv1x1": (1, 1), "conv3x3": (3, 1), "conv5x5": (5, 1),
    "dil_conv3x3": (3, 2), "dil_conv5x5": (5, 2),
}
SN_VECTORS = ("._u", "._v")
"""Name endings of the spectral-norm power-iteration vectors (never averaged or perturbed)."""


def is_sn_vector(name: str) -> bool:
    return name.endswith(SN_VECTORS)


def _conv(c: int, op: str, stride: int = 1, sn: bool = False) -> nn.Module:
    k, d = _CONV[op]
    conv = nn.Conv2d(c, c, k, stride=stride, padding=d * (k - 1) // 2, dilation=d)
    return spectral_norm(conv) if sn else conv


class Edge(nn.Module):
    """One edge: ``none`` (``op is None``), ``skip`` or (ReLU ->) conv."""

    def __init__(self, op: str, c: int, *, sn: bool, relu: bool = True) -> None:
        super().__init__()
        self.kind = op
        self.relu = relu
        self.op: nn.Module | None = None if op in ("none", "skip") else _conv(c, op, sn=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op is None:
            return x
        return self.op(torch.relu(x) if self.relu else x)


def _node(edges: Sequence[tuple[Edge, torch.Tensor]]) -> torch.Tensor:
    """Sum of the non-``none`` edges; the first input when every edge is ``none``."""
    live = [e(x) for e, x in edges if e.kind != "none"]
    if not live:
        return edges[0][1]
    out = live[0]
    for t in live[1:]:
        out = out + t
    return out


class Up(nn.Module):
    def __init__(self, op: str, c: int) -> None:
        super().__init__()
        self.mode = op
        self.deconv = nn.ConvTranspose2d(c, c, 4, 2, 1) if op == "deconv" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deconv is not None:
            return self.deconv(x)
        if self.mode == "bilinear":
            return nn.functional.interpolate(x, scale_factor=2, mode="bilinear",
                                             align_corners=False)
        return nn.functional.interpolate(x, scale_factor=2, mode="nearest")


class GenCell(nn.Module):
    def __init__(self, ups: Sequence[str], edges: Sequence[str], c: int) -> None:
        super().__init__()
        self.up0, self.up1 = Up(ups[0], c), Up(ups[1], c)
        self.c0, self.c1, self.c2, self.c3, self.c4 = (Edge(o, c, sn=False) for o in edges)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        u0, u1 = self.up0(x), self.up1(x)
        a = _node([(self.c0, u0), (self.c1, u1)])
        b = _node([(self.c2, a), (self.c3, u0)])
        out = _node([(self.c4, a)]) + b
        if prev is not None:  # cross-scale skip from the previous cell
            out = out + nn.functional.interpolate(prev, size=out.shape[-2:], mode="nearest")
        return out


class Projection(nn.Module):
    def __init__(self, z_in: int, c: int, bottom: int) -> None:
        super().__init__()
        self.c, self.bottom = c, bottom
        self.fc = nn.Linear(z_in, c * bottom * bottom)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z).view(-1, self.c, self.bottom, self.bottom)


class Generator(nn.Module):
    def __init__(
        self, cells: Sequence[tuple[Sequence[str], Sequence[str]]],
        projs: Sequence[dict[str, Any]], dropout: float, *, latent: int, c: int, bottom: int,
        img_channels: int,
    ) -> None:
        super().__init__()
        self.latent, self.bottom = latent, bottom
        self.cells = nn.ModuleList(GenCell(u, e, c) for u, e in cells)
        self.proj_cfg = [dict(p) for p in projs]
        self.projs = nn.ModuleList(
            Projection(latent if p["input"] == "all" else latent // 3, c, bottom) for p in projs
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, img_channels, 3,
                                                                          padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        third = self.latent // 3
        inject: dict[int, list[tuple[torch.Tensor, str]]] = {}
        for k, (cfg, proj) in enumerate(zip(self.proj_cfg, self.projs)):
            if not cfg["on"]:
                continue
            zin = z if cfg["input"] == "all" else z[:, k * third:(k + 1) * third]
            inject.setdefault(int(cfg["to"]), []).append(
                (self.dropout(proj(zin)), str(cfg["up"])))
        x: torch.Tensor | None = None
        prev: torch.Tensor | None = None
        size = self.bottom
        for i, cell in enumerate(self.cells):
            for h, mode in inject.get(i, []):
                if h.shape[-1] != size:
                    kw = {"align_corners": False} if mode == "bilinear" else {}
                    h = nn.functional.interpolate(h, size=(size, size), mode=mode, **kw)
                x = h if x is None else x + h
            assert x is not None  # projection 0 enters cell 0 or earlier than any use
            y = cell(x, prev)
            prev, x, size = x, y, size * 2
        assert x is not None
        return self.out(x)


class DisBlock(nn.Module):
    def __init__(self, ops: Sequence[str], down: str, downs: Sequence[str], c: int,
                 first: bool, p1: str) -> None:
        super().__init__()
        relu = [not (first and i < 3) for i in range(7)]
        self.c0, self.c1, self.c2, self.c3, self.c4, self.c5, self.c6 = (
            Edge(o, c, sn=True, relu=r) for o, r in zip(ops, relu))
        self.down = down == "on"
        self.down0 = self._down(downs[0], c) if self.down else None
        self.down1 = self._down(downs[1], c) if self.down else None
        self.kinds = tuple(downs)
        self.p1 = p1

    @staticmethod
    def _down(op: str, c: int) -> nn.Module | None:
        return _conv(c, op, stride=2, sn=True) if op in _CONV else None

    def _downsample(self, kind: str, mod: nn.Module | None, y: torch.Tensor,
               x: torch.Tensor) -> torch.Tensor:
        if min(y.shape[-2:]) < 2:
            return y
        if mod is not None:
            return mod(y)
        pool = nn.functional.avg_pool2d if kind in ("avg", "in_avg") else nn.functional.max_pool2d
        out = pool(y, 2)
        return out + pool(x, 2) if kind.startswith("in_") else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = _node([(self.c0, x)])
        n2 = _node([(self.c1, x), (self.c2, n1)])
        b1 = _node([(self.c3, n1), (self.c4, n2)])
        b2 = _node([(self.c5, x), (self.c6, n2)])
        if self.down:
            b1 = self._downsample(self.kinds[0], self.down0, b1, x)
            b2 = self._downsample(self.kinds[1], self.down1, b2, x)
        if self.p1 == "branch1":  # quirk P1, reference: the released block drops branch 2
            return b1
        return b1 + b2


class Discriminator(nn.Module):
    def __init__(self, blocks: Sequence[tuple[Sequence[str], str, Sequence[str]]], *, c: int,
                 img_channels: int, p1: str) -> None:
        super().__init__()
        self.stem = spectral_norm(nn.Conv2d(img_channels, c, 3, padding=1))
        self.blocks = nn.ModuleList(
            DisBlock(o, d, ds, c, i == 0, p1) for i, (o, d, ds) in enumerate(blocks))
        self.head = spectral_norm(nn.Linear(c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for b in self.blocks:
            h = b(h)
        return self.head(torch.relu(h).sum(dim=(2, 3))).squeeze(-1)


class GAN(nn.Module):
    """A member: generator, discriminator and the generator's EMA (no gradients). ``GAN(z)``
    samples images from the EMA generator."""

    def __init__(self, gen: Generator, dis: Discriminator, gen_ema: Generator) -> None:
        super().__init__()
        self.gen, self.dis, self.gen_ema = gen, dis, gen_ema
        self.gen_ema.load_state_dict(gen.state_dict())
        for p in self.gen_ema.parameters():
            p.requires_grad_(False)
        self.latent: int = gen.latent

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gen_ema(z)


# ------------------------------------------------------------------------------------ spaces
class GANParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    resolution: int = Field(default=32, ge=4, le=256, description="image width and height")
    img_channels: int = Field(default=1, ge=1, le=4, description="1 grey, 3 colour")
    bottom: int = Field(default=4, ge=1, description="generator's first resolution (seed: 4)")
    channels: int = Field(default=32, ge=2, le=1024, description="gf_dim (seed: 256)")
    df_channels: int = Field(default=32, ge=2, le=1024, description="df_dim (seed: 128)")
    latent: int = Field(default=30, ge=3, le=1024, description="z size (seed: 120)")
    d_blocks: int = Field(default=4, ge=1, le=8, description="discriminator blocks (seed: 4)")
    d_branches: Literal["sum", "branch1"] = Field(
        default="sum", description="quirk P1: sum both branches (default) or branch 1 only")


class _GANSpace(GeneSpace):
    hard: ClassVar[bool] = True
    Params: ClassVar[type[BaseModel]] = GANParams

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.p = GANParams(**params)
        p = self.p
        ratio = p.resolution / p.bottom
        if ratio < 2 or not float(math.log2(ratio)).is_integer():
            raise ConfigError(
                f"{self.name}: resolution {p.resolution} must be bottom {p.bottom} times a power "
                "of 2 (at least 2); e.g. resolution 32, bottom 4"
            )
        if p.latent % 3:
            raise ConfigError(f"{self.name}: latent {p.latent} must be a multiple of 3")
        self.num_cells = int(round(math.log2(ratio)))
        genes: list[Gene] = []
        for i in range(self.num_cells):
            for u in ("up0", "up1"):
                genes.append(Gene(f"cell{i}.{u}", UP_OPS, self._g(f"cells.{i}.{u}")))
            for e in range(5):
                genes.append(Gene(f"cell{i}.c{e}", EDGE_OPS, self._g(f"cells.{i}.c{e}")))
        self.n_gen = len(genes)
        if self.hard:
            cells = tuple(f"cell{i}" for i in range(self.num_cells))
            for k in range(3):
                genes.append(Gene(f"proj{k}.input", ("all", "third"), self._g(f"projs.{k}")))
            for k in (1, 2):
                genes.append(Gene(f"proj{k}.on", ("on", "off"), ()))
            for k in range(3):
                genes.append(Gene(f"proj{k}.to", cells, ()))
            for k in (1, 2):
                genes.append(Gene(f"proj{k}.up", ("nearest", "bilinear"), ()))
            genes.append(Gene("proj.dropout", ("0", "0.1", "0.2"), ()))
            for j in range(p.d_blocks):
                for e in range(7):
                    opts = FIRST_D_OPS if j == 0 and e < 3 else EDGE_OPS
                    genes.append(Gene(f"dblock{j}.c{e}", opts, (f"dis.blocks.{j}.c{e}",)))
                genes.append(Gene(f"dblock{j}.down", ("on", "off"), ()))
                for d in range(2):
                    genes.append(Gene(f"dblock{j}.down{d}", DOWN_OPS,
                                      (f"dis.blocks.{j}.down{d}",)))
        self._genes = tuple(genes)

    @staticmethod
    def _g(sub: str) -> tuple[str, ...]:
        """A generator layer and its EMA copy (the EMA is inherited exactly, not perturbed)."""
        return (f"gen.{sub}", f"gen_ema.{sub}")

    def generator_genes(self) -> tuple[int, ...]:
        """Indices of the genes that shape the (EMA) generator: cells and projections."""
        return tuple(i for i, g in enumerate(self._genes) if not g.name.startswith("dblock"))

    def spec(self) -> JSONDict:
        return {"name": self.name, **self.p.model_dump()}

    def _decode_parts(self, arch: Architecture) -> tuple[Any, Any, float, Any]:
        t = dict(zip((g.name for g in self._genes), (str(x) for x in arch.tokens)))
        cells = [((t[f"cell{i}.up0"], t[f"cell{i}.up1"]), [t[f"cell{i}.c{e}"] for e in range(5)])
                 for i in range(self.num_cells)]
        if self.hard:
            projs = [{"input": t[f"proj{k}.input"], "on": k == 0 or t[f"proj{k}.on"] == "on",
                      "to": int(t[f"proj{k}.to"].removeprefix("cell")),
                      "up": "nearest" if k == 0 else t[f"proj{k}.up"]} for k in range(3)]
            dropout = float(t["proj.dropout"])
            blocks = [([t[f"dblock{j}.c{e}"] for e in range(7)], t[f"dblock{j}.down"],
                       [t[f"dblock{j}.down{d}"] for d in range(2)])
                      for j in range(self.p.d_blocks)]
        else:
            projs = [{"input": "all", "on": True, "to": 0, "up": "nearest"}]
            dropout = 0.0
            blocks = [(["conv3x3"] * 7, "on", ["avg", "avg"]) for _ in range(self.p.d_blocks)]
        # projection 0 must reach cell 0, where the signal starts: enter it there at the latest
        if min(int(str(q["to"])) for q in projs if q["on"]) > 0:
            projs[0]["to"] = 0
        return cells, projs, dropout, blocks

    def export_meta(self) -> dict[str, Any]:
        """What an export of this space's network is: a generator from ``latent`` normal
        values to images in [-1, 1] (``output_shape``, which :meth:`build` takes as its
        ``input_shape``), not a classifier of the task's images."""
        p = self.p
        return {"kind": "generator", "input_shape": [p.latent], "num_classes": 0,
                "output_shape": [p.img_channels, p.resolution, p.resolution],
                "output_range": [-1.0, 1.0], "preprocess": {}}

    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int = 0
    ) -> nn.Module:
        """``input_shape`` is the image shape ``(C, H, W)``; ``num_classes`` is unused."""
        self.encode(arch)
        p = self.p
        want = (p.img_channels, p.resolution, p.resolution)
        if tuple(input_shape) != want:
            raise InvalidArchitecture(
                f"{self.name} builds {want} images, got input shape {tuple(input_shape)}"
            )
        cells, projs, dropout, blocks = self._decode_parts(arch)

        def gen() -> Generator:
            return Generator(cells, projs, dropout, latent=p.latent, c=p.channels,
                             bottom=p.bottom, img_channels=p.img_channels)

        g = gen()
        with torch.random.fork_rng(devices=[]):
            ema = gen()  # its values are the generator's: do not move torch's RNG twice
        dis = Discriminator(blocks, c=p.df_channels, img_channels=p.img_channels,
                            p1=p.d_branches)
        return GAN(g, dis, ema)


@SPACES.register("gan_hard")
class GanHardSpace(_GANSpace):
    """GanHard: generator cells, projections and discriminator blocks (module docstring)."""

    name: ClassVar[str] = "gan_hard"
    hard: ClassVar[bool] = True


@SPACES.register("gan")
class GanSpace(_GANSpace):
    """The easy Gan space: generator cells only, fixed projection and discriminator."""

    name: ClassVar[str] = "gan"
    hard: ClassVar[bool] = False


GAN_SPACES: tuple[type[_GANSpace], ...] = (GanHardSpace, GanSpace)
