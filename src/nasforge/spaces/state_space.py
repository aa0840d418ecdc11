"""Named categorical states repeated for N layers (seed 003's ``StateSpace``); the ``cnn`` space.

Decision ``t`` chooses a value of state ``t mod n_states`` for layer ``t // n_states``; every
decision has its own softmax head, while the embedding table of a state type is shared by all
layers (as in seed 003). The architecture's tokens are the chosen values in order,
e.g. ``[3, 64, 3, 64, 3, 32, 3, 64]`` for (kernel, filters) x 4 layers.

Building: conv layers (``kernel``, ``filters``, optional ``stride`` and ``activation`` states),
'same' padding, strides cycling through ``strides`` (seed 003: 2, 1, 2, 1), global average pooling
and a linear head. Inputs of rank 1 or 2 use ``Conv1d``, rank 3 ``Conv2d``. A space with a
``units`` state (or, on rows of features, neither ``kernel`` nor ``filters``) builds an MLP
instead: per layer ``Linear(prev, units)``, the activation and optional ``dropout``, then a
linear head, rather than convolutions over the features.

``add_state`` rejects a state name that ``build`` cannot use, naming the buildable ones; pass
``buildable=False`` for a space searched only through your own objective or a table (or
subclass and override ``build``). String values that read as numbers (YAML's ``1e-3`` is a
string) are stored as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.exceptions import InvalidArchitecture
from nasforge.ops.activations import ACTIVATIONS
from nasforge.spaces.base import SPACES, Architecture, JSONDict, SearchSpace, Token

BUILD_STATES = ("kernel", "filters", "stride", "activation", "units", "dropout")


def _as_number(v: Any) -> Any:
    """``"1e-3"`` -> 0.001, ``"8"`` -> 8; other values unchanged."""
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        if v.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
            return v
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    return v


class StateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    values: list[Any] = Field(min_length=1)


class StateSpaceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    states: list[StateSpec] = Field(default_factory=list)
    num_layers: int = Field(default=4, ge=1, le=64)
    strides: list[int] = Field(default=[2, 1], min_length=1)
    buildable: bool = Field(
        default=True, description="states must be ones build() uses (false: any names)"
    )


@SPACES.register("state")
class StateSpace(SearchSpace):
    """A user-built space: ``add_state(name, values)`` then ``num_layers`` repeats.

    >>> space = StateSpace(num_layers=4)
    >>> space.add_state("kernel", [1, 3])
    >>> space.add_state("filters", [16, 32, 64])
    >>> space.size()
    1296
    """

    name: ClassVar[str] = "state"
    Params: ClassVar[type[BaseModel]] = StateSpaceParams

    def __init__(
        self,
        *,
        states: Sequence[StateSpec | dict[str, Any]] = (),
        num_layers: int = 4,
        strides: Sequence[int] = (2, 1),
        buildable: bool = True,
    ) -> None:
        self.states: list[tuple[str, tuple[Token, ...]]] = []
        self.num_layers = int(num_layers)
        self.strides = tuple(int(s) for s in strides)
        self.buildable = bool(buildable)
        for s in states:
            spec = s if isinstance(s, StateSpec) else StateSpec(**s)
            self.add_state(spec.name, spec.values)

    def add_state(self, name: str, values: Sequence[Token]) -> int:
        """Register a state type; returns its index. Values are the choices of that decision."""
        if any(n == name for n, _ in self.states):
            raise InvalidArchitecture(f"state {name!r} is added twice")
        if not values:
            raise InvalidArchitecture(f"state {name!r} needs at least one value")
        overridden = type(self).build is not StateSpace.build
        if self.buildable and not overridden and name not in BUILD_STATES:
            raise InvalidArchitecture(
                f"state {name!r} cannot be built; buildable states: {', '.join(BUILD_STATES)} "
                "(or StateSpace(buildable=False) for a space you score yourself, or subclass "
                "and override build)"
            )
        vals = tuple(_as_number(v) for v in values)
        if name == "activation":
            bad = [v for v in vals if v not in ACTIVATIONS]
            if bad and self.buildable:
                raise InvalidArchitecture(
                    f"state 'activation': unknown activation {bad[0]!r}; allowed: "
                    f"{', '.join(ACTIVATIONS)}"
                )
        self.states.append((name, vals))
        return len(self.states) - 1

    def spec(self) -> JSONDict:
        out: JSONDict = {
            "name": self.name,
            "states": [{"name": n, "values": list(v)} for n, v in self.states],
            "num_layers": self.num_layers,
            "strides": list(self.strides),
        }
        if not self.buildable:  # absent by default: specs of existing runs stay the same
            out["buildable"] = False
        return out

    def _need_states(self) -> None:
        if not self.states:
            raise InvalidArchitecture("state space has no states; call add_state(name, values)")

    # ------------------------------------------------------------- decisions
    def max_steps(self) -> int:
        self._need_states()
        return self.num_layers * len(self.states)

    def options(self, step: int) -> tuple[Token, ...]:
        return self.states[step % len(self.states)][1]

    def state_of(self, step: int) -> int:
        """Index of the state type of decision ``step`` (its embedding table)."""
        return step % len(self.states)

    def decode(self, indices: Sequence[int]) -> Architecture:
        return Architecture(tuple(self.options(t)[i] for t, i in enumerate(indices)))

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        n = self.max_steps()
        if len(arch.tokens) != n:
            raise InvalidArchitecture(
                f"{self.name}: {arch} has {len(arch.tokens)} tokens; expected {n} "
                f"({self.num_layers} layers x {len(self.states)} states)"
            )
        out = []
        for t, v in enumerate(arch.tokens):
            opts = self.options(t)
            if isinstance(v, bool) or v not in opts:
                sname = self.states[self.state_of(t)][0]
                raise InvalidArchitecture(
                    f"{self.name}: {sname}={v!r} at position {t} of {arch} is not allowed; "
                    f"allowed: {', '.join(str(o) for o in opts)}"
                )
            out.append(opts.index(v))
        return tuple(out)

    def size(self) -> int:
        self._need_states()
        return math.prod(len(v) for _, v in self.states) ** self.num_layers

    def layers(self, arch: Architecture) -> list[dict[str, Token]]:
        """The architecture as one ``{state: value}`` dict per layer."""
        n = len(self.states)
        return [
            {name: arch.tokens[layer * n + j] for j, (name, _) in enumerate(self.states)}
            for layer in range(self.num_layers)
        ]

    def describe(self, arch: Architecture) -> str:
        return " | ".join(
            "-".join(f"{k}={v}" for k, v in layer.items()) for layer in self.layers(arch)
        )

    # ----------------------------------------------------------------- build
    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        self.validate(arch)
        unknown = [n for n, _ in self.states if n not in BUILD_STATES]
        if unknown:
            raise InvalidArchitecture(
                f"cannot build state {unknown[0]!r}; buildable states: {', '.join(BUILD_STATES)} "
                "(subclass StateSpace and override build for others)"
            )
        names = {n for n, _ in self.states}
        if "units" in names or (len(input_shape) == 1 and not names & {"kernel", "filters"}):
            return self._build_mlp(arch, input_shape, num_classes)
        conv: type[nn.Conv1d | nn.Conv2d]
        pool: type[nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d]
        if len(input_shape) == 1:
            in_ch, conv, pool = 1, nn.Conv1d, nn.AdaptiveAvgPool1d
        elif len(input_shape) == 2:
            in_ch, conv, pool = input_shape[0], nn.Conv1d, nn.AdaptiveAvgPool1d
        else:
            in_ch, conv, pool = input_shape[0], nn.Conv2d, nn.AdaptiveAvgPool2d
        mods: list[nn.Module] = []
        if len(input_shape) == 1:
            mods.append(nn.Unflatten(1, (1, input_shape[0])))
        prev = in_ch
        for i, layer in enumerate(self.layers(arch)):
            k = int(layer.get("kernel", 3))
            f = int(layer.get("filters", 32))
            s = int(layer.get("stride", self.strides[i % len(self.strides)]))
            act = str(layer.get("activation", "ReLU"))
            if act not in ACTIVATIONS:
                raise InvalidArchitecture(
                    f"unknown activation {act!r}; allowed: {', '.join(ACTIVATIONS)}"
                )
            mods += [conv(prev, f, k, stride=s, padding=k // 2), ACTIVATIONS[act]()]
            prev = f
        mods += [pool(1), nn.Flatten(), nn.Linear(prev, num_classes)]
        return nn.Sequential(*mods)

    def _build_mlp(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        """Linear layers for rows of features: ``units`` (default 64), activation, dropout."""
        prev = math.prod(input_shape)
        mods: list[nn.Module] = [nn.Flatten()]
        for layer in self.layers(arch):
            units = int(layer.get("units", 64))
            act = str(layer.get("activation", "ReLU"))
            mods += [nn.Linear(prev, units), ACTIVATIONS[act]()]
            drop = float(layer.get("dropout", 0.0))
            if drop > 0:
                mods.append(nn.Dropout(drop))
            prev = units
        mods.append(nn.Linear(prev, num_classes))
        return nn.Sequential(*mods)


class CNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kernels: list[int] = Field(default=[1, 3], min_length=1)
    filters: list[int] = Field(default=[16, 32, 64], min_length=1)
    num_layers: int = Field(default=4, ge=1, le=64)
    strides: list[int] = Field(default=[2, 1], min_length=1)


@SPACES.register("cnn")
class CNNSpace(StateSpace):
    """Seed 003's space: kernel {1,3} x filters {16,32,64} x 4 conv layers, GAP, linear head."""

    name: ClassVar[str] = "cnn"
    Params: ClassVar[type[BaseModel]] = CNNParams

    def __init__(
        self,
        *,
        kernels: Sequence[int] = (1, 3),
        filters: Sequence[int] = (16, 32, 64),
        num_layers: int = 4,
        strides: Sequence[int] = (2, 1),
    ) -> None:
        super().__init__(num_layers=num_layers, strides=strides)
        self.add_state("kernel", [int(k) for k in kernels])
        self.add_state("filters", [int(f) for f in filters])

    def spec(self) -> JSONDict:
        return {
            "name": self.name,
            "kernels": list(self.states[0][1]),
            "filters": list(self.states[1][1]),
            "num_layers": self.num_layers,
            "strides": list(self.strides),
        }
