"""Retraining a derived architecture from scratch (DARTS' evaluation protocol, CPU-sized).

SGD (or Adam) with cosine learning-rate annealing, weight decay and gradient clipping, optional
drop-path that grows linearly to ``drop_path`` over the epochs (networks exposing
``set_drop_path``), and optional random shifts of up to ``shift`` pixels (zero padding) as data
augmentation. The network is built by the space (``space.build``), so the saved weights load
with ``nasforge.load``. The model of the epoch with the best validation accuracy is kept
(``select: best``) or the last one (``select: last``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.data.base import Split, Task
from nasforge.evaluators.fit import KeepBest, accuracy, count_params, train_epoch
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.strategies.oneshot.darts.regularizers import cosine_lr


class RetrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=64, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(default=0.05, gt=0)
    lr_min: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=3e-4, ge=0)
    grad_clip: float = Field(default=5.0, ge=0, description="0: off")
    drop_path: float = Field(default=0.0, ge=0, lt=1)
    shift: int = Field(default=0, ge=0, description="random shift augmentation (pixels)")
    select: Literal["best", "last"] = "best"


def random_shift(x: torch.Tensor, shift: int, g: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``shift`` pixels in each direction (zero fill)."""
    if shift <= 0 or x.dim() != 4:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))
    offs = torch.randint(0, 2 * shift + 1, (n, 2), generator=g)
    out = torch.empty_like(x)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            idx = ((offs[:, 0] == dy) & (offs[:, 1] == dx)).nonzero().flatten()
            if len(idx):
                idx = idx.to(x.device)
                out[idx] = padded[idx, :, dy : dy + h, dx : dx + w]
    return out


def retrain(
    space: SearchSpace,
    arch: Architecture,
    task: Task,
    p: RetrainParams,
    *,
    seed: int,
    device: torch.device,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``space.build(arch)`` on ``task.train``; returns the model and its metrics."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build(arch, task.input_shape, task.num_classes).to(device)
        g = torch.Generator().manual_seed(seed)
        train, val = task.train.to(device), task.val.to(device)
        params = [q for q in model.parameters() if q.requires_grad]
        opt: torch.optim.Optimizer
        if p.optimizer == "sgd":
            opt = torch.optim.SGD(
                params, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay
            )
        else:
            opt = torch.optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay)
        keep = KeepBest(keep_state=p.select == "best")
        curve: list[float] = []
        loss_v = math.nan

        def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            return random_shift(x, p.shift, gen)

        for epoch in range(p.epochs):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(p.lr, p.lr_min, epoch, p.epochs)
            set_drop_path = getattr(model, "set_drop_path", None)
            if callable(set_drop_path):
                set_drop_path(p.drop_path * epoch / p.epochs)
            loss_v = train_epoch(
                model, opt, train, batch_size=p.batch_size, generator=g, loss_fn=F.cross_entropy,
                grad_clip=p.grad_clip, clip_params=params, augment=shift, min_batch=2,
                check_finite=False, epoch=epoch + 1,
            )
            acc = accuracy(model, val)
            curve.append(acc)
            keep.update(model, acc, epoch + 1)
        keep.restore(model)
        model.eval()
    best, best_epoch = keep.score, keep.epoch
    val_acc = best if p.select == "best" else curve[-1]
    return model, {
        "val_acc": float(val_acc),
        "best_epoch": best_epoch,
        "train_loss": loss_v,
        "params": count_params(model),
        "seconds": time.perf_counter() - start,
    }


def test_accuracy(model: nn.Module, split: Split, device: torch.device) -> float:
    return accuracy(model.to(device), split.to(device))
