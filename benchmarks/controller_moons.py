"""Seed 002 on half-moons: the `default` controller against the faithful `reference_002` preset.

Runs ``configs/moons_reinforce.yaml`` (default preset, 1000 rollouts) and
``configs/moons_reinforce_reference.yaml`` (reference_002, 1500 rollouts) for each seed, then
prints one JSON line with the issue's figures:

* default: the final report's mean test accuracy over the best architecture's retrainings
  (target >= 0.955), and the mean validation reward over rollouts 500-1000;
* reference_002: the mean controller reward (validation accuracy + shaping penalties, what the
  seed's ``rewards_losses.pkl`` stores) over rollouts 1000-1500 averaged over the seeds
  (target in [0.75, 0.92]), and its mean validation reward over rollouts 500-1000 (the default
  must be above it).

Finished runs in ``--out`` are re-used (resumed to their budget), so the script can be re-run.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/controller_moons.py --workers 2
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "default": ROOT / "configs" / "moons_reinforce.yaml",
    "reference_002": ROOT / "configs" / "moons_reinforce_reference.yaml",
}


def _job(preset: str, seed: int, budget: int, out: str, overrides: list[str]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import nasforge
    from nasforge.storage.sqlite import DB_NAME

    run_dir = Path(out) / f"{preset}_s{seed}"
    start = time.time()
    run = nasforge.search(
        CONFIGS[preset], seed=seed, budget=budget, run_dir=run_dir,
        resume=(run_dir / DB_NAME).is_file(), overrides=overrides,
    )
    return {"preset": preset, "seed": seed, "dir": str(run.dir), "seconds": time.time() - start}


def _mean(xs: list[float]) -> float:
    return float(statistics.fmean(xs)) if xs else float("nan")


def figures(run_dir: str) -> dict[str, Any]:
    import nasforge

    run = nasforge.Run(run_dir)
    trials = run.trials
    val = [r.val_acc if r.ok else 0.0 for r in trials]
    reward: dict[int, float] = {}
    for _, _, data in run.series("controller"):
        for n, rw in zip(data["trials"], data["rewards"]):
            reward[n] = rw
    rew = [reward[r.number] for r in trials]
    final = run.final.to_json() if run.final else {}
    greedy = final.get("greedy") or {}
    return {
        "trials": len(trials),
        "trained": sum(1 for r in trials if r.cached_from is None),
        "val_500_1000": _mean(val[500:1000]),
        "val_1000_1500": _mean(val[1000:1500]),
        "reward_500_1000": _mean(rew[500:1000]),
        "reward_1000_1500": _mean(rew[1000:1500]),
        "negative_rewards_after_1000": sum(1 for x in rew[1000:] if x < 0),
        "best_arch": final.get("describe"),
        "best_val": final.get("val_acc"),
        "test_acc": final.get("test_acc"),
        "test_accs": final.get("test_accs"),
        "greedy_arch": greedy.get("describe"),
        "greedy_prob": greedy.get("policy_prob"),
        "greedy_test_acc": greedy.get("test_acc"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget-default", type=int, default=1000)
    ap.add_argument("--budget-reference", type=int, default=1500)
    ap.add_argument("--presets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "controller_moons"))
    ap.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run (e.g. strategy.reevaluate=true)")
    args = ap.parse_args(argv)
    budgets = {"default": args.budget_default, "reference_002": args.budget_reference}
    jobs = [(p, s) for s in args.seeds for p in args.presets]
    start = time.time()
    done: list[dict[str, Any]] = []
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_job, p, s, budgets[p], args.out, args.set) for p, s in jobs]
        for fut in cf.as_completed(futs):
            res = fut.result()
            print(f"# {res['preset']} seed {res['seed']}: {res['seconds']:.0f} s", file=sys.stderr)
            done.append(res)
    per: dict[str, list[dict[str, Any]]] = {p: [] for p in args.presets}
    for res in sorted(done, key=lambda r: (r["preset"], r["seed"])):
        per[res["preset"]].append({"seed": res["seed"], **figures(res["dir"])})
    out: dict[str, Any] = {"benchmark": "controller_moons", "seeds": args.seeds,
                           "wall_seconds": round(time.time() - start, 1), "runs": per}
    if "default" in per:
        d = per["default"]
        out["default_test_acc_mean"] = _mean([r["test_acc"] for r in d])
        out["default_test_acc_min"] = min(r["test_acc"] for r in d)
        out["default_val_500_1000"] = _mean([r["val_500_1000"] for r in d])
    if "reference_002" in per:
        ref = per["reference_002"]
        out["reference_reward_1000_1500"] = _mean([r["reward_1000_1500"] for r in ref])
        out["reference_val_1000_1500"] = _mean([r["val_1000_1500"] for r in ref])
        out["reference_val_500_1000"] = _mean([r["val_500_1000"] for r in ref])
    if "default" in per and "reference_002" in per:
        out["checks"] = {
            "default_test_acc_ge_0.955_every_seed": out["default_test_acc_min"] >= 0.955,
            "default_val_500_1000_above_reference": out["default_val_500_1000"]
            > out["reference_val_500_1000"],
            "reference_reward_1000_1500_in_[0.75,0.92]": 0.75
            <= out["reference_reward_1000_1500"] <= 0.92,
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
