"""TrainEvaluator: trains a child network and scores it on the validation split.

Data stays in tensors (no DataLoader); minibatches come from a seeded ``randperm``. Early
stopping ends training after ``patience`` epochs without a strict improvement of validation
accuracy. The reward is the best epoch's validation accuracy (weights restored) or, with
``reward: last``, the last epoch's (seed 002's behaviour, quirk Q-M3).

``trainer`` (default ``auto``): MLP children (an ``nn.Sequential`` of Linear layers and
elementwise activations) train together as stacked populations with the same per-child
semantics (:mod:`nasforge.evaluators.batched`; ``bucket`` chooses the grouping), other children
(CNNs, where batching was measured not to pay) one by one; ``single`` trains everything one by
one. ``cache_dir`` adds a persistent cross-run evaluation cache (:mod:`nasforge.evaluators.cache`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.data.base import Split, Task
from nasforge.evaluators.base import EVALUATORS, Evaluator, Result, _objective_setting
from nasforge.evaluators.batched import fit_batch
from nasforge.evaluators.fit import Diverged, KeepBest, accuracy, count_params, train_epoch
from nasforge.objectives import BUILTIN, DEFAULT, Objective, class_metric, task_objectives
from nasforge.seeding import seed_torch
from nasforge.spaces.base import Architecture, SearchSpace


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    lr: float = Field(default=1e-2, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd / rmsprop only")
    batch_size: int = Field(default=32, ge=0, description="0: full batch")
    max_epochs: int = Field(default=100, ge=1)
    patience: int = Field(default=10, ge=0, description="0: no early stopping")
    reward: Literal["best", "last"] = "best"
    val_metric: Literal["accuracy", "batch_mean"] = Field(
        default="accuracy",
        description="accuracy over the whole split, or seed 002's unweighted mean of shuffled "
        "per-batch accuracies (quirk Q-M4)",
    )
    val_batch_size: int = Field(default=32, ge=1, description="batch_mean only")
    grad_clip: float = Field(default=0.0, ge=0, description="max grad norm; 0: off")
    trainer: Literal["auto", "single", "batched"] = Field(
        default="auto", description="batched: train same-shaped MLP children together"
    )
    threads: int = Field(default=0, ge=0, description="torch threads in the driver; 0: leave")
    bucket: Literal["auto", "shape", "merge"] = Field(
        default="auto",
        description="batched trainer grouping: shape (identical layer shapes), merge (one "
        "zero-padded population), auto (merge layers up to 64 units, else shape)",
    )
    cache_dir: str | None = Field(
        default=None,
        description="persistent evaluation cache folder shared across runs (written by the "
        "driver); key: task, architecture id, settings, seed",
    )


def make_optimizer(params: Any, p: TrainParams) -> torch.optim.Optimizer:
    if p.optimizer == "adam":
        return torch.optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay)
    if p.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    if p.optimizer == "sgd":
        return torch.optim.SGD(params, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    return torch.optim.RMSprop(params, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)


@torch.no_grad()
def batch_mean_accuracy(model: nn.Module, split: Split, batch: int, g: torch.Generator) -> float:
    """Seed 002's metric: shuffled batches, unweighted mean of per-batch accuracies."""
    model.eval()
    perm = torch.randperm(len(split), generator=g).to(split.x.device)
    accs = []
    for i in range(0, len(split), batch):
        idx = perm[i : i + batch]
        accs.append(float((model(split.x[idx]).argmax(1) == split.y[idx]).float().mean()))
    model.train()
    return sum(accs) / len(accs)


@torch.no_grad()
def split_score(model: nn.Module, split: Split, task: Task, name: str, batch: int = 4096) -> float:
    """Objective ``name`` (val_acc, val_loss, val_balanced_acc, val_f1, val_rmse, val_r2; a
    ``test_`` prefix works too)
    of ``model`` on ``split``; RMSE in the target's own units (standardisation undone)."""
    metric = name.split("_", 1)[1] if "_" in name else name
    if task.kind != "regression" and metric == "acc":
        return accuracy(model, split, batch)
    model.eval()
    outs = [model(split.x[i : i + batch]) for i in range(0, len(split), batch)]
    model.train()
    out = torch.cat(outs) if outs else torch.zeros(0)
    if task.kind != "regression":
        if metric in ("balanced_acc", "f1"):
            return class_metric(metric, split.y.cpu().numpy(), out.argmax(1).cpu().numpy())
        return float(nn.functional.cross_entropy(out, split.y))  # loss
    pred, y = out.reshape(-1).double(), split.y.double()
    sse = float(((pred - y) ** 2).sum())
    if metric == "r2":
        sst = float(((y - y.mean()) ** 2).sum())
        return 1.0 - sse / sst if sst > 0 else math.nan
    mse = sse / max(1, len(y))
    if metric == "loss":
        return mse
    return math.sqrt(mse) * float(task.preprocess.get("y_std", 1.0))


def task_test_metrics(model: nn.Module, task: Task, device: torch.device) -> dict[str, float]:
    """Every built-in metric of ``task``'s kind on its test split (``test_acc``, ``test_loss``,
    ...), for the final report."""
    test = task.test.to(device)
    names = [n for n, (_, _, kinds) in BUILTIN.items() if task.kind in kinds]
    return {"test_" + n.removeprefix("val_"): split_score(model.to(device), test, task,
                                                          "test_" + n.removeprefix("val_"))
            for n in names}


@EVALUATORS.register("train")
class TrainEvaluator(Evaluator):
    """Trains each child from scratch with the configured optimizer, batch size and patience."""

    name: ClassVar[str] = "train"
    Params: ClassVar[type[BaseModel]] = TrainParams

    def __init__(
        self, *, space: SearchSpace, task: Task, device: torch.device | str = "cpu", **params: Any
    ) -> None:
        self.p = TrainParams(**params)
        self.space = space
        self.task = task
        self.device = torch.device(device)
        if task is not None and task.kind == "regression":
            self.objective = Objective.builtin("val_rmse")

    def objectives(self) -> list[str]:
        kind = self.task.kind if self.task is not None else "classification"
        return task_objectives(kind, self.objective.name)

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.p.model_dump(exclude={"trainer", "threads", "bucket", "cache_dir"}),
            **_objective_setting(self.objective),
        }

    @property
    def _single(self) -> bool:
        """One-by-one training: asked for, or an objective the batched trainer does not score
        (it trains classifiers on cross-entropy and ranks epochs by accuracy)."""
        return self.p.trainer == "single" or self.objective != DEFAULT

    @property
    def driver_threads(self) -> int:
        return self.p.threads

    @property
    def prefers_batches(self) -> bool:
        """Executors hand this evaluator whole batches (the batched trainer is on)."""
        return not self._single

    @property
    def cache_path(self) -> str | None:
        """Folder of the persistent evaluation cache (``cache_dir``), or None."""
        return self.p.cache_dir

    def evaluate_batch(self, archs: Sequence[Architecture], seeds: Sequence[int]) -> list[Result]:
        """``trainer: auto`` / ``batched``: MLP children train together as stacked populations
        (:mod:`nasforge.evaluators.batched`), other children one by one."""
        if self._single:
            return super().evaluate_batch(archs, seeds)

        return [r for _, r in fit_batch(self, archs, seeds)]

    def fit_batch(
        self, archs: Sequence[Architecture], seeds: Sequence[int]
    ) -> list[tuple[nn.Module | None, Result]]:
        """:meth:`fit` for several children at once (batched where possible)."""
        if self._single:
            return [self.fit_single(a, seed=s) for a, s in zip(archs, seeds)]

        return fit_batch(self, archs, seeds, keep_models=True)

    def build(self, arch: Architecture) -> nn.Module:
        return self.space.build(arch, self.task.input_shape, self.task.num_classes)

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        _, result = self.fit(arch, seed=seed)
        return result

    def fit(self, arch: Architecture, *, seed: int) -> tuple[nn.Module | None, Result]:
        """Train ``arch``; returns the trained model (best or last epoch, per ``reward``).

        Unless ``trainer: single``, an MLP child trains as a population of one (same results up
        to float rounding, a fraction of the per-step overhead); others use :meth:`fit_single`.
        """
        if self._single:
            return self.fit_single(arch, seed=seed)
        return self.fit_batch([arch], [seed])[0]

    def fit_single(self, arch: Architecture, *, seed: int) -> tuple[nn.Module | None, Result]:
        """The one-by-one trainer (autograd, ``torch.optim``)."""
        p = self.p
        start = time.perf_counter()
        try:
            model = self.build(arch).to(self.device)
        except Exception as err:
            return None, Result.failed(f"cannot build: {type(err).__name__}: {err}")
        seed_torch(seed)
        # rebuild after seeding so that initial weights depend on the seed alone
        model = self.build(arch).to(self.device)
        g = torch.Generator().manual_seed(seed)
        gval = torch.Generator().manual_seed(seed + 1)
        opt = make_optimizer(model.parameters(), p)
        regression = self.task.kind == "regression"
        obj = self.objective
        loss_fn: nn.Module = nn.MSELoss() if regression else nn.CrossEntropyLoss()

        def loss_of(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return loss_fn(out.reshape(-1) if regression else out, y)

        train, val = self.task.train.to(self.device), self.task.val.to(self.device)
        keep = KeepBest(keep_state=p.reward == "best")
        bad = 0
        curve: list[float] = []
        last_loss = math.nan
        epoch = 0
        try:
            for epoch in range(1, p.max_epochs + 1):
                last_loss = train_epoch(
                    model, opt, train, batch_size=p.batch_size, generator=g, loss_fn=loss_of,
                    grad_clip=p.grad_clip, epoch=epoch,
                )
                if obj != DEFAULT:
                    acc = obj.utility(split_score(model, val, self.task, obj.name))
                    if not math.isfinite(acc):
                        raise Diverged(f"non-finite {obj.name} at epoch {epoch}")
                elif p.val_metric == "batch_mean":
                    acc = batch_mean_accuracy(model, val, p.val_batch_size, gval)
                else:
                    acc = accuracy(model, val)
                curve.append(acc)
                if keep.update(model, acc, epoch):
                    bad = 0
                else:
                    bad += 1
                    if p.patience and bad >= p.patience:
                        break
        except Diverged as err:
            return None, Result.failed(
                f"diverged: {err}",
                params=count_params(model),
                epochs=epoch,
                train_seconds=time.perf_counter() - start,
            )
        best, best_epoch = keep.score, keep.epoch
        score = best if p.reward == "best" and keep.restore(model) else curve[-1]
        result = Result(
            status="complete",
            val_acc=float(score),
            params=count_params(model),
            train_seconds=time.perf_counter() - start,
            epochs=epoch,
            metrics={"best_epoch": best_epoch, "best_val_acc": best, "train_loss": last_loss},
        )
        if obj != DEFAULT:
            result.metrics[obj.name] = obj.score(score)
        return model, result

    def test_metrics(self, model: nn.Module) -> dict[str, float]:
        """Every built-in metric of the task on the test split (e.g. test_acc and test_loss
        when the objective is val_loss), for the final report."""
        return task_test_metrics(model, self.task, self.device)

    def test_accuracy(self, model: nn.Module) -> float:
        """The objective's score on the test split (accuracy by default; RMSE, R^2 or loss)."""
        test = self.task.test.to(self.device)
        if self.objective == DEFAULT:
            return accuracy(model.to(self.device), test)
        return split_score(model.to(self.device), test, self.task, self.objective.test_name)
