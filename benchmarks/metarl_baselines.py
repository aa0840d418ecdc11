"""Baselines on a depth-limited tabulated NSC environment (seed 001's random / DQN / A2C).

The environment is the chain NasEnv (default preset) limited to ``--depth`` layers; its reward
is a fixed table over every network of at most that depth (``7 + 7^2 + ... `` entries, drawn
from a seeded generator, so the optimum is known and no child is trained). Each method acts for
``--steps`` environment steps; reported per method: the best reward found, the mean reward of
the last quarter, and the fraction of the table's optimum reached.

    nice -n 10 python benchmarks/metarl_baselines.py --steps 600 --seeds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from nasforge.data.base import Split, Task
from nasforge.envs.nas_env import NasEnv
from nasforge.envs.nsc import CHAIN_ACTIONS, Row, nsc_hash


class TableReward:
    """Rewards of all chain networks up to ``depth`` layers, drawn once from ``seed``."""

    def __init__(self, depth: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        layers = [a for a in CHAIN_ACTIONS if a.kind == "layer"]
        self.table: dict[str, float] = {nsc_hash([]): 0.1}
        for d in range(1, depth + 1):
            for seq in itertools.product(layers, repeat=d):
                rows = [(i + 1, a.type, a.kernel, i, 0) for i, a in enumerate(seq)]
                self.table[nsc_hash(rows)] = float(rng.beta(2, 5))
        self.best = max(self.table.values())
        self.protocol = f"table-{depth}-{seed}"

    def __call__(self, rows: tuple[Row, ...], task: Task, seed: int) -> float:
        return self.table.get(nsc_hash(rows), 0.0)


def dummy_task() -> Task:
    s = Split(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    return Task("table", s, s, s, (1, 8, 8), 2, {"name": "table"})


def run_random(env: NasEnv, steps: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    out: list[float] = []
    actions = env.action_space
    assert isinstance(actions, spaces.Discrete)  # NasEnv's actions are Discrete(n)
    env.reset(seed=seed)
    for _ in range(steps):
        _, r, term, trunc, _ = env.step(int(rng.integers(actions.n)))
        out.append(float(r))
        if term or trunc:
            env.reset()
    return out


class _Log:
    """Records every reward the learner receives (SB3 owns the loop)."""

    def __init__(self, env: NasEnv) -> None:
        self.env = env
        self.rewards: list[float] = []
        self._step = env.step

        def step(action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
            res = self._step(action)
            self.rewards.append(float(res[1]))
            return res

        env.step = step  # type: ignore[method-assign]


def run_sb3(kind: str, env: NasEnv, steps: int, seed: int) -> list[float]:
    import stable_baselines3 as sb3

    log = _Log(env)
    if kind == "dqn":  # §2.3's DQN baseline: buffer t_max/2, eps 1.0 -> 0.1, lr 5e-4
        model: Any = sb3.DQN("MlpPolicy", env, learning_rate=5e-4, buffer_size=steps // 2,
                             exploration_initial_eps=1.0, exploration_final_eps=0.1,
                             learning_starts=50, seed=seed, device="cpu")
    else:  # A2C from scratch with §2.3's settings (feed-forward: SB3 has no LSTM A2C)
        model = sb3.A2C("MlpPolicy", env, n_steps=5, gamma=0.9, ent_coef=0.01, vf_coef=0.5,
                        learning_rate=1e-3, max_grad_norm=0.5, seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    return log.rewards[:steps]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    table = TableReward(args.depth)
    results: dict[str, list[dict[str, float]]] = {}
    for method in ("random", "dqn", "a2c"):
        for seed in range(args.seeds):
            env = NasEnv(dummy_task(), "chain", "default", reward_fn=table, max_layers=args.depth)
            t0 = time.perf_counter()
            rs = (run_random(env, args.steps, seed) if method == "random"
                  else run_sb3(method, env, args.steps, seed))
            q = len(rs) // 4
            results.setdefault(method, []).append({
                "best": max(rs), "last_quarter_mean": float(np.mean(rs[-q:])),
                "of_optimum": max(rs) / table.best, "seconds": time.perf_counter() - t0})
    summary = {m: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for m, v in results.items()}
    print(json.dumps({"depth": args.depth, "steps": args.steps, "seeds": args.seeds,
                      "table_size": len(table.table), "optimum": table.best,
                      "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
