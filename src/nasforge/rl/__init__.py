"""Reinforcement-learning toolkit shared by every family that trains an agent.

* :mod:`~nasforge.rl.distributions`: masked categorical and diagonal Gaussian action heads;
* :mod:`~nasforge.rl.returns`: GAE(lambda) and n-step bootstrapped returns;
* :mod:`~nasforge.rl.buffer`: a ``(T, N)`` rollout buffer and its split into sequences for
  recurrent updates;
* :mod:`~nasforge.rl.ppo`: the clipped-surrogate PPO update (feed-forward or recurrent);
* :mod:`~nasforge.rl.a2c`: the synchronous advantage actor-critic loss and update;
* :mod:`~nasforge.rl.policies`: a recurrent actor-critic (GRU or LSTM core) with the RL^2 inputs
  (previous action and reward);
* :mod:`~nasforge.rl.trials`: RL^2 trials with the recurrent PPO agent (seed 000) and a random
  policy with the same mask;
* :mod:`~nasforge.rl.preopt`: seed 000's meta-RL pre-optimisation of a task's alphas, for MetaNAS
  (imported on its own: it needs :mod:`nasforge.envs.alpha`).

PBT-NAS's PPO member trainer (``evaluators/pbt_rl.py``) runs on these pieces; so do the meta-RL
agents. The pieces are plain functions over tensors so that each algorithm's update reads top to
bottom (the cleanrl shape) and the driver that owns the environments stays the caller's.
"""

from nasforge.rl.a2c import A2CSettings, a2c_loss, a2c_update
from nasforge.rl.buffer import RolloutBuffer, sequence_chunks
from nasforge.rl.distributions import MaskedCategorical, diag_gaussian
from nasforge.rl.policies import RecurrentActorCritic
from nasforge.rl.ppo import PPOSettings, erl2_zero_values, ppo_loss, ppo_update
from nasforge.rl.returns import gae, n_step_returns
from nasforge.rl.trials import (
    RandomMaskedPolicy,
    RecurrentPPOAgent,
    RecurrentPPOSettings,
    TrialResult,
)

__all__ = [
    "A2CSettings",
    "MaskedCategorical",
    "PPOSettings",
    "RandomMaskedPolicy",
    "RecurrentActorCritic",
    "RecurrentPPOAgent",
    "RecurrentPPOSettings",
    "RolloutBuffer",
    "TrialResult",
    "a2c_loss",
    "a2c_update",
    "diag_gaussian",
    "erl2_zero_values",
    "gae",
    "n_step_returns",
    "ppo_loss",
    "ppo_update",
    "sequence_chunks",
]
