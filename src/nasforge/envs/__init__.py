"""Environments in which an agent designs networks (NASGym, seed 001) or edits alphas (seed 000).

* :mod:`~nasforge.envs.nsc`: BlockQNN network structure codes, action sets, observation, build;
* :mod:`~nasforge.envs.rewards`: the child-training reward and the persistent reward cache;
* :mod:`~nasforge.envs.core`: the dynamics and the two presets, with no gymnasium import;
* :mod:`~nasforge.envs.nas_env`: the ``gymnasium.Env``, imported only on demand; importing it
  registers ``nasforge/NasEnv-v0`` (idempotently), and so does its ``register()``;
* :mod:`~nasforge.envs.alpha`: seed 000's alpha-editing environment (an agent edits a DARTS
  cell's op logits before MetaNAS adapts them), with no gymnasium import;
  :mod:`~nasforge.envs.alpha_env` wraps it as ``nasforge/AlphaEnv-v0``.
"""

from __future__ import annotations

from nasforge.envs.alpha import AlphaEnvCore, AlphaEnvSettings, SyntheticAccuracy
from nasforge.envs.core import PRESETS, SPACES, EnvSettings, NasEnvCore
from nasforge.envs.rewards import RewardCache, TrainReward

__all__ = ["PRESETS", "SPACES", "AlphaEnvCore", "AlphaEnvSettings", "EnvSettings", "NasEnvCore",
           "RewardCache", "SyntheticAccuracy", "TrainReward"]
