"""The PPO update (Schulman et al. 2017): clipped surrogate, value loss, entropy bonus.

The update reads top to bottom, cleanrl's shape. It is generic over the policy: the caller
passes ``evaluate(idx) -> (log_prob, entropy, value)`` for the samples (feed-forward) or the
sequences (recurrent) ``idx`` of the batch, so one update serves a plain MLP actor-critic, a
Gaussian policy and a GRU policy replayed over length-L sequences from stored hidden states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class PPOSettings:
    """Coefficients of the PPO loss and the shape of its update."""

    clip: float = 0.2
    clip_value: bool = False  # clip the value update to +-clip around the old value
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    epochs: int = 4
    minibatch: int = 128  # units (samples, or sequences) per minibatch
    normalize_advantages: bool = True  # per minibatch
    erl2_frac: float = 0.0
    """E-RL² exploration sampling as seed 000 released it: per minibatch, this fraction of the
    units (sequences) gets its stored old value zeroed, so its return target becomes the bare
    advantage and its value clip is centred at 0 (needs ``old_val``; 0: off)."""


@dataclass(frozen=True)
class PPOBatch:
    """What the rollout gives the update; every tensor's first dimension indexes the units."""

    old_logp: torch.Tensor
    adv: torch.Tensor
    ret: torch.Tensor
    old_val: torch.Tensor | None = None  # needed when ``clip_value``
    valid: torch.Tensor | None = None  # 1 for real steps of padded sequences


def erl2_zero_values(
    old_val: torch.Tensor, ret: torch.Tensor, frac: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(old_val, ret)`` with ``floor(frac * units)`` random units' stored value zeroed: their
    target ``ret = old_val + adv`` becomes ``adv`` (E-RL², seed 000's buffer)."""
    n = old_val.shape[0]
    k = int(n * frac)
    if k == 0:
        return old_val, ret
    pick = torch.randperm(n, generator=generator)[:k]
    ov, r = old_val.clone(), ret.clone()
    r[pick] = ret[pick] - old_val[pick]
    ov[pick] = 0.0
    return ov, r


def _mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    return x.mean() if valid is None else (x * valid).sum() / valid.sum().clamp(min=1.0)


def ppo_loss(
    logp: torch.Tensor,
    entropy: torch.Tensor,
    value: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    ret: torch.Tensor,
    s: PPOSettings,
    old_value: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, policy loss, value loss, entropy)`` of one minibatch."""
    a = adv
    if s.normalize_advantages and a.numel() > 1:
        if valid is None:
            a = (a - a.mean()) / (a.std() + 1e-8)
        else:
            m = _mean(a, valid)
            sd = (_mean((a - m).pow(2), valid) * valid.sum() / (valid.sum() - 1).clamp(min=1))
            a = (a - m) / (sd.sqrt() + 1e-8)
    ratio = (logp - old_logp).exp()
    pg = -_mean(torch.min(ratio * a, ratio.clamp(1 - s.clip, 1 + s.clip) * a), valid)
    if s.clip_value:
        if old_value is None:
            raise ValueError("clip_value needs the old values")
        v_clipped = old_value + (value - old_value).clamp(-s.clip, s.clip)
        vl = 0.5 * _mean(torch.max((value - ret).pow(2), (v_clipped - ret).pow(2)), valid)
    else:
        vl = 0.5 * _mean((value - ret).pow(2), valid)
    ent = _mean(entropy, valid)
    return pg + s.vf_coef * vl - s.ent_coef * ent, pg, vl, ent


def ppo_update(
    params: list[nn.Parameter] | nn.Module,
    opt: torch.optim.Optimizer,
    evaluate: Evaluate,
    batch: PPOBatch,
    s: PPOSettings,
    generator: torch.Generator,
) -> dict[str, float]:
    """``s.epochs`` passes over the batch in random minibatches; returns mean loss terms.

    Raises :class:`FloatingPointError` on a non-finite loss (the caller records a failure).
    """
    plist = list(params.parameters()) if isinstance(params, nn.Module) else list(params)
    n = batch.adv.shape[0]
    mb = min(s.minibatch, n)
    losses = []
    for _ in range(s.epochs):
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, mb):
            idx = perm[i : i + mb]
            logp, ent, v = evaluate(idx)
            ret, old_val = batch.ret[idx], None if batch.old_val is None else batch.old_val[idx]
            if s.erl2_frac > 0.0:
                if old_val is None:
                    raise ValueError("erl2_frac needs the old values")
                old_val, ret = erl2_zero_values(old_val, ret, s.erl2_frac, generator)
            loss, pg, vl, en = ppo_loss(
                logp, ent, v, batch.old_logp[idx], batch.adv[idx], ret, s, old_val,
                None if batch.valid is None else batch.valid[idx],
            )
            if not torch.isfinite(loss):
                raise FloatingPointError("non-finite PPO loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(plist, s.max_grad_norm)
            opt.step()
            losses.append((float(pg.detach()), float(vl.detach()), float(en.detach())))
    arr = np.asarray(losses)
    return {"pg_loss": float(arr[:, 0].mean()), "v_loss": float(arr[:, 1].mean()),
            "entropy": float(arr[:, 2].mean())}
