"""The ``tabular`` space: an MLP of Linear layers for rows of features, as practitioners build it.

An architecture is ``[depth, width_1, act_1, dropout_1, bn_1, ..., width_d, act_d, dropout_d,
bn_d]``: the depth (1..``max_layers``) comes first, then four decisions per hidden layer. Child:
``Flatten``, per layer ``Linear(prev, width)``, optional ``BatchNorm1d``, the activation, optional
``Dropout``; a final ``Linear(prev, num_classes)``. Layers without batch norm and dropout are a
plain Linear/activation MLP, which the batched trainer trains as populations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.exceptions import InvalidArchitecture
from nasforge.spaces.base import SPACES, Architecture, JSONDict, SearchSpace, Token
from nasforge.spaces.sequence import ACTIVATIONS

FIELDS = ("width", "activation", "dropout", "batch_norm")


class TabularParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_layers: int = Field(default=3, ge=1, le=16, description="depth is 1..max_layers")
    widths: list[int] = Field(default=[16, 32, 64, 128, 256], min_length=1)
    activations: list[str] = Field(default=["ReLU", "Tanh", "GELU", "SiLU"], min_length=1)
    dropouts: list[float] = Field(default=[0.0, 0.1, 0.3], min_length=1)
    batch_norm: list[bool] = Field(default=[False, True], min_length=1)


@SPACES.register("tabular")
class TabularSpace(SearchSpace):
    """MLP for tabular data: depth 1..N, per layer width, activation, dropout, batch norm."""

    name: ClassVar[str] = "tabular"
    Params: ClassVar[type[BaseModel]] = TabularParams

    def __init__(
        self,
        *,
        max_layers: int = 3,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        activations: Sequence[str] = ("ReLU", "Tanh", "GELU", "SiLU"),
        dropouts: Sequence[float] = (0.0, 0.1, 0.3),
        batch_norm: Sequence[bool] = (False, True),
    ) -> None:
        bad = [a for a in activations if a not in ACTIVATIONS]
        if bad:
            raise InvalidArchitecture(
                f"tabular: unknown activation {bad[0]!r}; allowed: {', '.join(ACTIVATIONS)}"
            )
        if any(int(w) < 1 for w in widths):
            raise InvalidArchitecture("tabular: widths must be positive integers")
        if any(not 0 <= float(d) < 1 for d in dropouts):
            raise InvalidArchitecture("tabular: dropouts must be in [0, 1)")
        self.max_layers = int(max_layers)
        self.widths = tuple(int(w) for w in widths)
        self.activations = tuple(activations)
        self.dropouts = tuple(float(d) for d in dropouts)
        self.batch_norm = tuple(bool(b) for b in batch_norm)
        self._fields: tuple[tuple[Token, ...], ...] = (
            self.widths,
            self.activations,
            self.dropouts,
            self.batch_norm,
        )

    def spec(self) -> JSONDict:
        return {
            "name": self.name,
            "max_layers": self.max_layers,
            "widths": list(self.widths),
            "activations": list(self.activations),
            "dropouts": list(self.dropouts),
            "batch_norm": list(self.batch_norm),
        }

    # ------------------------------------------------------------- decisions
    def max_steps(self) -> int:
        return 1 + len(FIELDS) * self.max_layers

    def options(self, step: int) -> tuple[Token, ...]:
        if step == 0:
            return tuple(range(1, self.max_layers + 1))
        return self._fields[(step - 1) % len(FIELDS)]

    def is_complete(self, prefix: Sequence[int]) -> bool:
        return len(prefix) > 0 and len(prefix) >= 1 + len(FIELDS) * (prefix[0] + 1)

    def decode(self, indices: Sequence[int]) -> Architecture:
        return Architecture(tuple(self.options(t)[i] for t, i in enumerate(indices)))

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        toks = arch.tokens
        if not toks or isinstance(toks[0], bool) or toks[0] not in self.options(0):
            raise InvalidArchitecture(
                f"tabular: {arch} must start with its depth, one of 1..{self.max_layers}"
            )
        depth = int(toks[0])
        if len(toks) != 1 + len(FIELDS) * depth:
            raise InvalidArchitecture(
                f"tabular: {arch} has {len(toks)} tokens; depth {depth} needs "
                f"{1 + len(FIELDS) * depth} (depth, then width, activation, dropout, "
                "batch_norm per layer)"
            )
        out = [depth - 1]
        for t, v in enumerate(toks[1:], start=1):
            opts = self.options(t)
            field = FIELDS[(t - 1) % len(FIELDS)]
            ok_type = isinstance(v, bool) == (field == "batch_norm")
            if not ok_type or v not in opts:
                raise InvalidArchitecture(
                    f"tabular: {field}={v!r} at position {t} of {arch} is not allowed; "
                    f"allowed: {', '.join(str(o) for o in opts)}"
                )
            out.append(opts.index(v))
        return tuple(out)

    def size(self) -> int:
        per = math.prod(len(f) for f in self._fields)
        return sum(per**d for d in range(1, self.max_layers + 1))

    def layers(self, arch: Architecture) -> list[dict[str, Token]]:
        toks = arch.tokens
        n = len(FIELDS)
        return [
            dict(zip(FIELDS, toks[1 + i * n : 1 + (i + 1) * n])) for i in range(int(toks[0]))
        ]

    def describe(self, arch: Architecture) -> str:
        parts = []
        for layer in self.layers(arch):
            s = f"{layer['width']} {layer['activation']}"
            if layer["batch_norm"]:
                s += " bn"
            if float(layer["dropout"]) > 0:
                s += f" drop {layer['dropout']}"
            parts.append(s)
        return " | ".join(parts)

    # ----------------------------------------------------------------- build
    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        self.validate(arch)
        prev = math.prod(input_shape)
        mods: list[nn.Module] = [nn.Flatten()]
        for layer in self.layers(arch):
            w = int(layer["width"])
            mods.append(nn.Linear(prev, w))
            if layer["batch_norm"]:
                mods.append(nn.BatchNorm1d(w))
            mods.append(ACTIVATIONS[str(layer["activation"])]())
            if float(layer["dropout"]) > 0:
                mods.append(nn.Dropout(float(layer["dropout"])))
            prev = w
        mods.append(nn.Linear(prev, num_classes))
        return nn.Sequential(*mods)
