"""Seed 001's experiment 3 at CPU scale: ``meta_a2c`` in the 14-action multi-branch NSC space
with the pointer-move reward discount sigma in {0, 0.1}.

One run per (sigma, seed) on digits with real child training (TrainReward: 2 epochs on at most
``--max-train`` rows, val accuracy; default preset: same padding, action mask, tau = 20).
Reported per run: the best network found (reward, NSC rows, whether it is multi-branch), and the
share of multi-branch structures (a network holding an add or concat row) among the networks
of each window of ``--window`` steps, plus the share of pointer moves. JSON lines appended per
run (resumable: finished (sigma, seed) pairs are skipped).

    nice -n 10 python benchmarks/metarl_multibranch.py --steps 300 --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from nasforge.run import Run
from nasforge.search import search
from nasforge.strategies.metarl.report import nsc_rows

OUT = Path(__file__).resolve().parent / "results" / "metarl_multibranch.jsonl"
ADD, CONCAT = 5, 6


def _multi(rows: list[list[int]]) -> bool:
    return any(r[1] in (ADD, CONCAT) for r in rows)


def one(sigma: float, seed: int, steps: int, max_train: int, window: int, work: Path) -> dict:
    rdir = work / f"sigma{sigma}_s{seed}"
    shutil.rmtree(rdir, ignore_errors=True)
    cfg = {"name": "metarl_multibranch", "seed": seed, "budget": steps, "device": "cpu",
           "task": {"name": "digits"},
           "strategy": {"name": "meta_a2c", "space": "multibranch", "preset": "default",
                        "sigma": sigma, "final": {"top": 0},
                        "reward": {"kind": "train", "epochs": 2, "max_train": max_train}},
           "final": {"seeds": 1}}
    c0, w0 = time.process_time(), time.perf_counter()
    search(cfg, run_dir=rdir, progress=False)
    trials = Run(rdir).trials
    rows = [nsc_rows(r.arch.tokens) for r in trials]
    ok = [r for r in trials if r.ok]
    best = max(ok, key=lambda r: (r.val_acc, -r.number))
    share, ptr = [], []
    for i in range(0, len(trials), window):
        chunk = range(i, min(len(trials), i + window))
        share.append(sum(_multi(rows[j]) for j in chunk) / len(chunk))
        ptr.append(sum(str(trials[j].result.metrics["action"]).startswith("p")
                       for j in chunk) / len(chunk))
    doc = {"sigma": sigma, "seed": seed, "steps": len(trials), "window": window,
           "best_reward": best.val_acc, "best_trial": best.number,
           "best_nsc": nsc_rows(best.arch.tokens), "best_is_multibranch":
           _multi(nsc_rows(best.arch.tokens)), "multibranch_share": share,
           "pointer_share": ptr,
           "trainings": sum(1 for r in trials if not r.result.metrics.get("cached")),
           "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
           "load1": os.getloadavg()[0], "max_train": max_train}
    shutil.rmtree(rdir, ignore_errors=True)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--max-train", type=int, default=500)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--work", default="/tmp/metarl_multibranch_runs")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    have = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            have.add((d["sigma"], d["seed"]))
    for seed in range(args.seeds):
        for sigma in (0.0, 0.1):
            if (sigma, seed) in have:
                continue
            doc = one(sigma, seed, args.steps, args.max_train, args.window, Path(args.work))
            with out.open("a") as f:
                f.write(json.dumps(doc) + "\n")
            print(json.dumps({k: v for k, v in doc.items()}), flush=True)


if __name__ == "__main__":
    main()
