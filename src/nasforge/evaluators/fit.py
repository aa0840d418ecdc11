"""The reference training loop: one epoch of minibatch training, and best-epoch selection.

Every trainer that fits a network with ``torch.optim`` runs its epochs through
:func:`train_epoch`: the child trainer (``TrainEvaluator.fit_single``), DARTS' retraining of a
derived architecture (``strategies/oneshot/darts/retrain.py``) and the PBT-NAS classifier member
(``evaluators/pbt.py``). They differ only in what they pass (loss, clipping, augmentation, the
learning-rate schedule they set between epochs). The batched population trainer
(``evaluators/batched.py``) is an optimisation of this loop for MLP children and is tested
against it (``tests/evaluators/test_batched.py``).

An epoch draws one ``randperm`` of the training rows from the caller's generator and walks it
in order in minibatches of ``batch_size``; data stay in tensors (no DataLoader).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from nasforge.data.base import Split

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Diverged(RuntimeError):
    """A training loss that is not finite."""


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    train: Split,
    *,
    batch_size: int,
    generator: torch.Generator,
    loss_fn: LossFn,
    grad_clip: float = 0.0,
    clip_params: Iterable[torch.nn.Parameter] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    min_batch: int = 1,
    check_finite: bool = True,
    epoch: int = 0,
) -> float:
    """Train ``model`` in place for one epoch over ``train``; returns the last batch's loss.

    ``batch_size`` 0 means full batch. ``augment(x, generator)`` transforms each minibatch
    (it may draw from the same generator, after the permutation). Minibatches smaller than
    ``min_batch`` are skipped (batch norm cannot train on one row). With ``check_finite`` a
    non-finite loss raises :class:`Diverged` before the step (naming ``epoch`` if given).
    """
    n = len(train)
    bs = n if batch_size == 0 else batch_size
    params = list(clip_params) if clip_params is not None else list(model.parameters())
    perm = torch.randperm(n, generator=generator).to(train.x.device)
    last = math.nan
    model.train()
    for i in range(0, n, bs):
        idx = perm[i : i + bs]
        if len(idx) < min_batch:
            continue
        x = train.x[idx] if augment is None else augment(train.x[idx], generator)
        loss = loss_fn(model(x), train.y[idx])
        if check_finite and not torch.isfinite(loss):
            raise Diverged("non-finite training loss" + (f" at epoch {epoch}" if epoch else ""))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        last = float(loss.detach())
    return last


def count_params(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch: int = 4096) -> float:
    """Classification accuracy of ``model`` on ``split`` (eval mode, back to train mode after)."""
    model.eval()
    correct = 0
    for i in range(0, len(split), batch):
        correct += int((model(split.x[i : i + batch]).argmax(1) == split.y[i : i + batch]).sum())
    model.train()
    return correct / max(1, len(split))


class KeepBest:
    """Best-epoch selection: remembers the best score (strictly greater wins) and, when
    ``keep_state``, a copy of the model's weights at that epoch to restore at the end."""

    def __init__(self, *, keep_state: bool = True) -> None:
        self.keep_state = keep_state
        self.score = -math.inf
        self.epoch = 0
        self.state: dict[str, Any] | None = None

    def update(self, model: nn.Module, score: float, epoch: int) -> bool:
        """Record ``score`` of ``epoch``; True when it is a new best."""
        if not score > self.score:
            return False
        self.score, self.epoch = score, epoch
        if self.keep_state:
            self.state = copy.deepcopy(model.state_dict())
        return True

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights into ``model`` (if kept); True when it did."""
        if self.state is None:
            return False
        model.load_state_dict(self.state)
        return True
