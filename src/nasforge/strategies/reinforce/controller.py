"""REINFORCE controller: an autoregressive RNN that samples architectures decision by decision.

Papers: Williams, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning" (1992); Zoph & Le, "Neural Architecture Search with Reinforcement
Learning", arXiv:1611.01578. Seeds: 002 (nicklashansen/minimal-nas, GRU REINFORCE on half-moons)
and 003 (titu1994/neural-architecture-search, LSTM controller with StateSpace / Controller /
NetworkManager). Specification: ALGORITHMS.md sections 3 and 4.

Works on any space through its sequential decision view: decision ``t`` chooses among
``space.options(t)`` with the softmax head ``space.head(t)`` (shared where equal), choices are
masked by ``space.allowed(prefix)``, and the embedding of the token sampled at ``t`` is the input
at ``t + 1`` (one embedding table per state type: ``space.state_of(t)`` where the space has it,
else per head). Actions are always *sampled* during search; argmax is only used by
:meth:`Controller.greedy` for the final report.

Update (one per ``batch_size`` = M rollouts): ``loss = mean_i -(log pi(x_i) (R_i - b) +
beta_i H_i) / T_i`` (``loss_norm: steps``; ``sum`` drops ``1/T``), with an optional EMA baseline,
advantage clipping, entropy bonus ``beta_i = entropy_weight * entropy_decay ** rollout``, and an
optional epsilon mixture with uniformly random architectures whose log-probability
``log((1-eps) pi(x) + eps u(x))`` is used in the gradient (so exploration stays on-policy).

Quirks as named fields (``preset:`` bundles them; any field given explicitly overrides the preset):

=========================  ==================  ================  ============================
field                      default             reference_002     reference_003
=========================  ==================  ================  ============================
feed_action (Q-M1)         true                false (zero in)   true
start_input (Q-M1, T5)     learned             zero              previous_arch (T5)
baseline (Q-M2, T7)        ema, beta 0.8       none              ema 0.8, init zero
shaping (Q-M5)             false (masking)     true: -1 / -0.1   false
reward_clip (T7)           0 (off)             0                 0.1
reward_norm                running             none              none
loss_conditioning (T2)     taken               taken             own (policy's own chain)
mixture_logprob (T2)       true                (no epsilon)      false
label_index_scaling (T3)   false               false             true
l2, l2_reward_scaled (T4)  0                   0                 1e-3, true
optimizer, lr              adam 1e-2           adam 1e-2         rmsprop_tf1 0.1, x0.95 / 500
epsilon                    0                   0                 0.8, x0.99 / 20 while > 0.5
cell, hidden, embedding    gru 64, 16          gru 64, 10        lstm 32, 20
entropy weight, decay      0.01, 0.99/rollout  0.01, 0.99        0 (none in the seed)
loss_norm, batch_size      steps, 8            steps, 1          sum, 1
=========================  ==================  ================  ============================

Deviations and decisions:
    - T1 (seed 003 generates by argmax) is treated as a bug: every preset samples. With
      ``loss_conditioning: own`` the RNN is driven by the policy's own *sampled* chain (not an
      argmax chain) while the labels are the actions actually evaluated (T2).
    - The epsilon mixture acts on whole architectures (seed 003's ``exploration``); the random
      architecture is drawn uniformly decision by decision among the allowed choices.
    - The controller always runs on the CPU (a few thousand parameters; the run's device is for
      children). ``rmsprop_tf1`` is TF1's RMSPropOptimizer as seed 003 used it (decay 0.9,
      epsilon 1e-10 inside the square root, no momentum, and the mean-square accumulator
      starting at 1.0, so the first step is about ``lr * g``, not ``lr * g / sqrt(1 - decay)``
      as with PyTorch's RMSprop, whose accumulator starts at 0; ``rmsprop`` is PyTorch's).
    - The L2 term is ``l2 * sum(p^2)`` over all controller parameters, as in seed 003 (no 1/2).
    - ``reward_norm: running`` (the default preset) divides the advantages by the running
      standard deviation of every reward seen so far (this batch included), so the update does
      not depend on the scale of the scores (accuracies, returns, negative losses); the EMA
      baseline already removes their offset. The reference presets keep raw rewards.
    - Batches do not depend on the budget: when the budget ends inside a batch, the trials
      asked but not evaluated are left pending (that batch is never told), so a 50-query run
      asks exactly the first 50 architectures of a 200-query run.
    - A failed child gives ``failed_reward``. Rewards come from the stored records, so the reward
      cache (a repeated architecture re-uses its first result unless ``reevaluate``) applies.
    - Seed 002's child-training quirks (Q-M3 last-epoch reward, Q-M4 batch-mean accuracy) are
      evaluator settings (``reward: last``, ``val_metric: batch_mean``); its free grammar is the
      space's ``grammar: free``. See configs/moons_reinforce_reference.yaml.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from torch import nn

from nasforge.config import build_component, format_validation_error
from nasforge.data import TASKS
from nasforge.data.base import Task
from nasforge.engine.final import FinalReport, fit_all, report_best
from nasforge.evaluators.base import Retrainable, evaluate_safely
from nasforge.evaluators.train import TrainEvaluator, TrainParams
from nasforge.exceptions import ConfigError, UnknownName
from nasforge.logging import get_logger
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture, SearchSpace, Token
from nasforge.storage.base import Record
from nasforge.storage.state import register_state_type
from nasforge.strategies.base import STRATEGIES, AskTellParams, AskTellStrategy
from nasforge.strategies.reinforce._math import (
    ema_advantages,
    mixture_logprob,
    reinforce_loss,
    shaping_penalty,
)

if TYPE_CHECKING:
    from nasforge.data.base import Task
    from nasforge.evaluators.base import Result
    from nasforge.strategies.base import SearchContext

_logger = get_logger(__name__)

RNNState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


# ------------------------------------------------------------------------- configuration
class ControllerConfig(BaseModel):
    """Every controller setting; the defaults are the ``default`` preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    batch_size: int = Field(default=8, ge=1, description="M: rollouts per controller update")
    cell: Literal["gru", "lstm"] = "gru"
    hidden_size: int = Field(default=64, ge=1)
    embedding_dim: int = Field(default=16, ge=1)
    feed_action: bool = Field(
        default=True, description="Q-M1: feed the previous token's embedding (false: zero input)"
    )
    start_input: Literal["learned", "zero", "previous_arch"] = Field(
        default="learned",
        description="input at t=0: a learned start vector, zeros, or (T5) the embedding of the "
        "previous trial's first token",
    )
    baseline: Literal["none", "ema"] = Field(default="ema", description="Q-M2")
    baseline_beta: float = Field(default=0.8, ge=0, lt=1, description="b <- beta b + (1-beta) R")
    baseline_init: Literal["first", "zero"] = Field(
        default="first", description="before any reward: the first batch's mean, or 0 (seed 003)"
    )
    reward_clip: float = Field(default=0.0, ge=0, description="clip R - b to +-value; 0: off")
    reward_norm: Literal["none", "running"] = Field(
        default="running",
        description="divide R - b by the running std of all rewards so far (scale-free updates)",
    )
    failed_reward: float = Field(default=0.0, description="reward of a child that failed")
    shaping: bool = Field(default=False, description="Q-M5: seed 002's penalties (mlp space)")
    early_stop_penalty: float = -1.0
    repeat_penalty: float = -0.1
    entropy_weight: float = Field(default=0.01, ge=0)
    entropy_decay: float = Field(default=0.99, gt=0, le=1, description="per rollout")
    epsilon: float = Field(default=0.0, ge=0, le=1, description="P(uniformly random arch)")
    epsilon_decay: float = Field(default=1.0, gt=0, le=1)
    epsilon_decay_every: int = Field(default=1, ge=1, description="updates between decays")
    epsilon_min: float = Field(default=0.0, ge=0, le=1, description="decay only while above")
    mixture_logprob: bool = Field(
        default=True, description="T2: log-probs of the epsilon mixture (false: policy only)"
    )
    loss_conditioning: Literal["taken", "own"] = Field(
        default="taken",
        description="T2: RNN inputs in the loss are the evaluated actions, or the policy's own "
        "chain (seed 003)",
    )
    label_index_scaling: bool = Field(default=False, description="T3: weight log pi(a) by a+1")
    l2: float = Field(default=0.0, ge=0, description="L2 penalty on controller parameters")
    l2_reward_scaled: bool = Field(default=False, description="T4: multiply the L2 term by A")
    loss_norm: Literal["steps", "sum"] = Field(default="steps", description="steps: 1/T")
    optimizer: Literal["adam", "rmsprop", "rmsprop_tf1", "sgd"] = "adam"
    lr: float = Field(default=1e-2, gt=0)
    lr_decay: float = Field(default=1.0, gt=0, le=1, description="staircase factor")
    lr_decay_every: int = Field(default=1, ge=1, description="updates per lr decay")
    grad_clip: float = Field(default=0.0, ge=0, description="max grad norm; 0: off")


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "reference_002": {
        "batch_size": 1,
        "cell": "gru",
        "hidden_size": 64,
        "embedding_dim": 10,
        "feed_action": False,
        "start_input": "zero",
        "baseline": "none",
        "reward_norm": "none",
        "shaping": True,
        "entropy_weight": 0.01,
        "entropy_decay": 0.99,
        "optimizer": "adam",
        "lr": 1e-2,
        "loss_norm": "steps",
    },
    "reference_003": {
        "batch_size": 1,
        "cell": "lstm",
        "hidden_size": 32,
        "embedding_dim": 20,
        "feed_action": True,
        "start_input": "previous_arch",
        "baseline": "ema",
        "baseline_beta": 0.8,
        "baseline_init": "zero",
        "reward_clip": 0.1,
        "reward_norm": "none",
        "entropy_weight": 0.0,
        "epsilon": 0.8,
        "epsilon_decay": 0.99,
        "epsilon_decay_every": 20,
        "epsilon_min": 0.5,
        "mixture_logprob": False,
        "loss_conditioning": "own",
        "label_index_scaling": True,
        "l2": 1e-3,
        "l2_reward_scaled": True,
        "loss_norm": "sum",
        "optimizer": "rmsprop_tf1",
        "lr": 0.1,
        "lr_decay": 0.95,
        "lr_decay_every": 500,
    },
}
"""Named bundles of :class:`ControllerConfig` fields."""


def resolve_config(
    preset: str = "default", overrides: dict[str, Any] | None = None
) -> ControllerConfig:
    """The preset's fields, then ``overrides`` (explicit fields win), validated."""
    if preset not in PRESETS:
        raise UnknownName("reinforce preset", preset, sorted(PRESETS))
    data = {**PRESETS[preset], **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        cfg = ControllerConfig(**data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "strategy", ControllerConfig)) from None
    if cfg.label_index_scaling and cfg.mixture_logprob and cfg.epsilon > 0:
        raise ConfigError(
            "strategy.label_index_scaling needs mixture_logprob: false when epsilon > 0 "
            "(a mixture log-probability has no per-decision labels)"
        )
    return cfg


def _params_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "preset": (
            Literal["default", "reference_002", "reference_003"],
            Field(default="default", description="bundle of controller fields (see docstring)"),
        ),
        "final_greedy": (
            bool,
            Field(default=True, description="also report (and retrain) the greedy decode"),
        ),
    }
    for name, f in ControllerConfig.model_fields.items():
        ann: Any = f.annotation
        desc = f"{f.description + '; ' if f.description else ''}default: from the preset"
        fields[name] = (ann | None, Field(default=None, description=desc))
    return fields


ReinforceParams: type[BaseModel] = create_model(
    "ReinforceParams", __base__=AskTellParams, **_params_fields()
)
"""Strategy params: ``preset`` plus every ControllerConfig field as an optional override."""


# ------------------------------------------------------------------------------- network
@dataclass(frozen=True)
class Layout:
    """How a space's decisions map onto softmax heads and embedding tables."""

    n_options: tuple[int, ...]  # choices of decision t
    head: tuple[int, ...]  # head index of decision t
    embed: tuple[int, ...]  # embedding table of the token chosen at decision t
    head_sizes: tuple[int, ...]
    embed_sizes: tuple[int, ...]

    @classmethod
    def of(cls, space: SearchSpace) -> Layout:
        steps = space.max_steps()
        n_opts = tuple(len(space.options(t)) for t in range(steps))
        state_of = getattr(space, "state_of", None)
        raw_head = [space.head(t) for t in range(steps)]
        raw_emb = [state_of(t) if callable(state_of) else space.head(t) for t in range(steps)]

        def renumber(raw: list[Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
            ids: dict[Any, int] = {}
            for r in raw:
                ids.setdefault(r, len(ids))
            sizes = [0] * len(ids)
            for t, r in enumerate(raw):
                sizes[ids[r]] = max(sizes[ids[r]], n_opts[t])
            return tuple(ids[r] for r in raw), tuple(sizes)

        head, head_sizes = renumber(raw_head)
        embed, embed_sizes = renumber(raw_emb)
        return cls(n_opts, head, embed, head_sizes, embed_sizes)


class ControllerNet(nn.Module):
    """RNN cell + one embedding table per state type + one linear softmax head per head index."""

    def __init__(
        self, layout: Layout, *, cell: str, hidden_size: int, embedding_dim: int,
        feed_action: bool, start_input: str,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.is_lstm = cell == "lstm"
        self.hidden_size = hidden_size
        self.feed_action = feed_action
        self.start_input = start_input
        self.rnn: nn.GRUCell | nn.LSTMCell = (
            nn.LSTMCell(embedding_dim, hidden_size)
            if self.is_lstm
            else nn.GRUCell(embedding_dim, hidden_size)
        )
        self.heads = nn.ModuleList(nn.Linear(hidden_size, n) for n in layout.head_sizes)
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in layout.embed_sizes)
        self.start = nn.Parameter(torch.zeros(1, embedding_dim))
        self.zero: torch.Tensor
        self.register_buffer("zero", torch.zeros(1, embedding_dim))

    def initial_state(self, n: int) -> RNNState:
        h = torch.zeros(n, self.hidden_size)
        return (h, torch.zeros_like(h)) if self.is_lstm else h

    def inputs(
        self, t: int, prev: Sequence[int], prev_first: Sequence[int | None]
    ) -> torch.Tensor:
        """(n, E) inputs of decision ``t`` for n sequences: the embedding of each sequence's
        token at ``t - 1`` (``prev``), or at ``t = 0`` the start input."""
        n = len(prev_first)
        if t == 0:
            if self.start_input == "previous_arch":
                have = [i for i, f in enumerate(prev_first) if f is not None]
                x = self.start.expand(n, -1)
                if have:  # seed 003: the previous trial's first token; row 0 ("default") before
                    tokens = torch.tensor([prev_first[i] if prev_first[i] is not None else 0
                                           for i in range(n)])
                    emb = self.embeddings[self.layout.embed[0]](tokens)
                    known = torch.tensor([f is not None for f in prev_first]).unsqueeze(1)
                    x = torch.where(known, emb, x)
                return x
            return (self.start if self.start_input == "learned" else self.zero).expand(n, -1)
        if not self.feed_action:
            return self.zero.expand(n, -1)
        return self.embeddings[self.layout.embed[t - 1]](torch.tensor(list(prev)))

    def step(self, x: torch.Tensor, state: RNNState) -> tuple[torch.Tensor, RNNState]:
        if isinstance(state, tuple):
            h, c = self.rnn(x, state)
            return h, (h, c)
        h = self.rnn(x, state)
        return h, h

    def logits(self, t: int, h: torch.Tensor) -> torch.Tensor:
        """(n, options of decision t) logits."""
        return self.heads[self.layout.head[t]](h)[:, : self.layout.n_options[t]]


# ---------------------------------------------------------------------------- controller
class TF1RMSprop(torch.optim.Optimizer):
    """TF1's ``RMSPropOptimizer`` without momentum, as seed 003 used it.

    ``ms <- decay ms + (1 - decay) g^2``; ``p <- p - lr g / sqrt(ms + eps)``, with ``ms``
    starting at 1.0 (TF1's initial accumulator) and ``eps`` inside the square root.
    """

    def __init__(
        self, params: Any, lr: float = 1e-3, decay: float = 0.9, eps: float = 1e-10
    ) -> None:
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "ms" not in state:
                    state["ms"] = torch.ones_like(p)
                ms = state["ms"]
                ms.mul_(group["decay"]).addcmul_(p.grad, p.grad, value=1.0 - group["decay"])
                p.addcdiv_(p.grad, ms.add(group["eps"]).sqrt(), value=-group["lr"])
        return loss


# ------------------------------------------------------------- seed compatibility
# What only the seeds' reference presets switch on; the default algorithm never calls these.


def seed_logprob_quirks(cfg: ControllerConfig) -> bool:
    """Whether a reference preset changes the sequence log-probability."""
    return bool(cfg.label_index_scaling or cfg.mixture_logprob)


def seed_sequence_logprobs(
    cfg: ControllerConfig, logp: torch.Tensor, log_u: Sequence[float],
    rollouts: Sequence[Rollout],
) -> list[torch.Tensor]:
    """Per-rollout log-probabilities under the seeds' quirks: seed 003 scales each decision's
    log-probability by its label index + 1 (``label_index_scaling``); seed 002 scores an
    epsilon-explored rollout under the epsilon mixture (``mixture_logprob``)."""
    if cfg.label_index_scaling:
        labels = torch.zeros_like(logp)
        for i, r in enumerate(rollouts):
            labels[i, : len(r.taken)] = torch.tensor(r.taken, dtype=logp.dtype)
        logp = (labels + 1.0) * logp
    seq = [logp[i].sum() for i in range(len(rollouts))]
    if cfg.mixture_logprob:
        seq = [
            mixture_logprob(lp, log_u[i], r.epsilon) if r.epsilon > 0 else lp
            for i, (lp, r) in enumerate(zip(seq, rollouts))
        ]
    return seq


def l2_penalty(
    cfg: ControllerConfig, net: nn.Module, adv: torch.Tensor
) -> torch.Tensor | float:
    """Weight decay in the loss; seed 003 scales it by the batch's mean advantage."""
    l2 = cfg.l2 * sum((p * p).sum() for p in net.parameters())
    return l2 * adv.mean() if cfg.l2_reward_scaled else l2


@register_state_type
@dataclass(frozen=True)
class Rollout:
    """One sampled architecture and what the update needs to score it again."""

    arch: Architecture
    taken: tuple[int, ...]  # decisions of the evaluated architecture
    own: tuple[int, ...]  # the policy's own sample (equals ``taken`` unless explored)
    explored: bool  # drawn uniformly at random (epsilon)
    epsilon: float  # epsilon at sampling time
    prev_first: int | None  # the previous trial's first token (start_input: previous_arch)


def _masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.masked_fill(~mask, -math.inf), dim=-1)


def _entropy(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of a masked log-softmax (masked entries are -inf: zeroed first, so
    that no NaN reaches the gradient)."""
    safe = logp.masked_fill(~mask, 0.0)
    return -(safe.exp() * safe * mask).sum(dim=-1)


class Controller:
    """The controller and its learner, usable without a run store (seed 003's ``Controller``).

    Example (``manager`` is a :class:`NetworkManager`)::

        space = StateSpace(num_layers=4)
        space.add_state("kernel", [1, 3])
        space.add_state("filters", [8, 16, 32])
        controller = Controller(space, preset="default", seed=0)
        for trial in range(100):
            arch = controller.get_actions()              # sample one architecture
            controller.update(manager.get_reward(arch))  # learn from its reward

    ``sample(n)`` / ``learn(rollouts, scores)`` are the batch form used by the ``reinforce``
    strategy. All randomness comes from the controller's own torch generator, and
    ``state_dict`` / ``load_state_dict`` capture everything (weights, optimiser, generator,
    baseline, schedules), so a restored controller continues exactly.
    """

    def __init__(
        self, space: SearchSpace, *, preset: str = "default", seed: int = 0,
        config: ControllerConfig | None = None, **overrides: Any,
    ) -> None:
        self.space = space
        self.config = config if config is not None else resolve_config(preset, overrides)
        self.seed = int(seed)
        cfg = self.config
        if cfg.shaping and not (hasattr(space, "kind") and hasattr(space, "eos")):
            raise ConfigError(
                f"strategy.shaping needs a space with width/activation/stop tokens (mlp); "
                f"space {space.name!r} has none"
            )
        self.layout = Layout.of(space)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "controller-init"))
            self.net = ControllerNet(
                self.layout, cell=cfg.cell, hidden_size=cfg.hidden_size,
                embedding_dim=cfg.embedding_dim, feed_action=cfg.feed_action,
                start_input=cfg.start_input,
            )
        params = list(self.net.parameters())
        if cfg.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=cfg.lr)
        elif cfg.optimizer == "rmsprop":
            self.optimizer = torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.9, eps=1e-10)
        elif cfg.optimizer == "rmsprop_tf1":
            self.optimizer = TF1RMSprop(params, lr=cfg.lr, decay=0.9, eps=1e-10)
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(derive_seed(self.seed, "controller-sample"))
        self.baseline_value: float | None = None
        self.reward_stats = (0, 0.0, 0.0)  # count, mean, sum of squared deviations (Welford)
        self.epsilon = cfg.epsilon
        self.rollouts_seen = 0
        self.updates = 0
        self.prev_first: int | None = None
        self.pending: list[Rollout] = []
        self._mask_cache: dict[tuple[int, ...], torch.Tensor] = {}

    # ---------------------------------------------------------------- sampling
    def _mask(self, prefix: Sequence[int]) -> torch.Tensor:
        key = tuple(prefix)
        m = self._mask_cache.get(key)
        if m is None:
            m = torch.from_numpy(np.asarray(self.space.allowed(key), dtype=bool).copy())
            if len(self._mask_cache) < 100_000:
                self._mask_cache[key] = m
        return m

    def _masks(
        self, t: int, prefixes: Sequence[Sequence[int]], active: Sequence[bool]
    ) -> torch.Tensor:
        """(n, options of decision t) allowed choices; rows that are not active allow all."""
        width = self.layout.n_options[t]
        full = torch.ones(width, dtype=torch.bool)
        return torch.stack([
            self._mask(p[:t]) if act else full for p, act in zip(prefixes, active)
        ])

    def _decode(self, n: int, how: str, prev_first: int | None) -> list[list[int]]:
        """``n`` decision sequences decoded in parallel: ``sample`` or ``greedy`` (argmax)."""
        prefixes: list[list[int]] = [[] for _ in range(n)]
        active = [not self.space.is_complete([]) for _ in range(n)]
        state = self.net.initial_state(n)
        t = 0
        while any(active):
            prev = [p[t - 1] if t > 0 and len(p) >= t else 0 for p in prefixes]
            h, state = self.net.step(self.net.inputs(t, prev, [prev_first] * n), state)
            logp = _masked_log_softmax(self.net.logits(t, h), self._masks(t, prefixes, active))
            if how == "greedy":
                choice = logp.argmax(dim=1)
            else:
                rows = torch.tensor([i for i in range(n) if active[i]])
                choice = torch.zeros(n, dtype=torch.long)
                choice[rows] = torch.multinomial(logp[rows].exp(), 1, generator=self.generator)[
                    :, 0
                ]
            for i in range(n):
                if active[i]:
                    prefixes[i].append(int(choice[i]))
                    active[i] = not self.space.is_complete(prefixes[i])
            t += 1
        return prefixes

    def _uniform(self) -> list[int]:
        """One sequence drawn uniformly decision by decision among the allowed choices."""
        prefix: list[int] = []
        while not self.space.is_complete(prefix):
            choices = torch.nonzero(self._mask(prefix)).flatten()
            k = int(torch.randint(len(choices), (1,), generator=self.generator))
            prefix.append(int(choices[k]))
        return prefix

    @torch.no_grad()
    def sample(self, n: int) -> list[Rollout]:
        """Sample ``n`` architectures (policy, or uniform with probability epsilon).

        All ``n`` are conditioned on the same previous architecture (``start_input:
        previous_arch``): the last one of the previous batch.
        """
        prev_first = self.prev_first
        owns = self._decode(n, "sample", prev_first)
        out = []
        for own in owns:
            explored = False
            taken = own
            if self.epsilon > 0 and float(torch.rand(1, generator=self.generator)) < self.epsilon:
                taken, explored = self._uniform(), True
            arch = self.space.decode(taken)
            out.append(Rollout(arch, tuple(taken), tuple(own), explored, self.epsilon, prev_first))
            self.prev_first = taken[0] if taken else None
        return out

    @torch.no_grad()
    def greedy(self) -> Architecture:
        """The policy's most likely decision at every step (the final report; never in search)."""
        return self.space.decode(self._decode(1, "greedy", self.prev_first)[0])

    @torch.no_grad()
    def log_prob(self, arch: Architecture) -> float:
        """log pi(arch) under the current policy (without epsilon)."""
        taken = tuple(self.space.encode(arch))
        logp, _, _ = self._score([Rollout(arch, taken, taken, False, 0.0, self.prev_first)])
        return float(logp.sum())

    # ---------------------------------------------------------------- learning
    def _score(
        self, rollouts: Sequence[Rollout]
    ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """Teacher-forced pass over a batch: (M, T) log pi(a_t) and entropies H_t (zero past a
        rollout's end; with gradients), and each rollout's log u(x) under uniform sampling."""
        n = len(rollouts)
        conds = [r.own if self.config.loss_conditioning == "own" else r.taken for r in rollouts]
        taken = [r.taken for r in rollouts]
        steps = max(len(x) for x in taken)
        state = self.net.initial_state(n)
        prev_first = [r.prev_first for r in rollouts]
        logps, ents = [], []
        log_u = [0.0] * n
        for t in range(steps):
            active = [t < len(x) for x in taken]
            prev = [0] * n
            if t > 0:
                for i in range(n):
                    if active[i]:
                        prev[i] = conds[i][t - 1] if t - 1 < len(conds[i]) else taken[i][t - 1]
            h, state = self.net.step(self.net.inputs(t, prev, prev_first), state)
            masks = self._masks(t, taken, active)
            logp = _masked_log_softmax(self.net.logits(t, h), masks)
            labels = torch.tensor([x[t] if a else 0 for x, a in zip(taken, active)])
            valid = torch.tensor(active, dtype=logp.dtype)
            logps.append(logp.gather(1, labels[:, None])[:, 0] * valid)
            ents.append(_entropy(logp, masks) * valid)
            for i in range(n):
                if active[i]:
                    log_u[i] -= math.log(int(masks[i].sum()))
        return torch.stack(logps, dim=1), torch.stack(ents, dim=1), log_u

    def rewards(self, rollouts: Sequence[Rollout], scores: Sequence[float | None]) -> list[float]:
        """Controller rewards: the child's score (or ``failed_reward``) plus shaping."""
        cfg = self.config
        out = []
        for r, s in zip(rollouts, scores):
            value = cfg.failed_reward if s is None or not math.isfinite(s) else float(s)
            if cfg.shaping:
                kind = getattr(self.space, "kind")  # noqa: B009  (checked in __init__)
                kinds = [kind(i) for i in r.taken]
                value += shaping_penalty(
                    kinds, early_stop=cfg.early_stop_penalty, repeat=cfg.repeat_penalty
                )
            out.append(value)
        return out

    def learn(self, rollouts: Sequence[Rollout], scores: Sequence[float | None]) -> dict[str, Any]:
        """One REINFORCE update from finished rollouts; ``scores`` are child accuracies (None or
        NaN: failed). Returns the update's statistics."""
        cfg = self.config
        if len(rollouts) != len(scores) or not rollouts:
            raise ValueError(f"learn: {len(rollouts)} rollouts but {len(scores)} scores")
        rewards = self.rewards(rollouts, scores)
        baseline_before = self.baseline_value
        if cfg.baseline == "ema":
            adv, self.baseline_value = ema_advantages(
                rewards, self.baseline_value, beta=cfg.baseline_beta, init=cfg.baseline_init
            )
        else:
            adv = list(rewards)
        n_r, mean_r, m2_r = self.reward_stats
        for val in rewards:
            n_r += 1
            d = val - mean_r
            mean_r += d / n_r
            m2_r += d * (val - mean_r)
        self.reward_stats = (n_r, mean_r, m2_r)
        if cfg.reward_norm == "running":
            std = math.sqrt(m2_r / n_r)
            adv = [a / std for a in adv] if std > 1e-12 else adv
        if cfg.reward_clip > 0:
            adv = [max(-cfg.reward_clip, min(cfg.reward_clip, a)) for a in adv]
        m = len(rollouts)
        ent_w = [
            cfg.entropy_weight * cfg.entropy_decay ** (self.rollouts_seen + i) for i in range(m)
        ]
        logp, ent, log_u = self._score(rollouts)
        # the default: the sequence's log-probability is the sum over its decisions
        seq_logp = [logp[i].sum() for i in range(m)]
        if seed_logprob_quirks(cfg):  # seed 003's label scaling / seed 002's mixture (off)
            seq_logp = seed_sequence_logprobs(cfg, logp, log_u, rollouts)
        lengths = [len(r.taken) for r in rollouts]
        ent_sum = ent.sum(dim=1)
        adv_t = torch.tensor(adv, dtype=torch.float32)
        loss = reinforce_loss(
            torch.stack(seq_logp), ent_sum, torch.tensor(lengths),
            adv_t, torch.tensor(ent_w, dtype=torch.float32), normalize=cfg.loss_norm == "steps",
        )
        if cfg.l2 > 0:
            loss = loss + l2_penalty(cfg, self.net, adv_t)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        self.rollouts_seen += m
        if cfg.lr_decay < 1.0:
            for g in self.optimizer.param_groups:
                g["lr"] = cfg.lr * cfg.lr_decay ** (self.updates // cfg.lr_decay_every)
        eps_used = self.epsilon
        if self.updates % cfg.epsilon_decay_every == 0 and self.epsilon > cfg.epsilon_min:
            self.epsilon *= cfg.epsilon_decay
        return {
            "update": self.updates - 1,
            "rewards": rewards,
            "advantages": adv,
            "baseline": baseline_before,
            "loss": float(loss.detach()),
            "entropy": float(ent_sum.detach().sum()) / max(1, sum(lengths)),
            "entropy_weight": ent_w[0],
            "epsilon": eps_used,
            "explored": [r.explored for r in rollouts],
            "lr": float(self.optimizer.param_groups[0]["lr"]),
        }

    # ------------------------------------------------- seed 003's interactive form
    def get_actions(self) -> Architecture:
        """Sample one architecture and remember it until :meth:`update`."""
        (r,) = self.sample(1)
        self.pending.append(r)
        return r.arch

    def get_batch(self, n: int) -> list[Architecture]:
        """Sample ``n`` architectures and remember them until :meth:`update`."""
        rs = self.sample(n)
        self.pending.extend(rs)
        return [r.arch for r in rs]

    def update(self, rewards: float | None | Sequence[float | None]) -> dict[str, Any]:
        """Learn from the reward(s) of the architectures handed out since the last update."""
        scores = [rewards] if rewards is None or isinstance(rewards, (int, float)) else rewards
        if len(scores) != len(self.pending):
            raise ValueError(
                f"update: {len(scores)} rewards for {len(self.pending)} pending architectures"
            )
        stats = self.learn(self.pending, list(scores))
        self.pending = []
        return stats

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; tensors as numpy arrays (fast to pickle)."""
        return {
            "config": self.config.model_dump(),
            "seed": self.seed,
            "net": _to_numpy(self.net.state_dict()),
            "optimizer": _to_numpy(self.optimizer.state_dict()),
            "generator": _to_numpy(self.generator.get_state()),
            "baseline_value": self.baseline_value,
            "reward_stats": self.reward_stats,
            "epsilon": self.epsilon,
            "rollouts_seen": self.rollouts_seen,
            "updates": self.updates,
            "prev_first": self.prev_first,
            "pending": list(self.pending),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["config"] != self.config.model_dump():
            raise ConfigError("controller state was saved with different controller settings")
        self.net.load_state_dict(_to_torch(state["net"]))
        self.optimizer.load_state_dict(_to_torch(state["optimizer"]))
        self.generator.set_state(_to_torch(state["generator"]))
        self.baseline_value = state["baseline_value"]
        self.reward_stats = tuple(state["reward_stats"])
        self.epsilon = state["epsilon"]
        self.rollouts_seen = state["rollouts_seen"]
        self.updates = state["updates"]
        self.prev_first = state["prev_first"]
        self.pending = list(state["pending"])


def _to_numpy(obj: Any) -> Any:
    """Tensors (nested in dicts and lists) -> numpy arrays (for the checkpoint codec)."""
    if isinstance(obj, torch.Tensor):
        return _TensorArray(obj.detach().cpu().numpy().copy())
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def _to_torch(obj: Any) -> Any:
    if isinstance(obj, _TensorArray):
        return torch.from_numpy(obj.array.copy())
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(v) for v in obj)
    return obj


@register_state_type
@dataclass(frozen=True)
class _TensorArray:
    """A tensor stored as a numpy array (marks what :func:`_to_torch` turns back)."""

    array: np.ndarray


# ------------------------------------------------------------------------------ strategy
@STRATEGIES.register("reinforce")
class Reinforce(AskTellStrategy):
    """The controller as an ask/tell strategy: ask samples M architectures, tell updates once.

    Each update is stored as series ``controller`` (rewards, advantages, baseline, loss,
    entropy, epsilon, lr); ``finalize`` reports the best trial (retrained, as every strategy)
    plus the greedy decode of the final policy under ``greedy``.
    """

    name: ClassVar[str] = "reinforce"
    Params: ClassVar[type[BaseModel]] = ReinforceParams
    transient: ClassVar[tuple[str, ...]] = (
        "space", "picked", "p", "controller", "_ctx", "config")

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        p = self.p
        fields = {k: getattr(p, k) for k in ControllerConfig.model_fields}
        cfg = resolve_config(p.preset, fields)
        self.batch_size = cfg.batch_size  # the preset's when the config does not say
        self.preset: str = p.preset
        self.config = cfg
        self.final_greedy: bool = p.final_greedy
        self.pending: list[Rollout] = []
        self.controller: Controller | None = None
        self._ctx: SearchContext | None = None

    def run(self, ctx: SearchContext) -> None:
        self._ctx = ctx
        try:
            super().run(ctx)
        finally:
            self._ctx = None

    def setup(self, ctx: SearchContext) -> None:
        self.controller = Controller(ctx.space, config=self.config, seed=self.seed)
        with ctx.transaction():
            ctx.set_meta("controller", {"preset": self.preset, **self.config.model_dump()})

    def ask(self, n: int) -> list[Architecture]:
        assert self.controller is not None
        self.pending = self.controller.sample(n)
        return [r.arch for r in self.pending]

    def tell(self, records: list[Record]) -> None:
        assert self.controller is not None
        rollouts = self.pending[: len(records)]
        scores = [r.val_acc if r.ok else None for r in records]
        stats = self.controller.learn(rollouts, scores)
        stats["trials"] = [r.number for r in records]
        stats["val_accs"] = [r.val_acc if r.ok else None for r in records]
        self.pending = []
        if self._ctx is not None:
            with self._ctx.transaction():  # idempotent if a resumed run redoes this tell
                self._ctx.log_series("controller", stats["update"], stats, truncate=True)
            self._ctx.emit_step(
                stats["update"] + 1, -(-self._ctx.budget // self.batch_size),
                {"reward": float(np.mean(stats["rewards"])), "baseline": stats["baseline"]},
            )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        ctrl = self.controller
        state["controller_state"] = None if ctrl is None else ctrl.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        cstate = state.pop("controller_state")
        super().load_state_dict(state)
        assert self.space is not None
        self.controller = Controller(self.space, config=self.config, seed=self.seed)
        if cstate is not None:
            self.controller.load_state_dict(cstate)

    def finalize(self, ctx: SearchContext) -> FinalReport:
        report = report_best(ctx)
        if self.final_greedy and self.controller is not None:
            greedy = greedy_report(ctx, self.controller, report)
            report = replace(report, extra={**report.extra, "greedy": greedy})
        return report


def greedy_report(
    ctx: SearchContext, controller: Controller, best: FinalReport
) -> dict[str, Any]:
    """The greedy decode of the final policy: its probability, its search result if it was
    evaluated, and (like the best trial) its retrained validation and test scores."""
    arch = controller.greedy()
    out: dict[str, Any] = {
        "arch": arch.to_json(),
        "arch_id": arch.arch_id,
        "describe": ctx.space.describe(arch),
        "policy_prob": math.exp(controller.log_prob(arch)),
    }
    hit = ctx.find_complete(arch.arch_id)
    if hit is not None:
        out.update(trial=hit.number, val_acc=hit.val_acc if hit.ok else None)
    runs = best.retrainings
    if best.arch_id == arch.arch_id and runs:
        out.update(retrain_val_accs=[r.val_acc for r in runs],
                   test_accs=[r.test for r in runs], test_acc=best.test_acc)
        return out
    ev = ctx.evaluator
    if not isinstance(ev, Retrainable) or not runs:
        return out
    done = fit_all(ev, arch, [r.seed for r in runs])
    if done is None:
        out["error"] = "the greedy architecture failed to retrain"
        return out
    models, vals = done
    tests = [float(ev.test_accuracy(m)) for m in models]
    out.update(retrain_val_accs=vals, test_accs=tests, test_acc=statistics.fmean(tests))
    return out


# ---------------------------------------------------------------- seed 003's manager
class NetworkManager:
    """Seed 003's ``NetworkManager``: trains a child on a task and returns its reward.

    ``get_reward(actions)`` trains the architecture (a :class:`TrainEvaluator` with the given
    training settings) and returns its validation accuracy (NaN if it failed). Repeated
    architectures re-use their first result unless ``reevaluate``. Unlike seed 003, the reward
    is the raw accuracy: the baseline and clipping belong to the :class:`Controller`.
    """

    def __init__(
        self, task: Task | str | dict[str, Any], space: SearchSpace, *, seed: int = 0,
        reevaluate: bool = False, device: str | torch.device = "cpu", **train_params: Any,
    ) -> None:

        loaded: Task = (
            task if isinstance(task, Task) else build_component(TASKS, "task", task).load()
        )
        try:
            TrainParams(**train_params)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, "evaluator", TrainParams)) from None
        self.task = loaded
        self.space = space
        self.seed = int(seed)
        self.reevaluate = reevaluate
        self.evaluator = TrainEvaluator(space=space, task=loaded, device=device, **train_params)
        self.cache: dict[str, Result] = {}
        self.history: list[tuple[Architecture, Result]] = []

    def get_reward(self, actions: Architecture | Sequence[Token]) -> float:

        arch = actions if isinstance(actions, Architecture) else Architecture(tuple(actions))
        arch = self.space.validate(arch)
        result = None if self.reevaluate else self.cache.get(arch.arch_id)
        if result is None:
            seed = derive_seed(self.seed, "trial", len(self.history))
            result = evaluate_safely(self.evaluator, arch, seed=seed)
            self.cache.setdefault(arch.arch_id, result)
        self.history.append((arch, result))
        return result.val_acc if result.ok else math.nan

    def test_accuracy(self, actions: Architecture | Sequence[Token], *, seed: int = 0) -> float:
        """Retrain ``actions`` with ``seed``; its test accuracy (use once, at the end)."""
        arch = actions if isinstance(actions, Architecture) else Architecture(tuple(actions))
        model, result = self.evaluator.fit(self.space.validate(arch), seed=seed)
        if model is None:
            return math.nan
        return self.evaluator.test_accuracy(model)
