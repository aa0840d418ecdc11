"""MetaNAS with and without meta-RL pre-optimisation (§1.4) at the tiny CPU scale, resumable.

Four variants on the TripleMNIST-style set (5-way 1-shot, 14x14, C=4, 2 cells) at the ``tiny``
scale of ``benchmarks/metanas.py``: no pre-optimisation, the random policy, the PPO policy with
the estimation bonus (``reference``, Q8) and without it (``default``). The pre-optimiser is
shrunk to fit one CPU core: each training trial is 2 x (2 episodes, PPO update), a meta-test
trial 2 episodes, an episode at most 3 estimations (the baseline and 2 rewarded); the agent's
network and PPO constants are the seed's. Usage::

    nice -n 10 python benchmarks/preopt_metanas.py --out benchmarks/results/preopt_metanas.jsonl \
        [--variants none random ppo_bonus ppo] [--seeds 1 2] [--eval-tasks 100]

Each finished (variant, seed) run appends one JSON line to ``--out`` (meta-test accuracy over
``eval_tasks`` test tasks with its 95 % interval, sparse parameters of the meta-model, the
pre-optimiser's mean start and best estimates at the final meta-test, CPU and wall seconds, the
load average); a rerun skips the lines already there and resumes each run directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nasforge.run import Run  # noqa: E402
from nasforge.search import search  # noqa: E402

SPACE = {"name": "darts", "ops": "fewshot", "nodes": 3, "channels": 8, "layers": 2,
         "reductions": [1], "channel_growth": 1}
TINY: dict[str, Any] = dict(  # benchmarks/metanas.py's "tiny" scale
    meta_epochs=30, warm_up_epochs=10, eval_freq=10, meta_batch_size=2, test_meta_batch_size=5,
    task_train_steps=3, test_task_train_steps=10, train_shots=3, q_query=1, batch_size=10,
    batch_size_test=5, channels=4, layers=2, reductions=[1], w_lr=0.01, alpha_lr=0.01,
    threads=1, n_way=5, k_shot=1)
SMALL = {"agent": {"updates": 2, "episodes_per_update": 2, "test_episodes": 2},
         "max_estimations": 3}
VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "random": {"preopt": "random", "preopt_settings": {**SMALL, "preset": "default"}},
    "ppo_bonus": {"preopt": "meta_rl", "preopt_settings": {**SMALL, "preset": "reference"}},
    "ppo": {"preopt": "meta_rl", "preopt_settings": {**SMALL, "preset": "default"}},
}
LABELS = {"none": "no pre-optimisation", "random": "random policy",
          "ppo_bonus": "PPO, estimation bonus 0.2 (reference, Q8)",
          "ppo": "PPO, no bonus (default)"}


def run_one(variant: str, seed: int, eval_tasks: int, work: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": f"preopt_{variant}_s{seed}", "seed": seed,
        "task": {"name": "triple_mnist", "per_class": 10, "size": 14, "seed": 0},
        "space": SPACE,
        "strategy": {"name": "metanas", **TINY, "eval_tasks": eval_tasks, **VARIANTS[variant]}}
    rdir = work / cfg["name"]
    t0, c0 = time.perf_counter(), time.process_time()
    search(cfg, run_dir=rdir, resume=(rdir / "run.sqlite").exists(), progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    final = Run(rdir).meta("final") or {}
    pre = final.get("preopt") or {}
    return {"variant": variant, "seed": seed, "scale": "tiny", "test_acc": final.get("test_acc"),
            "ci95": final.get("test_ci95"), "tasks": final.get("final_eval_tasks"),
            "sparse_params": final.get("sparse_params"),
            "dense_params": final.get("dense_params"),
            "meta_test_accs": final.get("meta_test_accs"),
            "preopt_start": pre.get("final_start"), "preopt_best": pre.get("final_best"),
            "preopt_return": pre.get("final_return"), "agent_updates": pre.get("agent_updates"),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load": os.getloadavg(),
            "genotype": final.get("genotype")}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per variant, mean over seeds of the accuracy (95 % interval: the mean of the
    per-seed task intervals) and of the sparse parameters, with the per-seed values."""
    out = ["| variant | seeds | meta-test acc (95 % CI) | per seed | sparse params | per seed "
           "| preopt estimate start -> best | CPU s |", "|---|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["seed"])
        if not rs:
            continue
        acc = statistics.fmean(r["test_acc"] for r in rs)
        ci = statistics.fmean(r["ci95"] for r in rs)
        sp = statistics.fmean(r["sparse_params"] for r in rs)
        est = "-" if rs[0]["preopt_start"] is None else "{:.3f} -> {:.3f}".format(
            statistics.fmean(r["preopt_start"] for r in rs),
            statistics.fmean(r["preopt_best"] for r in rs))
        out.append(
            f"| {LABELS[v]} | {len(rs)} | {acc:.3f} ± {ci:.3f} | "
            + " / ".join(f"{r['test_acc']:.3f}" for r in rs) + f" | {sp:.0f} | "
            + " / ".join(str(r["sparse_params"]) for r in rs) + f" | {est} | "
            + f"{statistics.fmean(r['cpu_s'] for r in rs):.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/preopt_metanas.jsonl")
    ap.add_argument("--work", type=Path, default=Path("/tmp/nasforge_preopt_bench"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--eval-tasks", type=int, default=100)
    ap.add_argument("--table", action="store_true", help="print the table of --out and stop")
    a = ap.parse_args()
    rows = [json.loads(x) for x in a.out.read_text().splitlines()] if a.out.is_file() else []
    if a.table:
        print(table(rows))
        return
    done = {(r["variant"], r["seed"]) for r in rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:  # seed-major: a partial benchmark has every variant of a seed
        for variant in a.variants:
            if (variant, seed) in done:
                continue
            row = run_one(variant, seed, a.eval_tasks, a.work)
            with a.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("variant", "seed", "test_acc", "ci95",
                                                  "sparse_params", "wall_s", "cpu_s")}),
                  flush=True)
    print(table(rows))
    if any(not math.isfinite(r["test_acc"]) for r in rows):
        print("warning: a run has no final accuracy", file=sys.stderr)


if __name__ == "__main__":
    main()
