"""``pbt_rl``: a compact PPO training ``gene_ac`` actor-critics on a gymnasium task, step by step.

Why our own PPO rather than stable-baselines3: PBT-NAS moves single layers (and their optimiser
state) between networks after every step. With our own loop the member *is* one ``nn.Module``
plus a name-keyed optimiser state, so mixing works on plain state dicts; SB3 would hide the
networks behind a policy class whose optimiser and rollout buffer would have to be re-created
around every transplanted layer (and SB3 is not a dependency).

Algorithm (Schulman et al. 2017, the cleanrl shape; the update is :mod:`nasforge.rl.ppo`):
``n_envs`` environments stepped in lockstep,
rollouts of ``n_steps``, GAE(lambda), advantages normalised per minibatch, clipped surrogate,
value loss, entropy bonus, gradient clipping, Adam over actor and critic together. One PBT unit is
``frames_per_unit`` environment frames; every decision is repeated for ``action_repeat`` frames
(seed 004 uses action repeat 2 on DMC; 4 makes Acrobot's exploration feasible within a CPU budget:
a uniformly random policy reaches the goal in 50 % of episodes instead of 7 %). Training rewards
are multiplied by ``reward_scale`` (Acrobot's -1 per frame otherwise gives value losses that
swamp the policy gradient under gradient clipping). Truncated episodes (time limit) bootstrap
from the critic's value of the last observation. Fitness = mean return of ``eval_episodes`` greedy
(argmax) episodes; the final report uses ``test_episodes`` fresh episodes with other seeds.

Deviations from seed 004 (DrQ-v2 from pixels, off-policy with replay): on-policy PPO on a
classic-control task, so there is no replay buffer and no critic target network. The member's
environments (mid-episode, pickled, a few kB) travel in its checkpoint, so episodes span PBT
steps; a child continues the base parent's environments (the on-policy analogue of quirk P4's
default; ``inherit_extra: donor`` is the reference). Environments are created and reset from the
seed of a member's first step. Discrete actions: a categorical policy, greedy = argmax.
Continuous (Box) actions, e.g. Pendulum-v1: a diagonal Gaussian in normalised units [-1, 1]
(mean from the actor, state-independent ``log_std``), mapped to the environment's bounds and
clipped when stepped; greedy = the mean. gymnasium is imported lazily.
"""

from __future__ import annotations

import math
import pickle
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.evaluators.base import EVALUATORS
from nasforge.evaluators.pbt import MemberTrainer, TestScore
from nasforge.exceptions import ConfigError
from nasforge.objectives import Objective
from nasforge.rl.buffer import RolloutBuffer
from nasforge.rl.distributions import MaskedCategorical, diag_gaussian
from nasforge.rl.ppo import PPOBatch, PPOSettings, ppo_update
from nasforge.rl.returns import gae
from nasforge.safeload import load_environments
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.genes import ActorCritic, GeneACSpace


def _gym() -> ModuleType:
    try:
        import gymnasium
    except ImportError as err:  # pragma: no cover
        raise ConfigError("evaluator pbt_rl needs gymnasium: pip install 'nasforge[rl]'") from err
    return gymnasium


class PBTRLParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    env: str = Field(default="Acrobot-v1", description="gymnasium id (Discrete or Box actions)")
    frames_per_unit: int = Field(default=2048, ge=1, description="env frames per PBT unit")
    action_repeat: int = Field(default=4, ge=1, description="frames per decision (seed: 2)")
    n_envs: int = Field(default=8, ge=1)
    n_steps: int = Field(default=64, ge=1, description="rollout length per env")
    lr: float = Field(default=1e-3, gt=0)
    gamma: float = Field(default=0.99, gt=0, le=1)
    reward_scale: float = Field(
        default=0.01, gt=0, description="training rewards are multiplied by this (fitness is not)"
    )
    gae_lambda: float = Field(default=0.95, ge=0, le=1)
    clip: float = Field(default=0.2, gt=0)
    epochs: int = Field(default=4, ge=1)
    minibatch: int = Field(default=128, ge=1)
    ent_coef: float = Field(default=0.01, ge=0)
    vf_coef: float = Field(default=0.5, ge=0)
    max_grad_norm: float = Field(default=0.5, gt=0)
    eval_episodes: int = Field(default=10, ge=1, description="fitness episodes (greedy)")
    test_episodes: int = Field(default=20, ge=1, description="final report episodes")
    max_episode_steps: int = Field(default=0, ge=0, description="0: the env's own limit")
    full_units: int = Field(default=16, ge=1, description="units of a stand-alone evaluate()")
    threads: int = Field(default=1, ge=1, description="torch threads of every training step")


@EVALUATORS.register("pbt_rl")
class PBTRLTrainer(MemberTrainer):
    """PPO member trainer for ``gene_ac`` spaces; needs no task (the environment is the task)."""

    name: ClassVar[str] = "pbt_rl"
    Params: ClassVar[type[BaseModel]] = PBTRLParams
    needs_task: ClassVar[bool] = False
    unit: ClassVar[str] = "frame block"
    objective = Objective("return", "maximize", "mean episode return")

    def __init__(
        self, *, space: SearchSpace, task: Any = None, device: torch.device | str = "cpu",
        **params: Any,
    ) -> None:
        self.p = PBTRLParams(**params)
        if not isinstance(space, GeneACSpace):
            raise ConfigError(
                f"evaluator pbt_rl needs an actor-critic space; got {space.name!r}; "
                "allowed: gene_ac"
            )
        self.space, self.device = space, torch.device(device)
        self.threads, self.full_units = self.p.threads, self.p.full_units
        gym = _gym()
        try:
            env = self._make(gym)
        except gym.error.Error as err:
            raise ConfigError(f"evaluator.env {self.p.env!r} cannot be made: {err}") from None
        act, obs = env.action_space, env.observation_space
        env.close()
        self.continuous = isinstance(act, gym.spaces.Box) and len(act.shape) == 1
        if not (isinstance(act, gym.spaces.Discrete) or self.continuous):
            raise ConfigError(
                f"evaluator.env {self.p.env!r} has {type(act).__name__} actions; pbt_rl needs "
                "Discrete or flat Box actions (e.g. Acrobot-v1, CartPole-v1, Pendulum-v1)"
            )
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
            raise ConfigError(f"evaluator.env {self.p.env!r} needs flat Box observations")
        self.obs_dim = int(obs.shape[0])
        if self.continuous:
            low, high_a = np.asarray(act.low, np.float64), np.asarray(act.high, np.float64)
            if not (np.isfinite(low).all() and np.isfinite(high_a).all()):
                raise ConfigError(f"evaluator.env {self.p.env!r} needs bounded Box actions")
            self.n_actions = int(act.shape[0])
            self.action_scale, self.action_bias = (high_a - low) / 2, (high_a + low) / 2
        else:
            self.n_actions = int(act.n)
        high = np.asarray(obs.high, dtype=np.float64)
        self.ppo = PPOSettings(
            clip=self.p.clip, vf_coef=self.p.vf_coef, ent_coef=self.p.ent_coef,
            max_grad_norm=self.p.max_grad_norm, epochs=self.p.epochs, minibatch=self.p.minibatch,
        )
        self.obs_scale = np.where(np.isfinite(high) & (high < 1e6) & (high > 0), high, 1.0)

    def _make(self, gym: ModuleType) -> Any:
        kw = {"max_episode_steps": self.p.max_episode_steps} if self.p.max_episode_steps else {}
        return gym.make(self.p.env, **kw)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.obs_dim,)

    @property
    def num_classes(self) -> int:
        return self.n_actions

    def task_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"spec": {"name": "gym", "env": self.p.env},
                                "input_shape": [self.obs_dim], "num_classes": self.n_actions,
                                "kind": "policy"}  # an export's predict gives greedy actions
        if self.continuous:  # export / load rebuild the network with these build() arguments
            meta["build"] = {"continuous": True}
        return meta

    def build(self, arch: Architecture) -> nn.Module:
        assert isinstance(self.space, GeneACSpace)
        model = self.space.build(arch, (self.obs_dim,), self.n_actions, self.continuous)
        assert isinstance(model, ActorCritic)
        model.obs_scale.copy_(torch.tensor(self.obs_scale, dtype=torch.float32))
        if self.continuous:
            model.action_scale.copy_(torch.tensor(self.action_scale, dtype=torch.float32))
            model.action_bias.copy_(torch.tensor(self.action_bias, dtype=torch.float32))
        return model

    def _sample(
        self, model: ActorCritic, out: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Sampled actions, their log-probabilities and what the environments are stepped with."""
        if not self.continuous:
            dist = MaskedCategorical(out)
            a = dist.sample(g)
            return a, dist.log_prob(a), a.numpy()
        std = model.log_std.exp()
        a = out + std * torch.randn(out.shape, generator=g)
        logp = diag_gaussian(out, model.log_std).log_prob(a).sum(-1)
        return a, logp, model.to_env(a).numpy().astype(np.float32)

    def _logp_entropy(
        self, model: ActorCritic, out: torch.Tensor, act: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample log-probabilities and entropies of ``act`` under the policy ``out``."""
        if not self.continuous:
            dist = MaskedCategorical(out)
            return dist.log_prob(act), dist.entropy()
        gauss = diag_gaussian(out, model.log_std)
        return gauss.log_prob(act).sum(-1), gauss.entropy().sum(-1)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.p.lr, eps=1e-5)

    # ------------------------------------------------------------------------------ training
    def _train(
        self, model: nn.Module, opt: torch.optim.Optimizer, units: int, seed: int,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        p, gym = self.p, _gym()
        ne, ns = p.n_envs, p.n_steps
        if "envs" in extra:
            envs = load_environments(extra["envs"], "a PBT member's environment state")
            obs = np.array(extra["obs"].numpy() if torch.is_tensor(extra["obs"]) else extra["obs"])
            ep_ret = np.array(extra["ep_ret"].numpy() if torch.is_tensor(extra["ep_ret"])
                              else extra["ep_ret"])
        else:
            envs = [self._make(gym) for _ in range(ne)]
            obs = np.stack([e.reset(seed=int(seed) + i)[0] for i, e in enumerate(envs)])
            ep_ret = np.zeros(ne)
        g = torch.Generator().manual_seed(int(seed))
        finished: list[float] = []
        k = p.action_repeat
        iters = math.ceil(units * p.frames_per_unit / (ne * ns * k))
        assert isinstance(model, ActorCritic)
        logits_value, value_fn = model.logits_value, model.value
        stats: dict[str, float] = {}
        for _ in range(iters):
            buf = RolloutBuffer(ns, ne, (self.obs_dim,),
                                act_dim=self.n_actions if self.continuous else 0)
            b_obs, b_act, b_logp, b_val = buf.obs, buf.act, buf.logp, buf.val
            b_rew, b_done = buf.rew, buf.done
            for t in range(ns):
                o_t = torch.as_tensor(obs, dtype=torch.float32)
                with torch.no_grad():
                    out, v = logits_value(o_t)
                    a, logp, env_a = self._sample(model, out, g)
                b_obs[t], b_act[t], b_val[t], b_logp[t] = o_t, a, v, logp
                nxt = np.empty_like(obs)
                trunc_idx: list[int] = []
                trunc_obs: list[np.ndarray] = []
                for i, env in enumerate(envs):
                    o, r, term, trunc = _repeat(env, env_a[i], k)
                    ep_ret[i] += r
                    b_rew[t, i] = float(r) * p.reward_scale
                    if term or trunc:
                        if trunc and not term:
                            trunc_idx.append(i)
                            trunc_obs.append(o)
                        finished.append(float(ep_ret[i]))
                        ep_ret[i] = 0.0
                        b_done[t, i] = 1.0
                        o, _ = env.reset()
                    nxt[i] = o
                if trunc_idx:  # time limit: bootstrap from the critic
                    with torch.no_grad():
                        tv = value_fn(torch.as_tensor(np.stack(trunc_obs), dtype=torch.float32))
                    for j, i in enumerate(trunc_idx):
                        b_rew[t, i] += p.gamma * float(tv[j])
                obs = nxt
            with torch.no_grad():
                last_v = value_fn(torch.as_tensor(obs, dtype=torch.float32))
            adv = gae(b_rew, b_val, b_done, last_v, p.gamma, p.gae_lambda)
            ret = adv + b_val
            stats = self._update(
                model, opt, buf.flat(b_obs), buf.flat(b_act), buf.flat(b_logp),
                buf.flat(adv), buf.flat(ret), g,
            )
        metrics = {
            "train_return": float(np.mean(finished)) if finished else float("nan"),
            "episodes": len(finished), "frames": iters * ne * ns * k, **stats,
        }
        # tensors, not numpy arrays: the member checkpoint loads with weights_only (no pickle)
        return metrics, {"envs": pickle.dumps(envs), "obs": torch.from_numpy(obs.copy()),
                         "ep_ret": torch.from_numpy(ep_ret.copy())}

    def _update(
        self, model: nn.Module, opt: torch.optim.Optimizer, obs: torch.Tensor,
        act: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, ret: torch.Tensor,
        g: torch.Generator,
    ) -> dict[str, float]:
        assert isinstance(model, ActorCritic)

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            out, v = model.logits_value(obs[idx])
            logp, ent = self._logp_entropy(model, out, act[idx])
            return logp, ent, v

        return ppo_update(model, opt, evaluate, PPOBatch(old_logp, adv, ret), self.ppo, g)

    # ---------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def episodes(self, model: nn.Module, n: int, seed: int) -> list[float]:
        """Returns of ``n`` greedy episodes, environment ``k`` reset with ``seed + k``."""
        gym = _gym()
        envs = [self._make(gym) for _ in range(n)]
        obs = [e.reset(seed=int(seed) + k)[0] for k, e in enumerate(envs)]
        alive = list(range(n))
        rets = [0.0] * n
        model.eval()
        while alive:
            x = torch.as_tensor(np.stack([obs[k] for k in alive]), dtype=torch.float32)
            out = model(x)
            acts = out.numpy().astype(np.float32) if self.continuous else out.argmax(-1).numpy()
            still = []
            for j, k in enumerate(alive):
                o, r, term, trunc = _repeat(envs[k], acts[j], self.p.action_repeat)
                rets[k] += r
                obs[k] = o
                if not (term or trunc):
                    still.append(k)
            alive = still
        model.train()
        for e in envs:
            e.close()
        return rets

    def fitness(self, model: nn.Module, *, eval_seed: int) -> float:
        return float(np.mean(self.episodes(model, self.p.eval_episodes, eval_seed)))

    def test_score(self, model: nn.Module, *, seed: int) -> TestScore:
        rets = self.episodes(model, self.p.test_episodes, seed)
        return TestScore(float(np.mean(rets)), float(np.std(rets)))


def _repeat(env: Any, action: Any, k: int) -> tuple[np.ndarray, float, bool, bool]:
    """Apply ``action`` for up to ``k`` frames (stopping at the episode's end); rewards summed."""
    total = 0.0
    for _ in range(k):
        o, r, term, trunc, _ = env.step(action)
        total += float(r)
        if term or trunc:
            return o, total, bool(term), bool(trunc)
    return o, total, False, False

