"""Environments in which an agent designs networks (NASGym, seed 001).

* :mod:`~nasforge.envs.nsc`: BlockQNN network structure codes, action sets, observation, build;
* :mod:`~nasforge.envs.rewards`: the child-training reward and the persistent reward cache;
* :mod:`~nasforge.envs.core`: the dynamics and the two presets, with no gymnasium import;
* :mod:`~nasforge.envs.nas_env`: the ``gymnasium.Env``, imported only on demand; importing it
  registers ``nasforge/NasEnv-v0`` (idempotently), and so does its ``register()``.
"""

from __future__ import annotations

from nasforge.envs.core import PRESETS, SPACES, EnvSettings, NasEnvCore
from nasforge.envs.rewards import RewardCache, TrainReward

__all__ = ["PRESETS", "SPACES", "EnvSettings", "NasEnvCore", "RewardCache", "TrainReward"]
