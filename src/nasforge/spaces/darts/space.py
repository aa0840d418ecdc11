"""The ``darts`` search space: DARTS cell pairs as flat token tuples (see ``genotype.py``).

Sequential decision view (for black-box strategies): per cell type, per node, per input pair:
the op (the space's ops without ``none``), then the input index; the two inputs of a node are
distinct and sorted (so each cell has one token form); then the concat node indices, fixed to
all intermediate nodes (one option each). ``build`` returns the stand-alone
:class:`~nasforge.spaces.darts.network.DartsNetwork` with this space's ``channels``, ``layers``,
``reductions``, ``stem_multiplier``, ``channel_growth`` and ``stem_stride``; the supernet's
(smaller) sizes are settings of the ``darts`` strategy (stem and growth are shared).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from nasforge.exceptions import InvalidArchitecture
from nasforge.ops.cells import OP_SETS, OPS
from nasforge.spaces.base import SPACES, Architecture, JSONDict, SearchSpace, Token
from nasforge.spaces.cell import image_shape_of
from nasforge.spaces.darts.genotype import Genotype
from nasforge.spaces.darts.network import DartsNetwork
from nasforge.spaces.darts.render import render_genotype


def resolve_ops(ops: str | Sequence[str]) -> tuple[str, ...]:
    """An op-set name (``darts``, ``darts_small``, ``fewshot``, ``sharp``, ``nb201``) or a list."""
    if isinstance(ops, str):
        if ops not in OP_SETS:
            raise InvalidArchitecture(
                f"unknown op set {ops!r}; allowed: {', '.join(OP_SETS)} (or a list of op names)"
            )
        return OP_SETS[ops]
    names = tuple(ops)
    bad = [o for o in names if o not in OPS]
    if bad:
        raise InvalidArchitecture(f"unknown op {bad[0]!r}; allowed: {', '.join(OPS.names())}")
    if len(set(names)) != len(names):
        raise InvalidArchitecture(f"ops must not repeat: {list(names)}")
    if not [o for o in names if o != "none"]:
        raise InvalidArchitecture("ops need at least one op other than 'none'")
    return names


def image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image input; a flat square input (64) is one channel (1, 8, 8)."""
    return image_shape_of(list(input_shape), space="darts")


class DartsSpaceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ops: str | list[str] = Field(
        default="darts",
        description="op set (darts, darts_small, fewshot, sharp, nb201) or a list of op names",
    )
    nodes: int = Field(default=4, ge=1, le=8, description="intermediate nodes per cell")
    channels: int = Field(default=16, ge=2, description="initial channels C of built networks")
    layers: int = Field(default=8, ge=1, description="cells of built networks")
    reductions: list[int] | None = Field(
        default=None, description="reduction cell positions; default layers//3, 2*layers//3"
    )
    stem_multiplier: int = Field(default=3, ge=1)
    channel_growth: int = Field(default=2, ge=1, description="width factor at reductions")
    stem_stride: int = Field(default=1, ge=1, le=2, description="2 halves large inputs early")

    @field_validator("ops")
    @classmethod
    def _ops(cls, v: str | list[str]) -> str | list[str]:
        try:
            resolve_ops(v)
        except InvalidArchitecture as err:
            raise ValueError(str(err)) from None
        return v


@SPACES.register("darts")
class DartsSpace(SearchSpace):
    """DARTS cells (normal + reduction), tokens = genotype. See the module docstring."""

    name: ClassVar[str] = "darts"
    Params: ClassVar[type[BaseModel]] = DartsSpaceParams

    def __init__(
        self,
        *,
        ops: str | Sequence[str] = "darts",
        nodes: int = 4,
        channels: int = 16,
        layers: int = 8,
        reductions: Sequence[int] | None = None,
        stem_multiplier: int = 3,
        channel_growth: int = 2,
        stem_stride: int = 1,
    ) -> None:
        self.ops_param: str | list[str] = ops if isinstance(ops, str) else list(ops)
        self.ops = resolve_ops(ops)
        self.genotype_ops = tuple(o for o in self.ops if o != "none")
        self.nodes = int(nodes)
        self.channels = int(channels)
        self.layers = int(layers)
        self.reductions = None if reductions is None else [int(r) for r in reductions]
        if self.reductions is not None and any(not 0 <= r < self.layers for r in self.reductions):
            raise InvalidArchitecture(
                f"darts: reductions {self.reductions} must lie in 0..{self.layers - 1}"
            )
        self.stem_multiplier = int(stem_multiplier)
        self.channel_growth = int(channel_growth)
        self.stem_stride = int(stem_stride)

    def spec(self) -> JSONDict:
        return {
            "name": self.name,
            "ops": self.ops_param,
            "nodes": self.nodes,
            "channels": self.channels,
            "layers": self.layers,
            "reductions": self.reductions,
            "stem_multiplier": self.stem_multiplier,
            "channel_growth": self.channel_growth,
            "stem_stride": self.stem_stride,
        }

    # ------------------------------------------------------------- decisions
    def max_steps(self) -> int:
        return 10 * self.nodes

    def _slot(self, step: int) -> tuple[str, int, int, int]:
        """(kind 'op'|'input'|'concat', node, pair, cell) of decision ``step``."""
        n = self.nodes
        if step < 8 * n:
            cell, u = divmod(step, 4 * n)
            node, r = divmod(u, 4)
            pair, is_input = divmod(r, 2)
            return ("input" if is_input else "op", node, pair, cell)
        cell, node = divmod(step - 8 * n, n)
        return ("concat", node, 0, cell)

    def options(self, step: int) -> tuple[Token, ...]:
        kind, node, _, _ = self._slot(step)
        if kind == "op":
            return self.genotype_ops
        if kind == "input":
            return tuple(range(node + 2))
        return (node + 2,)

    def allowed(self, prefix: Sequence[int]) -> np.ndarray:
        step = len(prefix)
        kind, node, pair, _ = self._slot(step)
        mask = np.ones(len(self.options(step)), dtype=bool)
        if kind == "input":
            if pair == 0:
                mask[node + 1] = False  # the second input must be larger
            else:
                mask[: prefix[step - 2] + 1] = False
        return mask

    def decode(self, indices: Sequence[int]) -> Architecture:
        return Architecture(tuple(self.options(t)[int(i)] for t, i in enumerate(indices)))

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        n = self.max_steps()
        if len(arch.tokens) != n:
            raise InvalidArchitecture(
                f"{self.name}: {arch} has {len(arch.tokens)} tokens; expected {n} "
                f"({self.nodes} nodes: 2 cells x {self.nodes} x 2 (op, input) pairs, then "
                f"2 x {self.nodes} concat indices)"
            )
        out = []
        for t, v in enumerate(arch.tokens):
            opts = self.options(t)
            if isinstance(v, bool) or v not in opts or type(v) is not type(opts[0]):
                kind, node, _, cell = self._slot(t)
                raise InvalidArchitecture(
                    f"{self.name}: {kind} {v!r} at position {t} ({('normal', 'reduce')[cell]} "
                    f"cell, node {node + 2}) is not allowed; allowed: "
                    f"{', '.join(str(o) for o in opts)}"
                )
            out.append(opts.index(v))
        return tuple(out)

    def size(self) -> int:
        n_ops = len(self.genotype_ops)
        per_cell = math.prod(math.comb(i + 2, 2) * n_ops**2 for i in range(self.nodes))
        return per_cell**2

    # ---------------------------------------------------------- genotypes
    def genotype(self, arch: Architecture) -> Genotype:
        self.validate(arch)
        return Genotype.from_tokens(arch.tokens)

    def arch(self, genotype: Genotype) -> Architecture:
        """The architecture of a genotype (pairs of each node sorted by input)."""

        def canon(cell: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
            out: list[tuple[str, int]] = []
            for i in range(len(cell) // 2):
                out += sorted(cell[2 * i : 2 * i + 2], key=lambda p: p[1])
            return tuple(out)

        g = Genotype(
            canon(genotype.normal), genotype.normal_concat,
            canon(genotype.reduce), genotype.reduce_concat,
        )
        return self.validate(Architecture(g.to_tokens()))

    def describe(self, arch: Architecture) -> str:
        return str(self.genotype(arch))

    def render(self, arch: Architecture, out: str | Path) -> Path:
        """Write the cell diagram of ``arch`` (PNG, both cells) and return its path."""

        return render_genotype(self.genotype(arch), out)

    # ----------------------------------------------------------------- build
    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        g = self.genotype(arch)
        shape = image_shape(input_shape)
        return DartsNetwork(
            g, in_channels=shape[0], num_classes=num_classes, channels=self.channels,
            layers=self.layers, reductions=self.reductions, stem_multiplier=self.stem_multiplier,
            channel_growth=self.channel_growth, stem_stride=self.stem_stride,
            image_shape=None if len(input_shape) == 3 else shape,
        )
