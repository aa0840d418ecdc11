"""``NasEnv``: the NSC environment as a ``gymnasium.Env`` (the only envs module that imports
gymnasium, an optional extra). Importing it registers ``nasforge/NasEnv-v0``; so does
:func:`nasforge.envs.register`. With gymnasium's module syntax no import is needed::

    gymnasium.make("nasforge.envs.nas_env:nasforge/NasEnv-v0", task={"name": "digits"})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from nasforge.data.base import Task
from nasforge.envs.core import EnvSettings, NasEnvCore
from nasforge.envs.nsc import Row
from nasforge.envs.rewards import RewardCache, RewardFn
from nasforge.spaces.base import JSONDict

ENV_ID = "nasforge/NasEnv-v0"


class CoreEnv(gymnasium.Env[np.ndarray, np.int64]):
    """A ``gymnasium.Env`` over a gymnasium-free dynamics core (``self.core``: ``step(a)``
    returning obs, reward, terminated, truncated, info, and ``action_mask()``); the masks come
    in ``info["action_mask"]`` and through ``action_masks()`` (sb3-contrib's MaskablePPO)."""

    core: Any

    def _reset_core(self, seed: int | None) -> np.ndarray:
        return np.asarray(self.core.reset())

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs = self._reset_core(seed)
        return obs, {"action_mask": self.core.action_mask()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        out = self.core.step(int(action))
        return out.obs, out.reward, out.terminated, out.truncated, out.info

    def action_masks(self) -> np.ndarray:
        """The mask as sb3-contrib's MaskablePPO asks for it."""
        return np.asarray(self.core.action_mask()).astype(bool)


class NasEnv(CoreEnv):
    """Observation: ``Box(0, 1, (10, 25))`` (chain) or ``(10, 36)`` (multi-branch); actions:
    ``Discrete(8)`` or ``Discrete(14)``; ``info["action_mask"]`` in every ``reset`` / ``step``.

    Args:
        task: a :class:`~nasforge.data.base.Task`, or a task spec (``{"name": "digits"}``).
        space: ``"chain"`` or ``"multibranch"``.
        preset: ``"default"`` or ``"reference"`` (see :mod:`nasforge.envs.core`).
        reward_fn: ``fn(rows, task, seed) -> accuracy``; default: train the network (§2.5).
        cache: a :class:`RewardCache`, an sqlite path, or ``None`` (in memory).
        max_steps, sigma, padding, mask: override the preset.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        task: Task | JSONDict | str,
        space: str = "chain",
        preset: str = "default",
        reward_fn: RewardFn | Callable[[tuple[Row, ...], Task, int], float] | None = None,
        cache: RewardCache | str | None = None,
        seed: int = 0,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.core = NasEnvCore(task, EnvSettings.of(space, preset, **overrides), reward_fn,
                               cache, seed)
        self.observation_space = spaces.Box(0.0, 1.0, self.core.obs_shape, dtype=np.float32)
        self.action_space = spaces.Discrete(self.core.n_actions)
        self.render_mode = render_mode

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "\n".join(str(r) for r in self.core.rows)
        return None


def register() -> None:
    """Register ``nasforge/NasEnv-v0`` with gymnasium (idempotent)."""
    if ENV_ID not in gymnasium.envs.registry:
        gymnasium.register(id=ENV_ID, entry_point="nasforge.envs.nas_env:NasEnv",
                           disable_env_checker=True)


register()
