"""``meta_a2c``: meta-reinforcement learning of network design (seed 001, §2.3; RL^2 with A2C).

The agent acts in :class:`~nasforge.envs.core.NasEnvCore` over the run's tasks in sequence (one
*trial* per task, the policy warm-started from the previous task). Policy: the ``rl`` toolkit's
:class:`~nasforge.rl.RecurrentActorCritic`, an LSTM(128) over [flattened observation, one-hot
previous action, previous reward, step index within the episode]. Every ``n_steps`` environment
steps (5 chain, 10 multi-branch) one A2C update: n-step returns (gamma 0.9) bootstrapped from V,
entropy 0.01, value 0.5, RMSProp(1e-3, alpha 0.99, eps 1e-5), gradient norm clip 0.5.

Memory (quirk L2): ``memory: trial`` (nasforge's default) keeps the LSTM state across the
episodes of a trial and resets it at task boundaries; ``memory: episode`` (the ``reference``
preset) resets it at every episode end. The previous action and reward are never reset.

Every environment step is a trial in the run store (its task id, NSC tokens, reward, action).
Each step's trial and the agent's full state (policy, optimiser, sampling RNG, LSTM state, the
unfinished rollout, the environment and episode state) are committed in one transaction, so a
run killed at any point resumes with no step lost or repeated. The policy is saved in the run as
``policy.pt`` (a weights-only ``state_dict``) plus ``policy.json``; ``policy: <run dir or file>``
with ``train: false`` deploys it frozen (sampling stochastically) on new tasks.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasforge.data.base import Task
from nasforge.engine.final import FinalReport, build_report
from nasforge.envs.core import EnvSettings, NasEnvCore
from nasforge.envs.nsc import Row, actions_of, layer_rows, observation
from nasforge.envs.rewards import RewardCache, RewardFn, TableReward, ToyReward, TrainReward
from nasforge.evaluators.base import Result
from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.logging import get_logger
from nasforge.rl import A2CSettings, MaskedCategorical, RecurrentActorCritic, a2c_update
from nasforge.rl.returns import n_step_returns
from nasforge.safeload import load_checkpoint, state_dict_of
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, SearchContext, Strategy

_logger = get_logger(__name__)
STATE_KEY = "meta_a2c"
POLICY_FILE, POLICY_META = "policy.pt", "policy.json"


class RewardParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["train", "toy", "table"] = Field(
        default="train", description="toy: no training; table: read from a reward table file")
    table: str | None = Field(default=None, description="kind table: the table's JSON file")
    epochs: int = Field(default=2, ge=1, description="12 in the paper; fewer on CPU")
    batch_size: int = Field(default=128, ge=2)
    max_train: int | None = Field(default=1000, ge=2, description="cap on training rows")
    dense: int = Field(default=1024, ge=1)
    lr_decay: bool = Field(default=False, description="the intended x0.2 every 5 epochs (L1)")
    target: list[str] = Field(default_factory=lambda: ["conv3", "maxpool2", "conv5"])


class FinalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    top: int = Field(default=2, ge=0, description="best architectures per task retrained")
    epochs: int = Field(default=6, ge=1, description="100 in the paper; fewer on CPU")
    dense: int = Field(default=1024, ge=1, description="4096 in the paper")
    max_filters: int = Field(default=128, ge=16, description="filters 2^(5+i), capped")


class MetaA2CParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    space: Literal["chain", "multibranch"] = "chain"
    preset: Literal["default", "reference"] = "default"
    sigma: float | None = Field(default=None, ge=0, le=1, description="pointer discount")
    max_steps: int | None = Field(default=None, ge=1)
    revisit_reward: float | None = Field(
        default=None, description="reward of a step whose network was already rewarded in "
        "this task's trial (0: only new networks pay); default: the network's accuracy, as the "
        "seed")
    max_layers: int | None = Field(default=None, ge=1, le=10,
                                   description="layers per network (10; a table's depth)")
    steps_per_task: list[int] | None = Field(
        default=None, description="env steps per task in order; default: the budget split evenly")
    n_steps: int | None = Field(default=None, ge=1, description="5 chain, 10 multi-branch")
    gamma: float = Field(default=0.9, gt=0, le=1)
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    lr: float = Field(default=1e-3, gt=0)
    alpha: float = 0.99
    eps: float = 1e-5
    max_grad_norm: float = 0.5
    hidden: int = Field(default=128, ge=1)
    n_envs: int = Field(default=1, ge=1, description="environment copies stepped in lockstep "
                        "(synchronous A2C); each lockstep's child trainings go through the "
                        "run's executor at once")
    memory: Literal["trial", "episode"] | None = Field(
        default=None, description="LSTM reset at task boundaries (RL^2) or per episode (L2); "
                                  "default: trial, episode for the reference preset")
    policy: str | None = Field(default=None, description="saved policy: a run dir or policy.pt")
    train: bool = True
    min_tasks: int = Field(
        default=1, ge=1,
        description="the fewest tasks the run must have: meta-training configs set 2, so a task "
        "list cut down to one entry is refused instead of training from scratch unnoticed")
    reward: RewardParams = Field(default_factory=RewardParams)
    final: FinalParams = Field(default_factory=FinalParams)
    cache: str | None = Field(default=None, description="reward cache sqlite file; default: in "
                                                        "the run directory")


def _save_bytes(obj: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _load_bytes(blob: bytes) -> dict[str, Any]:
    out: dict[str, Any] = torch.load(io.BytesIO(blob), weights_only=True)
    return out


def load_policy(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a saved policy: a run directory or its ``policy.pt``."""
    p = Path(path)
    need = f"a meta_a2c run directory or its {POLICY_FILE}, with {POLICY_META} beside it"
    if not p.exists():
        raise ConfigError(f"policy {str(path)!r} not found ({need})")
    if p.is_dir():
        p = p / POLICY_FILE
        if not p.is_file():
            raise ConfigError(f"policy {str(path)!r} is not a meta_a2c run: no {POLICY_FILE} "
                              f"in it ({need})")
    meta_p = p.with_name(POLICY_META)
    if not meta_p.is_file():
        raise ConfigError(f"policy {str(path)!r} is not a saved policy: no {POLICY_META} next "
                          f"to {p.name} ({need})")
    try:
        meta = json.loads(meta_p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"policy metadata {str(meta_p)!r} cannot be read "
                          f"({type(e).__name__}: not the JSON that meta_a2c writes)") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"policy metadata {str(meta_p)!r} is not a JSON object")
    what = f"policy file {str(p)!r}"
    return state_dict_of(load_checkpoint(p, what=what), what), meta


def _child_reward(shared: tuple[RewardFn, Task], job: tuple[tuple[Row, ...], int]
                  ) -> tuple[float, bool]:
    """One child training, run by the executor (a worker process with ``workers > 1``):
    ``(accuracy, ok)`` as :meth:`NasEnvCore.reward_of` would compute it."""
    reward_fn, task = shared
    rows, seed = job
    try:
        return float(reward_fn(rows, task, seed)), True
    except (InvalidArchitecture, FloatingPointError, RuntimeError) as e:
        _logger.info("NSC %s cannot be built or trained: %s", list(rows), e)
        return 0.0, False


@STRATEGIES.register("meta_a2c")
class MetaA2C(Strategy):
    """Meta-RL NAS (see the module docstring). ``budget`` = environment steps over all tasks."""

    name: ClassVar[str] = "meta_a2c"
    Params: ClassVar[type[BaseModel]] = MetaA2CParams

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed)
        self.p = MetaA2CParams(**params)
        self.settings = EnvSettings.of(self.p.space, self.p.preset, sigma=self.p.sigma,
                                       max_steps=self.p.max_steps, max_layers=self.p.max_layers,
                                       revisit_reward=self.p.revisit_reward)
        self._table: TableReward | None = None
        if self.p.reward.kind == "table":
            if self.p.reward.table is None:
                raise ConfigError("meta_a2c: reward kind table needs reward.table: <file>")
            if self.p.space != "chain":
                raise ConfigError("meta_a2c: reward tables cover the chain space only")
            self._table = TableReward(self.p.reward.table)
            if self.settings.max_layers > self._table.depth:
                raise ConfigError(f"meta_a2c: max_layers {self.settings.max_layers} exceeds the "
                                  f"reward table's depth {self._table.depth}")
        self.memory = self.p.memory or ("episode" if self.p.preset == "reference" else "trial")
        self.n_steps = self.p.n_steps or (5 if self.p.space == "chain" else 10)
        self.a2c = A2CSettings(self.p.vf_coef, self.p.ent_coef, self.p.max_grad_norm)
        self._policy_init: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
        self.obs_dim = int(math.prod(observation((), self.p.space,
                                                 self.settings.max_layers).shape))
        self.n_actions = len(actions_of(self.p.space))
        if self.p.policy is not None:
            self._policy_init = load_policy(self.p.policy)
            meta = self._policy_init[1]
            want = {"obs_dim": self.obs_dim, "n_actions": self.n_actions, "hidden": self.p.hidden}
            got = {k: meta.get(k) for k in want}
            if got != want:
                raise ConfigError(f"saved policy has {got}; this run needs {want} "
                                  f"(space {self.p.space!r}, hidden {self.p.hidden})")
        elif not self.p.train:
            raise ConfigError("meta_a2c: train: false needs a saved policy (policy: <run dir>)")

    # ---------------------------------------------------------------- parts
    def reward_fn(self, device: torch.device) -> RewardFn:
        r = self.p.reward
        if r.kind == "toy":
            return ToyReward(r.target)
        if self._table is not None:
            return self._table
        return TrainReward(padding=self.settings.padding, epochs=r.epochs,
                           batch_size=r.batch_size, max_train=r.max_train, dense=r.dense,
                           lr_decay=r.lr_decay, split=self.settings.reward_split, device=device)

    def schedule(self, ctx: SearchContext) -> list[tuple[str, Task, int]]:
        tasks = list(ctx.tasks.items()) or ([(ctx.task.name, ctx.task)] if ctx.task else [])
        if not tasks:
            raise ConfigError("meta_a2c needs a task or tasks: [...]")
        steps = self.p.steps_per_task
        if steps is None:
            base, extra = divmod(ctx.budget, len(tasks))
            steps = [base + (1 if i < extra else 0) for i in range(len(tasks))]
        if len(steps) != len(tasks):
            raise ConfigError(f"meta_a2c: steps_per_task has {len(steps)} entries for "
                              f"{len(tasks)} tasks")
        return [(tid, t, n) for (tid, t), n in zip(tasks, steps, strict=True)]

    def _parts(
        self, ctx: SearchContext, plan: list[tuple[str, Task, int]]
    ) -> tuple[RewardFn, RewardCache, NasEnvCore, int, RecurrentActorCritic,
               torch.optim.Optimizer, torch.Generator]:
        """What both training loops start from: the reward (child training on CUDA when
        present), its cache, a first environment, the policy, its RMSprop and the sampler."""
        reward_fn = self.reward_fn(ctx.device)
        cache = RewardCache(self.p.cache or ctx.run_dir / "reward_cache.sqlite")
        env0 = NasEnvCore(plan[0][1], self.settings, reward_fn, cache, self.seed)
        obs_dim = int(math.prod(env0.obs_shape))
        policy = self.make_policy(obs_dim, env0.n_actions)
        opt = torch.optim.RMSprop(policy.parameters(), lr=self.p.lr, alpha=self.p.alpha,
                                  eps=self.p.eps)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "meta_a2c"))
        return reward_fn, cache, env0, obs_dim, policy, opt, gen

    @staticmethod
    def _restore(
        ctx: SearchContext, policy: RecurrentActorCritic, opt: torch.optim.Optimizer,
        gen: torch.Generator,
    ) -> dict[str, Any] | None:
        """On resume: the stored checkpoint, with the policy, optimiser and sampler loaded."""
        blob = ctx.load_state(STATE_KEY)
        if blob is None:
            return None
        saved: dict[str, Any] = _load_bytes(blob)
        policy.load_state_dict(saved["policy"])
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["rng"])
        return saved

    def make_policy(self, obs_dim: int, n_actions: int) -> RecurrentActorCritic:
        with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed only
            torch.manual_seed(derive_seed(self.seed, "meta_a2c", "init"))
            net = RecurrentActorCritic(obs_dim, n_actions, self.p.hidden, "lstm", extra_dim=1)
        if self._policy_init is not None:  # shapes checked in __init__
            net.load_state_dict(self._policy_init[0])
        return net

    # ----------------------------------------------------------------- loop
    def run(self, ctx: SearchContext) -> None:
        plan = self.schedule(ctx)
        if self._table is not None:
            for _, task, _ in plan:
                self._table.check_task(task)
        if self.p.n_envs > 1:
            bad = [n for *_, n in plan if n % self.p.n_envs]
            if bad:
                raise ConfigError(f"meta_a2c: n_envs {self.p.n_envs} must divide the steps of "
                                  f"every task (got {[n for *_, n in plan]})")
            self._run_vec(ctx, plan)
            return
        reward_fn, cache, env0, obs_dim, policy, opt, gen = self._parts(ctx, plan)
        st: dict[str, Any] = {"t": 0, "task": -1, "episode": 0, "ep_step": 0,
                              "prev_a": -1, "prev_r": 0.0, "rollout": [], "updates": 0}
        h = policy.initial(1)
        h_start = h
        env: NasEnvCore | None = None
        saved = self._restore(ctx, policy, opt, gen)
        if saved is not None:
            h, h_start = tuple(saved["h"]), tuple(saved["h_start"])
            st = json.loads(saved["meta"])
            if st["task"] >= 0:
                env = NasEnvCore(plan[st["task"]][1], self.settings, reward_fn, cache, self.seed)
                env.load_state_dict(st["env"])
            _logger.info("meta_a2c: resumed at step %d", st["t"])
        bounds = [sum(n for *_, n in plan[: i + 1]) for i in range(len(plan))]
        total = bounds[-1]
        while st["t"] < total:
            k = next(i for i, b in enumerate(bounds) if st["t"] < b)
            if k != st["task"]:  # a new trial: new environment, memory reset (RL^2)
                st.update(task=k, ep_step=0, prev_a=-1, prev_r=0.0, rollout=[])
                env = NasEnvCore(plan[k][1], self.settings, reward_fn, cache, self.seed)
                env.reset()
                h = h_start = policy.initial(1)
            assert env is not None
            tid = plan[k][0]
            obs = torch.as_tensor(env.observe()).reshape(1, -1)
            mask = torch.as_tensor(env.action_mask()).bool().reshape(1, -1)
            step_in = torch.tensor([[st["ep_step"] / self.settings.max_steps]])
            with torch.no_grad():
                logits, _, h = policy.step(obs, torch.tensor([st["prev_a"]]),
                                           torch.tensor([st["prev_r"]]), h, step_in)
                a = int(MaskedCategorical(logits, mask).sample(gen)[0])
            t0 = time.perf_counter()
            out = env.step(a)
            done = out.terminated or out.truncated
            st["rollout"].append({"obs": obs[0].tolist(), "mask": mask[0].tolist(),
                                  "prev_a": st["prev_a"], "prev_r": st["prev_r"],
                                  "step": float(step_in), "a": a, "r": out.reward,
                                  "done": float(done)})
            rows: list[Row] = layer_rows(env.rows)
            rec = Record(
                st["t"],
                Architecture(tuple(v for r in rows for v in r)),
                derive_seed(self.seed, "step", st["t"]),
                Result(
                    status="complete" if out.info["valid"] else "failed",
                    val_acc=out.info["base_reward"] if out.info["valid"] else math.nan,
                    train_seconds=time.perf_counter() - t0,
                    error=None if out.info["valid"] else "invalid network or pointer",
                    metrics={"reward": out.reward, "base_reward": out.info["base_reward"],
                             "action": out.info["action"],
                             "episode": st["episode"], "episode_step": st["ep_step"],
                             "nsc_hash": out.info["nsc_hash"], "cached": env.last_cached,
                             "split": self.settings.reward_split},
                ),
                finished_at=time.time(),
                task=tid,
            )
            st["prev_a"], st["prev_r"] = a, out.reward
            st["ep_step"] += 1
            if done:
                st["episode"] += 1
                st["ep_step"] = 0
                env.reset()
            st["t"] += 1
            trial_over = st["t"] in bounds
            stats: dict[str, float] | None = None
            if len(st["rollout"]) >= self.n_steps or trial_over:
                if self.p.train:
                    stats = self._update(policy, opt, st, h_start, h, env, trial_over)
                st["rollout"] = []
                h_start = h
            if done and self.memory == "episode" and not trial_over:
                h = policy.initial(1)
                if st["rollout"]:  # the reset lands mid-rollout: flag it for the replay
                    st["rollout"][-1]["reset_after"] = 1.0
                else:
                    h_start = h
            st["env"] = env.state_dict()
            with ctx.transaction():
                ctx.record_trial(rec)
                if stats is not None:
                    ctx.log_series("meta_a2c", st["updates"], {**stats, "task": tid})
                ctx.save_state(STATE_KEY, _save_bytes({
                    "policy": policy.state_dict(), "opt": opt.state_dict(),
                    "rng": gen.get_state(), "h": list(h), "h_start": list(h_start),
                    "meta": json.dumps(st)}))
            ctx.emit_step(st["t"], total, {"task": tid, "reward": out.reward})
        self.save_policy(ctx.run_dir, policy, obs_dim, env0.n_actions)
        cache.close()

    def _run_vec(self, ctx: SearchContext, plan: list[tuple[str, Task, int]]) -> None:
        """Synchronous A2C over ``n_envs`` copies of each task's environment: one policy step
        for the batch of copies, the rewards every copy's action needs trained at once through
        ``ctx.executor.map_jobs`` (a network two copies need is trained once), then every copy
        steps (each step a trial, numbered in copy order); one update per ``n_steps``
        lockstep over the ``n_envs x n_steps`` rollout. Resumable like the one-copy loop (the
        state is saved after every lockstep, with its ``n_envs`` trials)."""
        n = self.p.n_envs
        reward_fn, cache, env0, obs_dim, policy, opt, gen = self._parts(ctx, plan)
        st: dict[str, Any] = {"t": 0, "task": -1, "episode": n, "ep_id": list(range(n)),
                              "ep_step": [0] * n, "prev_a": [-1] * n, "prev_r": [0.0] * n,
                              "rollout": [], "updates": 0}
        h = h_start = policy.initial(n)
        envs: list[NasEnvCore] = []
        saved = self._restore(ctx, policy, opt, gen)
        if saved is not None:
            h, h_start = tuple(saved["h"]), tuple(saved["h_start"])
            st = json.loads(saved["meta"])
            if st["task"] >= 0:
                envs = [NasEnvCore(plan[st["task"]][1], self.settings, reward_fn, cache,
                                   self.seed) for _ in range(n)]
                for e, es in zip(envs, st["envs"], strict=True):
                    e.load_state_dict(es)
            _logger.info("meta_a2c: resumed at step %d", st["t"])
        bounds = [sum(m for *_, m in plan[: i + 1]) for i in range(len(plan))]
        total = bounds[-1]
        max_steps = self.settings.max_steps
        shared: tuple[RewardFn, Task] | None = None
        while st["t"] < total:
            k = next(i for i, b in enumerate(bounds) if st["t"] < b)
            if k != st["task"]:  # a new trial: new environments, memory reset (RL^2)
                st.update(task=k, ep_step=[0] * n, prev_a=[-1] * n, prev_r=[0.0] * n,
                          rollout=[])
                envs = [NasEnvCore(plan[k][1], self.settings, reward_fn, cache, self.seed)
                        for _ in range(n)]
                for e in envs:
                    e.reset()
                h = h_start = policy.initial(n)
            tid, task = plan[k][0], plan[k][1]
            if shared is None or shared[1] is not task:  # one object per trial: the worker
                shared = (reward_fn, task)  # pool receives it once, not once per lockstep
            obs = torch.stack([torch.as_tensor(e.observe()).reshape(-1) for e in envs])
            mask = torch.stack([torch.as_tensor(e.action_mask()).bool() for e in envs])
            step_in = torch.tensor([[x / max_steps] for x in st["ep_step"]])
            with torch.no_grad():
                logits, _, h = policy.step(obs, torch.tensor(st["prev_a"]),
                                           torch.tensor(st["prev_r"]), h, step_in)
                acts = [int(x) for x in MaskedCategorical(logits, mask).sample(gen)]
            t0 = time.perf_counter()
            jobs: dict[str, tuple[tuple[Row, ...], int, int]] = {}
            for i, (e, a) in enumerate(zip(envs, acts, strict=True)):
                rows_after = e.network_after(a)
                job = None if rows_after is None else e.reward_job(rows_after)
                if job is not None and job[0] not in jobs:
                    jobs[job[0]] = (job[1], job[2], i)
            keys = list(jobs)
            if keys:
                payloads = [(jobs[key][0], jobs[key][1]) for key in keys]
                for j, (acc, ok) in ctx.executor.map_jobs(_child_reward, shared, payloads):
                    envs[jobs[keys[j]][2]].put_reward(keys[j], acc, ok)
            per_step = (time.perf_counter() - t0) / n
            entry: dict[str, Any] = {"obs": obs.tolist(), "mask": mask.tolist(),
                                     "prev_a": list(st["prev_a"]), "prev_r": list(st["prev_r"]),
                                     "step": [float(x[0]) for x in step_in], "a": acts,
                                     "r": [], "done": [], "reset_after": [0.0] * n}
            recs: list[Record] = []
            dones: list[bool] = []
            for i, (e, a) in enumerate(zip(envs, acts, strict=True)):
                out = e.step(a)
                done = out.terminated or out.truncated
                rows: list[Row] = layer_rows(e.rows)
                num = st["t"] + i
                recs.append(Record(
                    num, Architecture(tuple(v for r in rows for v in r)),
                    derive_seed(self.seed, "step", num),
                    Result(status="complete" if out.info["valid"] else "failed",
                           val_acc=out.info["base_reward"] if out.info["valid"] else math.nan,
                           train_seconds=per_step,
                           error=None if out.info["valid"] else "invalid network or pointer",
                           metrics={"reward": out.reward, "base_reward": out.info["base_reward"],
                                    "action": out.info["action"],
                                    "episode": st["ep_id"][i], "episode_step": st["ep_step"][i],
                                    "nsc_hash": out.info["nsc_hash"], "cached": e.last_cached,
                                    "split": self.settings.reward_split, "env": i}),
                    finished_at=time.time(), task=tid))
                entry["r"].append(out.reward)
                entry["done"].append(float(done))
                st["prev_a"][i], st["prev_r"][i] = a, out.reward
                st["ep_step"][i] += 1
                if done:
                    st["ep_id"][i] = st["episode"]
                    st["episode"] += 1
                    st["ep_step"][i] = 0
                    e.reset()
                dones.append(done)
            st["rollout"].append(entry)
            st["t"] += n
            trial_over = st["t"] in bounds
            stats: dict[str, float] | None = None
            if len(st["rollout"]) >= self.n_steps or trial_over:
                if self.p.train:
                    stats = self._update_vec(policy, opt, st, h_start, h, envs, trial_over)
                st["rollout"] = []
                h_start = h
            if self.memory == "episode" and not trial_over and any(dones):
                keep = torch.tensor([[0.0] if d else [1.0] for d in dones])
                h = tuple(x * keep for x in h)
                if st["rollout"]:
                    st["rollout"][-1]["reset_after"] = [float(d) for d in dones]
                else:
                    h_start = h
            st["envs"] = [e.state_dict() for e in envs]
            with ctx.transaction():
                for rec in recs:
                    ctx.record_trial(rec)
                if stats is not None:
                    ctx.log_series("meta_a2c", st["updates"], {**stats, "task": tid})
                ctx.save_state(STATE_KEY, _save_bytes({
                    "policy": policy.state_dict(), "opt": opt.state_dict(),
                    "rng": gen.get_state(), "h": list(h), "h_start": list(h_start),
                    "meta": json.dumps(st)}))
            ctx.emit_step(st["t"], total, {"task": tid, "reward": float(sum(entry["r"]) / n)})
        self.save_policy(ctx.run_dir, policy, obs_dim, env0.n_actions)
        cache.close()

    def _update_vec(
        self,
        policy: RecurrentActorCritic,
        opt: torch.optim.Optimizer,
        st: dict[str, Any],
        h_start: tuple[torch.Tensor, ...],
        h_now: tuple[torch.Tensor, ...],
        envs: list[NasEnvCore],
        trial_over: bool,
    ) -> dict[str, float]:
        ro = st["rollout"]
        n, t_len = len(envs), len(ro)
        obs = torch.tensor([s["obs"] for s in ro]).transpose(0, 1)  # (N, T, D)
        prev_a = torch.tensor([s["prev_a"] for s in ro]).T
        prev_r = torch.tensor([s["prev_r"] for s in ro], dtype=torch.float32).T
        extra = torch.tensor([s["step"] for s in ro]).T.unsqueeze(-1)
        reset = torch.zeros(n, t_len)
        for t in range(1, t_len):
            reset[:, t] = torch.tensor(ro[t - 1]["reset_after"])
        logits, values = policy.unroll(obs, prev_a, prev_r, h_start, reset, extra)
        mask = torch.tensor([s["mask"] for s in ro]).transpose(0, 1)
        dist = MaskedCategorical(logits.reshape(n * t_len, -1), mask.reshape(n * t_len, -1))
        act = torch.tensor([s["a"] for s in ro]).T.reshape(-1)
        rew = torch.tensor([s["r"] for s in ro], dtype=torch.float32)  # (T, N)
        done = torch.tensor([s["done"] for s in ro])
        last_v = torch.zeros(n)
        if not trial_over:
            with torch.no_grad():
                obs_now = torch.stack([torch.as_tensor(e.observe()).reshape(-1) for e in envs])
                step_in = torch.tensor([[x / self.settings.max_steps] for x in st["ep_step"]])
                _, last_v, _ = policy.step(obs_now, torch.tensor(st["prev_a"]),
                                           torch.tensor(st["prev_r"]), h_now, step_in)
        ret = n_step_returns(rew, done, last_v, self.p.gamma).T.reshape(-1)
        st["updates"] += 1
        return a2c_update(policy, opt, dist.log_prob(act), dist.entropy(), values.reshape(-1),
                          ret, self.a2c)

    def _update(
        self,
        policy: RecurrentActorCritic,
        opt: torch.optim.Optimizer,
        st: dict[str, Any],
        h_start: tuple[torch.Tensor, ...],
        h_now: tuple[torch.Tensor, ...],
        env: NasEnvCore,
        trial_over: bool,
    ) -> dict[str, float]:
        ro = st["rollout"]
        obs = torch.tensor([[s["obs"] for s in ro]])
        prev_a = torch.tensor([[s["prev_a"] for s in ro]])
        prev_r = torch.tensor([[s["prev_r"] for s in ro]], dtype=torch.float32)
        extra = torch.tensor([[[s["step"]] for s in ro]])
        reset = torch.tensor([[0.0] + [s.get("reset_after", 0.0) for s in ro[:-1]]])
        logits, values = policy.unroll(obs, prev_a, prev_r, h_start, reset, extra)
        mask = torch.tensor([[s["mask"] for s in ro]])
        dist = MaskedCategorical(logits[0], mask[0])
        act = torch.tensor([s["a"] for s in ro])
        rew = torch.tensor([s["r"] for s in ro], dtype=torch.float32).unsqueeze(1)
        done = torch.tensor([s["done"] for s in ro]).unsqueeze(1)
        last_v = torch.zeros(1)
        if not trial_over and not ro[-1]["done"]:
            with torch.no_grad():
                step_in = torch.tensor([[st["ep_step"] / self.settings.max_steps]])
                _, last_v, _ = policy.step(
                    torch.as_tensor(env.observe()).reshape(1, -1), torch.tensor([st["prev_a"]]),
                    torch.tensor([st["prev_r"]]), h_now, step_in)
        ret = n_step_returns(rew, done, last_v, self.p.gamma)[:, 0]
        st["updates"] += 1
        return a2c_update(policy, opt, dist.log_prob(act), dist.entropy(), values[0], ret,
                          self.a2c)

    # --------------------------------------------------------------- output
    def save_policy(self, run_dir: Path, policy: RecurrentActorCritic, obs_dim: int,
                    n_actions: int) -> None:
        torch.save(policy.state_dict(), run_dir / POLICY_FILE)
        (run_dir / POLICY_META).write_text(json.dumps({
            "strategy": self.name, "obs_dim": obs_dim, "n_actions": n_actions,
            "hidden": self.p.hidden, "cell": "lstm", "extra_dim": 1, "space": self.p.space,
            "preset": self.p.preset, "seed": self.seed}, indent=1))

    def check(
        self, space: SearchSpace, evaluator: Any, budget: int, tasks: Mapping[str, Task]
    ) -> None:
        if not tasks:
            raise ConfigError("meta_a2c needs a task or tasks: [...]")
        if len(tasks) < self.p.min_tasks:
            raise ConfigError(
                f"meta_a2c: meta-training needs at least {self.p.min_tasks} tasks (min_tasks), "
                f"the run has {len(tasks)} ({', '.join(tasks)}); list more under tasks:, or set "
                "min_tasks: 1 to train on one task from scratch")
        if self.p.steps_per_task is not None and sum(self.p.steps_per_task) != budget:
            raise ConfigError(f"meta_a2c: steps_per_task sums to {sum(self.p.steps_per_task)}"
                              f", the budget is {budget}")

    def finalize(self, ctx: SearchContext) -> FinalReport:
        """Retrain the best ``final.top`` networks of each task with the longer final protocol
        (filters 2^(5+i), exponential lr decay) and test each once. The report's architecture
        is the best network over all tasks (``extra.lead_task`` names its task); every task's
        networks are under ``extra.tasks``."""
        f = self.p.final
        out: dict[str, Any] = {"tasks": {}, "task_shapes": {}, "space": self.p.space,
                               "padding": self.settings.padding}
        lead: tuple[Record, float] | None = None
        tasks = dict(ctx.tasks) or ({ctx.task.name: ctx.task} if ctx.task else {})
        widths = [min(f.max_filters, 2 ** (5 + i)) for i in range(10)]
        final = TrainReward(padding=self.settings.padding, epochs=f.epochs, dense=f.dense,
                            filters=widths, lr_schedule="exp", split="test",
                            max_train=self.p.reward.max_train, device=ctx.device)
        out["build"] = final.build_args  # NSCNet(nsc, input_shape, num_classes, **build)
        models: dict[str, nn.Module] = {}
        for tid, task in tasks.items():
            out["task_shapes"][tid] = {"input_shape": list(task.input_shape),
                                       "num_classes": task.num_classes}
            best: dict[str, Record] = {}
            for r in ctx.records():
                if r.task not in (tid, None) or not r.ok:
                    continue
                key = str(r.result.metrics.get("nsc_hash"))
                if key not in best or r.val_acc > best[key].val_acc:
                    best[key] = r
            chosen = sorted(best.values(), key=lambda r: (-r.val_acc, r.number))[: f.top]
            res: list[dict[str, Any]] = []
            for r in chosen:
                toks = list(r.arch.tokens)
                rows = tuple(tuple(int(v) for v in toks[i : i + 5])
                             for i in range(0, len(toks), 5))
                net, test = final.fit(rows, task, derive_seed(self.seed, "final", r.number))  # type: ignore[arg-type]
                if not res:  # the task's best network: its weights go with the export
                    models[tid] = net.cpu()
                res.append({"trial": r.number, "nsc": [list(x) for x in rows],
                            "search_reward": r.val_acc, "test_acc": test})
            out["tasks"][tid] = res
            if chosen and (lead is None or chosen[0].val_acc > lead[0].val_acc):
                lead = (chosen[0], float(res[0]["test_acc"]))  # the best over all tasks
                out["lead_task"] = tid
        if lead is None:
            return build_report(ctx, error="no trial completed", extra=out)
        rec, test = lead
        return build_report(ctx, arch=rec.arch, trial=rec.number, val_acc=rec.val_acc,
                            params=rec.result.params, test_acc=test, task_models=models,
                            extra=out)
