"""Layer-wise gene spaces for PBT-NAS (seed 004): flat gene vectors whose genes own layers.

An architecture is a flat tuple of gene values (tokens), e.g. ``("conv3", "relu", "sep3", ...)``.
Gene ``g`` chooses among ``genes[g].options`` and owns the parameters whose names equal one of
``genes[g].prefixes`` or start with ``prefix + "."`` (quirk P2, exact match). Widths stay fixed,
so the layer at a position has the same input and output shape whatever its operation: the
weights of one position can move from one parent network to a child (PBT-NAS mixing).

Spaces:

* ``gene_cnn``: a CNN classifier. Fixed stem (conv3x3 -> BN -> ReLU to ``channels``), then
  ``num_layers`` searchable positions, each with an operation gene (conv1/3/5, dilated conv3,
  separable conv3, skip, max/avg pool 3x3, stride 1) and an activation gene (id, tanh, relu,
  swish); 2x2 max pooling after the positions in ``reduce_after``; global average pooling and
  a fixed linear head. Weighted operations are followed by BatchNorm (owned by the same gene).
* ``gene_ac``: the actor and critic MLPs of an RL agent (seed 004's RL space without the pixel
  encoder): each network is a fixed input layer (linear + tanh to ``hidden``), ``num_layers``
  searchable positions with an operation gene (id, linear, residual_0.5, residual_2) and an
  activation gene (id, tanh, relu, swish), and a fixed output layer. ``build`` returns an
  :class:`ActorCritic` whose ``forward`` gives the policy logits (``value`` gives the critic).
* ``gene_mlp``: the same MLP positions as one classifier or regressor for tabular rows (any
  input is flattened): a fixed input layer (linear + tanh to ``hidden``), ``num_layers``
  searchable positions and a fixed linear output to the classes (one output for regression).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.ops.activations import ACTIVATIONS, canonical
from nasforge.spaces.base import SPACES, Architecture, JSONDict, SearchSpace, Token

# ----------------------------------------------------------------------------- building blocks
ACTS: dict[str, Callable[[], nn.Module]] = {
    name: ACTIVATIONS[canonical(name)] for name in ("id", "tanh", "relu", "swish")
}
"""The gene spaces' default activation genes (short names of the one activation table)."""


class SepConv(nn.Module):
    """Depthwise 3x3 followed by pointwise 1x1 (same width)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pw = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


CONV_OPS: dict[str, Callable[[int], nn.Module]] = {
    "conv1": lambda c: nn.Conv2d(c, c, 1, bias=False),
    "conv3": lambda c: nn.Conv2d(c, c, 3, padding=1, bias=False),
    "conv5": lambda c: nn.Conv2d(c, c, 5, padding=2, bias=False),
    "dil3": lambda c: nn.Conv2d(c, c, 3, padding=2, dilation=2, bias=False),
    "sep3": SepConv,
    "skip": lambda c: nn.Identity(),
    "max3": lambda c: nn.MaxPool2d(3, stride=1, padding=1),
    "avg3": lambda c: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}
WEIGHTLESS_CONV = frozenset({"skip", "max3", "avg3"})


class Residual(nn.Module):
    """``x + fc2(relu(fc1(x)))`` with an inner width of ``ratio * width``."""

    def __init__(self, width: int, ratio: float) -> None:
        super().__init__()
        inner = max(1, int(round(width * ratio)))
        self.fc1 = nn.Linear(width, inner)
        self.fc2 = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


MLP_OPS: dict[str, Callable[[int], nn.Module]] = {
    "id": lambda w: nn.Identity(),
    "linear": lambda w: nn.Linear(w, w),
    "residual_0.5": lambda w: Residual(w, 0.5),
    "residual_2": lambda w: Residual(w, 2.0),
}


class ConvPosition(nn.Module):
    """One searchable CNN position: op -> (BN if the op has weights) -> activation."""

    def __init__(self, op: str, act: str, c: int) -> None:
        super().__init__()
        self.op = CONV_OPS[op](c)
        self.bn = nn.BatchNorm2d(c) if op not in WEIGHTLESS_CONV else None
        self.act = ACTS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.op(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class GeneCNN(nn.Module):
    def __init__(
        self, ops: Sequence[str], acts: Sequence[str], in_ch: int, channels: int,
        num_classes: int, reduce_after: Sequence[int],
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.cells = nn.ModuleList(ConvPosition(o, a, channels) for o, a in zip(ops, acts))
        self.reduce_after = tuple(reduce_after)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, cell in enumerate(self.cells):
            x = cell(x)
            if i in self.reduce_after and min(x.shape[-2:]) >= 2:
                x = nn.functional.max_pool2d(x, 2)
        return self.head(x.mean(dim=(2, 3)))


class MLPPosition(nn.Module):
    def __init__(self, op: str, act: str, width: int) -> None:
        super().__init__()
        self.op = MLP_OPS[op](width)
        self.act = ACTS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.op(x))


class GeneMLP(nn.Module):
    """Fixed input layer (linear + tanh), searchable positions, fixed output layer."""

    def __init__(
        self, ops: Sequence[str], acts: Sequence[str], d_in: int, width: int, d_out: int,
        out_gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.layers = nn.ModuleList(MLPPosition(o, a, width) for o, a in zip(ops, acts))
        self.out = nn.Linear(width, d_out)
        if out_gain != 1.0:
            with torch.no_grad():
                self.out.weight.mul_(out_gain)
                self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.inp(x))
        for layer in self.layers:
            x = layer(x)
        return self.out(x)


class FlatGeneMLP(GeneMLP):
    """:class:`GeneMLP` over flattened inputs (``gene_mlp``: tabular rows, or any shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


class ActorCritic(nn.Module):
    """Actor and critic MLPs of an agent. ``forward`` returns the policy's greedy output.

    Discrete actions: ``forward`` gives the policy logits (act with ``argmax``). Continuous
    actions (``continuous=True``, ``n_actions`` = action dimensions): the actor gives the mean of
    a diagonal Gaussian in normalised units, ``log_std`` (a parameter owned by no gene, so a
    child inherits its base's) its spread, and ``forward`` gives the greedy action in the
    environment's units, ``clamp(action_bias + action_scale * mean, low, high)``.

    ``obs_scale`` (a buffer, saved with the weights) divides the raw observations, so an exported
    model takes observations exactly as the environment returns them.
    """

    obs_scale: torch.Tensor
    action_scale: torch.Tensor
    action_bias: torch.Tensor

    def __init__(
        self, actor: tuple[list[str], list[str]], critic: tuple[list[str], list[str]],
        obs_dim: int, n_actions: int, hidden: int, continuous: bool = False,
    ) -> None:
        super().__init__()
        self.continuous = continuous
        self.register_buffer("obs_scale", torch.ones(obs_dim))
        self.actor = GeneMLP(*actor, obs_dim, hidden, n_actions, out_gain=0.01)
        self.critic = GeneMLP(*critic, obs_dim, hidden, 1)
        if continuous:
            self.log_std = nn.Parameter(torch.zeros(n_actions))
            self.register_buffer("action_scale", torch.ones(n_actions))
            self.register_buffer("action_bias", torch.zeros(n_actions))

    def to_env(self, u: torch.Tensor) -> torch.Tensor:
        """A continuous action in normalised units -> the environment's units, clipped."""
        return (self.action_bias + self.action_scale * u.clamp(-1.0, 1.0))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.actor(obs / self.obs_scale)
        return self.to_env(out) if self.continuous else out

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs / self.obs_scale).squeeze(-1)

    def logits_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits (discrete) or Gaussian mean in normalised units, and the value."""
        x = obs / self.obs_scale
        return self.actor(x), self.critic(x).squeeze(-1)


# ------------------------------------------------------------------------------------ spaces
@dataclass(frozen=True)
class Gene:
    """One position of the gene vector: its name, its options and the layers it owns."""

    name: str
    options: tuple[str, ...]
    prefixes: tuple[str, ...]


def owned_by(name: str, prefixes: Sequence[str]) -> bool:
    """Quirk P2 (exact match): ``name`` is a prefix or lies below one (``prefix + "."``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class GeneSpace(SearchSpace):
    """A flat gene vector. Subclasses define :meth:`genes` and :meth:`build`."""

    def __init__(self) -> None:
        self._genes: tuple[Gene, ...] = ()

    @property
    def genes(self) -> tuple[Gene, ...]:
        return self._genes

    def gene_prefixes(self, g: int) -> tuple[str, ...]:
        """Parameter-name prefixes of the layers that gene ``g`` owns (may be empty)."""
        return self._genes[g].prefixes

    def max_steps(self) -> int:
        return len(self._genes)

    def options(self, step: int) -> tuple[Token, ...]:
        return self._genes[step].options

    def decode(self, indices: Sequence[int]) -> Architecture:
        return Architecture(tuple(self._genes[t].options[int(i)] for t, i in enumerate(indices)))

    def encode(self, arch: Architecture) -> tuple[int, ...]:
        if len(arch.tokens) != len(self._genes):
            raise InvalidArchitecture(
                f"{self.name}: expected {len(self._genes)} genes, got {len(arch.tokens)} in {arch}"
            )
        out = []
        for gene, tok in zip(self._genes, arch.tokens):
            if tok not in gene.options:
                raise InvalidArchitecture(
                    f"{self.name}: gene {gene.name} = {tok!r} is not allowed; "
                    f"allowed: {', '.join(gene.options)}"
                )
            out.append(gene.options.index(str(tok)))
        return tuple(out)

    def size(self) -> int | None:
        return math.prod(len(g.options) for g in self._genes)

    def describe(self, arch: Architecture) -> str:
        return " ".join(f"{g.name}={t}" for g, t in zip(self._genes, arch.tokens))


def _check_names(kind: str, names: Sequence[str], table: dict[str, Any]) -> tuple[str, ...]:
    for n in names:
        if n not in table:
            raise ConfigError(f"unknown {kind} {n!r}; allowed: {', '.join(table)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{kind}s must be distinct, got {list(names)}")
    return tuple(names)


class GeneCNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: int = Field(default=16, ge=1, le=512, description="width of every position")
    num_layers: int = Field(default=4, ge=1, le=32, description="searchable positions")
    reduce_after: list[int] = Field(default=[1], description="positions followed by 2x2 max pool")
    ops: list[str] = Field(default_factory=lambda: list(CONV_OPS), min_length=1)
    acts: list[str] = Field(default_factory=lambda: list(ACTS), min_length=1)

    @field_validator("reduce_after")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        return sorted(set(v))


@SPACES.register("gene_cnn")
class GeneCNNSpace(GeneSpace):
    """CNN classifier; genes ``cell{i}.op`` (owns ``cells.{i}``) and ``cell{i}.act``."""

    name: ClassVar[str] = "gene_cnn"
    Params: ClassVar[type[BaseModel]] = GeneCNNParams

    def __init__(
        self, *, channels: int = 16, num_layers: int = 4, reduce_after: Sequence[int] = (1,),
        ops: Sequence[str] = tuple(CONV_OPS), acts: Sequence[str] = tuple(ACTS),
    ) -> None:
        super().__init__()
        self.channels, self.num_layers = int(channels), int(num_layers)
        self.reduce_after = tuple(sorted(set(int(r) for r in reduce_after)))
        bad = [r for r in self.reduce_after if not 0 <= r < self.num_layers]
        if bad:
            raise ConfigError(
                f"gene_cnn: reduce_after {bad} out of range; allowed: 0..{self.num_layers - 1}"
            )
        self.ops = _check_names("gene_cnn op", ops, CONV_OPS)
        self.acts = _check_names("gene_cnn activation", acts, ACTS)
        genes = []
        for i in range(self.num_layers):
            genes.append(Gene(f"cell{i}.op", self.ops, (f"cells.{i}",)))
            genes.append(Gene(f"cell{i}.act", self.acts, ()))
        self._genes = tuple(genes)

    def spec(self) -> JSONDict:
        return {
            "name": self.name, "channels": self.channels, "num_layers": self.num_layers,
            "reduce_after": list(self.reduce_after), "ops": list(self.ops),
            "acts": list(self.acts),
        }

    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        self.encode(arch)
        if len(input_shape) != 3:
            raise InvalidArchitecture(
                f"gene_cnn needs image inputs (C, H, W), got input shape {tuple(input_shape)}"
            )
        toks = [str(t) for t in arch.tokens]
        return GeneCNN(toks[0::2], toks[1::2], input_shape[0], self.channels, num_classes,
                       self.reduce_after)


class MLPGeneParams(BaseModel):
    """The MLP gene spaces' keys (``gene_ac``: per network; ``gene_mlp``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hidden: int = Field(default=64, ge=2, le=4096, description="width of every position")
    num_layers: int = Field(default=3, ge=1, le=16,
                            description="searchable positions (per network in gene_ac)")
    ops: list[str] = Field(default_factory=lambda: list(MLP_OPS), min_length=1)
    acts: list[str] = Field(default_factory=lambda: list(ACTS), min_length=1)


class MLPGeneSpace(GeneSpace):
    """MLP positions of fixed width ``hidden``: for each network ``(gene name, module prefix)``
    of ``NETS``, genes ``{name}{i}.op`` (own ``{prefix}.{i}``) and ``{name}{i}.act``."""

    Params: ClassVar[type[BaseModel]] = MLPGeneParams
    NETS: ClassVar[tuple[tuple[str, str], ...]]

    def __init__(
        self, *, hidden: int = 64, num_layers: int = 3, ops: Sequence[str] = tuple(MLP_OPS),
        acts: Sequence[str] = tuple(ACTS),
    ) -> None:
        super().__init__()
        self.hidden, self.num_layers = int(hidden), int(num_layers)
        self.ops = _check_names(f"{self.name} op", ops, MLP_OPS)
        self.acts = _check_names(f"{self.name} activation", acts, ACTS)
        self._genes = tuple(
            g for net, prefix in self.NETS for i in range(self.num_layers)
            for g in (Gene(f"{net}{i}.op", self.ops, (f"{prefix}.{i}",)),
                      Gene(f"{net}{i}.act", self.acts, ()))
        )

    def spec(self) -> JSONDict:
        return {
            "name": self.name, "hidden": self.hidden, "num_layers": self.num_layers,
            "ops": list(self.ops), "acts": list(self.acts),
        }


@SPACES.register("gene_ac")
class GeneACSpace(MLPGeneSpace):
    """Actor-critic MLPs; genes ``{actor,critic}{i}.op`` (own ``{net}.layers.{i}``) and ``.act``.

    ``build(arch, (obs_dim,), n_actions)`` returns an :class:`ActorCritic`.
    """

    name: ClassVar[str] = "gene_ac"
    NETS: ClassVar[tuple[tuple[str, str], ...]] = (("actor", "actor.layers"),
                                                   ("critic", "critic.layers"))

    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int,
        continuous: bool = False,
    ) -> nn.Module:
        """``num_classes``: the number of discrete actions, or of action dimensions when
        ``continuous``."""
        self.encode(arch)
        if len(input_shape) != 1:
            raise InvalidArchitecture(
                f"gene_ac needs flat observations (obs_dim,), got input shape {tuple(input_shape)}"
            )
        toks = [str(t) for t in arch.tokens]
        half = 2 * self.num_layers
        actor, critic = toks[:half], toks[half:]
        return ActorCritic(
            (actor[0::2], actor[1::2]), (critic[0::2], critic[1::2]), int(input_shape[0]),
            num_classes, self.hidden, continuous,
        )


@SPACES.register("gene_mlp")
class GeneMLPSpace(MLPGeneSpace):
    """An MLP classifier / regressor for tabular rows; genes ``layer{i}.op`` (own
    ``layers.{i}``) and ``layer{i}.act``. Inputs of any shape are flattened."""

    name: ClassVar[str] = "gene_mlp"
    NETS: ClassVar[tuple[tuple[str, str], ...]] = (("layer", "layers"),)

    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        self.encode(arch)
        toks = [str(t) for t in arch.tokens]
        return FlatGeneMLP(toks[0::2], toks[1::2], math.prod(input_shape), self.hidden,
                           num_classes)
