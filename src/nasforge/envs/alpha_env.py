"""``AlphaEnv``: the alpha-editing environment (seed 000, §1.4) as a ``gymnasium.Env``; the
dynamics are :mod:`nasforge.envs.alpha`'s. Importing it registers ``nasforge/AlphaEnv-v0``
(idempotently); so does :func:`register`::

    gymnasium.make("nasforge.envs.alpha_env:nasforge/AlphaEnv-v0", logits=..., estimator=...)
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from nasforge.envs.alpha import AlphaEnvCore, AlphaEnvSettings, Estimator
from nasforge.envs.nas_env import CoreEnv

ALPHA_ENV_ID = "nasforge/AlphaEnv-v0"


class AlphaEnv(CoreEnv):
    """Observation ``Box(0, nodes + 2, (5 + nodes + ops,))``; actions ``Discrete(nodes + 2 +
    ops)`` (or ``+ 2 ops`` with decrease actions); ``info["action_mask"]`` in every ``reset`` /
    ``step``.

    Args:
        logits: the cell's op logits ``(edges, ops)``.
        estimator: ``logits -> accuracy`` (or ``(accuracy, logits)``).
        preset: ``"default"`` or ``"reference"``.
        seed: start-edge seed when ``reset`` is given none.
        overrides: fields of :class:`~nasforge.envs.alpha.AlphaEnvSettings`.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}

    def __init__(self, logits: np.ndarray, estimator: Estimator, preset: str = "default",
                 seed: int = 0, render_mode: str | None = None, **overrides: Any) -> None:
        self.core = AlphaEnvCore(logits, estimator, AlphaEnvSettings.of(preset, **overrides),
                                 seed)
        self.observation_space = spaces.Box(0.0, float(self.core.K), (self.core.obs_dim,),
                                            dtype=np.float32)
        self.action_space = spaces.Discrete(self.core.n_actions)
        self.render_mode = render_mode

    def _reset_core(self, seed: int | None) -> np.ndarray:
        return np.asarray(self.core.reset(seed))

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return f"edge {self.core.edge}\n" + np.array2string(self.core.weights(), precision=2)
        return None


def register() -> None:
    """Register ``nasforge/AlphaEnv-v0`` with gymnasium (idempotent)."""
    if ALPHA_ENV_ID not in gymnasium.envs.registry:
        gymnasium.register(id=ALPHA_ENV_ID, entry_point="nasforge.envs.alpha_env:AlphaEnv",
                           disable_env_checker=True)


register()
