"""Seed 001's held-out benchmark on depth-limited tabulated NSC chain environments.

Three sub-commands, each resumable (JSON lines appended and flushed per finished unit):

``tables``: train every buildable chain network of at most ``--depth`` layers on each of the
five META_SUITE tasks once, with the environment's own reward (``TrainReward``, the configs'
protocol with the training rows halved so that the five tables build in about 10 min of CPU: same
padding, Adam 1e-3, batch 128, 2 epochs on at most 500 rows (the configs: 1000), accuracy on
val)
and the seed the environment would give it; the table (``TableReward``'s JSON) is written when
all are done.

``run``: on the two held-out tasks, per seed: random search (uniform over the mask's allowed
actions), SB3 DQN from scratch (§2.3's settings), ``meta_a2c`` from scratch on the target, and
the frozen ``meta_a2c`` policy meta-trained on the three training tables (one meta-training per
seed, ``--meta-steps`` per task, then deployed with ``train: false``). Every method acts for
``--steps`` environment steps; every step's reward is stored.

``report``: best-so-far validation accuracy after 25/50/100/200 steps (mean +- s.e. over
seeds), paired-by-seed wins of the frozen policy, mean reward over the first 50 steps, a
markdown table and the meta-training curves (PNG).

    nice -n 10 python benchmarks/metarl_heldout.py tables --depth 3
    nice -n 10 python benchmarks/metarl_heldout.py run --seeds 5
    python benchmarks/metarl_heldout.py report
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.data.base import make_task
from nasforge.data.images import META_SUITE
from nasforge.envs.core import EnvSettings, NasEnvCore
from nasforge.envs.nsc import nsc_hash
from nasforge.envs.rewards import TABLE_FORMAT, TableReward, TrainReward, chain_networks
from nasforge.exceptions import NasforgeError
from nasforge.run import Run
from nasforge.search import search

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_TABLE = RESULTS / "metarl_tables" / "chain_d3.json"
DEFAULT_OUT = RESULTS / "metarl_heldout.jsonl"
TRAIN_TASKS = [t["name"] for t in META_SUITE["train"]]
TEST_TASKS = [t["name"] for t in META_SUITE["test"]]
CHECKPOINTS = (25, 50, 100, 200)
PROTOCOL = {"epochs": 2, "max_train": 500, "batch_size": 128}  # configs: 1000 rows


def _cpu() -> float:
    return time.process_time()


def _append(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(doc) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line (killed mid-write)
            continue
    return out


# ------------------------------------------------------------------------------- tables
def build_tables(args: argparse.Namespace) -> None:
    out = Path(args.out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    reward = TrainReward(padding="same", split="val", **{**PROTOCOL, "max_train": args.max_train})
    tasks = args.tasks or TRAIN_TASKS + TEST_TASKS
    fp = {"protocol": json.loads(reward.protocol), "depth": args.depth}
    fp_path = parts / "meta.json"
    if fp_path.is_file() and json.loads(fp_path.read_text()) != fp:
        raise SystemExit(f"error: {parts} was built with another protocol or depth")
    fp_path.write_text(json.dumps(fp))
    doc: dict[str, Any] = {"format": TABLE_FORMAT, "depth": args.depth, "space": "chain",
                           "protocol": json.loads(reward.protocol), "tasks": {}, "meta": {}}
    partial = False
    for name in tasks:
        task = make_task({"name": name})
        nets = chain_networks(args.depth, task.input_shape, "same")
        log = parts / f"{name}.jsonl"
        done = {d["nsc_hash"]: d for d in _read_jsonl(log)}
        todo = [r for r in nets if nsc_hash(r) not in done]
        if args.limit:
            todo = todo[: args.limit]
        print(f"{name}: {len(nets)} networks, {len(done)} done, {len(todo)} to train",
              flush=True)
        for rows in todo:
            key = nsc_hash(rows)
            seed = int(key[:8], 16) & 0x7FFFFFFF  # NasEnvCore.reward_of's seed for env seed 0
            c0, w0 = _cpu(), time.perf_counter()
            try:
                acc, ok = reward(rows, task, seed), True
            except (FloatingPointError, RuntimeError):
                acc, ok = 0.0, False
            d = {"nsc_hash": key, "rows": [list(r) for r in rows], "acc": acc, "ok": ok,
                 "cpu_s": _cpu() - c0, "wall_s": time.perf_counter() - w0,
                 "load1": os.getloadavg()[0]}
            _append(log, d)
            done[key] = d
        if len(done) < len(nets):
            print(f"{name}: partial ({len(done)}/{len(nets)}); rerun to continue")
            partial = True
            continue
        rows_done = [done[nsc_hash(r)] for r in nets]
        accs = [d["acc"] for d in rows_done]
        best = max(rows_done, key=lambda d: d["acc"])
        doc["tasks"][name] = {
            "content_hash": task.content_hash, "input_shape": list(task.input_shape),
            "num_classes": task.num_classes, "n": len(nets),
            "rewards": {d["nsc_hash"]: round(float(d["acc"]), 6) for d in rows_done},
            "best": best["acc"], "best_rows": best["rows"], "mean": float(np.mean(accs)),
            "cpu_s": float(sum(d["cpu_s"] for d in rows_done)),
            "wall_s": float(sum(d["wall_s"] for d in rows_done)),
            "mean_load1": float(np.mean([d["load1"] for d in rows_done]))}
    if partial:
        return
    doc["meta"] = {"torch_threads": torch.get_num_threads(), "built": time.strftime("%F %T")}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=0))
    tmp.replace(out)
    for name, t in doc["tasks"].items():
        print(f"{name}: n={t['n']} best={t['best']:.4f} mean={t['mean']:.4f} "
              f"cpu={t['cpu_s']:.0f}s wall={t['wall_s']:.0f}s load={t['mean_load1']:.2f}")
    print(f"wrote {out}")


# --------------------------------------------------------------------------- methods
def _settings(depth: int) -> EnvSettings:
    return EnvSettings.of("chain", "default", max_layers=depth)


def run_random(table: TableReward, task_name: str, steps: int, seed: int) -> list[float]:
    """Uniform over the actions the mask allows (the agents see the same mask)."""
    env = NasEnvCore(make_task({"name": task_name}), _settings(table.depth), table, None, 0)
    rng = np.random.default_rng(seed)
    env.reset()
    out = []
    for _ in range(steps):
        allowed = np.flatnonzero(env.action_mask())
        o = env.step(int(rng.choice(allowed)))
        out.append(o.reward)
        if o.terminated or o.truncated:
            env.reset()
    return out


def run_dqn(table: TableReward, task_name: str, steps: int, seed: int) -> list[float]:
    """SB3 DQN from scratch with §2.3's settings (buffer t_max/2, eps 1.0 -> 0.1, lr 5e-4); it
    ignores the action mask (a masked action ends the episode with reward 0)."""
    import stable_baselines3 as sb3

    from nasforge.envs.nas_env import NasEnv

    env = NasEnv(make_task({"name": task_name}), "chain", "default", reward_fn=table,
                 max_layers=table.depth)
    rewards: list[float] = []
    step = env.step

    def logged(action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        res = step(action)
        rewards.append(float(res[1]))
        return res

    env.step = logged  # type: ignore[method-assign]
    model = sb3.DQN("MlpPolicy", env, learning_rate=5e-4, buffer_size=max(10, steps // 2),
                    exploration_initial_eps=1.0, exploration_final_eps=0.1,
                    learning_starts=min(50, steps // 4), seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    return rewards[:steps]


def _meta_cfg(table: Path, depth: int, tasks: list[str], budget: int, seed: int,
              **strategy: Any) -> dict[str, Any]:
    return {"name": "metarl_heldout", "seed": seed, "budget": budget, "device": "cpu",
            "tasks": [{"name": t} for t in tasks],
            "strategy": {"name": "meta_a2c", "space": "chain", "preset": "default",
                         "max_layers": depth, "reward": {"kind": "table", "table": str(table)},
                         "final": {"top": 0}, **strategy},
            "final": {"seeds": 1}}


def _run_rewards(run_dir: Path) -> list[tuple[str | None, float]]:
    """Each step's reward as the seed defines it (the network's accuracy; ``base_reward``, the
    same as ``reward`` unless ``revisit_reward`` reshaped what the agent learned from)."""
    return [(r.task, float(r.result.metrics.get("base_reward", r.result.metrics["reward"])))
            for r in Run(run_dir).trials]


def _suffix(revisit: float | None) -> str:
    return "" if revisit is None else f"_rv{revisit:g}"


def run_a2c(table_path: Path, table: TableReward, task_name: str, steps: int, seed: int,
            work: Path, policy: Path | None = None, revisit: float | None = None
            ) -> list[float]:
    rdir = work / f"{'frozen' if policy else 'a2c'}{_suffix(revisit)}_{task_name}_s{seed}"
    shutil.rmtree(rdir, ignore_errors=True)
    extra: dict[str, Any] = {} if policy is None else {"policy": str(policy), "train": False}
    if revisit is not None:
        extra["revisit_reward"] = revisit
    search(_meta_cfg(table_path, table.depth, [task_name], steps, seed, **extra),
           run_dir=rdir, progress=False)
    rs = [r for _, r in _run_rewards(rdir)]
    shutil.rmtree(rdir, ignore_errors=True)
    return rs


def meta_train(table_path: Path, table: TableReward, steps_per_task: int, seed: int,
               work: Path, rounds: int = 1, revisit: float | None = None
               ) -> tuple[Path, dict[str, list[float]]]:
    """One meta-training run: the three training tasks in order (``rounds`` times over, each
    visit ``steps_per_task // rounds`` steps, the policy carried across every visit)."""
    rdir = work / f"meta_r{rounds}{_suffix(revisit)}_s{seed}"
    shutil.rmtree(rdir, ignore_errors=True)
    extra: dict[str, Any] = {} if revisit is None else {"revisit_reward": revisit}
    search(_meta_cfg(table_path, table.depth, TRAIN_TASKS * rounds,
                     steps_per_task * len(TRAIN_TASKS), seed, min_tasks=2, **extra),
           run_dir=rdir, progress=False)
    by_task: dict[str, list[float]] = {}
    for tid, r in _run_rewards(rdir):
        by_task.setdefault(str(tid).split("#")[0], []).append(r)
    return rdir, by_task


def best_at(rs: list[float]) -> dict[str, float]:
    return {str(k): float(max(rs[:k])) for k in CHECKPOINTS if len(rs) >= k}


def run_all(args: argparse.Namespace) -> None:
    table_path = Path(args.table).resolve()
    table = TableReward(table_path)
    out = Path(args.out)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rv = args.revisit_reward
    have = {(d["kind"], d.get("method"), d.get("task"), d["seed"]) for d in _read_jsonl(out)
            if d["kind"] == "deploy" or (d.get("meta_rounds", 1) == args.meta_rounds
                                          and d.get("revisit_reward") == rv)}
    frozen = "frozen_meta" if args.meta_rounds == 1 else f"frozen_meta_r{args.meta_rounds}"
    frozen += _suffix(rv)

    def unit(kind: str, method: str | None, task: str | None, seed: int, fn: Any) -> Any:
        c0, w0 = _cpu(), time.perf_counter()
        res = fn()
        doc = {"kind": kind, "method": method, "task": task, "seed": seed, **res,
               "cpu_s": _cpu() - c0, "wall_s": time.perf_counter() - w0,
               "load1": os.getloadavg()[0], "steps": args.steps, "depth": table.depth,
               "meta_steps": args.meta_steps, "meta_rounds": args.meta_rounds,
               "revisit_reward": rv}
        _append(out, doc)
        print(f"{kind} {method} {task} seed {seed}: "
              f"{ {k: v for k, v in res.items() if k == 'best_at'} } "
              f"({doc['wall_s']:.0f}s)", flush=True)

    def deploy(rs: list[float]) -> dict[str, Any]:
        return {"rewards": rs, "best_at": best_at(rs), "first50_mean": float(np.mean(rs[:50]))}

    for seed in range(args.seed0, args.seed0 + args.seeds):
        policy: Path | None = None
        need_frozen = (not args.only or frozen in args.only) and any(
            ("deploy", frozen, t, seed) not in have for t in TEST_TASKS)
        if need_frozen:
            meta_dir = work / f"meta_r{args.meta_rounds}{_suffix(rv)}_s{seed}"
            if ("meta_train", None, None, seed) in have and (meta_dir / "policy.pt").is_file():
                policy = meta_dir
            else:
                holder: dict[str, Any] = {}

                def mt(seed: int = seed, holder: dict[str, Any] = holder) -> dict[str, Any]:
                    d, by_task = meta_train(table_path, table, args.meta_steps, seed, work,
                                            args.meta_rounds, rv)
                    holder["dir"] = d
                    return {"rewards_by_task": by_task}

                unit("meta_train", None, None, seed, mt)
                policy = holder["dir"]
        for task in TEST_TASKS:
            todo: list[tuple[str, Any]] = [
                ("random", lambda t=task, s=seed: run_random(table, t, args.steps, s)),
                ("a2c_scratch" + _suffix(rv),
                 lambda t=task, s=seed: run_a2c(table_path, table, t, args.steps, s, work,
                                                None, rv)),
                (frozen,
                 lambda t=task, s=seed, p=policy: run_a2c(table_path, table, t, args.steps, s,
                                                          work, p, rv)),
                ("dqn", lambda t=task, s=seed: run_dqn(table, t, args.steps, s)),
            ]
            for method, fn in todo:
                if args.only and method not in args.only:
                    continue
                if ("deploy", method, task, seed) in have:
                    continue
                unit("deploy", method, task, seed, lambda fn=fn: deploy(fn()))


# ------------------------------------------------------------------------------ live
def live(args: argparse.Namespace) -> None:
    """The frozen policy of one seed on a held-out task with live child training (the same
    TrainReward and seeds the table was built with), against the table's entries."""
    table_path = Path(args.table).resolve()
    table = TableReward(table_path)
    doc = json.loads(table_path.read_text())
    rv = args.revisit_reward
    policy = Path(args.work) / f"meta_r{args.meta_rounds}{_suffix(rv)}_s{args.seed}"
    method = ("frozen_meta" if args.meta_rounds == 1 else f"frozen_meta_r{args.meta_rounds}")
    method += _suffix(rv)
    extra: dict[str, Any] = {} if rv is None else {"revisit_reward": rv}
    if not (policy / "policy.pt").is_file():
        raise SystemExit(f"error: no meta-trained policy in {policy}; run `run` first")
    out = Path(args.out)
    for task in args.tasks or TEST_TASKS:
        rdir = Path(args.work) / f"live_{task}_s{args.seed}"
        shutil.rmtree(rdir, ignore_errors=True)
        cfg = _meta_cfg(table_path, table.depth, [task], args.steps, args.seed,
                        policy=str(policy), train=False, **extra)
        cfg["strategy"]["reward"] = {"kind": "train", "epochs": doc["protocol"]["epochs"],
                                     "max_train": doc["protocol"]["max_train"]}
        c0, w0 = _cpu(), time.perf_counter()
        search(cfg, run_dir=rdir, progress=False)
        trials = Run(rdir).trials
        rs = [r for _, r in _run_rewards(rdir)]  # the network's accuracy (base reward)
        tab = table.tasks[task]["rewards"]
        assert isinstance(tab, dict)
        diffs = [abs(float(r.result.metrics.get("base_reward", r.result.metrics["reward"]))
                     - float(tab[r.result.metrics["nsc_hash"]])) for r in trials if r.ok]
        res = {"kind": "live", "method": method, "task": task, "seed": args.seed,
               "rewards": rs, "best_at": best_at(rs), "first50_mean": float(np.mean(rs[:50])),
               "trainings": sum(1 for r in trials if not r.result.metrics.get("cached")),
               "max_abs_diff_vs_table": max(diffs) if diffs else None,
               "cpu_s": _cpu() - c0, "wall_s": time.perf_counter() - w0,
               "load1": os.getloadavg()[0], "steps": args.steps, "depth": table.depth}
        _append(out, res)
        print(json.dumps({k: v for k, v in res.items() if k != "rewards"}), flush=True)


# ---------------------------------------------------------------------------- report
FROZEN = ("frozen_meta", "frozen_meta_r5", "frozen_meta_rv0", "frozen_meta_r5_rv0",
          "frozen_meta_r30_rv0")
METHODS = (*FROZEN, "a2c_scratch", "a2c_scratch_rv0", "dqn", "random")
LABELS = {"frozen_meta": "meta-A2C, frozen (meta-trained on 3 tables, one pass)",
          "frozen_meta_r5": "meta-A2C, frozen (meta-trained on 3 tables, 5 passes)",
          "frozen_meta_rv0": "meta-A2C, frozen, `revisit_reward: 0` (trained so, one pass)",
          "frozen_meta_r5_rv0": "meta-A2C, frozen, `revisit_reward: 0` (trained so, 5 passes)",
          "frozen_meta_r30_rv0": "meta-A2C, frozen, `revisit_reward: 0` (trained so, 30 passes "
                                 "of 200 steps, 6000 steps per task)",
          "a2c_scratch": "A2C-LSTM from scratch",
          "a2c_scratch_rv0": "A2C-LSTM from scratch, `revisit_reward: 0`",
          "dqn": "SB3 DQN from scratch", "random": "random search"}


def _transfer_bound(table: dict[str, Any], task: str) -> str:
    """What the training tables alone say about ``task``: the best accuracy on ``task`` among
    the k networks ranked highest on the training tables (mean z-score over the three), i.e.
    what a searcher that only transfers the training tasks' ranking finds in k networks."""
    rewards = {t: table["tasks"][t]["rewards"] for t in [*TRAIN_TASKS, task]}
    keys = sorted(set.intersection(*(set(v) for v in rewards.values())))
    score = np.zeros(len(keys))
    for t in TRAIN_TASKS:
        v = np.array([rewards[t][k] for k in keys], dtype=float)
        score += (v - v.mean()) / (v.std() or 1.0)
    target = np.array([rewards[task][k] for k in keys], dtype=float)[np.argsort(-score)]
    ks = (5, 10, 25, 50)
    return ("training tasks' top-k networks reach " + " / ".join(
        f"{target[:k].max():.4f}" for k in ks) + f" at k = {' / '.join(map(str, ks))}")


def report(args: argparse.Namespace) -> None:
    docs = [d for out in args.out for d in _read_jsonl(Path(out))]
    table = json.loads(Path(args.table).read_text())
    dep = [d for d in docs if d["kind"] == "deploy"]
    lines = []
    seeds_all = sorted({d["seed"] for d in dep})
    lines.append(f"Depth-{table['depth']} tables; {len(seeds_all)} seeds; mean +- s.e. of the "
                 f"best validation accuracy found within k steps.\n")
    for task in TEST_TASKS:
        t = table["tasks"][task]
        lines.append(f"**{task}** (table: {t['n']} networks, optimum {t['best']:.4f}, "
                     f"mean {t['mean']:.4f}; {_transfer_bound(table, task)})\n")
        lines.append("| method | " + " | ".join(f"{k} steps" for k in CHECKPOINTS)
                     + " | first-50 mean reward | seeds |")
        lines.append("|---|" + "---|" * (len(CHECKPOINTS) + 2))
        per: dict[str, dict[int, dict[str, Any]]] = {}
        for d in dep:
            if d["task"] == task:
                per.setdefault(d["method"], {})[d["seed"]] = d
        for m in METHODS:
            runs = list(per.get(m, {}).values())
            if not runs:
                continue
            cells = []
            for k in CHECKPOINTS:
                v = [r["best_at"][str(k)] for r in runs if str(k) in r["best_at"]]
                cells.append(_mse(v))
            cells.append(_mse([r["first50_mean"] for r in runs]))
            lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + f" | {len(runs)} |")
        for fname, other in [(f, o) for f in FROZEN
                             for o in ("random", "a2c_scratch", "a2c_scratch_rv0", "dqn")]:
            fm = per.get(fname, {})
            od = per.get(other, {})
            common = sorted(set(fm) & set(od))
            if not common:
                continue
            parts = []
            for k in (25, 50, 100, 200):
                w = sum(fm[s]["best_at"][str(k)] > od[s]["best_at"][str(k)] for s in common)
                ties = sum(fm[s]["best_at"][str(k)] == od[s]["best_at"][str(k)] for s in common)
                parts.append(f"{k}: {w}W/{ties}T/{len(common) - w - ties}L")
            r50 = sum(fm[s]["first50_mean"] > od[s]["first50_mean"] for s in common)
            parts.append(f"first-50 reward higher {r50}/{len(common)}")
            lines.append(f"\n{fname} vs {other}, paired by seed (frozen wins/ties/losses at k "
                         f"steps): " + "; ".join(parts))
        lines.append("")
    for lv in (d for d in docs if d["kind"] == "live"):
        same = [d for d in dep if d["task"] == lv["task"] and d["seed"] == lv["seed"]
                and d["method"] == lv.get("method", "frozen_meta")]
        tab = same[0]["rewards"][: lv["steps"]] if same else None
        lines.append(f"Live child training, frozen policy ({lv.get('method', 'frozen_meta')}), "
                     f"{lv['task']}, seed {lv['seed']}, "
                     f"{lv['steps']} steps: best {max(lv['rewards']):.4f}, mean reward "
                     f"{np.mean(lv['rewards']):.4f}, {lv['trainings']} trainings, CPU "
                     f"{lv['cpu_s']:.0f} s, wall {lv['wall_s']:.0f} s, load {lv['load1']:.2f}; "
                     f"largest |live - table| reward {lv['max_abs_diff_vs_table']:.4f}"
                     + ("" if tab is None else
                        f"; same steps on the table: best {max(tab):.4f}, mean "
                        f"{np.mean(tab):.4f}, same rewards step by step (to 1e-6): "
                        f"{bool(np.allclose(tab, lv['rewards'], atol=1e-6))}")
                     + ".")
    meta = [d for d in docs if d["kind"] == "meta_train"]
    for rounds, rv in sorted({(d.get("meta_rounds", 1), d.get("revisit_reward"))
                              for d in meta}, key=str):
        mr = [d for d in meta if (d.get("meta_rounds", 1), d.get("revisit_reward"))
              == (rounds, rv)]
        lines.append(f"Meta-training ({rounds} pass(es)"
                     + ("" if rv is None else f", revisit_reward {rv:g}")
                     + f"): {len(mr)} seeds x "
                     f"{mr[0]['meta_steps']} steps per task; mean CPU "
                     f"{np.mean([d['cpu_s'] for d in mr]):.0f} s, wall "
                     f"{np.mean([d['wall_s'] for d in mr]):.0f} s per seed.")
    cpu = sum(d["cpu_s"] for d in docs)
    wall = sum(d["wall_s"] for d in docs)
    load = np.mean([d["load1"] for d in docs]) if docs else 0.0
    lines.append(f"Benchmark total: CPU {cpu:.0f} s, wall {wall:.0f} s, mean load "
                 f"{load:.2f} (2 cores).")
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    if args.png and meta:
        _plot(meta, dep, Path(args.png))


def _mse(v: list[float]) -> str:
    if not v:
        return "-"
    se = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return f"{np.mean(v):.4f} +- {se:.4f}"


def _smooth(x: np.ndarray, w: int) -> np.ndarray:
    if len(x) < w:
        return x
    return np.convolve(x, np.ones(w) / w, mode="valid")


def _plot(meta: list[dict[str, Any]], dep: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TRAIN_TASKS) + len(TEST_TASKS), figsize=(17, 3.4))
    groups = sorted({(d.get("meta_rounds", 1), d.get("revisit_reward")) for d in meta}, key=str)
    for ax, task in zip(axes, TRAIN_TASKS, strict=False):
        for i, (rounds, rv) in enumerate(groups):
            color = f"C{i}"
            curves = [np.asarray(d["rewards_by_task"][task]) for d in meta
                      if (d.get("meta_rounds", 1), d.get("revisit_reward")) == (rounds, rv)]
            n = min(len(c) for c in curves)
            for c in curves:
                ax.plot(_smooth(c[:n], 50), color=color, alpha=0.15, lw=0.6)
            label = f"{rounds} pass{'es' if rounds > 1 else ''}"
            label += "" if rv is None else f", revisit {rv:g}"
            ax.plot(_smooth(np.mean([c[:n] for c in curves], 0), 50), color=color, lw=2,
                    label=f"{label} (mean of {len(curves)})")
        ax.set_title(f"meta-train: {task}")
        ax.set_xlabel("this task's steps (all visits)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("reward (val acc), 50-step mean")
    for ax, task in zip(axes[len(TRAIN_TASKS):], TEST_TASKS, strict=False):
        for i, m in enumerate(METHODS):
            rs = [np.asarray(d["rewards"]) for d in dep if d["task"] == task
                  and d["method"] == m]
            if rs:
                n = min(len(r) for r in rs)
                ax.plot(_smooth(np.mean([r[:n] for r in rs], 0), 20), color=f"C{i}",
                        label=m)
        ax.set_title(f"held out: {task}")
        ax.set_xlabel("step")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    print(f"wrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tables")
    t.add_argument("--depth", type=int, default=3)
    t.add_argument("--out", default=str(DEFAULT_TABLE))
    t.add_argument("--tasks", nargs="*")
    t.add_argument("--max-train", type=int, default=PROTOCOL["max_train"])
    t.add_argument("--limit", type=int, default=0, help="train at most N per task (timing)")
    r = sub.add_parser("run")
    r.add_argument("--table", default=str(DEFAULT_TABLE))
    r.add_argument("--out", default=str(DEFAULT_OUT))
    r.add_argument("--work", default="/tmp/metarl_heldout_runs")
    r.add_argument("--seeds", type=int, default=5)
    r.add_argument("--seed0", type=int, default=0, help="first seed")
    r.add_argument("--steps", type=int, default=200)
    r.add_argument("--meta-steps", type=int, default=1500, help="meta-training steps per task")
    r.add_argument("--meta-rounds", type=int, default=1,
                   help="passes over the training tasks (each visit meta-steps / rounds)")
    r.add_argument("--only", nargs="*", help="methods to run (default all)")
    r.add_argument("--revisit-reward", type=float, default=None,
                   help="meta_a2c's revisit_reward for meta-training, the frozen policy and "
                        "A2C from scratch (their methods get a _rv<value> suffix)")
    lv = sub.add_parser("live")
    lv.add_argument("--table", default=str(DEFAULT_TABLE))
    lv.add_argument("--out", default=str(DEFAULT_OUT))
    lv.add_argument("--work", default="/tmp/metarl_heldout_runs")
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--steps", type=int, default=50)
    lv.add_argument("--tasks", nargs="*")
    lv.add_argument("--meta-rounds", type=int, default=1, help="the policy's meta-training passes")
    lv.add_argument("--revisit-reward", type=float, default=None,
                    help="the policy's revisit_reward (deployed with it)")
    p = sub.add_parser("report")
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--out", nargs="+", default=[str(DEFAULT_OUT)],
                   help="result files (JSON lines) to report together")
    p.add_argument("--md")
    p.add_argument("--png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        {"tables": build_tables, "run": run_all, "live": live, "report": report}[args.cmd](args)
    except NasforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
