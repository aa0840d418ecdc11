"""Meta-RL trials with a recurrent PPO agent (RL², Duan et al. 2016), as seed 000 runs them.

A *trial* is one environment (seed 000: one task and one cell): the recurrent state, previous
action and previous reward are reset at the trial start and kept across its episodes, so the
agent can adapt within the trial. Training a trial: ``updates`` x (``episodes_per_update``
episodes, then one PPO update); testing: ``test_episodes`` episodes, no update.

The update is :func:`nasforge.rl.ppo.ppo_update` over length-``seq_len`` sequences
(:func:`nasforge.rl.buffer.sequence_chunks` of the block's steps), each replayed by
:meth:`RecurrentActorCritic.unroll` from the hidden state stored at its first step (truncated
BPTT), in ``minibatches`` minibatches per epoch; GAE(γ, λ) over the block, cut at episode ends.
E-RL² (``erl2``) zeroes the stored values of ``erl2_frac`` of each minibatch's sequences
(:func:`nasforge.rl.ppo.erl2_zero_values`).

An environment here is anything with gymnasium's ``reset(seed=...) -> (obs, info)`` and
``step(a) -> (obs, reward, terminated, truncated, info)``, ``info["action_mask"]`` (1 =
allowed) in both. :class:`RandomMaskedPolicy` runs the same trials with uniform actions over the
mask (seed 000's baseline). An agent's state (:meth:`RecurrentPPOAgent.state_dict`) is tensors
and plain values only, saved with ``torch.save`` and read back weights-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from nasforge.devices import resolve_device
from nasforge.exceptions import ConfigError, RunDirError
from nasforge.logging import get_logger
from nasforge.rl.buffer import sequence_chunks
from nasforge.rl.distributions import MaskedCategorical
from nasforge.rl.policies import RecurrentActorCritic
from nasforge.rl.ppo import PPOBatch, PPOSettings, ppo_update
from nasforge.rl.returns import gae
from nasforge.safeload import load_checkpoint
from nasforge.seeding import derive_seed, make_rng, make_torch_generator

_logger = get_logger(__name__)


class TrialEnv(Protocol):
    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]: ...

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]: ...


StepHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, kw_only=True)
class RecurrentPPOSettings:
    """Seed 000's agent (ALGORITHMS.md §1.4); every default is the released value."""

    hidden: int = 256
    """GRU width."""
    encoder: int = 256
    """Linear+ReLU encoder of the observation before the GRU."""
    cell: Literal["gru", "lstm"] = "gru"
    lr: float = 3e-4
    adam_eps: float = 1e-5
    gamma: float = 0.99
    lam: float = 0.97
    clip: float = 0.2
    """Policy-ratio clip, also applied to the value update."""
    vf_coef: float = 0.25
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    epochs: int = 4
    """Passes over a block per update (the released loop runs 4 x 4 minibatches)."""
    minibatches: int = 4
    seq_len: int = 16
    updates: int = 3
    """PPO updates per training trial."""
    episodes_per_update: int = 4
    test_episodes: int = 4
    erl2: bool = False
    """E-RL² exploration sampling."""
    erl2_frac: float = 0.3
    max_block_steps: int = 100_000
    """Safety cap on the steps of one block (an environment that never ends)."""

    def __post_init__(self) -> None:
        if self.cell not in ("gru", "lstm"):
            raise ConfigError(f"unknown recurrent cell {self.cell!r}; allowed: gru, lstm")
        for name in ("hidden", "epochs", "minibatches", "seq_len", "updates",
                     "episodes_per_update", "test_episodes", "max_block_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"recurrent PPO {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.erl2_frac < 1.0:
            raise ConfigError(f"recurrent PPO erl2_frac must be in [0, 1), got {self.erl2_frac}")

    def ppo(self, n_sequences: int) -> PPOSettings:
        return PPOSettings(
            clip=self.clip, clip_value=True, vf_coef=self.vf_coef, ent_coef=self.ent_coef,
            max_grad_norm=self.max_grad_norm, epochs=self.epochs,
            minibatch=max(1, -(-n_sequences // self.minibatches)),
            erl2_frac=self.erl2_frac if self.erl2 else 0.0,
        )


@dataclass
class TrialResult:
    """What a trial did: per episode return and length, every step's info, update losses."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)

    @property
    def accuracies(self) -> list[float]:
        """The accuracies of the estimation steps (infos with an ``accuracy``)."""
        return [float(i["accuracy"]) for i in self.infos if i.get("accuracy") is not None]


def _mask_of(info: dict[str, Any], n: int) -> np.ndarray:
    m = info.get("action_mask")
    return np.ones(n, dtype=bool) if m is None else np.asarray(m).astype(bool)


class RandomMaskedPolicy:
    """Uniform actions over the allowed ones: the baseline of seed 000, same trials and mask."""

    kind = "random"

    def __init__(self, n_actions: int, settings: RecurrentPPOSettings | None = None) -> None:
        self.n_actions = n_actions
        self.s = settings or RecurrentPPOSettings()

    def run_trial(self, env: TrialEnv, *, seed: int, train: bool = False,
                  on_step: StepHook | None = None) -> TrialResult:
        """Episodes as :meth:`RecurrentPPOAgent.run_trial` plays them (``train`` only sets how
        many: ``updates x episodes_per_update`` of the settings, else ``test_episodes``)."""
        s = self.s
        n_ep = s.updates * s.episodes_per_update if train else s.test_episodes
        rng = make_rng(seed, "actions")
        out = TrialResult()
        for e in range(n_ep):
            obs, info = env.reset(seed=derive_seed(seed, "episode", e))
            ret, n = 0.0, 0
            while True:
                allowed = np.flatnonzero(_mask_of(info, self.n_actions))
                obs, r, term, trunc, info = env.step(int(rng.choice(allowed)))
                ret, n = ret + float(r), n + 1
                out.infos.append(info)
                if on_step is not None:
                    on_step(info)
                if term or trunc or n >= s.max_block_steps:
                    break
            out.returns.append(ret)
            out.lengths.append(n)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_actions": self.n_actions}


class RecurrentPPOAgent:
    """The recurrent actor-critic, its optimiser and the trial loop.

    Args:
        obs_dim: observation features (a flat vector).
        n_actions: discrete actions.
        settings: :class:`RecurrentPPOSettings`.
        seed: initialises the network (weights only; trial seeds drive actions and updates).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ...; sampling stays on the CPU.
    """

    kind = "meta_rl"

    def __init__(self, obs_dim: int, n_actions: int, settings: RecurrentPPOSettings | None = None,
                 *, seed: int = 0, device: str | torch.device = "auto") -> None:
        self.s = settings or RecurrentPPOSettings()
        self.obs_dim, self.n_actions, self.seed = obs_dim, n_actions, seed
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "policy_init"))
            self.policy = RecurrentActorCritic(obs_dim, n_actions, hidden=self.s.hidden,
                                               cell=self.s.cell, encoder=self.s.encoder)
        self.policy.to(self.device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=self.s.lr, eps=self.s.adam_eps)
        self.trials = 0
        self.updates = 0

    # ------------------------------------------------------------------- play
    def _block(self, env: TrialEnv, episodes: int, seed: int, first_episode: int,
               g: torch.Generator, carry: dict[str, Any], out: TrialResult,
               on_step: StepHook | None) -> dict[str, torch.Tensor]:
        """Play ``episodes`` episodes, carrying the recurrent state; returns the block's steps."""
        keys = ("obs", "act", "logp", "val", "rew", "done", "mask", "pa", "pr")
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in (*keys, "h")}
        dev = self.device
        for e in range(episodes):
            obs, info = env.reset(seed=derive_seed(seed, "episode", first_episode + e))
            ret, n = 0.0, 0
            while True:
                o = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)
                m = torch.as_tensor(_mask_of(info, self.n_actions)).reshape(1, -1)
                pa, pr = carry["prev_a"], carry["prev_r"]
                rows["h"].append(torch.stack([x[0].detach().cpu() for x in carry["h"]], 0))
                with torch.no_grad():
                    lg, v, h = self.policy.step(o.to(dev), pa.to(dev), pr.to(dev), carry["h"])
                dist = MaskedCategorical(lg.cpu(), m)
                a = dist.sample(g)
                obs, r, term, trunc, info = env.step(int(a[0]))
                done = bool(term or trunc)
                for k, x in zip(keys, (o[0], a[0], dist.log_prob(a)[0], v.cpu()[0],
                                       torch.tensor(float(r)), torch.tensor(float(done)), m[0],
                                       pa[0], pr[0])):
                    rows[k].append(x)
                carry.update(h=h, prev_a=a.clone(), prev_r=torch.tensor([float(r)]),
                             obs=obs, info=info)
                ret, n = ret + float(r), n + 1
                out.infos.append(info)
                if on_step is not None:
                    on_step(info)
                if done or n >= self.s.max_block_steps:
                    break
            out.returns.append(ret)
            out.lengths.append(n)
        return {k: torch.stack(v, 0).unsqueeze(1) for k, v in rows.items()}  # (T, 1, ...)

    def _update(self, b: dict[str, torch.Tensor], carry: dict[str, Any],
                g: torch.Generator) -> dict[str, float]:
        s, dev = self.s, self.device
        with torch.no_grad():  # bootstrap only matters if the block ended mid-episode
            o = torch.as_tensor(np.asarray(carry["obs"], dtype=np.float32)).reshape(1, -1)
            _, last_v, _ = self.policy.step(o.to(dev), carry["prev_a"].to(dev),
                                            carry["prev_r"].to(dev), carry["h"])
        adv = gae(b["rew"], b["val"], b["done"], last_v.cpu(), s.gamma, s.lam)
        ret = adv + b["val"]
        L = s.seq_len
        seq = {k: sequence_chunks(v, L) for k, v in b.items() if k != "h"}
        seq["adv"], seq["ret"] = sequence_chunks(adv, L), sequence_chunks(ret, L)
        valid = sequence_chunks(torch.ones_like(b["rew"]), L)
        h0 = sequence_chunks(b["h"], L)[:, 0]  # (S, n_states, hidden): state at each start
        seq["mask"][valid == 0] = True  # padded steps: any row with an allowed action
        dseq = {k: v.to(dev) for k, v in seq.items()}
        h0d = h0.to(dev)

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            i = idx.to(dev)
            hb = h0d[i]
            h = tuple(hb[:, j] for j in range(hb.shape[1]))
            lg, v = self.policy.unroll(dseq["obs"][i], dseq["pa"][i], dseq["pr"][i], h)
            d = MaskedCategorical(lg, dseq["mask"][i])
            return d.log_prob(dseq["act"][i]), d.entropy(), v

        batch = PPOBatch(dseq["logp"], dseq["adv"], dseq["ret"], old_val=dseq["val"],
                         valid=valid.to(dev))
        out = ppo_update(self.policy, self.opt, evaluate, batch, s.ppo(len(valid)), g)
        self.updates += 1
        return out

    def run_trial(self, env: TrialEnv, *, seed: int, train: bool = True,
                  on_step: StepHook | None = None) -> TrialResult:
        """One trial: the recurrent state starts at zero and is kept across its episodes.

        ``train``: ``updates`` x (``episodes_per_update`` episodes, PPO update); else
        ``test_episodes`` episodes without update. ``seed`` drives the episodes' resets, the
        action sampling and the minibatch order. ``on_step(info)`` sees every step's info.
        """
        g = make_torch_generator(derive_seed(seed, "actions"))
        carry: dict[str, Any] = {
            "h": self.policy.initial(1, self.device),
            "prev_a": torch.full((1,), -1, dtype=torch.long), "prev_r": torch.zeros(1),
        }
        out = TrialResult()
        blocks = self.s.updates if train else 1
        per = self.s.episodes_per_update if train else self.s.test_episodes
        self.policy.train(train)
        for k in range(blocks):
            b = self._block(env, per, seed, k * per, g, carry, out, on_step)
            if train:
                out.losses.append(self._update(b, carry, g))
        self.trials += 1
        _logger.debug("trial %d (%s): returns %s", self.trials, "train" if train else "test",
                      [round(r, 3) for r in out.returns])
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "kind": self.kind, "obs_dim": self.obs_dim, "n_actions": self.n_actions,
            "seed": self.seed, "trials": self.trials, "updates": self.updates,
            "settings": dataclasses.asdict(self.s),
            "policy": {k: v.detach().cpu() for k, v in self.policy.state_dict().items()},
            "optimizer": self.opt.state_dict(),
        }

    def load_state_dict(self, st: dict[str, Any]) -> None:
        if st.get("kind") != self.kind or int(st["obs_dim"]) != self.obs_dim or int(
                st["n_actions"]) != self.n_actions:
            raise RunDirError(
                f"agent state is for {st.get('kind')!r} with obs_dim {st.get('obs_dim')} and "
                f"{st.get('n_actions')} actions; this agent: {self.kind!r}, {self.obs_dim}, "
                f"{self.n_actions}")
        self.policy.load_state_dict(st["policy"])
        self.opt.load_state_dict(st["optimizer"])
        self.trials, self.updates = int(st["trials"]), int(st["updates"])

    @classmethod
    def from_state(cls, st: dict[str, Any], *, device: str | torch.device = "auto"
                   ) -> RecurrentPPOAgent:
        agent = cls(int(st["obs_dim"]), int(st["n_actions"]),
                    RecurrentPPOSettings(**st["settings"]), seed=int(st["seed"]), device=device)
        agent.load_state_dict(st)
        return agent

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "auto"
             ) -> RecurrentPPOAgent:
        """Read a saved agent weights-only (a tampered file is refused, never run)."""
        st = load_checkpoint(path, what="meta-RL agent state")
        if not isinstance(st, dict) or "policy" not in st:
            raise RunDirError(f"{str(path)!r} is not a meta-RL agent state")
        return cls.from_state(st, device=device)


__all__ = ["RandomMaskedPolicy", "RecurrentPPOAgent", "RecurrentPPOSettings", "TrialEnv",
           "TrialResult"]
