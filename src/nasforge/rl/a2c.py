"""Synchronous advantage actor-critic (Mnih et al. 2016; the baselines A2C loss).

``loss = -mean(A_t log pi(a_t|s_t)) + vf_coef * mean((R_t - V(s_t))^2) - ent_coef * mean(H)``
with ``A_t = R_t - V(s_t)`` (the value detached in the policy term) and ``R_t`` the
bootstrapped n-step return (:func:`nasforge.rl.returns.n_step_returns`). One gradient step per
rollout, gradients clipped by global norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class A2CSettings:
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5


def a2c_loss(
    logp: torch.Tensor,
    entropy: torch.Tensor,
    value: torch.Tensor,
    ret: torch.Tensor,
    s: A2CSettings,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The A2C loss of one rollout and its terms (for logging)."""
    adv = (ret - value).detach()
    pg = -(adv * logp).mean()
    vl = (ret - value).pow(2).mean()
    ent = entropy.mean()
    loss = pg + s.vf_coef * vl - s.ent_coef * ent
    return loss, {"pg_loss": float(pg.detach()), "v_loss": float(vl.detach()),
                  "entropy": float(ent.detach())}


def a2c_update(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    logp: torch.Tensor,
    entropy: torch.Tensor,
    value: torch.Tensor,
    ret: torch.Tensor,
    s: A2CSettings,
) -> dict[str, float]:
    """One A2C gradient step; raises :class:`FloatingPointError` on a non-finite loss."""
    loss, stats = a2c_loss(logp, entropy, value, ret, s)
    if not torch.isfinite(loss):
        raise FloatingPointError("non-finite A2C loss")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
    opt.step()
    return stats
