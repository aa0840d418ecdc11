"""The second-order hypergradient matches finite differences of the unrolled validation loss.

ReLU networks have gradients that jump where a unit switches, so any finite difference of a
gradient (DARTS' Hessian-vector product, or this check) is ill-posed at small steps; the tiny
supernet's ReLUs are swapped for tanh to make the check exact (the code under test is the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasforge.spaces.darts.supernet import Alphas
from nasforge.strategies.oneshot.darts import architect
from tests.strategies.oneshot.darts._darts_helpers import batch, tiny_spec


def _setup() -> tuple[torch.nn.Module, Alphas]:
    torch.manual_seed(0)
    spec = tiny_spec(ops=["skip_connect", "avg_pool_3x3", "sep_conv_3x3"])
    alphas = spec.new_alphas(torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        for p in alphas.parameters():
            p.normal_(0, 0.5)
    net = spec.new_supernet((1, 6, 6), 3).double()
    _smooth(net)
    return net, alphas


def _smooth(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.ReLU):
            setattr(module, name, torch.nn.Tanh())
        else:
            _smooth(child)


def _unrolled_val_loss(net: torch.nn.Module, alphas: torch.nn.Module, train: tuple,
                       val: tuple, xi: float) -> torch.Tensor:
    """f(alpha) = L_val(w - xi grad_w L_train(w, alpha), alpha), plain SGD virtual step."""
    params = dict(net.named_parameters())
    bufs = {n: b.clone() for n, b in net.named_buffers()}
    loss = F.cross_entropy(functional_call(net, {**params, **bufs}, (train[0], alphas)), train[1])
    grads = torch.autograd.grad(loss, list(params.values()))
    moved = {n: p - xi * g for (n, p), g in zip(params.items(), grads)}
    bufs = {n: b.clone() for n, b in net.named_buffers()}
    return F.cross_entropy(functional_call(net, {**moved, **bufs}, (val[0], alphas)), val[1])


def test_second_order_matches_finite_differences() -> None:
    net, alphas = _setup()
    train = batch(8, 0, torch.float64, classes=3)
    val = batch(8, 1, torch.float64, classes=3)
    xi = 0.5
    hyper = architect.second_order_grad(net, alphas, train, val, xi, None, eps_scale=1e-5)
    first = architect.first_order_grad(net, alphas, val)
    h = 1e-6
    for p, g2, g1 in zip(alphas.parameters(), hyper, first):
        numeric = torch.zeros_like(p)
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + h
            up = _unrolled_val_loss(net, alphas, train, val, xi).item()
            flat[i] = old - h
            down = _unrolled_val_loss(net, alphas, train, val, xi).item()
            flat[i] = old
            numeric.view(-1)[i] = (up - down) / (2 * h)
        if numeric.abs().max() == 0:  # the unused reduce alphas (layers=1, no reduction)
            assert g2.abs().max() == 0
            continue
        err = (g2 - numeric).norm() / numeric.norm()
        gap = (g1 - numeric).norm() / numeric.norm()
        assert err < 1e-5, f"second-order error {err:.2e}"
        assert gap > 100 * err, f"first order should differ: gap {gap:.2e} vs error {err:.2e}"
