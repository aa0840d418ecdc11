"""Pure maths of the REINFORCE controller: shaping, baseline, mixture log-probs and the loss.

Everything here is a plain function of its arguments (no module state), so that the tests can
check each one against a hand computation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def shaping_penalty(kinds: Sequence[str], *, early_stop: float, repeat: float) -> float:
    """Seed 002's reward shaping, summed over a decision sequence (ALGORITHMS.md 3.2).

    ``kinds[t]`` is ``"width"``, ``"act"`` or ``"eos"``. Each new token is checked in if/elif
    order; "the last two tokens" include the new one:

    1. EOS while the sequence length (EOS included) is <= 2: ``early_stop`` (seed: -1);
    2. else, the last two tokens are both widths: ``repeat`` (seed: -0.1);
    3. else, the last two are both activations and the new token is not EOS: ``repeat``.
    """
    total = 0.0
    for t, new in enumerate(kinds):
        length = t + 1
        prev = kinds[t - 1] if t > 0 else None
        if new == "eos" and length <= 2:
            total += early_stop
        elif prev == "width" and new == "width":
            total += repeat
        elif prev == "act" and new == "act" and new != "eos":
            total += repeat
    return total


def ema_advantages(
    rewards: Sequence[float], value: float | None, *, beta: float, init: str
) -> tuple[list[float], float]:
    """Advantages ``R_i - b`` against an exponential moving average baseline, and the new ``b``.

    ``b`` is the value *before* this batch (all rewards of a batch share it). With no value yet,
    ``init="first"`` uses the batch mean as ``b`` (first advantages centred) and ``init="zero"``
    uses 0 (seed 003: the first reward is ``acc_1 - 0``). The first update is bias-corrected: the
    baseline becomes the batch mean. Later updates run ``b <- beta * b + (1 - beta) * R`` over the
    batch's rewards in order.
    """
    if not rewards:
        return [], 0.0 if value is None else value
    mean = math.fsum(rewards) / len(rewards)
    if value is None:
        b = mean if init == "first" else 0.0
        return [r - b for r in rewards], mean
    adv = [r - value for r in rewards]
    new = value
    for r in rewards:
        new = beta * new + (1.0 - beta) * r
    return adv, new


def mixture_logprob(
    policy_logp: torch.Tensor, uniform_logp: torch.Tensor | float, epsilon: float
) -> torch.Tensor:
    """Log-probability of a whole architecture under the epsilon mixture.

    With probability ``epsilon`` the architecture is drawn uniformly decision by decision among
    the allowed choices (log-prob ``uniform_logp``), otherwise from the policy
    (``policy_logp``, the sum over decisions): ``log((1-eps) pi(x) + eps u(x))``. Its gradient is
    the correct on-policy REINFORCE gradient for the behaviour actually used to pick ``x``.
    """
    if epsilon <= 0.0:
        return policy_logp
    u = torch.as_tensor(uniform_logp, dtype=policy_logp.dtype)
    if epsilon >= 1.0:
        return u + 0.0 * policy_logp
    return torch.logaddexp(math.log1p(-epsilon) + policy_logp, math.log(epsilon) + u)


def reinforce_loss(
    seq_logp: torch.Tensor,
    entropy_sum: torch.Tensor,
    lengths: torch.Tensor,
    advantages: torch.Tensor,
    entropy_weights: torch.Tensor,
    *,
    normalize: bool,
) -> torch.Tensor:
    """Mean over the batch of ``-(log pi(x_i) A_i + beta_i H_i) / T_i``.

    Args:
        seq_logp: (M,) log-probability of each rollout (sum over its decisions, possibly
            label-weighted or a mixture log-prob).
        entropy_sum: (M,) sum over decisions of the policy's entropy.
        lengths: (M,) number of decisions T_i.
        advantages: (M,) ``R_i - b`` (after clipping); constants, no gradient.
        entropy_weights: (M,) entropy bonus weight of each rollout.
        normalize: divide each rollout's term by T_i (seed 002's ``1/T``); else sum.
    """
    terms = -(seq_logp * advantages) - entropy_weights * entropy_sum
    if normalize:
        terms = terms / lengths.to(terms.dtype)
    return terms.mean()
