"""The reference training loop (evaluators/fit.py) that the child, retraining and PBT trainers
share."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasforge.data.base import Split
from nasforge.evaluators.fit import Diverged, KeepBest, accuracy, count_params, train_epoch


def _data(n: int = 37) -> Split:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return Split(x, (x[:, 0] > 0).long())


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_epoch_walks_one_permutation_in_minibatches() -> None:
    data, seen = _data(), []
    net = _net()

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(len(y))
        return nn.functional.cross_entropy(out, y)

    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    train_epoch(net, opt, data, batch_size=10, generator=torch.Generator().manual_seed(1),
                loss_fn=loss, min_batch=8)
    assert seen == [10, 10, 10]  # the last batch of 7 rows is below min_batch: skipped
    seen.clear()
    train_epoch(net, opt, data, batch_size=0, generator=torch.Generator(), loss_fn=loss)
    assert seen == [37]  # 0: full batch


def test_same_generator_same_weights_and_training_learns() -> None:
    data = _data(200)
    nets = [_net(), _net()]
    for net in nets:
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(3)
        for _ in range(5):
            train_epoch(net, opt, data, batch_size=16, generator=g,
                        loss_fn=nn.functional.cross_entropy, grad_clip=1.0)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert accuracy(nets[0], data) > 0.9


def test_non_finite_loss_raises_before_the_step() -> None:
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def nan_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return out.sum() * math.nan

    with pytest.raises(Diverged, match="non-finite training loss at epoch 4"):
        train_epoch(net, opt, _data(), batch_size=8, generator=torch.Generator(),
                    loss_fn=nan_loss, epoch=4)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_keep_best_restores_the_best_epoch() -> None:
    net, keep = _net(), KeepBest()
    assert keep.update(net, 0.5, 1)
    best = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert not keep.update(net, 0.5, 2)  # ties keep the earlier epoch
    assert not keep.update(net, math.nan, 3)
    assert keep.restore(net) and keep.epoch == 1 and keep.score == 0.5
    assert all(torch.equal(a, b) for a, b in zip(best, net.parameters(), strict=True))
    assert not KeepBest(keep_state=False).restore(net)
    assert count_params(net) == 4 * 8 + 8 + 8 * 2 + 2
