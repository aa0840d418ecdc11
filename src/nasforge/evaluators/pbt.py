"""Member trainers for PBT-NAS: resumable training steps from an in-memory checkpoint.

Contract (ALGORITHMS.md 5.5): ``train_step(arch, ckpt, units, seed=, eval_seed=) -> StepOut``
trains a population member for ``units`` more units (epochs, or frame blocks in RL) starting
from its checkpoint, then scores it (fitness, higher is better). A checkpoint is a plain dict
(CPU tensors, picklable: it travels through process pools and Ray's object store)::

    {"model": state_dict, "opt": {param name: optimiser state}, "units": int, "extra": {...}}

``extra`` is trainer-specific (the RL trainer keeps its environments there, mid-episode).

The optimiser state is keyed by parameter name (not position), so PBT-NAS can drop the state of
exactly the layers a child inherits from its donor (quirk P3, default).

``pbt_train`` (this module) trains a classifier (or a regressor) on the task's train split and
scores it on validation under the run's objective (validation accuracy by default, RMSE for a
regression task); ``pbt_rl`` (``evaluators/pbt_rl.py``) trains an actor-critic with PPO. Both
also work as ordinary evaluators: ``evaluate(arch, seed)`` trains a fresh member for
``full_units``.
"""

from __future__ import annotations

import copy
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.data.base import Task
from nasforge.evaluators.base import EVALUATORS, Evaluator, Result, _objective_setting
from nasforge.evaluators.fit import accuracy, count_params, train_epoch
from nasforge.evaluators.train import split_score, task_test_metrics
from nasforge.exceptions import ConfigError
from nasforge.objectives import DEFAULT, Objective, task_objectives
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.genes import GeneACSpace, GeneCNNSpace

Checkpoint = dict[str, Any]


@dataclass(frozen=True)
class TestScore:
    """A held-out score (objective units) and, over several episodes, its spread."""

    score: float
    std: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """What else the final report should record (e.g. a GAN's FID on the training images)."""


@dataclass
class StepOut:
    """What one training step of one member returns to the driver."""

    ckpt: Checkpoint
    fitness: float
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class StepJob:
    """One member's training step, as sent to a worker."""

    slot: int
    member: int
    tokens: tuple[Any, ...]
    ckpt: Checkpoint
    units: int
    seed: int
    eval_seed: int


def member_step(trainer: MemberTrainer, job: StepJob) -> StepOut:
    """The job PBT-NAS runs for every member and round (in the driver, a pool or on Ray).

    A failing step (an exception, a non-finite loss) returns the member's input checkpoint with
    ``error`` set, so the driver records a failed trial and the member is replaced at the next
    exploit step.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(max(1, trainer.threads))
    start = time.perf_counter()
    try:
        return trainer.train_step(
            Architecture(job.tokens), job.ckpt, job.units, seed=job.seed, eval_seed=job.eval_seed
        )
    except Exception as err:  # a member's failure must not stop the search
        return StepOut(job.ckpt, float("nan"), time.perf_counter() - start,
                       error=f"{type(err).__name__}: {err}")
    finally:
        torch.set_num_threads(prev)


def seeded_build(build: Any, arch: Architecture, seed: int) -> nn.Module:
    """``build(arch)`` with torch's global RNG seeded to ``seed``, restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model: nn.Module = build(arch)
    return model


def _owned(opt: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in opt.param_groups for p in group["params"]}


def optimizer_state_by_name(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``opt``'s state keyed by the model's parameter names (only the parameters it updates)."""
    out: dict[str, Any] = {}
    owned = _owned(opt)
    for name, p in model.named_parameters():
        if id(p) not in owned:
            continue
        st = opt.state.get(p)
        if st:
            out[name] = {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in st.items()}
    return out


def load_optimizer_state(
    model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    owned = _owned(opt)
    for name, p in model.named_parameters():
        st = state.get(name)
        if st is None or id(p) not in owned:  # another optimiser's parameter
            continue
        opt.state[p] = {k: _copy_state_value(v, p.device) for k, v in st.items()}


def _copy_state_value(v: Any, device: torch.device) -> Any:
    """A private copy: the optimiser updates its state in place (Adam's ``step`` counter too), and
    a checkpoint may be shared with a child, so nothing it holds may be aliased."""
    if not torch.is_tensor(v):
        return copy.deepcopy(v)
    v = v.detach().clone()
    return v.to(device) if v.dim() > 0 else v  # scalar step counters stay on the CPU


class MemberTrainer(Evaluator):
    """An evaluator that PBT-NAS can train step by step. Subclasses are picklable and stateless
    between calls (every input is in the arguments), so a step gives the same result in the
    driver, in a process pool or on Ray."""

    unit: ClassVar[str] = "epoch"
    device: torch.device
    threads: int = 1
    full_units: int = 10
    p: Any
    """The trainer's validated params (its ``threads`` change speed, never results)."""

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, **self.p.model_dump(exclude={"threads"})}

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    @abstractmethod
    def num_classes(self) -> int: ...

    @abstractmethod
    def build(self, arch: Architecture) -> nn.Module:
        """A fresh network for ``arch`` (uses torch's global RNG: wrap in :func:`seeded_build`)."""

    @abstractmethod
    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer: ...

    def make_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        """The member's named optimisers (each parameter in at most one); one by default. The
        checkpoint keeps their states together, keyed by parameter name (names are unique)."""
        return {"model": self.make_optimizer(model)}

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[str]]:
        """Parameter names per named optimiser (quirk P3's positional mode loads each optimiser
        by position; mutation noise touches these parameters only)."""
        return {"model": [n for n, _ in model.named_parameters()]}

    def inherit_exactly(self, name: str) -> bool:
        """Whether a replaced layer's entry ``name`` is copied from the donor as it is instead of
        shrink-perturbed (a GAN's generator EMA, spectral-norm vectors); none by default."""
        return False

    def save_artifacts(self, model: nn.Module, run_dir: Any, *, seed: int) -> dict[str, Any]:
        """Files the final report adds to the run directory (e.g. a sample grid); none by
        default. Returns what the report should record about them."""
        return {}

    def _train_all(
        self, model: nn.Module, opts: dict[str, torch.optim.Optimizer], units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train with every named optimiser; the default trains with the one ``"model"``."""
        return self._train(model, opts["model"], units, seed, extra)

    @abstractmethod
    def _train(
        self, model: nn.Module, opt: torch.optim.Optimizer, units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train in place for ``units`` units; returns ``(metrics, new extra)``."""

    @abstractmethod
    def fitness(self, model: nn.Module, *, eval_seed: int) -> float:
        """Score a trained network on the search's validation data (higher is better)."""

    @abstractmethod
    def test_score(self, model: nn.Module, *, seed: int) -> TestScore:
        """The held-out score of the chosen network (test split / fresh test episodes), in the
        objective's units."""

    @property
    def driver_threads(self) -> int:
        return self.threads

    def task_meta(self) -> dict[str, Any] | None:
        """Shape information stored as the run's ``task`` meta when there is no task."""
        return None

    def init_member(self, arch: Architecture, seed: int) -> Checkpoint:
        model = seeded_build(self.build, arch, seed)
        return {"model": _cpu_state(model), "opt": {}, "units": 0, "extra": {}}

    def restore(self, arch: Architecture, ckpt: Checkpoint) -> nn.Module:
        model = self.build(arch)
        model.load_state_dict(ckpt["model"])
        return model.to(self.device)

    def train_step(
        self, arch: Architecture, ckpt: Checkpoint, units: int, *, seed: int, eval_seed: int
    ) -> StepOut:
        start = time.perf_counter()
        model = self.restore(arch, ckpt)
        opts = self.make_optimizers(model)
        for opt in opts.values():
            load_optimizer_state(model, opt, ckpt.get("opt", {}))
        metrics, extra = self._train_all(model, opts, units, seed, dict(ckpt.get("extra", {})))
        fit = float(self.fitness(model, eval_seed=eval_seed))
        opt_state: dict[str, Any] = {}
        for opt in opts.values():
            opt_state.update(optimizer_state_by_name(model, opt))
        new = {
            "model": _cpu_state(model),
            "opt": opt_state,
            "units": int(ckpt.get("units", 0)) + units,
            "extra": extra,
        }
        return StepOut(new, fit, time.perf_counter() - start, metrics)

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        out = self.train_step(
            arch, self.init_member(arch, seed), self.full_units, seed=seed, eval_seed=seed
        )
        model = self.build(arch)
        return Result(
            status="complete", val_acc=out.fitness, params=count_params(model),
            train_seconds=out.seconds, epochs=self.full_units, metrics=out.metrics,
        )


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


class PBTTrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd only")
    batch_size: int = Field(default=64, ge=1)
    full_units: int = Field(default=10, ge=1, description="epochs of a stand-alone evaluate()")
    threads: int = Field(default=1, ge=1, description="torch threads of every training step")


@EVALUATORS.register("pbt_train")
class PBTClassifierTrainer(MemberTrainer):
    """Classifier / regressor member trainer for ``gene_cnn`` (images) and ``gene_mlp`` (rows):
    one unit = one epoch over the train split (minibatches from a seeded permutation) on
    cross-entropy (mean squared error for regression); fitness = the objective's utility on the
    validation split (validation accuracy by default, RMSE for regression); final score = the
    objective on the test split."""

    name: ClassVar[str] = "pbt_train"
    Params: ClassVar[type[BaseModel]] = PBTTrainParams
    unit: ClassVar[str] = "epoch"

    def __init__(
        self, *, space: SearchSpace, task: Task, device: torch.device | str = "cpu", **params: Any
    ) -> None:
        self.p = PBTTrainParams(**params)
        self.space, self.task, self.device = space, task, torch.device(device)
        self.threads, self.full_units = self.p.threads, self.p.full_units
        if isinstance(space, GeneCNNSpace) and len(task.input_shape) != 3:
            raise ConfigError(
                f"space gene_cnn needs image inputs (C, H, W); task {task.name!r} has input "
                f"shape {list(task.input_shape)}; for feature rows use space gene_mlp"
            )
        if isinstance(space, GeneACSpace):
            raise ConfigError(
                "space gene_ac is an actor-critic space for evaluator pbt_rl; evaluator "
                "pbt_train trains classifiers and regressors: use space gene_cnn or gene_mlp"
            )
        if task.kind == "regression":
            self.objective = Objective.builtin("val_rmse")

    def objectives(self) -> list[str]:
        return task_objectives(self.task.kind, self.objective.name)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), **_objective_setting(self.objective)}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.task.input_shape)

    @property
    def num_classes(self) -> int:
        return self.task.num_classes

    def build(self, arch: Architecture) -> nn.Module:
        return self.space.build(arch, self.task.input_shape, self.task.num_classes)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        p = self.p
        if p.optimizer == "sgd":
            return torch.optim.SGD(
                model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay
            )
        cls = torch.optim.Adam if p.optimizer == "adam" else torch.optim.AdamW
        return cls(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)

    def _train(
        self, model: nn.Module, opt: torch.optim.Optimizer, units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        train = self.task.train.to(self.device)
        g = torch.Generator().manual_seed(int(seed))
        last = float("nan")
        loss_fn = _mse if self.task.kind == "regression" else nn.functional.cross_entropy
        for _ in range(units):
            last = train_epoch(model, opt, train, batch_size=self.p.batch_size, generator=g,
                               loss_fn=loss_fn)
        return {"train_loss": last}, extra

    def fitness(self, model: nn.Module, *, eval_seed: int) -> float:
        val = self.task.val.to(self.device)
        if self.objective == DEFAULT:
            return accuracy(model, val)
        return self.objective.utility(split_score(model, val, self.task, self.objective.name))

    def test_score(self, model: nn.Module, *, seed: int) -> TestScore:
        test = self.task.test.to(self.device)
        if self.objective == DEFAULT:
            return TestScore(accuracy(model.to(self.device), test))
        return TestScore(split_score(model.to(self.device), test, self.task,
                                     self.objective.test_name))

    def test_metrics(self, model: nn.Module) -> dict[str, float]:
        """Every built-in metric of the task on the test split (test accuracy beside a val_loss
        objective), for the final report."""
        return task_test_metrics(model, self.task, self.device)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(out.reshape(-1), y)
