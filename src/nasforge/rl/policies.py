"""A recurrent actor-critic with the RL^2 inputs (Duan et al. 2016; Wang et al. 2016).

Input at step t: ``[encode(obs_t), one_hot(a_{t-1}), r_{t-1}, extra_t]`` (``extra`` e.g. the
step index); core: a GRU or LSTM cell; heads: policy logits and value, orthogonally initialised
(policy gain 0.01, value gain 1). The hidden state is the caller's to keep or reset: RL^2 keeps
it across the episodes of a trial and resets it at trial boundaries.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Hidden = tuple[torch.Tensor, ...]


def _ortho(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class RecurrentActorCritic(nn.Module):
    """``step`` advances one time step for a batch; ``unroll`` replays ``(B, L)`` sequences.

    Args:
        obs_dim: observation features.
        n_actions: discrete actions (the previous action enters one-hot).
        hidden: size of the recurrent state.
        cell: ``"gru"`` or ``"lstm"``.
        encoder: width of a Linear+ReLU encoder of the observation before the core; 0: none.
        extra_dim: further per-step inputs (e.g. a normalised step index).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: int = 128,
        cell: Literal["gru", "lstm"] = "lstm",
        encoder: int = 0,
        extra_dim: int = 0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden = obs_dim, n_actions, hidden
        self.cell_kind = cell
        self.extra_dim = extra_dim
        self.encoder = (
            nn.Sequential(_ortho(nn.Linear(obs_dim, encoder), 2**0.5), nn.ReLU())
            if encoder else nn.Identity()
        )
        width = (encoder or obs_dim) + n_actions + 1 + extra_dim
        self.core: nn.GRUCell | nn.LSTMCell = (
            nn.GRUCell(width, hidden) if cell == "gru" else nn.LSTMCell(width, hidden)
        )
        self.pi = _ortho(nn.Linear(hidden, n_actions), 0.01)
        self.v = _ortho(nn.Linear(hidden, 1), 1.0)

    def initial(self, batch: int, device: torch.device | str | None = None) -> Hidden:
        z = torch.zeros(batch, self.hidden, device=device)
        return (z,) if self.cell_kind == "gru" else (z, z.clone())

    def step(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        h: Hidden,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Hidden]:
        """``(logits (B, A), value (B,), new hidden)``; ``prev_action`` < 0 means none."""
        one_hot = torch.zeros(obs.shape[0], self.n_actions, device=obs.device)
        has = prev_action >= 0
        if bool(has.any()):
            one_hot[has] = nn.functional.one_hot(prev_action[has].long(), self.n_actions).float()
        parts = [self.encoder(obs), one_hot, prev_reward.reshape(-1, 1)]
        if self.extra_dim:
            if extra is None:
                raise ValueError(f"this policy takes {self.extra_dim} extra inputs per step")
            parts.append(extra.reshape(obs.shape[0], self.extra_dim))
        x = torch.cat(parts, -1)
        hn: Hidden
        if isinstance(self.core, nn.GRUCell):
            hn = (self.core(x, h[0]),)
        else:
            hx, cx = self.core(x, (h[0], h[1]))
            hn = (hx, cx)
        return self.pi(hn[0]), self.v(hn[0]).squeeze(-1), hn

    def unroll(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        h0: Hidden,
        reset: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replay ``(B, L, ...)`` sequences from ``h0``; ``reset[b, t] = 1`` zeroes the state
        before step ``t`` (a trial boundary). Returns logits ``(B, L, A)`` and values ``(B, L)``.
        """
        h = h0
        logits, values = [], []
        for t in range(obs.shape[1]):
            if reset is not None:
                keep = (1.0 - reset[:, t]).unsqueeze(-1)
                h = tuple(x * keep for x in h)
            lg, v, h = self.step(
                obs[:, t], prev_action[:, t], prev_reward[:, t], h,
                None if extra is None else extra[:, t],
            )
            logits.append(lg)
            values.append(v)
        return torch.stack(logits, 1), torch.stack(values, 1)
