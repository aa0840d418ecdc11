"""DARTS: differentiable architecture search with composable regularizers; owns its loop.

Paper: Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019
(arXiv:1806.09055). Regularizers (``regularizers.py``): DARTS-, PC-DARTS, P-DARTS, SharpDARTS,
TSE-DARTS; each is a config field and they combine freely.

Loop: per epoch, per minibatch of the task's *train* split: an alpha step on a *val* minibatch
(first or second order, ``architect.py``; TSE: on the train trajectory instead, no val split),
then an SGD weight step on the train minibatch. After each epoch the supernet's validation
accuracy, the alphas and the derived genotype are stored (one Record per epoch, series
``alphas``) together with a checkpoint (supernet, alphas, optimisers, epoch, RNG states) in one
transaction, so ``--resume`` continues after the last finished epoch and reproduces the
uninterrupted run. ``finalize`` retrains the last epoch's genotype from scratch
(``retrain`` settings, ``final.seeds`` seeds) and reports its test accuracy.

Implementation details and deviations:
    - Defaults are DARTS': alphas Adam(3e-4, betas (0.5, 0.999), wd 1e-3), init 1e-3 N(0, 1);
      weights SGD(0.025, momentum 0.9, wd 3e-4), cosine to 0.001 over the epochs (of each
      P-DARTS stage), grad-norm clip 5; the learning rate is set per epoch from the epoch index
      (no scheduler object, so resume is exact).
    - ``epochs`` is the search length; the run config's ``budget`` (black-box trial count) is
      not used by this strategy.
    - Discretisation: strongest non-``none`` op per edge, top-2 inputs per node (darts space);
      one op per edge (nb201 space; ``none`` only with ``allow_none``).
    - Second order: the virtual step uses the current weight lr as xi (``unrolled_xi`` overrides)
      and the weight optimiser's momentum and weight decay, as DARTS does.
    - The search supernet is built by the space's one-shot spec (``darts``: DARTS cells;
      ``nb201``: NAS-Bench-201 single-cell skeleton). ``channels``/``layers`` default to the
      space's build sizes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from nasforge.data.base import Split, Task
from nasforge.evaluators.base import Result
from nasforge.evaluators.train import count_params
from nasforge.exceptions import ConfigError
from nasforge.logging import get_logger
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.darts.supernet import Alphas, ForwardState
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, SearchContext
from nasforge.strategies.oneshot.base import OneShotSearch
from nasforge.strategies.oneshot.darts import architect as arch_grad
from nasforge.strategies.oneshot.darts import regularizers as reg
from nasforge.strategies.oneshot.darts.oneshot import check_table, make_spec, table_rank
from nasforge.strategies.oneshot.darts.retrain import RetrainParams, retrain, test_accuracy

_logger = get_logger(__name__)
CHECKPOINT = "darts"


@runtime_checkable
class Renderable(Protocol):
    """A space that can draw an architecture (DARTS cells): ``render(arch, path) -> path``."""

    def render(self, arch: Architecture, path: Path) -> Path: ...


class DartsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(default=50, ge=1, description="search epochs (the run budget is unused)")
    batch_size: int = Field(default=64, ge=2)
    order: Literal[1, 2] = Field(default=1, description="1: first order, 2: unrolled")
    channels: int | None = Field(default=None, ge=2, description="supernet C; default: space's")
    layers: int | None = Field(default=None, ge=1, description="supernet cells; default: space's")
    reductions: list[int] | None = Field(default=None, description="supernet reduction cells")
    w_lr: float = Field(default=0.025, gt=0)
    w_lr_min: float = Field(default=0.001, ge=0)
    w_momentum: float = Field(default=0.9, ge=0, lt=1)
    w_weight_decay: float = Field(default=3e-4, ge=0)
    grad_clip: float = Field(default=5.0, ge=0, description="weight grad-norm clip; 0: off")
    alpha_lr: float = Field(default=3e-4, gt=0)
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = Field(default=1e-3, ge=0)
    alpha_init_std: float = Field(default=1e-3, ge=0)
    unrolled_xi: float | None = Field(default=None, ge=0, description="default: weight lr")
    fd_eps: float = Field(default=0.01, gt=0, description="finite-difference eps * ||dw||")
    reuse_train_grad: bool = Field(
        default=True, description="order 2: the weight step reuses the unrolled step's train "
        "gradient (taken before the alpha update) instead of a fresh forward/backward",
    )
    warmup_epochs: int = Field(default=0, ge=0, description="weights only (per P-DARTS stage)")
    allow_none: bool = Field(default=False, description="nb201: let `none` win an edge")
    channels_last: bool = Field(default=True, description="faster convolutions on CPU")
    threads: int = Field(default=0, ge=0, description="torch threads; 0: leave")
    table: str | None = Field(
        default=None, description="a tabulated table (e.g. digits-nb201) to look the found "
        "architecture up in: its true accuracy and rank go into the final report",
    )
    darts_minus: reg.DartsMinusParams | None = None
    pc: reg.PCDartsParams | None = None
    pdarts: reg.PDartsParams | None = None
    sharp: reg.SharpParams | None = None
    tse: reg.TSEParams | None = None
    retrain: RetrainParams = Field(default_factory=RetrainParams)

    @model_validator(mode="after")
    def _check(self) -> DartsParams:
        if self.tse is not None and self.order == 2:
            raise ValueError("tse replaces the alpha gradient; use order: 1 with tse")
        if self.pdarts is not None:
            reg.check_pdarts(self.pdarts, self.epochs, "epochs")
        return self


def build_hooks(p: DartsParams) -> list[reg.RegularizerHook]:
    """The regularizers of ``p`` as loop hooks (PC-DARTS acts through the supernet spec and
    TSE through the architect, so neither needs one)."""
    hooks: list[reg.RegularizerHook] = []
    if p.darts_minus is not None:
        hooks.append(reg.DartsMinusHook(p.darts_minus))
    if p.pdarts is not None:
        hooks.append(reg.PDartsHook(p.pdarts))
    if p.sharp is not None:
        hooks.append(reg.SharpHook(p.sharp, p.w_lr, p.w_lr_min, p.alpha_lr))
    return hooks


def _first(values: Any) -> Any:
    return next((v for v in values if v is not None), None)


@STRATEGIES.register("darts")
class DartsSearch(OneShotSearch):
    """DARTS with first/second-order alpha gradients and composable regularizers."""

    name: ClassVar[str] = "darts"
    Params: ClassVar[type[BaseModel]] = DartsParams
    checkpoint_key: ClassVar[str] = CHECKPOINT
    series_kind: ClassVar[str] = "alphas"
    phase: ClassVar[str] = "darts"
    label: ClassVar[str] = "DARTS"

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed)
        self.p = DartsParams(**params)
        self.hooks = build_hooks(self.p)
        self._pdarts = next((h for h in self.hooks if isinstance(h, reg.PDartsHook)), None)

    @property
    def epochs(self) -> int:
        return self.p.epochs

    # ------------------------------------------------------------ set-up
    def _stages(self) -> list[tuple[int, int]]:
        return _first(h.stages(self.p.epochs) for h in self.hooks) or [(0, self.p.epochs)]

    def _stage_of(self, epoch: int) -> int:
        return max(s for s, (first, _) in enumerate(self._stages()) if first <= epoch)

    def _stage_layers(self, stage: int) -> int | None:
        pd = self.p.pdarts
        return pd.layers[stage] if pd is not None and pd.layers is not None else None

    def check(
        self, space: SearchSpace, evaluator: Any, budget: int, tasks: Mapping[str, Task]
    ) -> None:
        make_spec(space, self.p)  # the space must be one-shot (darts, nb201)
        if not tasks:
            raise ConfigError("strategy darts needs a task (train/val data); use evaluator train")

    def setup(self, ctx: SearchContext) -> None:
        if ctx.task is None:
            raise ConfigError("strategy darts needs a task (train/val data); use evaluator train")
        p = self.p
        if p.threads:
            torch.set_num_threads(p.threads)
        self.spec = make_spec(ctx.space, p)
        if p.table is not None:  # a bad table name fails now, not after the search
            check_table(ctx.space, p.table)
        self.task: Task = ctx.task
        self.device = ctx.device
        self.train_split = ctx.task.train.to(ctx.device)
        self.val_split = ctx.task.val.to(ctx.device)

    def init_state(self) -> None:
        self.gen = torch.Generator().manual_seed(derive_seed(self.seed, "darts-batches"))
        self.alphas: Alphas = self.spec.new_alphas(
            torch.Generator().manual_seed(derive_seed(self.seed, "alphas", 0))
        ).to(self.device)

    def _build(self, stage: int) -> None:
        """A fresh supernet (weights seeded by the stage), fresh optimisers and architect."""
        p = self.p
        torch.manual_seed(derive_seed(self.seed, "darts-init", stage))
        net = self.spec.new_supernet(self.task.input_shape, self.task.num_classes,
                                     layers=self._stage_layers(stage)).to(self.device)
        if p.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net: nn.Module = net
        state = net.state
        assert isinstance(state, ForwardState)
        self.fstate = state
        self.fstate.weighting = _first(h.weighting for h in self.hooks) or "softmax"
        self.w_opt = torch.optim.SGD(net.parameters(), lr=p.w_lr, momentum=p.w_momentum,
                                     weight_decay=p.w_weight_decay)
        self.a_opt = torch.optim.Adam(self.alphas.parameters(), lr=p.alpha_lr,
                                      betas=p.alpha_betas, weight_decay=p.alpha_weight_decay)
        self.clip = (lambda: nn.utils.clip_grad_norm_(net.parameters(), p.grad_clip)) \
            if p.grad_clip > 0 else None
        mode = "tse" if p.tse is not None else ("second" if p.order == 2 else "first")
        self.architect = arch_grad.Architect(
            net, self.alphas, self.a_opt, self.w_opt, mode=mode,
            tse_steps=p.tse.steps if p.tse is not None else 1, fd_eps=p.fd_eps, clip=self.clip,
        )

    def fresh(self) -> int:
        self._build(0)
        return 0

    def before_epoch(self, epoch: int) -> None:
        """P-DARTS: cut each edge to the top-k ops, re-draw the alphas, deepen the supernet."""
        stage = self._stage_of(epoch)
        if stage == 0 or epoch != self._stages()[stage][0]:
            return
        pd = self.p.pdarts
        assert pd is not None and self._pdarts is not None
        keep = self._pdarts.keep(len(self.spec.ops), stage)
        for g in self.spec.groups:
            mask = reg.topk_mask(self.alphas.numpy_weights(g),
                                 self.alphas.mask(g).cpu().numpy(), self.spec.ops, keep)
            self.alphas.set_mask(g, mask)
        if pd.reset_alphas:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "alphas", stage))
            self.alphas.reset(gen)
        self._build(stage)

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return {
            "next_epoch": epoch + 1, "stage": self._stage_of(epoch),
            "net": self.net.state_dict(), "alphas": self.alphas.state_dict(),
            "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
            "torch_rng": torch.get_rng_state(), "gen": self.gen.get_state(),
        }

    def restore(self, ck: dict[str, Any]) -> int:
        self._build(int(ck["stage"]))
        self.alphas.load_state_dict(ck["alphas"])
        self.net.load_state_dict(ck["net"])
        self.w_opt.load_state_dict(ck["w_opt"])
        self.a_opt.load_state_dict(ck["a_opt"])
        torch.set_rng_state(ck["torch_rng"])
        self.gen.set_state(ck["gen"])
        return int(ck["next_epoch"])

    # -------------------------------------------------------------- loop
    def _batch(self, split: Split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = split.x[idx]
        if self.p.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, split.y[idx]

    def train_epoch(self, ctx: SearchContext, epoch: int) -> tuple[Record, dict[str, Any]]:
        p, net, alphas = self.p, self.net, self.alphas
        stage = self._stage_of(epoch)
        first, n_stage = self._stages()[stage]
        e_in = epoch - first
        start, cpu_start = time.perf_counter(), time.process_time()
        w_lr, a_lr = _first(h.learning_rates(e_in, n_stage) for h in self.hooks) or (
            reg.cosine_lr(p.w_lr, p.w_lr_min, e_in, n_stage), p.alpha_lr)
        for grp in self.w_opt.param_groups:
            grp["lr"] = w_lr
        for grp in self.a_opt.param_groups:
            grp["lr"] = a_lr
        for h in self.hooks:
            h.on_epoch(self.fstate, e_in, stage)
        bs = p.batch_size
        n_tr, n_va = len(self.train_split), len(self.val_split)
        steps, val_steps = max(1, n_tr // bs), max(1, n_va // bs)
        perm_t = torch.randperm(n_tr, generator=self.gen).to(self.device)
        perm_v = torch.randperm(n_va, generator=self.gen).to(self.device)
        tr_batches = [self._batch(self.train_split, perm_t[i * bs:(i + 1) * bs])
                      for i in range(steps)]
        arch_on = e_in >= p.warmup_epochs
        a_params = list(alphas.parameters())
        xi = w_lr if p.unrolled_xi is None else p.unrolled_xi
        losses, correct, seen = [], 0, 0
        net.train()
        for i, (x, y) in enumerate(tr_batches):
            for h in self.hooks:
                h.on_batch(self.fstate, epoch * steps + i, p.epochs * steps)
            unrolled = None
            if arch_on:
                j = (i % val_steps) * bs
                idx = perm_v[j:j + bs]

                def val_batch(idx: torch.Tensor = idx) -> tuple[torch.Tensor, torch.Tensor]:
                    return self._batch(self.val_split, idx)

                unrolled = self.architect.step(i, tr_batches, val_batch, xi)
            self.w_opt.zero_grad(set_to_none=True)
            if unrolled is not None and p.reuse_train_grad:
                arch_grad.set_grads(list(net.parameters()), unrolled.train_grads)
                logits, loss = unrolled.train_logits, torch.tensor(unrolled.train_loss)
            else:
                for a in a_params:
                    a.requires_grad_(False)
                logits = net(x, alphas)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                for a in a_params:
                    a.requires_grad_(True)
            if self.clip is not None:
                self.clip()
            self.w_opt.step()
            losses.append(float(loss.detach()))
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        val_acc, val_loss = self._validate()
        metrics: dict[str, Any] = {
            "train_loss": statistics.fmean(losses), "train_acc": correct / max(1, seen),
            "val_loss": val_loss, "w_lr": w_lr, "alpha_lr": a_lr, "arch_steps": arch_on,
            "aux_beta_first": None, "aux_beta_last": None,
            "skip_dropout": self.fstate.skip_dropout, "epoch_cpu_seconds": cpu,
        }
        for h in self.hooks:
            metrics.update(h.epoch_metrics())
        return self._record(ctx, epoch, stage, seconds, val_acc, metrics)

    @torch.no_grad()
    def _validate(self) -> tuple[float, float]:
        self.net.eval()
        correct, loss, n = 0, 0.0, len(self.val_split)
        for i in range(0, n, 512):
            x, y = self._batch(self.val_split, torch.arange(i, min(n, i + 512)))
            logits = self.net(x, self.alphas)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
        self.net.train()
        return correct / max(1, n), loss / max(1, n)

    def derive(self) -> tuple[Architecture, int]:
        """The current architecture (regularizer hooks applied, e.g. the P-DARTS skip limit)
        and the skips it removed."""
        weights = {g: self.alphas.numpy_weights(g) for g in self.spec.groups}
        edges = {g: self.alphas.numpy_edge_weights(g) for g in self.spec.groups}
        derived = _first(h.derive(self.spec, weights, edges) for h in self.hooks)
        return derived or (self.spec.discretize_weights(weights, edges), 0)

    def _record(self, ctx: SearchContext, epoch: int, stage: int, seconds: float,
                val_acc: float, metrics: dict[str, Any]) -> tuple[Record, dict[str, Any]]:
        arch, removed = self.derive()
        ctx.space.validate(arch)
        params = count_params(ctx.space.build(arch, self.task.input_shape, self.task.num_classes))
        metrics.update(stage=stage, skip_connects=self.spec.skip_count(arch),
                       skips_removed=removed, epoch_seconds=seconds)
        series = {
            "epoch": epoch, "stage": stage, "ops": list(self.spec.ops),
            "groups": {g: {"weights": self.alphas.numpy_weights(g).round(6).tolist(),
                           "logits": self.alphas.logits[g].detach().cpu().double().numpy()
                           .round(6).tolist(),
                           "mask": self.alphas.mask(g).cpu().numpy().tolist()}
                       for g in self.spec.groups},
            "edges": {g: (None if (e := self.alphas.numpy_edge_weights(g)) is None
                          else e.round(6).tolist()) for g in self.spec.groups},
            "arch": list(arch.tokens), "describe": ctx.space.describe(arch),
        }
        rec = Record(epoch, arch, self.seed, Result(
            status="complete", val_acc=float(val_acc), params=params, train_seconds=seconds,
            epochs=epoch + 1, metrics=metrics), finished_at=time.time())
        return rec, series

    # ------------------------------------------------------------ final
    def report_extras(self, ctx: SearchContext, last: Record) -> dict[str, Any]:
        recs = ctx.records()
        out: dict[str, Any] = {
            "skip_connects": make_spec(ctx.space, self.p).skip_count(last.arch),
            "epoch_seconds": statistics.fmean(r.result.train_seconds for r in recs),
        }
        if isinstance(ctx.space, Renderable):
            try:
                out["diagram"] = str(ctx.space.render(last.arch, ctx.run_dir / "genotype.png"))
            except ImportError:  # pragma: no cover - matplotlib missing
                pass
        if self.p.table is not None:
            out.update(table_rank(ctx.space, last.arch, self.p.table))
        return out

    def retrain(
        self, ctx: SearchContext, arch: Architecture, seed: int
    ) -> tuple[nn.Module, dict[str, Any]]:
        assert ctx.task is not None
        return retrain(ctx.space, arch, ctx.task, self.p.retrain, seed=seed, device=ctx.device)

    def test(self, ctx: SearchContext, model: nn.Module) -> float:
        assert ctx.task is not None
        return test_accuracy(model, ctx.task.test, ctx.device)


__all__ = ["DartsParams", "DartsSearch", "build_hooks", "make_spec", "table_rank"]
