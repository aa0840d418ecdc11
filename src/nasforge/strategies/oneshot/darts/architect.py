"""Architecture (alpha) gradients for DARTS: first order, second order (unrolled), TSE.

Paper: Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019, eq. (7)-(8).

* First order: ``g = grad_alpha L_val(w, alpha)``.
* Second order: with the virtual step ``w' = w - xi (m + grad_w L_train(w, alpha) + wd w)``
  (``m``: the weight optimiser's momentum buffer times its momentum, as in DARTS),
  ``g = grad_alpha L_val(w', alpha) - xi * H``, where the Hessian-vector product
  ``H = grad^2_{alpha,w} L_train(w, alpha) . grad_w' L_val(w', alpha)`` is a central finite
  difference ``(grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2 eps)``,
  ``w+- = w +- eps d``, ``eps = eps_scale / ||d||`` (seed 000's Q9 fixed: divided by 2 eps).
  The virtual and finite-difference weights are written into the live parameters and restored
  afterwards (with the BatchNorm statistics). The train gradient at the current weights is
  returned too, so the weight step can reuse it instead of a fourth forward/backward pass.
* TSE (Ru et al., 2021): the training-loss alpha gradient summed over ``len(batches)`` real
  weight steps, after which weights, BN buffers and optimiser state are restored.

Gradients are returned (or accumulated in ``.grad``) for ``alphas.parameters()``; the caller
steps the alpha optimiser.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.spaces.darts.supernet import Alphas

Batch = tuple[torch.Tensor, torch.Tensor]


def _loss(net: nn.Module, alphas: Alphas, batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(net(x, alphas), y)


def _grad(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``torch.autograd.grad`` with zeros for inputs the loss does not use (masked ops, alphas
    of a cell type the supernet lacks)."""
    grads = torch.autograd.grad(loss, list(inputs), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


def first_order_grad(net: nn.Module, alphas: Alphas, val: Batch) -> list[torch.Tensor]:
    """``grad_alpha L_val(w, alpha)`` (no weight gradients are computed)."""
    return _grad(_loss(net, alphas, val), list(alphas.parameters()))


@dataclass
class Unrolled:
    """The result of one second-order step: alpha hypergradient, and the train gradient and
    logits at the current weights (the weight step can reuse them)."""

    alpha_grads: list[torch.Tensor]
    train_grads: list[torch.Tensor]
    train_loss: float
    train_logits: torch.Tensor


def unrolled_step(
    net: nn.Module,
    alphas: Alphas,
    train: Batch,
    val: Batch,
    xi: float,
    w_opt: torch.optim.Optimizer | None = None,
    eps_scale: float = 0.01,
) -> Unrolled:
    """DARTS' unrolled hypergradient (see the module docstring).

    The virtual step and the finite-difference points are written into the live parameters in
    place (cheaper than a functional copy) and restored afterwards, as are the BatchNorm
    statistics, except for those of the first forward pass at the current weights on the train
    batch (the pass the weight step would make).
    """
    params = list(net.parameters())
    a_params = list(alphas.parameters())
    logits = net(train[0], alphas)
    loss = F.cross_entropy(logits, train[1])
    g_train = _grad(loss, params)
    momentum, wd = 0.0, 0.0
    if w_opt is not None:
        momentum = float(w_opt.param_groups[0].get("momentum", 0.0))
        wd = float(w_opt.param_groups[0].get("weight_decay", 0.0))
    backup = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in net.buffers()]
    try:
        with torch.no_grad():
            for p, g in zip(params, g_train):
                step = g + wd * p
                buf = w_opt.state.get(p, {}).get("momentum_buffer") if w_opt is not None else None
                if buf is not None and momentum:
                    step = step + momentum * buf
                p.sub_(xi * step)  # w' = w - xi * step
        grads = _grad(_loss(net, alphas, val), [*a_params, *params])
        d_alpha, d_w = grads[: len(a_params)], grads[len(a_params) :]
        norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in d_w))  # type: ignore[arg-type]
        eps = eps_scale / float(norm.clamp_min(1e-12))

        def alpha_grad_at(sign: float) -> list[torch.Tensor]:
            with torch.no_grad():
                for p, w0, d in zip(params, backup, d_w):
                    p.copy_(w0 + sign * eps * d)
            return _grad(_loss(net, alphas, train), a_params)

        g_plus, g_minus = alpha_grad_at(1.0), alpha_grad_at(-1.0)
    finally:
        with torch.no_grad():
            for p, w0 in zip(params, backup):
                p.copy_(w0)
            for b, b0 in zip(net.buffers(), buffers):
                b.copy_(b0)
    hyper = [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, g_plus, g_minus)]
    return Unrolled(hyper, g_train, float(loss.detach()), logits.detach())


def second_order_grad(
    net: nn.Module,
    alphas: Alphas,
    train: Batch,
    val: Batch,
    xi: float,
    w_opt: torch.optim.Optimizer | None = None,
    eps_scale: float = 0.01,
) -> list[torch.Tensor]:
    """The alpha hypergradient of :func:`unrolled_step`."""
    return unrolled_step(net, alphas, train, val, xi, w_opt, eps_scale).alpha_grads


def tse_accumulate(
    net: nn.Module,
    alphas: Alphas,
    batches: Sequence[Batch],
    w_opt: torch.optim.Optimizer,
    clip: Callable[[], object] | None = None,
) -> float:
    """TSE: take real weight steps on ``batches`` while summing the train-loss alpha gradients in
    ``alphas``' ``.grad``, then restore weights, buffers and optimiser state. Returns the mean
    training loss along the trajectory."""
    snapshot = copy.deepcopy(net.state_dict())
    opt_state = copy.deepcopy(w_opt.state_dict())
    for p in alphas.parameters():
        p.grad = None
    total = 0.0
    for batch in batches:
        w_opt.zero_grad(set_to_none=True)
        loss = _loss(net, alphas, batch)
        loss.backward()  # alpha grads accumulate, weight grads are fresh
        if clip is not None:
            clip()
        w_opt.step()
        total += float(loss.detach())
    net.load_state_dict(snapshot)
    w_opt.load_state_dict(opt_state)
    w_opt.zero_grad(set_to_none=True)
    return total / max(1, len(batches))


def set_grads(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    for p, g in zip(params, grads):
        p.grad = g.detach().clone()


class Architect:
    """The single entry for an architecture step: ``step`` dispatches first order, second order
    (unrolled) or TSE, as ``mode`` says, and steps the alpha optimiser.

    Args:
        net: the supernet. alphas: its architecture parameters.
        a_opt: the alpha optimiser. w_opt: the weight optimiser (second order reads its
            momentum and weight decay; TSE steps and restores it).
        mode: ``"first"``, ``"second"`` or ``"tse"``.
        tse_steps: TSE's weight steps per alpha step.
        fd_eps: second order's finite-difference scale.
        clip: the weight gradient clip TSE applies on its trajectory (or None).
        grad_on: first order only: the ``(net, alphas)`` the gradient is taken on, when not
            the live pair (MetaNAS' ``reference`` preset, Q1: a copy frozen at the start); the
            gradient is still applied to ``alphas``.
    """

    def __init__(
        self,
        net: nn.Module,
        alphas: Alphas,
        a_opt: torch.optim.Optimizer,
        w_opt: torch.optim.Optimizer,
        *,
        mode: str = "first",
        tse_steps: int = 1,
        fd_eps: float = 0.01,
        clip: Callable[[], object] | None = None,
        grad_on: tuple[nn.Module, Alphas] | None = None,
    ) -> None:
        if mode not in ("first", "second", "tse"):
            raise ValueError(f"architect mode {mode!r}; allowed: first, second, tse")
        self.net, self.alphas, self.a_opt, self.w_opt = net, alphas, a_opt, w_opt
        self.mode, self.tse_steps, self.fd_eps, self.clip = mode, tse_steps, fd_eps, clip
        self.a_params = list(alphas.parameters())
        self.grad_on = grad_on

    def step(
        self,
        i: int,
        train_batches: Sequence[Batch],
        val: Callable[[], Batch],
        xi: float,
    ) -> Unrolled | None:
        """The alpha step before weight step ``i`` of an epoch.

        ``train_batches`` are the epoch's train minibatches (TSE unrolls ``tse_steps`` of them
        from ``i``, stepping the alphas every ``tse_steps`` steps); ``val()`` gives the val
        minibatch (first and second order); ``xi`` is the virtual step's learning rate. Returns
        the second-order step's train gradient and logits (the weight step may reuse them).
        """
        if self.mode == "tse":
            if i % self.tse_steps == 0:
                self.a_opt.zero_grad(set_to_none=True)
                tse_accumulate(self.net, self.alphas,
                               train_batches[i:i + self.tse_steps], self.w_opt, self.clip)
                self.a_opt.step()
            return None
        unrolled: Unrolled | None = None
        if self.mode == "second":
            unrolled = unrolled_step(self.net, self.alphas, train_batches[i], val(), xi,
                                     self.w_opt, self.fd_eps)
            grads = unrolled.alpha_grads
        else:
            net, alphas = self.grad_on or (self.net, self.alphas)
            grads = first_order_grad(net, alphas, val())
        set_grads(self.a_params, grads)
        self.a_opt.step()
        return unrolled
