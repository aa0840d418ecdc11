"""MetaNAS: few-shot architecture search by meta-learning weights and architecture with Reptile.

Papers: Elsken et al., "Meta-Learning of Neural Architectures for Few-Shot Learning", CVPR 2020
(boschresearch/metanas); van Gastel & Vanschoren, "Regularized Meta-Learning for Neural
Architecture Search", AutoML-Conf 2022 workshop (RobvanGastel/meta-fsl-nas, seed 000). The
algorithm is ``ALGORITHMS.md`` §1.1-1.3; the quirk codes Q1-Q9 are explained in
``docs/algorithms.md``.

Per meta-epoch ``e`` (one one-shot "epoch" of :class:`OneShotSearch`): ``meta_batch_size``
episodes of the meta-train classes; per task, from the meta state θ = (w, α, β), the first-order
DARTS inner loop (:meth:`MetaModel.inner_loop`: an architecture step from ``warm_up_epochs`` on,
then a weight step, both Adam with β1 = 0 and optimiser states that persist across tasks and
meta-epochs); then θ is restored and Reptile moves the weights (``w_meta_lr``) and the alphas
(``a_meta_lr``) towards the mean of the task solutions, only the weights that got an inner
gradient (Q2: written explicitly). Every ``eval_freq`` meta-epochs (and at the last): meta-test
on ``test_meta_batch_size`` episodes of the meta-test classes (``test_task_train_steps`` steps,
optimiser states saved and restored around them), one Record whose score is the meta-test
query accuracy, then meta-model pruning. The series ``alphas`` (each meta-epoch) holds the
alphas, the meta-train and meta-test accuracies. ``finalize`` evaluates ``eval_tasks`` fresh
meta-test episodes (mean and 95 % interval) and saves the meta-learned :class:`MetaModel`.

Implementation details and deviations:
    - Episodes are a pure function of (seed, split, index) and inner-loop batches and DropPath
      are seeded per (meta-epoch, task), so a checkpoint of the tensors and optimiser states
      makes ``--resume`` after ``kill -9`` identical to an uninterrupted run.
    - Pairwise input alphas are realised as edge weights ``q_a = sum_b p_ab`` (the same sum).
    - Meta-model pruning uses the P-DARTS masks (weight exactly 0, op not run) instead of
      logits of -1e9, and keeps the best entry of every softmax.
    - Query accuracy uses BatchNorm batch statistics (transductive).
    - Reptile averages the task deltas over all tasks of the meta-batch (0 for a task that did
      not touch a weight) and applies them to the weights touched by at least one task.
    - The tasks of a meta-batch run in sequence by default, as in the reference code: the two
      inner Adam optimisers (β1 = 0) are shared, so task t starts from the second moments and
      step counts task t - 1 ended with; only (w, α, β) are restored between tasks.
    - ``parallel_tasks: true`` (an explicit option; not the serial result): the tasks of a
      meta-batch, and the episodes of a meta-test and of the final evaluation, adapt
      independently through the run's executor (``ctx.executor.map_jobs``; the strategy is
      the shared object, sent to each worker once per P-DARTS stage, the meta state and the
      optimiser states go with every job). Every task starts from the meta state θ *and* the
      optimiser states the meta-batch started with; afterwards the carried state is the
      task-wise mean of the Adam moments (largest step count, :func:`merge_adam_states`), so
      the result does not depend on the order the tasks finish in nor on the worker count
      (local executor with 1 or 2 workers: the same records and meta state, tested). A
      meta-test restores the saved states afterwards in both modes. Not with ``preopt`` (its
      agent learns from task to task).
    - DARTS- in the meta setting: β_aux decays linearly over the inner steps of each phase
      (``1 - s / (S - 1)``: the DARTS hook's schedule); ``reference`` holds it at 0 (Q3).
    - SharpDARTS: ``max_w`` weighting, the ``sharp`` ops come from the space; cosine power
      annealing acts on the two meta learning rates (the weight one held during warm-up).
    - PC-DARTS: partial channels only (no edge normalisation, §1.3).
    - P-DARTS (``pdarts:``, the DARTS family's :class:`~reg.PDartsParams` and
      :class:`~reg.PDartsHook`): the stages split the *meta-epochs* (the released code runs
      its 3 stages inside every task's inner loop instead, 3 x ``task_train_steps``); at the
      first meta-epoch of a stage each edge keeps its top-k ops (per cell type, Q5 default;
      masked for good like meta-model pruning), the meta alphas are re-drawn if
      ``reset_alphas`` and, where ``pdarts.layers`` grows, the supernet gets its new cells
      (weights re-initialised, a new weight optimiser; the space's default reduction
      placement) and the frozen copy (Q1) is re-made. Skip dropout on the identity skip at
      ``base[stage] * exp(-dropout_decay * meta-epoch in stage)``, meta-train only (off in
      meta-test adaptation and in query accuracy). The skip limit acts at discretisation,
      counted on the pairwise genotype (Q7 default). The stage is in the checkpoint; a resumed
      run rebuilds the stage's supernet before loading it.
    - Meta-RL pre-optimisation (§1.4, ``preopt: meta_rl | random``): before the inner loop of
      a task whose alphas adapt (after warm-up; meta-test tasks too unless
      ``preopt_settings.at_test`` is off), :meth:`MetaNAS.pre_optimize` runs one trial per
      cell of :class:`nasforge.rl.preopt.PreOptimizer`; its estimator is one weight step of
      the live meta-model on the support set (its own batch generator, the inner optimiser
      states restored at every episode start and afterwards) and the support accuracy. The
      state after the best estimate starts the next trial and then the inner loop. The agent
      (policy, Adam state, counters; its sampling is seeded per trial, the GRU reset per
      trial) is in the checkpoint, so a resumed run is identical; without ``preopt`` nothing
      changes (records, checkpoint and export are those of a run before the option existed).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from nasforge.data.base import Task
from nasforge.data.fewshot import EpisodeSampler, check_fewshot
from nasforge.evaluators.base import Result
from nasforge.exceptions import ConfigError, RunDirError
from nasforge.executors.base import Executor
from nasforge.logging import get_logger
from nasforge.rl.preopt import PreOptimizer, PreoptSettings
from nasforge.rl.trials import RecurrentPPOSettings
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.darts.space import DartsSpace
from nasforge.spaces.darts.supernet import Alphas, DartsSupernetSpec, SupernetOptions
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, SearchContext
from nasforge.strategies.oneshot.base import OneShotSearch, encode_checkpoint
from nasforge.strategies.oneshot.darts import regularizers as reg
from nasforge.strategies.oneshot.darts.oneshot import check_options
from nasforge.strategies.oneshot.metanas.meta import (
    Conv4,
    discretize_pairwise,
    merge_adam_states,
    prune_alphas,
    reptile_update,
    sparse_params,
)
from nasforge.strategies.oneshot.metanas.model import InnerSettings, MetaModel

_logger = get_logger(__name__)
CHECKPOINT = "metanas"
PREOPT_STATE = "metanas_preopt"

PRESETS: dict[str, dict[str, Any]] = {
    # the released code where it shaped published numbers (Q1, Q3); environment bugs fixed (Q2)
    "reference": {"alpha_grad_on_frozen_copy": True, "aux_skip_beta": "zero"},
    "default": {"alpha_grad_on_frozen_copy": False, "aux_skip_beta": "linear"},
}


class PreoptAgentParams(BaseModel):
    """The recurrent PPO agent of ``preopt: meta_rl`` (§1.4; every default the released value).
    ``updates``, ``episodes_per_update`` and ``test_episodes`` also set the random policy's
    episodes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hidden: int = Field(default=256, ge=1, description="GRU width")
    encoder: int = Field(default=256, ge=1, description="Linear+ReLU encoder width")
    lr: float = Field(default=3e-4, gt=0)
    epochs: int = Field(default=4, ge=1, description="passes over a block per update")
    minibatches: int = Field(default=4, ge=1)
    seq_len: int = Field(default=16, ge=1)
    updates: int = Field(default=3, ge=1, description="PPO updates per training trial")
    episodes_per_update: int = Field(default=4, ge=1)
    test_episodes: int = Field(default=4, ge=1, description="episodes of a meta-test trial")
    erl2: bool = Field(default=False, description="E-RL2: zero erl2_frac of the value targets")
    erl2_frac: float = Field(default=0.3, ge=0, lt=1)

    def settings(self) -> RecurrentPPOSettings:
        return RecurrentPPOSettings(**self.model_dump())


class PreoptParams(BaseModel):
    """``preopt_settings:``: the alpha-editing environment and the agent (§1.4, Q8)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    preset: Literal["reference", "default"] = Field(
        default="default", description="reference: estimation bonus 0.2 (Q8); default: 0")
    estimation_bonus: float | None = Field(
        default=None, ge=0, description="reward per estimation so far; None: the preset's")
    max_estimations: int = Field(default=5, ge=2, description="per episode, baseline included")
    max_steps: int = Field(default=200, ge=1, description="steps per episode")
    increase_only: bool = Field(default=True, description="no decrease actions (12 actions)")
    alpha_action_masking: bool = True
    alpha_prob: float = Field(default=0.1, gt=0, lt=1)
    update_alphas: bool = Field(
        default=False, description="the estimation step also takes an alpha step "
        "(env_update_weights_and_alphas)")
    at_test: bool = Field(default=True, description="also edit meta-test tasks (no update)")
    agent: PreoptAgentParams = Field(default_factory=PreoptAgentParams)

    def settings(self, policy: str, nodes: int) -> PreoptSettings:
        env = {"nodes": nodes, "max_estimations": self.max_estimations,
               "max_steps": self.max_steps, "increase_only": self.increase_only,
               "alpha_action_masking": self.alpha_action_masking,
               "alpha_prob": self.alpha_prob, "estimation_bonus": self.estimation_bonus}
        return PreoptSettings(policy=policy, preset=self.preset, env=env,
                              agent=self.agent.settings())


class MetaNASParams(BaseModel):
    """Paper-script values (``og_metanas``, 1-shot 20-way Omniglot) unless noted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    preset: Literal["reference", "default"] = Field(
        default="default", description="bundle of the quirk fields left unset (Q1, Q3)")
    model: Literal["supernet", "conv4"] = Field(
        default="supernet", description="conv4: the Reptile baseline on a fixed Conv-4 net")
    meta_epochs: int = Field(default=500, ge=1)
    warm_up_epochs: int = Field(default=250, ge=0, description="weights only before this")
    eval_freq: int = Field(default=100, ge=1, description="meta-test + pruning every n")
    n_way: int = Field(default=20, ge=2)
    k_shot: int = Field(default=1, ge=1, description="support shots at meta-test")
    train_shots: int = Field(default=15, ge=1, description="support shots in meta-training")
    q_query: int = Field(default=1, ge=1)
    meta_batch_size: int = Field(default=10, ge=1)
    test_meta_batch_size: int = Field(default=25, ge=1)
    eval_tasks: int = Field(default=1250, ge=0, description="final meta-test episodes")
    task_train_steps: int = Field(default=5, ge=1)
    test_task_train_steps: int = Field(default=50, ge=1)
    test_adapt_steps: float = Field(default=1.0, ge=0, le=1,
                                    description="share of the test steps adapting alphas")
    batch_size: int = Field(default=20, ge=1)
    batch_size_test: int = Field(default=10, ge=1)
    w_lr: float = Field(default=0.005, gt=0)
    alpha_lr: float = Field(default=0.005, gt=0)
    w_meta_lr: float = Field(default=1.0, gt=0)
    a_meta_lr: float = Field(default=0.6, gt=0)
    alpha_weight_decay: float = Field(default=1e-3, ge=0)
    t_max: float = Field(default=1.0, gt=0)
    t_min: float = Field(default=0.05, gt=0)
    alpha_prune_threshold: float = Field(default=0.01, ge=0, lt=1)
    meta_model_prune_threshold: float = Field(default=0.01, ge=0, lt=1)
    drop_path_prob: float = Field(default=0.2, ge=0, lt=1)
    pairwise_alphas: bool = True
    channels: int | None = Field(default=28, ge=2, description="supernet C; None: space's")
    layers: int | None = Field(default=4, ge=1, description="cells; None: space's")
    reductions: list[int] | None = Field(default=[1, 3])
    conv4_channels: int = Field(default=32, ge=1)
    threads: int = Field(default=0, ge=0, description="torch threads; 0: leave")
    alpha_grad_on_frozen_copy: bool | None = Field(
        default=None, description="Q1: first-order alpha gradient on a copy frozen at the "
        "start (reference) or at the current parameters (default)")
    darts_minus: bool = Field(default=False, description="DARTS-: auxiliary skip per mixed op")
    aux_skip_beta: str | None = Field(
        default=None, description="Q3: zero | linear | fixed:<beta>; default from the preset")
    pc: reg.PCDartsParams | None = Field(default=None, description="PC-DARTS partial channels")
    sharp: reg.SharpParams | None = None
    tse: reg.TSEParams | None = None
    pdarts: reg.PDartsParams | None = Field(
        default=None, description="P-DARTS: stages over the meta-epochs, top-k ops per edge "
        "between stages, skip dropout (meta-train only), skip limit at discretisation")
    parallel_tasks: bool = Field(
        default=False, description="adapt the tasks of a meta-batch (and of a meta-test) "
        "independently through the run's executor: each from the same inner optimiser states, "
        "the task-wise mean carried on (not the serial result; see the module)")
    preopt: Literal["none", "random", "meta_rl"] = Field(
        default="none", description="meta-RL pre-optimisation of each task's alphas (§1.4): "
        "meta_rl (recurrent PPO), random (uniform over the same mask) or none")
    preopt_settings: PreoptParams | None = Field(
        default=None, description="the pre-optimiser's environment and agent")

    @model_validator(mode="after")
    def _check(self) -> MetaNASParams:
        if self.preopt != "none" and self.model == "conv4":
            raise ValueError(f"preopt {self.preopt!r} edits alphas; model conv4 has none "
                             "(allowed with conv4: preopt none)")
        if self.preopt == "none" and self.preopt_settings is not None:
            raise ValueError("preopt_settings given but preopt is none; allowed preopt: "
                             "meta_rl, random")
        b = self.aux_skip_beta
        if b is not None and b not in ("zero", "linear") and not _fixed_beta(b):
            raise ValueError(f"aux_skip_beta {b!r}; allowed: zero, linear, fixed:<beta>")
        if self.t_min > self.t_max:
            raise ValueError(f"t_min ({self.t_min}) exceeds t_max ({self.t_max})")
        if self.pdarts is not None:
            if self.model == "conv4":
                raise ValueError("pdarts edits alphas; model conv4 has none (allowed with "
                                 "conv4: no pdarts)")
            reg.check_pdarts(self.pdarts, self.meta_epochs, "meta_epochs")
        if self.parallel_tasks and self.preopt != "none":
            raise ValueError(f"parallel_tasks with preopt {self.preopt!r}: the pre-optimiser "
                             "learns from task to task (allowed with parallel_tasks: preopt none)")
        return self


def _fixed_beta(v: str) -> float | None:
    if not v.startswith("fixed:"):
        return None
    try:
        return float(v.split(":", 1)[1])
    except ValueError:
        return None


def resolve(p: MetaNASParams) -> MetaNASParams:
    """Fill the quirk fields left unset from the preset."""
    fill = {k: v for k, v in PRESETS[p.preset].items() if getattr(p, k) is None}
    return p.model_copy(update=fill)


def build_hooks(p: MetaNASParams) -> list[reg.RegularizerHook]:
    """The DARTS family's hooks in the meta setting (PC acts through the supernet, TSE through
    the architect, SharpDARTS' lrs through :meth:`MetaNAS.meta_lrs`)."""
    hooks: list[reg.RegularizerHook] = []
    if p.darts_minus:
        b = p.aux_skip_beta or "linear"
        dm = (reg.DartsMinusParams(schedule="linear", beta=1.0, beta_end=0.0) if b == "linear"
              else reg.DartsMinusParams(schedule="fixed",
                                        beta=0.0 if b == "zero" else float(_fixed_beta(b) or 0)))
        hooks.append(reg.DartsMinusHook(dm))
    if p.pdarts is not None:
        hooks.append(reg.PDartsHook(p.pdarts))
    if p.sharp is not None:
        hooks.append(reg.SharpHook(p.sharp, p.w_meta_lr, p.sharp.alpha_lr_min, p.a_meta_lr))
    return hooks


def settings_of(p: MetaNASParams) -> InnerSettings:
    return InnerSettings(
        w_lr=p.w_lr, alpha_lr=p.alpha_lr, alpha_weight_decay=p.alpha_weight_decay,
        t_max=p.t_max, t_min=p.t_min, alpha_prune_threshold=p.alpha_prune_threshold,
        mode="tse" if p.tse is not None else "first",
        tse_steps=p.tse.steps if p.tse is not None else 1)


def make_spec(space: SearchSpace, p: MetaNASParams) -> DartsSupernetSpec:
    if not isinstance(space, DartsSpace):
        raise ConfigError(f"strategy metanas needs space darts (ops: fewshot or sharp), got "
                          f"{space.name!r}")
    k = p.pc.k if p.pc is not None else 1
    opts = SupernetOptions(
        channels=p.channels or space.channels, layers=p.layers or space.layers,
        reductions=p.reductions if p.reductions is not None else space.reductions,
        stem_multiplier=space.stem_multiplier, pc_k=k, aux_skip=p.darts_minus,
        pairwise=p.pairwise_alphas)
    check_options(opts, k)
    return DartsSupernetSpec(space, opts)


def stage_layers(p: MetaNASParams, spec: DartsSupernetSpec, stage: int) -> int | None:
    """The supernet's cells in P-DARTS stage ``stage`` (``pdarts.layers``), or None where they
    are the spec's own (then its ``reductions`` hold; otherwise the default placement)."""
    pd = p.pdarts
    if pd is None or pd.layers is None or pd.layers[stage] == spec.opts.layers:
        return None
    return pd.layers[stage]


def build_meta_model(spec: DartsSupernetSpec, p: MetaNASParams, input_shape: tuple[int, ...],
                     seed: int, hooks: list[reg.RegularizerHook],
                     layers: int | None = None) -> MetaModel:
    """A fresh meta model (weights and alphas seeded by ``seed``; ``layers`` cells instead of
    the spec's)."""
    torch.manual_seed(derive_seed(seed, "metanas-init"))
    if p.model == "conv4":
        net: nn.Module = Conv4(input_shape[0], p.n_way, p.conv4_channels, input_shape[-1])
        alphas: Alphas | None = None
    else:
        net = spec.new_supernet(input_shape, p.n_way, layers=layers)
        alphas = spec.new_alphas(torch.Generator().manual_seed(derive_seed(seed, "alphas")))
        net.state.weighting = "max_w" if any(h.weighting == "max_w" for h in hooks) \
            else "softmax"
    return MetaModel(net, alphas, settings_of(p))


@STRATEGIES.register("metanas")
class MetaNAS(OneShotSearch):
    """MetaNAS (Reptile x first-order DARTS) with composable regularizers; see the module."""

    name: ClassVar[str] = "metanas"
    Params: ClassVar[type[BaseModel]] = MetaNASParams
    checkpoint_key: ClassVar[str] = CHECKPOINT
    series_kind: ClassVar[str] = "alphas"
    phase: ClassVar[str] = "metanas"
    label: ClassVar[str] = "MetaNAS"
    retrains: ClassVar[bool] = False

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed)
        self.p = resolve(MetaNASParams(**params))
        self.hooks = build_hooks(self.p)
        self._pdarts = next((h for h in self.hooks if isinstance(h, reg.PDartsHook)), None)

    @property
    def epochs(self) -> int:
        return self.p.meta_epochs

    def check(
        self, space: SearchSpace, evaluator: Any, budget: int, tasks: Mapping[str, Task]
    ) -> None:
        """Before anything is written: the space, the few-shot set and the episode sizes."""
        make_spec(space, self.p)
        if not tasks:
            raise ConfigError("strategy metanas needs a few-shot task (task: {name: "
                              "triple_mnist}, digits_rot, omniglot or miniimagenet)")
        task = next(iter(tasks.values()))
        check_fewshot(task)
        self._samplers(task)

    def _samplers(self, task: Task) -> dict[str, EpisodeSampler]:
        p, q = self.p, self.p.q_query
        return {
            "train": EpisodeSampler(task.train, n_way=p.n_way, k_shot=p.train_shots,
                                    q_query=q, seed=self.seed, name="train",
                                    shots_key="train_shots"),
            "test": EpisodeSampler(task.test, n_way=p.n_way, k_shot=p.k_shot, q_query=q,
                                   seed=self.seed, name="test"),
            "final": EpisodeSampler(task.test, n_way=p.n_way, k_shot=p.k_shot, q_query=q,
                                    seed=self.seed, name="final"),
        }

    # ------------------------------------------------------------ set-up
    def setup(self, ctx: SearchContext) -> None:
        p = self.p
        if ctx.task is None:
            raise ConfigError("strategy metanas needs a few-shot task (triple_mnist, "
                              "digits_rot, omniglot, miniimagenet)")
        check_fewshot(ctx.task)
        if p.threads:
            torch.set_num_threads(p.threads)
        self.spec = make_spec(ctx.space, p)
        self.space = ctx.space
        self.task: Task = ctx.task
        self.device = ctx.device
        self.samplers = self._samplers(ctx.task.to(ctx.device))

    def fresh(self) -> int:
        p = self.p
        self.stage = 0
        self._shared: _TaskShared | None = None
        self.model = build_meta_model(self.spec, p, self.task.input_shape, self.seed,
                                      self.hooks, stage_layers(p, self.spec, 0)).to(self.device)
        self.w_opt, self.a_opt = self.model.optimizers()
        self._sync_frozen()
        self.last_test: float | None = None
        self.evals = 0
        self.preopt: PreOptimizer | None = None
        if p.preopt != "none":
            ps = p.preopt_settings or PreoptParams()
            self.preopt = PreOptimizer(ps.settings(p.preopt, self.spec.nodes),
                                       n_ops=len(self.spec.ops), seed=self.seed,
                                       device=self.device)
        self.preopt_log: list[dict[str, float]] = []
        return 0

    def _sync_frozen(self) -> None:
        """Q1: the copy the first-order alpha gradient is taken on (reference preset), made
        now from the live model."""
        self.frozen: tuple[nn.Module, Alphas] | None = None
        if self.p.alpha_grad_on_frozen_copy and self.model.alphas is not None:
            self.frozen = (copy.deepcopy(self.model.net), copy.deepcopy(self.model.alphas))

    def _opts(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.w_opt, self.a_opt) if o is not None]

    # ------------------------------------------------------- P-DARTS stages
    def _stages(self) -> list[tuple[int, int]]:
        return (self._pdarts.stages(self.p.meta_epochs) if self._pdarts is not None
                else None) or [(0, self.p.meta_epochs)]

    def _stage_of(self, epoch: int) -> int:
        return max(s for s, (first, _) in enumerate(self._stages()) if first <= epoch)

    def _new_net(self, stage: int) -> None:
        """Cells added for ``stage``: a new supernet (weights seeded by the stage, as DARTS'
        P-DARTS re-initialises them) on the same alphas, a new weight optimiser."""
        m = self.model
        torch.manual_seed(derive_seed(self.seed, "metanas-init", stage))
        net = self.spec.new_supernet(self.task.input_shape, self.p.n_way,
                                     layers=stage_layers(self.p, self.spec, stage))
        net.state.weighting = m.fstate.weighting
        self.model = MetaModel(net, m.alphas, m.settings).to(self.device)
        self.w_opt = self.model.optimizers()[0]

    def before_epoch(self, epoch: int) -> None:
        """P-DARTS search-space approximation at the first meta-epoch of a stage: each edge
        cut to the top-k ops (per cell type, masks kept for good), the alphas re-drawn with
        ``reset_alphas``, cells added where ``pdarts.layers`` grows; the frozen copy (Q1) is
        re-made from the new meta model."""
        stage = self._stage_of(epoch)
        if stage == 0 or epoch != self._stages()[stage][0]:
            return
        pd, hook, a = self.p.pdarts, self._pdarts, self.model.alphas
        assert pd is not None and hook is not None and a is not None
        keep = hook.keep(len(self.spec.ops), stage)
        for g in self.spec.groups:
            a.set_mask(g, reg.topk_mask(a.numpy_weights(g), a.mask(g).cpu().numpy(),
                                        self.spec.ops, keep))
        if pd.reset_alphas:
            a.reset(torch.Generator().manual_seed(derive_seed(self.seed, "alphas", stage)))
        if stage_layers(self.p, self.spec, stage) != stage_layers(self.p, self.spec, stage - 1):
            self._new_net(stage)
        self._sync_frozen()
        self.stage, self._shared = stage, None
        _logger.info("P-DARTS stage %d from meta-epoch %d: %d ops per edge", stage, epoch, keep)

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        m = self.model
        return {
            **({} if self._pdarts is None else {"stage": self.stage}),
            "next_epoch": epoch + 1, "evals": self.evals, "last_test": self.last_test,
            "net": m.net.state_dict(),
            "alphas": None if m.alphas is None else m.alphas.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": None if self.a_opt is None else self.a_opt.state_dict(),
            "frozen": None if self.frozen is None else
            [self.frozen[0].state_dict(), self.frozen[1].state_dict()],
            "torch_rng": torch.get_rng_state(),
            **({} if self.preopt is None else {"preopt": self.preopt.state_dict()}),
        }

    def restore(self, ck: dict[str, Any]) -> int:
        self.fresh()
        self.stage = int(ck.get("stage", 0))
        if stage_layers(self.p, self.spec, self.stage) != stage_layers(self.p, self.spec, 0):
            self._new_net(self.stage)
            self._sync_frozen()
        m = self.model
        m.net.load_state_dict(ck["net"])
        if m.alphas is not None:
            m.alphas.load_state_dict(ck["alphas"])
        self.w_opt.load_state_dict(ck["w_opt"])
        if self.a_opt is not None:
            self.a_opt.load_state_dict(ck["a_opt"])
        if self.frozen is not None and ck["frozen"] is not None:
            self.frozen[0].load_state_dict(ck["frozen"][0])
            self.frozen[1].load_state_dict(ck["frozen"][1])
        self.evals, self.last_test = int(ck["evals"]), ck["last_test"]
        if self.preopt is not None:
            if ck.get("preopt") is None:
                raise RunDirError("the run's MetaNAS checkpoint has no pre-optimiser state "
                                  f"but the config asks for preopt {self.p.preopt!r}")
            self.preopt.load_state_dict(ck["preopt"])
        torch.set_rng_state(ck["torch_rng"])
        return int(ck["next_epoch"])

    # -------------------------------------------------------------- loop
    def meta_lrs(self, epoch: int) -> tuple[float, float]:
        """The meta learning rates (SharpDARTS: cosine power annealing; weights held in
        warm-up)."""
        p = self.p
        lrs = next((h.learning_rates(epoch, p.meta_epochs) for h in self.hooks
                    if h.learning_rates(epoch, p.meta_epochs) is not None), None)
        if lrs is None:
            return p.w_meta_lr, p.a_meta_lr
        w, a = lrs
        return (p.w_meta_lr if epoch < p.warm_up_epochs else w), a

    def _snapshot(self) -> dict[str, torch.Tensor]:
        m = self.model
        out = {f"net.{k}": v.detach().clone() for k, v in m.net.state_dict().items()}
        if m.alphas is not None:
            out.update({f"alphas.{k}": v.detach().clone()
                        for k, v in m.alphas.state_dict().items()})
        return out

    @torch.no_grad()
    def _load(self, snap: dict[str, torch.Tensor]) -> None:
        m = self.model
        m.net.load_state_dict({k[4:]: v for k, v in snap.items() if k.startswith("net.")})
        if m.alphas is not None:
            m.alphas.load_state_dict(
                {k[7:]: v for k, v in snap.items() if k.startswith("alphas.")})

    def run_task(self, split: str, index: int, *, steps: int, arch_steps: int,
                 batch_size: int, train: bool) -> tuple[float, set[str], list[float]]:
        """Adapt the live model to episode ``index`` of ``split``; its query accuracy."""
        ep = self.samplers[split].episode(index)
        if self.preopt is not None and arch_steps > 0 and (
                train or self._preopt_params.at_test):
            self.pre_optimize(split, index, ep.support_x, ep.support_y, batch_size, train)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "batches", split, index))
        torch.manual_seed(derive_seed(self.seed, "droppath", split, index))
        st = self.model.fstate
        skip = st.skip_dropout
        st.drop_path = self.p.drop_path_prob if train else 0.0
        st.skip_dropout = skip if train else 0.0  # P-DARTS skip dropout: meta-train only
        touched, losses = self.model.inner_loop(
            ep.support_x, ep.support_y, steps=steps, arch_steps=arch_steps,
            batch_size=batch_size, w_opt=self.w_opt, a_opt=self.a_opt, gen=gen,
            hooks=self.hooks, grad_on=self.frozen)
        st.drop_path, st.skip_dropout = 0.0, skip
        return self.model.accuracy(ep.query_x, ep.query_y), touched, losses

    @property
    def _preopt_params(self) -> PreoptParams:
        return self.p.preopt_settings or PreoptParams()

    def pre_optimize(self, split: str, index: int, x: torch.Tensor, y: torch.Tensor,
                     batch_size: int, train: bool) -> None:
        """§1.4: the policy edits the task's alphas, normal cell then reduce cell (one trial
        each); the meta-model state of each trial's best estimate (weights and alphas) is
        loaded as the start of the next trial, the last one as the inner loop's start. The
        inner optimiser states are as before; the global torch RNG is not used."""
        m, pp, alphas = self.model, self._preopt_params, self.model.alphas
        assert self.preopt is not None and alphas is not None
        opts = [o for o in (self.w_opt, self.a_opt) if o is not None]
        opt0 = [copy.deepcopy(o.state_dict()) for o in opts]
        m.fstate.drop_path = 0.0
        tseed = derive_seed(self.seed, "preopt", split, index)
        for cell in self.spec.groups:
            est = _Estimator(self, cell, x, y, batch_size, opts, opt0, pp.update_alphas,
                             derive_seed(tseed, "batches", cell))
            start = alphas.logits[cell].detach().cpu().double().numpy()
            out = self.preopt.run({cell: start}, {cell: est}, seed=tseed, train=train)
            assert est.best is not None
            self._load(est.best)
            trial = out.trials[cell]
            self.preopt_log.append({
                "start": est.first, "best": out.accuracy[cell],
                "return": float(np.mean(trial.returns)), "estimations": est.calls,
                "train": float(train)})
        for o, st in zip(opts, opt0):
            o.load_state_dict(st)

    def train_epoch(
        self, ctx: SearchContext, epoch: int
    ) -> tuple[Record | None, dict[str, Any]]:
        p, m = self.p, self.model
        start, cpu0 = time.perf_counter(), time.process_time()
        w_mlr, a_mlr = self.meta_lrs(epoch)
        arch_on = epoch >= p.warm_up_epochs and m.alphas is not None
        stage = self._stage_of(epoch)
        e_in = epoch - self._stages()[stage][0]
        for h in self.hooks:  # per meta-epoch: P-DARTS skip dropout rate, DARTS- log reset
            h.on_epoch(m.fstate, e_in, stage)
        theta = self._snapshot()
        w_names = [n for n, _ in m.net.named_parameters()]
        jobs = [TaskJob("train", epoch * p.meta_batch_size + t, p.task_train_steps,
                        p.task_train_steps if arch_on else 0, p.batch_size, True, e_in, stage)
                for t in range(p.meta_batch_size)]
        if p.parallel_tasks:
            outs = self._adapt_parallel(ctx.executor, jobs, theta)
            for o, states in zip(self._opts(), zip(*(out.opt_states for out in outs))):
                o.load_state_dict(merge_adam_states(states))
            hook_metrics = outs[-1].metrics
        else:
            outs = []
            for job in jobs:
                outs.append(_adapted(self, job))
                self._load(theta)
            hook_metrics = {k: v for h in self.hooks for k, v in h.epoch_metrics().items()}
        accs = [out.acc for out in outs]
        losses = [v for out in outs for v in out.losses]
        touched = set().union(*(out.touched for out in outs))
        task_w = [out.weights for out in outs]
        task_a = [out.alphas for out in outs if out.alphas is not None]
        moved = reptile_update(dict(m.net.named_parameters()), task_w, touched, w_mlr)
        if arch_on and m.alphas is not None:
            reptile_update(dict(m.alphas.named_parameters()), task_a,
                           {n for n, _ in m.alphas.named_parameters()}, a_mlr)
        metrics: dict[str, Any] = {
            "meta_epoch": epoch, "meta_train_acc": statistics.fmean(accs),
            "train_loss": statistics.fmean(losses), "w_meta_lr": w_mlr, "a_meta_lr": a_mlr,
            "arch_steps": arch_on, "weights_moved": len(moved), "weights": len(w_names),
            "epoch_cpu_seconds": time.process_time() - cpu0,
        }
        metrics.update(hook_metrics)
        if self._pdarts is not None:
            metrics.update(stage=stage, skip_dropout=m.fstate.skip_dropout)
        if self.preopt is not None:
            metrics.update(self._preopt_metrics("preopt"))
        rec = None
        if (epoch + 1) % p.eval_freq == 0 or epoch == p.meta_epochs - 1:
            acc_test = self.meta_test("test", self.evals * p.test_meta_batch_size,
                                      p.test_meta_batch_size, epoch,
                                      ctx.executor if p.parallel_tasks else None)
            self.last_test = statistics.fmean(acc_test)
            metrics["pruned"] = (0 if m.alphas is None else
                                 prune_alphas(m.alphas, p.t_min, p.meta_model_prune_threshold))
            metrics["meta_test_acc"] = self.last_test
            if self.preopt is not None:
                metrics.update(self._preopt_metrics("preopt_test"))
            rec = self._record(ctx, epoch, time.perf_counter() - start, metrics)
            self.evals += 1
        seconds = time.perf_counter() - start
        series = self._series(ctx, epoch, metrics, seconds)
        return rec, series

    def _preopt_metrics(self, prefix: str) -> dict[str, float]:
        """Means over the trials since the last call: start and best estimate, return."""
        log, self.preopt_log = self.preopt_log, []
        if not log:
            return {}
        return {f"{prefix}_{k}": float(np.mean([d[k] for d in log]))
                for k in ("start", "best", "return", "estimations")}

    def meta_test(self, split: str, first: int, n: int, epoch: int,
                  executor: Executor | None = None) -> list[float]:
        """Query accuracies of ``n`` episodes from index ``first``; the model and the inner
        optimiser states are the same afterwards. The periodic meta-test (split ``test``)
        carries the optimiser states from task to task, as the reference code does; the final
        evaluation (split ``final``) restores them after every task, as the reference code's
        ``evaluate`` does, so each final task adapts from the meta state alone and its
        accuracy does not depend on the tasks evaluated before it. With ``executor``
        (``parallel_tasks``) the episodes adapt independently through it, each from the saved
        optimiser states."""
        p, m = self.p, self.model
        steps = p.test_task_train_steps
        arch = round(p.test_adapt_steps * steps) \
            if epoch >= p.warm_up_epochs and m.alphas is not None else 0
        stage = self._stage_of(min(epoch, p.meta_epochs - 1))
        jobs = [TaskJob(split, first + i, steps, arch, p.batch_size_test, False,
                        min(epoch, p.meta_epochs - 1) - self._stages()[stage][0], stage)
                for i in range(n)]
        theta = self._snapshot()
        opt_states = [copy.deepcopy(o.state_dict()) for o in self._opts()]
        if executor is not None:
            accs = [out.acc for out in self._adapt_parallel(executor, jobs, theta)]
        else:
            accs = []
            for job in jobs:
                accs.append(self.run_task(job.split, job.index, steps=job.steps,
                                          arch_steps=job.arch_steps,
                                          batch_size=job.batch_size, train=False)[0])
                self._load(theta)
                if split == "final":
                    for o, st in zip(self._opts(), opt_states):
                        o.load_state_dict(copy.deepcopy(st))
        for o, s in zip(self._opts(), opt_states):
            o.load_state_dict(s)
        return accs

    def _adapt_parallel(self, executor: Executor, jobs: Sequence[TaskJob],
                        theta: dict[str, torch.Tensor]) -> list[TaskOut]:
        """``parallel_tasks``: every job adapts from ``theta`` and the current inner optimiser
        states through ``executor.map_jobs`` (this strategy is the shared object, sent once per
        P-DARTS stage); the outputs in job order, the live model back at ``theta``."""
        if self._shared is None:
            self._shared = _TaskShared(self)
        opt0 = [copy.deepcopy(o.state_dict()) for o in self._opts()]
        payloads = [_Payload(job, theta, opt0) for job in jobs]
        outs: dict[int, TaskOut] = {}
        for i, out in executor.map_jobs(adapt_task, self._shared, payloads,
                                        threads=self.p.threads or None):
            outs[i] = out
        self._load(theta)  # workers: 1 ran the jobs on the live model
        for o, st in zip(self._opts(), opt0):
            o.load_state_dict(st)
        return [outs[i] for i in range(len(jobs))]

    # --------------------------------------------------------- records
    def derive(self) -> Architecture:
        """The meta model's discretised architecture (P-DARTS: skip limit applied)."""
        return self._derive()[0]

    def _derive(self) -> tuple[Architecture, int]:
        """The architecture and the skips the P-DARTS limit removed."""
        a = self.model.alphas
        if self._pdarts is None or a is None:
            return self._discretize(), 0
        old = a.temperature
        a.temperature = self.p.t_min
        try:
            weights = {g: a.numpy_weights(g) for g in self.spec.groups}
            view: reg.OneShotSpec = self.spec if not a.pairwise else _PairwiseView(
                self.spec, {g: [w.detach().cpu().double().numpy() for w in a.pair_weights(g)]
                            for g in self.spec.groups}, a.node_pairs)
            derived = self._pdarts.derive(view, weights, {g: None for g in self.spec.groups})
        finally:
            a.temperature = old
        return derived or (self._discretize(), 0)

    def _discretize(self) -> Architecture:
        m = self.model
        if m.alphas is None:
            g = discretize_pairwise({"normal": _uniform(self.spec), "reduce": _uniform(self.spec)},
                                    {"normal": _uniform_pairs(self.spec),
                                     "reduce": _uniform_pairs(self.spec)},
                                    _node_pairs(self.spec), self.spec.ops, self.spec.nodes)
            return Architecture(g.to_tokens())
        a = m.alphas
        old = a.temperature
        a.temperature = self.p.t_min
        try:
            weights = {g: a.numpy_weights(g) for g in self.spec.groups}
            if a.pairwise:
                pairs = {g: [w.detach().cpu().double().numpy() for w in a.pair_weights(g)]
                         for g in self.spec.groups}
                geno = discretize_pairwise(weights, pairs, a.node_pairs, self.spec.ops,
                                           self.spec.nodes)
                return Architecture(geno.to_tokens())
            return self.spec.discretize_weights(weights, {g: None for g in self.spec.groups})
        finally:
            a.temperature = old

    def sparse_params(self) -> int:
        m = self.model
        if m.alphas is None:
            return sum(q.numel() for q in m.net.parameters())
        return sparse_params(m.net, m.alphas, self.p.t_min, self.p.meta_model_prune_threshold)

    def _record(self, ctx: SearchContext, epoch: int, seconds: float,
                metrics: dict[str, Any]) -> Record:
        arch, removed = self._derive()
        self.space.validate(arch)
        metrics = {**metrics, "model": self.p.model,
                   "skip_connects": self.spec.skip_count(arch)}
        if self._pdarts is not None:
            metrics["skips_removed"] = removed
        return Record(self.evals, arch, self.seed, Result(
            status="complete", val_acc=float(metrics["meta_test_acc"]),
            params=self.sparse_params(), train_seconds=seconds, epochs=epoch + 1,
            metrics=metrics), finished_at=time.time())

    def _series(self, ctx: SearchContext, epoch: int, metrics: dict[str, Any],
                seconds: float) -> dict[str, Any]:
        a = self.model.alphas
        out: dict[str, Any] = {
            "epoch": epoch, "ops": list(self.spec.ops), "epoch_seconds": seconds,
            "meta_train_acc": metrics["meta_train_acc"],
            "meta_test_acc": metrics.get("meta_test_acc"), "groups": {},
        }
        if a is not None:
            arch = self.derive()
            out["groups"] = {g: {"weights": a.numpy_weights(g).round(6).tolist(),
                                 "mask": a.mask(g).cpu().numpy().tolist()}
                             for g in self.spec.groups}
            if a.pairwise:
                out["pairs"] = {g: [w.detach().cpu().double().numpy().round(6).tolist()
                                    for w in a.pair_weights(g)] for g in self.spec.groups}
            out.update(arch=list(arch.tokens), describe=self.space.describe(arch))
        return out

    # ------------------------------------------------------------ final
    def report_extras(self, ctx: SearchContext, last: Record) -> dict[str, Any]:
        p = self.p
        accs = self.meta_test("final", 0, p.eval_tasks, p.meta_epochs,
                              ctx.executor if p.parallel_tasks else None) \
            if p.eval_tasks else []
        mean = statistics.fmean(accs) if accs else math.nan
        ci = 1.96 * statistics.stdev(accs) / math.sqrt(len(accs)) if len(accs) > 1 else math.nan
        recs = ctx.records()
        out: dict[str, Any] = {
            "model": p.model, "preset": p.preset, "n_way": p.n_way, "k_shot": p.k_shot,
            "final_eval_tasks": len(accs), "test_acc": mean, "test_ci95": ci,
            "meta_test_accs": [r.val_acc for r in recs],
            "meta_test_epochs": [r.result.epochs for r in recs],
            "sparse_params": self.sparse_params(),
            "dense_params": sum(q.numel() for q in self.model.net.parameters()),
            "genotype": ctx.space.describe(self.derive()),
            "meta_model": self.export_doc(),
        }
        if self.preopt is not None:
            out["preopt"] = {"policy": p.preopt, **self._preopt_metrics("final"),
                             "agent_trials": getattr(self.preopt.agent, "trials", 0),
                             "agent_updates": getattr(self.preopt.agent, "updates", 0),
                             "state_key": PREOPT_STATE}
            ctx.save_state(PREOPT_STATE, encode_checkpoint(self.preopt.state_dict()))
        _logger.info("final: meta-test accuracy %.4f +- %.4f over %d tasks", mean, ci,
                     len(accs))
        return out

    def export_doc(self) -> dict[str, Any]:
        """What ``nasforge.load`` needs to rebuild the meta model (plain JSON)."""
        p = self.p
        # options left at their defaults are left out: the export of a run without them is
        # the one it had before they existed
        drop = {k for k, off in (("preopt", p.preopt == "none"),
                                 ("preopt_settings", p.preopt == "none"),
                                 ("pdarts", p.pdarts is None),
                                 ("parallel_tasks", not p.parallel_tasks)) if off}
        return {"params": p.model_dump(mode="json", exclude=drop), "seed": self.seed,
                "settings": self.model.settings.to_json(),
                "input_shape": list(self.task.input_shape)}

    def final_model(self, ctx: SearchContext) -> nn.Module | None:
        return self.model

    def retrain(
        self, ctx: SearchContext, arch: Architecture, seed: int
    ) -> tuple[nn.Module, dict[str, Any]]:  # pragma: no cover - retrains is False
        raise NotImplementedError("MetaNAS does not retrain from scratch")

    def test(self, ctx: SearchContext, model: nn.Module) -> float:  # pragma: no cover
        raise NotImplementedError("MetaNAS is scored by meta-test adaptation")


class _Estimator:
    """The estimation step of one pre-optimisation trial (§1.4): write the cell's logits into
    the meta-model, one weight step (and, with ``update_alphas``, an architecture step) on the
    support set, then support accuracy. ``reset()`` (each episode start) restores the trial's
    start state and inner optimiser states; the state after the best estimate is kept."""

    def __init__(self, s: MetaNAS, cell: str, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int, opts: list[torch.optim.Optimizer],
                 opt0: list[dict[str, Any]], update_alphas: bool, seed: int) -> None:
        self.s, self.cell, self.x, self.y, self.bs = s, cell, x, y, batch_size
        self.opts, self.opt0, self.update_alphas = opts, opt0, update_alphas
        self.start = s._snapshot()
        self.gen = torch.Generator().manual_seed(seed)
        self.best: dict[str, torch.Tensor] | None = None
        self.best_acc = -math.inf
        self.first = math.nan
        self.calls = 0

    def reset(self) -> None:
        self.s._load(self.start)
        for o, st in zip(self.opts, self.opt0):
            o.load_state_dict(copy.deepcopy(st))

    def __call__(self, logits: np.ndarray) -> float | tuple[float, np.ndarray]:
        s, m = self.s, self.s.model
        assert m.alphas is not None
        with torch.no_grad():
            m.alphas.logits[self.cell].copy_(torch.as_tensor(logits))
        m.inner_loop(self.x, self.y, steps=1, arch_steps=1 if self.update_alphas else 0,
                     batch_size=self.bs, w_opt=s.w_opt, a_opt=s.a_opt, gen=self.gen,
                     hooks=s.hooks, grad_on=s.frozen)
        acc = m.accuracy(self.x, self.y)
        self.calls += 1
        if self.calls == 1:
            self.first = acc
        if acc > self.best_acc:  # the environment's own rule for its best logits
            self.best_acc, self.best = acc, s._snapshot()
        if self.update_alphas:
            return acc, m.alphas.logits[self.cell].detach().cpu().double().numpy()
        return acc


def meta_model_from_doc(space: SearchSpace, doc: dict[str, Any]) -> MetaModel:
    """The (untrained) :class:`MetaModel` an export's ``meta_model`` entry describes; load the
    exported weights into it."""
    p = MetaNASParams(**doc["params"])
    spec = make_spec(space, p)
    last = p.pdarts.stages - 1 if p.pdarts is not None else 0
    model = build_meta_model(spec, p, tuple(doc["input_shape"]), int(doc["seed"]),
                             build_hooks(p), stage_layers(p, spec, last))
    model.settings = InnerSettings.from_json(doc["settings"])
    return model


@dataclass(frozen=True)
class TaskJob:
    """One task adaptation: episode ``index`` of ``split``, the inner-loop sizes, and the
    meta-epoch's place in its P-DARTS stage (``e_in``, ``stage``) for the hooks."""

    split: str
    index: int
    steps: int
    arch_steps: int
    batch_size: int
    train: bool
    e_in: int
    stage: int


@dataclass(frozen=True)
class _Payload:
    job: TaskJob
    theta: dict[str, torch.Tensor]
    opt_states: list[dict[str, Any]]


@dataclass
class TaskOut:
    """What a task adaptation returns: query accuracy, the weights that got a gradient, the
    train losses, the task solution (weights, alphas), the inner optimiser states it ended
    with and the hooks' metrics."""

    acc: float
    touched: set[str]
    losses: list[float]
    weights: dict[str, torch.Tensor]
    alphas: dict[str, torch.Tensor] | None
    opt_states: list[dict[str, Any]]
    metrics: dict[str, Any]


class _TaskShared:
    """The object ``map_jobs`` sends to each worker once: the strategy (model, samplers,
    hooks, frozen copy) as it stands at the start of a P-DARTS stage."""

    def __init__(self, strategy: MetaNAS) -> None:
        self.strategy = strategy


def _adapted(s: MetaNAS, job: TaskJob) -> TaskOut:
    """Run ``job`` on ``s``'s live model and optimisers; its solution copied out."""
    acc, touched, losses = s.run_task(job.split, job.index, steps=job.steps,
                                      arch_steps=job.arch_steps, batch_size=job.batch_size,
                                      train=job.train)
    m = s.model
    return TaskOut(
        acc, touched, losses, {n: q.detach().clone() for n, q in m.net.named_parameters()},
        None if m.alphas is None else
        {n: q.detach().clone() for n, q in m.alphas.named_parameters()},
        [copy.deepcopy(o.state_dict()) for o in s._opts()],
        {k: v for h in s.hooks for k, v in h.epoch_metrics().items()})


def adapt_task(shared: _TaskShared, payload: _Payload) -> TaskOut:
    """A ``map_jobs`` job: load the meta state and optimiser states of ``payload``, set the
    hooks for the meta-epoch, adapt (:meth:`MetaNAS.run_task`)."""
    s, job = shared.strategy, payload.job
    s._load(payload.theta)
    for o, st in zip(s._opts(), payload.opt_states):
        o.load_state_dict(copy.deepcopy(st))  # Adam keeps the tensors it is given
    for h in s.hooks:
        h.on_epoch(s.model.fstate, job.e_in, job.stage)
    return _adapted(s, job)


class _PairwiseView:
    """The discretiser the P-DARTS skip limit re-derives with when the alphas have input
    pairs (argmax pair, then argmax op: :func:`discretize_pairwise`), so skips are counted and
    removed on the genotype MetaNAS reports (Q7 default: the active discretiser)."""

    def __init__(self, spec: DartsSupernetSpec, pairs: dict[str, list[np.ndarray]],
                 node_pairs: Sequence[Sequence[tuple[int, int]]]) -> None:
        self.spec, self.pairs, self.node_pairs = spec, pairs, node_pairs
        self.ops, self.skip_group = spec.ops, spec.skip_group

    def discretize_weights(self, weights: dict[str, np.ndarray],
                           edges: dict[str, np.ndarray | None]) -> Architecture:
        g = discretize_pairwise(weights, self.pairs, self.node_pairs, self.spec.ops,
                                self.spec.nodes)
        return Architecture(g.to_tokens())

    def chosen_edges(self, arch: Architecture, group: str) -> list[tuple[int, str]]:
        return self.spec.chosen_edges(arch, group)

    def skip_count(self, arch: Architecture) -> int:
        return self.spec.skip_count(arch)


def _uniform(spec: DartsSupernetSpec) -> Any:
    return np.ones((spec.num_edges, len(spec.ops)))


def _node_pairs(spec: DartsSupernetSpec) -> list[list[tuple[int, int]]]:
    return [[(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
            for rows in spec.node_edges]


def _uniform_pairs(spec: DartsSupernetSpec) -> list[Any]:
    return [np.ones(len(p)) for p in _node_pairs(spec)]


__all__ = ["PREOPT_STATE", "PRESETS", "MetaNAS", "MetaNASParams", "PreoptAgentParams",
           "PreoptParams", "TaskJob", "TaskOut", "adapt_task", "build_meta_model", "make_spec",
           "meta_model_from_doc", "resolve", "stage_layers"]
