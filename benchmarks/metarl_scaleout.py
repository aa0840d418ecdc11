"""Environment steps per second of ``meta_a2c`` with real child training (seed 001's scale-out).

``n_envs`` copies of the digits environment step in lockstep (synchronous A2C); the child
trainings of each lockstep go through the run's executor (``local`` with 1 or 2 worker
processes, one torch thread each). Every configuration starts with an empty reward cache, so
each new network is trained (TrainReward as in the configs: 2 epochs on at most ``--max-train``
rows, dense 1024). Reported per configuration: env steps, trainings, wall s (the whole search,
worker start-up included) and steps/s, steady-state steps/s (first to last stored step), the
driver's CPU s, the workers' CPU s, and the load average.

    nice -n 10 python benchmarks/metarl_scaleout.py --steps 60 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

from nasforge.run import Run
from nasforge.search import search

OUT = Path(__file__).resolve().parent / "results" / "metarl_scaleout.jsonl"


def one(n_envs: int, workers: int, steps: int, max_train: int, seed: int, work: Path) -> dict:
    rdir = work / f"n{n_envs}_w{workers}_s{seed}"
    shutil.rmtree(rdir, ignore_errors=True)
    cfg = {"name": "metarl_scaleout", "seed": seed, "budget": steps, "device": "cpu",
           "task": {"name": "digits"},
           "strategy": {"name": "meta_a2c", "n_envs": n_envs, "final": {"top": 0},
                        "reward": {"kind": "train", "epochs": 2, "max_train": max_train}},
           "executor": {"name": "local", "workers": workers, "threads_per_worker": 1},
           "final": {"seeds": 1}}
    c0 = time.process_time()
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    search(cfg, run_dir=rdir, progress=False)
    wall = time.perf_counter() - w0
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    trials = Run(rdir).trials
    trained = sum(1 for r in trials if not r.result.metrics.get("cached"))
    # steady state: from the first stored step to the last (worker start-up left out)
    t_first = min(r.finished_at for r in trials)
    t_last = max(r.finished_at for r in trials)
    first_batch = sum(1 for r in trials if r.finished_at == t_first)
    shutil.rmtree(rdir, ignore_errors=True)
    return {"n_envs": n_envs, "workers": workers, "seed": seed, "steps": len(trials),
            "trainings": trained, "wall_s": wall, "steps_per_s": len(trials) / wall,
            "steady_steps_per_s": (len(trials) - first_batch) / max(1e-9, t_last - t_first),
            "driver_cpu_s": time.process_time() - c0,
            "worker_cpu_s": (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime),
            "load1": os.getloadavg()[0], "max_train": max_train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--max-train", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="seeds seed, seed+1, ...")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--work", default="/tmp/metarl_scaleout_runs")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(args.repeats):
        for n_envs, workers in ((1, 1), (2, 1), (2, 2)):
            doc = one(n_envs, workers, args.steps, args.max_train, args.seed + rep,
                      Path(args.work))
            with out.open("a") as f:
                f.write(json.dumps(doc) + "\n")
            print(json.dumps(doc), flush=True)


if __name__ == "__main__":
    main()
