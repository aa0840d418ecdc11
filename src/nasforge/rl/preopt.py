"""Meta-RL pre-optimisation of a task's alphas (seed 000, ALGORITHMS.md §1.4), for MetaNAS.

Before the DARTS inner loop of a task, a policy edits the task's op logits in the
alpha-editing environment (:mod:`nasforge.envs.alpha`), once per cell type (normal, then
reduce): one *trial* per (task, cell). The logits with the best estimated accuracy seen in the
trial (the start logits and their baseline estimate included) become the inner loop's start.
Policies: ``"meta_rl"`` (the recurrent PPO agent of :mod:`nasforge.rl.trials`, trained across
the tasks' trials and tested without updates at meta-test) and ``"random"`` (uniform over the
same mask); ``"none"`` returns the alphas unchanged.

The estimator is the caller's: ``estimators[cell](logits) -> accuracy`` (or ``(accuracy,
logits)`` after an alpha step) with an optional ``reset()`` at each episode start. MetaNAS's
estimator runs the task-adapted meta-model (one weight step, and an alpha step, on the support
batch) and, to start the inner loop from the best *meta-model state*, keeps the weights of its
best estimate itself; this module only tracks alphas and accuracies.

The pre-optimiser's state (:meth:`PreOptimizer.state_dict`) is tensors and plain values,
saved with ``torch.save`` and read back weights-only, so a run can store and resume it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.envs.alpha import AlphaEnvCore, AlphaEnvSettings, Estimator
from nasforge.exceptions import ConfigError, RunDirError
from nasforge.logging import get_logger
from nasforge.rl.trials import (
    RandomMaskedPolicy,
    RecurrentPPOAgent,
    RecurrentPPOSettings,
    StepHook,
    TrialResult,
)
from nasforge.safeload import load_checkpoint
from nasforge.seeding import derive_seed

_logger = get_logger(__name__)

PREOPT_POLICIES = ("none", "random", "meta_rl")


class CoreTrialEnv:
    """:class:`AlphaEnvCore` with gymnasium's reset/step signatures (no gymnasium import)."""

    def __init__(self, core: AlphaEnvCore) -> None:
        self.core = core

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        return self.core.reset(seed), {"action_mask": self.core.action_mask()}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        out = self.core.step(action)
        return out.obs, out.reward, out.terminated, out.truncated, out.info


@dataclass(frozen=True, kw_only=True)
class PreoptSettings:
    """``preopt:`` of a MetaNAS config."""

    policy: str = "meta_rl"
    """``meta_rl``, ``random`` or ``none``."""
    preset: str = "default"
    """Environment preset: ``reference`` (estimation bonus on, quirk Q8) or ``default`` (off)."""
    env: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~nasforge.envs.alpha.AlphaEnvSettings` fields."""
    agent: RecurrentPPOSettings = field(default_factory=RecurrentPPOSettings)

    def __post_init__(self) -> None:
        if self.policy not in PREOPT_POLICIES:
            raise ConfigError(f"unknown preopt policy {self.policy!r}; allowed: "
                              f"{', '.join(PREOPT_POLICIES)}")
        AlphaEnvSettings.of(self.preset, **dict(self.env))  # one-line errors now, not later

    @property
    def env_settings(self) -> AlphaEnvSettings:
        return AlphaEnvSettings.of(self.preset, **dict(self.env))


@dataclass
class PreoptResult:
    """Per cell: the start logits for the inner loop, their estimated accuracy, the trial."""

    alphas: dict[str, np.ndarray]
    accuracy: dict[str, float]
    trials: dict[str, TrialResult]


class PreOptimizer:
    """Edits each cell's logits with the configured policy before a task's inner loop.

    Args:
        settings: :class:`PreoptSettings`.
        n_ops: ops per edge (the columns of the alpha matrices).
        seed: the run's seed (the agent's initial weights derive from it).
        device: where the agent's network lives (``"auto"``: CUDA when present).
    """

    def __init__(self, settings: PreoptSettings | None = None, *, n_ops: int, seed: int = 0,
                 device: str | torch.device = "auto") -> None:
        self.s = settings or PreoptSettings()
        self.n_ops, self.seed = n_ops, seed
        es = self.s.env_settings
        self.obs_dim = 3 + es.nodes + 2 + n_ops
        self.n_actions = es.nodes + 2 + n_ops * (1 if es.increase_only else 2)
        self.agent: RecurrentPPOAgent | None = None
        self.random = RandomMaskedPolicy(self.n_actions, self.s.agent)
        if self.s.policy == "meta_rl":
            self.agent = RecurrentPPOAgent(self.obs_dim, self.n_actions, self.s.agent,
                                           seed=derive_seed(seed, "preopt"), device=device)

    def run(self, alphas: Mapping[str, np.ndarray],
            estimators: Mapping[str, Estimator] | Callable[[str], Estimator], *, seed: int,
            train: bool, on_step: StepHook | None = None) -> PreoptResult:
        """One trial per cell of ``alphas`` (``{"normal": (edges, ops), "reduce": ...}``).

        ``train``: meta-training (the agent updates: 3 x (4 episodes, update)); else meta-test
        (4 episodes, no update). ``seed``: the task's seed (each cell's trial derives from it).
        Returns the best logits per cell (the given ones with ``policy: none``).
        """
        out = PreoptResult({}, {}, {})
        for cell, logits in alphas.items():
            start = np.asarray(logits, dtype=np.float64)
            if self.s.policy == "none":
                out.alphas[cell], out.accuracy[cell] = start.copy(), float("nan")
                continue
            est = estimators[cell] if isinstance(estimators, Mapping) else estimators(cell)
            tseed = derive_seed(seed, "preopt", cell)
            core = AlphaEnvCore(start, est, self.s.env_settings, seed=tseed)
            env = CoreTrialEnv(core)
            runner = self.agent if self.agent is not None else self.random
            trial = runner.run_trial(env, seed=tseed, train=train, on_step=on_step)
            out.alphas[cell] = core.best.logits.copy()
            out.accuracy[cell] = core.best.accuracy
            out.trials[cell] = trial
            _logger.info("preopt %s %s: best estimate %.4f after %d episodes",
                         self.s.policy, cell, core.best.accuracy, len(trial.returns))
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (``torch.load(weights_only=True)`` reads it)."""
        return {"policy": self.s.policy, "n_ops": self.n_ops, "seed": self.seed,
                "agent": None if self.agent is None else self.agent.state_dict(),
                "agent_settings": dataclasses.asdict(self.s.agent)}

    def load_state_dict(self, st: Mapping[str, Any]) -> None:
        if st.get("policy") != self.s.policy or int(st.get("n_ops", -1)) != self.n_ops:
            raise RunDirError(f"pre-optimiser state is for policy {st.get('policy')!r} with "
                              f"{st.get('n_ops')} ops; this run: {self.s.policy!r}, {self.n_ops}")
        if self.agent is not None:
            self.agent.load_state_dict(st["agent"])

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore from ``path``, read weights-only (a tampered file is refused, never run)."""
        st = load_checkpoint(path, what="pre-optimiser state")
        if not isinstance(st, dict):
            raise RunDirError(f"{str(path)!r} is not a pre-optimiser state")
        self.load_state_dict(st)


__all__ = ["PREOPT_POLICIES", "CoreTrialEnv", "PreOptimizer", "PreoptResult", "PreoptSettings"]
