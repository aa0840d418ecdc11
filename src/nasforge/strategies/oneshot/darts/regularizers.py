"""DARTS regularizers: one config model each, freely combined, plus their pure schedule maths.

* **DARTS-** (Chu et al., ICLR 2021, arXiv:2009.01027): an auxiliary skip connection on every mixed
  op, ``o(x) + beta * skip(x)``; ``beta`` decays linearly from ``beta`` to ``beta_end`` over all
  search steps (``schedule: linear``) or stays fixed (``schedule: fixed``; seed 000's 0.7 run).
  Fixes seed 000's Q3 (its scheduler was never stepped, so beta was 0).
* **PC-DARTS** (Xu et al., ICLR 2020, arXiv:1907.05737): ``1/k`` of the channels go through the
  mixed op, the rest bypass it (max-pooled at stride 2), then a channel shuffle; optional edge
  normalisation (one logit per edge, softmax over each node's inputs, multiplying both the node
  sum and the discretisation strength). Fixes Q4 (ops run on the partial channels only).
* **P-DARTS** (Chen et al., ICCV 2019, arXiv:1904.12760): the search runs in ``stages``; between
  stages the ops of each edge are cut to the top ``keep[s]`` (masked with weight exactly 0, per
  cell type: Q5 fixed); ``layers`` deepens the supernet per stage (weights re-initialised);
  dropout after the skip op with rate ``skip_dropout[s] * exp(-dropout_decay * epoch_in_stage)``
  (Q6: bases 0, 0.3, 0.6); at discretisation at most ``skip_limit`` skips in the normal cell,
  removing the weakest skip edge (ranked by its own skip weight, Q7 fixed) and re-deriving.
* **SharpDARTS** (Hundt et al., arXiv:1903.09900): max-w weighting ``1 - max_j w_j + w_i``, cosine
  power annealing of the learning rates, and the ``sharp`` op set (a space setting:
  ``space.ops: sharp``).
* **TSE-DARTS** (Ru et al., NeurIPS 2021, arXiv:2006.04492): the alpha gradient is the sum of the
  training-loss gradients along ``steps`` unrolled weight steps (weights restored afterwards); no
  validation split is used for the alphas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasforge.spaces.base import Architecture


class OneShotSpec(Protocol):
    """What the skip limit needs from a supernet spec (darts or nb201)."""

    ops: tuple[str, ...]
    skip_group: str

    def discretize_weights(
        self, weights: dict[str, np.ndarray], edges: dict[str, np.ndarray | None]
    ) -> Architecture: ...

    def chosen_edges(self, arch: Architecture, group: str) -> list[tuple[int, str]]: ...

    def skip_count(self, arch: Architecture) -> int: ...


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DartsMinusParams(_Params):
    schedule: Literal["linear", "fixed"] = Field(
        default="linear", description="linear: beta -> beta_end over the search; fixed: beta"
    )
    beta: float = Field(default=1.0, ge=0, description="start (linear) or constant (fixed)")
    beta_end: float = Field(default=0.0, ge=0, description="end value of the linear decay")


class PCDartsParams(_Params):
    k: int = Field(default=2, ge=1, description="1/k of the channels go through the ops")
    edge_norm: bool = Field(default=True, description="PC-DARTS edge normalisation")


class PDartsParams(_Params):
    stages: int = Field(default=3, ge=1, description="search stages (epochs split evenly)")
    keep: list[int] | None = Field(
        default=None,
        description="ops kept per edge after stages 1..S-1 (none not counted); default 5, 3",
    )
    layers: list[int] | None = Field(
        default=None, description="supernet cells per stage (progressive depth); default fixed"
    )
    skip_dropout: list[float] | None = Field(
        default=None, description="skip dropout base rate per stage; default 0.0, 0.3, 0.6"
    )
    dropout_decay: float = Field(default=0.2, ge=0, description="rate * exp(-decay * epoch)")
    skip_limit: int | None = Field(default=2, ge=0, description="max skips in the normal cell")
    reset_alphas: bool = Field(default=True, description="re-draw the alphas at each new stage")

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (any(k < 1 for k in v) or v != sorted(v, reverse=True)):
            raise ValueError(f"keep must be positive and non-increasing, got {v}")
        return v


class SharpParams(_Params):
    max_w: bool = Field(default=True, description="max-w weighting of the mixed ops")
    cosine_power: bool = Field(default=True, description="cosine power annealing of both lrs")
    power: float = Field(default=2.0, gt=1, description="annealing base (seed 000: 2)")
    alpha_lr_min: float = Field(default=1e-8, ge=0)


class TSEParams(_Params):
    steps: int = Field(default=1, ge=1, description="weight steps unrolled per alpha step")


def check_pdarts(p: PDartsParams, epochs: int, epochs_field: str) -> None:
    """The stage plan must fit the search: ``stages`` at most ``epochs`` (the field named
    ``epochs_field``), one ``layers`` / ``skip_dropout`` value per stage and one ``keep`` value
    per stage boundary. Raises ``ValueError`` with one line (a ConfigError once validated)."""
    for key, n in (("layers", p.stages), ("skip_dropout", p.stages), ("keep", p.stages - 1)):
        v = getattr(p, key)
        if v is not None and len(v) != n:
            raise ValueError(f"pdarts.{key} needs {n} values for {p.stages} stages, got {len(v)}")
    if p.stages > epochs:
        raise ValueError(f"pdarts.stages ({p.stages}) exceeds {epochs_field} ({epochs}); "
                         f"allowed: 1 to {epochs}")


# ----------------------------------------------------------- pure schedules
def aux_beta(p: DartsMinusParams, step: int, total_steps: int) -> float:
    """DARTS- auxiliary skip weight at global search step ``step`` of ``total_steps``."""
    if p.schedule == "fixed":
        return p.beta
    frac = min(1.0, step / max(1, total_steps - 1))
    return p.beta + (p.beta_end - p.beta) * frac


def cosine_lr(lr_max: float, lr_min: float, epoch: int, epochs: int) -> float:
    """DARTS' cosine annealing (``CosineAnnealingLR`` with ``T_max = epochs``) at ``epoch``."""
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * epoch / max(1, epochs))) / 2


def cosine_power_lr(
    lr_max: float, lr_min: float, epoch: int, epochs: int, power: float = 2.0
) -> float:
    """SharpDARTS cosine power annealing: ``c = (1 + cos(pi e / E)) / 2``,
    ``lr = lr_min + (lr_max - lr_min) (p^(c+1) - p) / (p^2 - p)``."""
    c = (1 + math.cos(math.pi * epoch / max(1, epochs))) / 2
    return lr_min + (lr_max - lr_min) * (power ** (c + 1) - power) / (power**2 - power)


def stage_bounds(epochs: int, stages: int) -> list[tuple[int, int]]:
    """``[(first_epoch, n_epochs), ...]`` per stage; the last stage takes the remainder."""
    base = epochs // stages
    out, start = [], 0
    for s in range(stages):
        n = base if s < stages - 1 else epochs - start
        out.append((start, n))
        start += n
    return out


def default_keep(n_ops: int, stages: int) -> list[int]:
    """Ops kept after each stage but the last: 5, 3 for 3 stages (capped by the op count)."""
    if stages <= 1:
        return []
    if stages == 3:
        return [min(5, n_ops), min(3, n_ops)]
    return [max(1, round(n_ops - (n_ops - 2) * (s + 1) / (stages - 1))) for s in range(stages - 1)]


def skip_dropout_rate(base: float, epoch_in_stage: int, decay: float) -> float:
    return base * math.exp(-decay * epoch_in_stage)


def topk_mask(
    weights: np.ndarray, mask: np.ndarray, ops: Sequence[str], k: int
) -> np.ndarray:
    """P-DARTS search-space approximation for one cell type.

    Per edge keep the ``k`` strongest active ops other than ``none`` (ties: the earlier op);
    ``none`` keeps its current state. Returns the new boolean mask (edges x ops).
    """
    w = np.asarray(weights, dtype=np.float64)
    old = np.asarray(mask, dtype=bool)
    new = np.zeros_like(old)
    for r in range(w.shape[0]):
        cand = [i for i, o in enumerate(ops) if o != "none" and old[r, i]]
        cand.sort(key=lambda i: (-w[r, i], i))
        for i in cand[:k]:
            new[r, i] = True
        for i, o in enumerate(ops):
            if o == "none":
                new[r, i] = old[r, i]
    return new


def cosine_power_factor(epoch: int, epochs: int, power: float) -> float:
    """The [0, 1] factor of :func:`cosine_power_lr` (1 at the start, 0 at the end)."""
    return cosine_power_lr(1.0, 0.0, epoch, epochs, power)


def limit_skips(
    spec: OneShotSpec,
    weights: dict[str, np.ndarray],
    edges: dict[str, np.ndarray | None],
    max_skips: int,
) -> tuple[Architecture, int]:
    """P-DARTS skip limit: while the derived cell has more than ``max_skips`` skip connections
    in ``spec.skip_group``, drop the kept skip edge with the smallest skip weight (its skip weight
    is zeroed) and derive again. Returns the architecture and the number of skips removed."""
    w = {g: np.array(v, dtype=np.float64, copy=True) for g, v in weights.items()}
    col = list(spec.ops).index("skip_connect") if "skip_connect" in spec.ops else -1
    arch = spec.discretize_weights(w, edges)
    removed = 0
    while col >= 0 and spec.skip_count(arch) > max_skips:
        rows = [r for r, op in spec.chosen_edges(arch, spec.skip_group) if op == "skip_connect"]
        weakest = min(rows, key=lambda r: (w[spec.skip_group][r, col], r))
        w[spec.skip_group][weakest, col] = 0.0
        arch = spec.discretize_weights(w, edges)
        removed += 1
    return arch, removed


# ------------------------------------------------------------ loop hooks
class Hookable(Protocol):
    """The part of the forward state a hook may set (``spaces.darts.supernet.ForwardState``)."""

    aux_beta: float
    skip_dropout: float


class RegularizerHook:
    """A regularizer's part in the one-shot loop. Each method defaults to "no effect"; the loop
    calls every hook at the same points, in the order the hooks were built."""

    weighting: str | None = None  # a mixed-op weighting other than softmax (SharpDARTS)

    def stages(self, epochs: int) -> list[tuple[int, int]] | None:
        """``[(first_epoch, n_epochs), ...]`` if the hook splits the search into stages."""
        return None

    def learning_rates(self, e_in: int, n_stage: int) -> tuple[float, float] | None:
        """``(weight lr, alpha lr)`` for epoch ``e_in`` of a stage of ``n_stage``, if the hook
        replaces the default schedule."""
        return None

    def on_epoch(self, state: Hookable, e_in: int, stage: int) -> None:
        """Before an epoch's first step."""

    def on_batch(self, state: Hookable, step: int, total_steps: int) -> None:
        """Before each step's alpha update (``step`` counts over the whole search)."""

    def epoch_metrics(self) -> dict[str, Any]:
        """Entries of the epoch's record metrics."""
        return {}

    def derive(
        self, spec: OneShotSpec, weights: dict[str, np.ndarray],
        edges: dict[str, np.ndarray | None],
    ) -> tuple[Architecture, int] | None:
        """The discretised architecture and the skips removed, if the hook changes it."""
        return None


class DartsMinusHook(RegularizerHook):
    def __init__(self, p: DartsMinusParams) -> None:
        self.p = p
        self.betas: list[float] = []

    def on_epoch(self, state: Hookable, e_in: int, stage: int) -> None:
        self.betas = []

    def on_batch(self, state: Hookable, step: int, total_steps: int) -> None:
        state.aux_beta = aux_beta(self.p, step, total_steps)
        self.betas.append(state.aux_beta)

    def epoch_metrics(self) -> dict[str, Any]:
        return {"aux_beta_first": self.betas[0] if self.betas else None,
                "aux_beta_last": self.betas[-1] if self.betas else None}


class PDartsHook(RegularizerHook):
    def __init__(self, p: PDartsParams) -> None:
        self.p = p

    def stages(self, epochs: int) -> list[tuple[int, int]] | None:
        return stage_bounds(epochs, self.p.stages)

    def on_epoch(self, state: Hookable, e_in: int, stage: int) -> None:
        bases = self.p.skip_dropout or [0.0, 0.3, 0.6][: self.p.stages]
        bases = bases + [bases[-1]] * (self.p.stages - len(bases))
        state.skip_dropout = skip_dropout_rate(bases[stage], e_in, self.p.dropout_decay)

    def derive(
        self, spec: OneShotSpec, weights: dict[str, np.ndarray],
        edges: dict[str, np.ndarray | None],
    ) -> tuple[Architecture, int] | None:
        if self.p.skip_limit is None:
            return None
        return limit_skips(spec, weights, edges, self.p.skip_limit)

    def keep(self, n_ops: int, stage: int) -> int:
        """Ops kept per edge when stage ``stage`` (>= 1) begins."""
        return (self.p.keep or default_keep(n_ops, self.p.stages))[stage - 1]


class SharpHook(RegularizerHook):
    def __init__(self, p: SharpParams, w_lr: float, w_lr_min: float, alpha_lr: float) -> None:
        self.p, self.w_lr, self.w_lr_min, self.alpha_lr = p, w_lr, w_lr_min, alpha_lr
        self.weighting = "max_w" if p.max_w else None

    def learning_rates(self, e_in: int, n_stage: int) -> tuple[float, float] | None:
        if not self.p.cosine_power:
            return None
        return (cosine_power_lr(self.w_lr, self.w_lr_min, e_in, n_stage, self.p.power),
                cosine_power_lr(self.alpha_lr, self.p.alpha_lr_min, e_in, n_stage, self.p.power))
