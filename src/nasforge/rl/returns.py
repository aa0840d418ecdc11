"""Advantage and return estimates for ``(T, N)`` rollouts (time first, environments second)."""

from __future__ import annotations

import torch


def gae(
    rew: torch.Tensor,
    val: torch.Tensor,
    done: torch.Tensor,
    last_v: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016); ``done[t]`` ends step ``t``.

    ``last_v`` is the value of the observation after the last step. Returns are ``adv + val``.
    """
    T = rew.shape[0]
    adv = torch.zeros_like(rew)
    nxt_adv = torch.zeros_like(last_v)
    nxt_v = last_v
    for t in range(T - 1, -1, -1):
        keep = 1.0 - done[t]
        delta = rew[t] + gamma * nxt_v * keep - val[t]
        nxt_adv = delta + gamma * lam * keep * nxt_adv
        adv[t] = nxt_adv
        nxt_v = val[t]
    return adv


def n_step_returns(
    rew: torch.Tensor, done: torch.Tensor, last_v: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Bootstrapped n-step returns of A2C: ``R_t = r_t + gamma R_{t+1}``, ``R_T = V(s_T)``.

    A ``done[t]`` cuts the bootstrap (the episode ended at step ``t``).
    """
    out = torch.zeros_like(rew)
    nxt = last_v
    for t in range(rew.shape[0] - 1, -1, -1):
        nxt = rew[t] + gamma * nxt * (1.0 - done[t])
        out[t] = nxt
    return out
