"""A rollout buffer of ``(T, N)`` steps and its split into sequences for recurrent updates."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RolloutBuffer:
    """Storage for ``steps`` x ``envs`` transitions, filled one time step at a time.

    ``obs`` has shape ``(T, N, *obs_shape)``; ``act`` ``(T, N)`` (discrete) or ``(T, N, A)``
    (continuous); ``mask`` (optional) ``(T, N, n_actions)`` action masks; the rest ``(T, N)``.
    ``episode_start[t, n]`` is 1 where step ``t`` starts a new episode of environment ``n``
    (recurrent policies reset or keep their memory there, as the algorithm decides).
    """

    steps: int
    envs: int
    obs_shape: tuple[int, ...]
    act_dim: int = 0  # 0: discrete actions
    n_actions: int = 0  # > 0: store action masks of this width
    obs: torch.Tensor = field(init=False)
    act: torch.Tensor = field(init=False)
    logp: torch.Tensor = field(init=False)
    val: torch.Tensor = field(init=False)
    rew: torch.Tensor = field(init=False)
    done: torch.Tensor = field(init=False)
    episode_start: torch.Tensor = field(init=False)
    mask: torch.Tensor | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        T, N = self.steps, self.envs
        self.obs = torch.zeros(T, N, *self.obs_shape)
        self.act = (
            torch.zeros(T, N, self.act_dim)
            if self.act_dim
            else torch.zeros(T, N, dtype=torch.long)
        )
        self.logp, self.val = torch.zeros(T, N), torch.zeros(T, N)
        self.rew, self.done = torch.zeros(T, N), torch.zeros(T, N)
        self.episode_start = torch.zeros(T, N)
        if self.n_actions:
            self.mask = torch.ones(T, N, self.n_actions, dtype=torch.bool)

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        """``(T, N, ...)`` -> ``(T * N, ...)``, time-major as PPO's feed-forward update uses."""
        return x.reshape(self.steps * self.envs, *x.shape[2:])


def sequence_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """``(T, N, ...)`` -> ``(N * ceil(T / length), length, ...)``: each environment's stream cut
    into consecutive sequences of ``length`` steps (the last one zero-padded).

    Use the same call on a ones tensor to get the mask of real (not padded) steps.
    """
    T, N = x.shape[0], x.shape[1]
    k = -(-T // length)
    pad = k * length - T
    if pad:
        x = torch.cat([x, torch.zeros(pad, N, *x.shape[2:], dtype=x.dtype)], 0)
    # (k*L, N, ...) -> (N, k, L, ...) -> (N*k, L, ...)
    y = x.reshape(k, length, N, *x.shape[2:]).movedim(2, 0)
    return y.reshape(N * k, length, *x.shape[2:])
