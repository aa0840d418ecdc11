"""Children per second on one fixed list of seed-002 architectures (issue #4).

Four ways to train the same list of architectures, with the same training settings (seed 002's:
Adam lr 1e-2, minibatch 32, cross-entropy, up to ``--max-epochs`` epochs, early stopping after
``--patience`` epochs without a strict improvement of the dev accuracy, reward = the last
epoch's dev accuracy as an unweighted mean over shuffled dev batches of 32):

  a. ``seed_loop``: a faithful one-by-one loop written like seed 002's code: torch DataLoaders
     (batch 32, shuffle) over TensorDatasets for train and dev, ``torch.manual_seed(seed)``.
  b. nasforge one by one: ``TrainEvaluator(trainer="single")`` (tensor-resident data).
  c. nasforge batched: ``TrainEvaluator(trainer="batched")`` (stacked populations).
  d. c plus a 2-process ``LocalExecutor`` pool (1 torch thread each). The pool is started and
     warmed on 2 children before the clock starts (a search keeps its pool for the whole run);
     the start-up time is reported as ``pool_start_seconds``.

The list: ``--n`` architectures sampled uniformly, decision by decision, from seed 002's space
(``mlp``, free grammar, at most 6 tokens) with ``numpy.random.default_rng(--seed)``; child ``i``
trains with seed ``1000 + i`` in every mode. Single-process modes run with 1 torch thread.

Output: one line per mode, then one JSON line with ``speedup`` (best of c, d over a, children
per second) and ``acc_gap`` (largest |mean val acc - mean val acc of a| over b, c, d).

    nice -n 10 .venv/bin/python benchmarks/eval_throughput.py            # the full measurement
    .venv/bin/python benchmarks/eval_throughput.py --n 16 --max-epochs 5  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nasforge.data.base import Task, make_task
from nasforge.evaluators.base import Result
from nasforge.evaluators.train import TrainEvaluator
from nasforge.executors.local import LocalExecutor
from nasforge.spaces.base import Architecture
from nasforge.spaces.sequence import SequenceSpace


def load() -> float:
    return os.getloadavg()[0]


def seed_loop(
    space: SequenceSpace, task: Task, arch: Architecture, seed: int, max_epochs: int,
    patience: int,
) -> float:
    """Mode a: one child as seed 002 trains it (DataLoaders, Adam 1e-2, last-epoch reward)."""
    torch.manual_seed(seed)
    model = space.build(arch, task.input_shape, task.num_classes)
    train = DataLoader(TensorDataset(task.train.x, task.train.y), batch_size=32, shuffle=True)
    dev = DataLoader(TensorDataset(task.val.x, task.val.y), batch_size=32, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    best, bad, acc = -1.0, 0, 0.0
    for _ in range(max_epochs):
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        accs = []
        with torch.no_grad():
            for x, y in dev:
                accs.append((model(x).argmax(1) == y).float().mean().item())
        acc = sum(accs) / len(accs)
        if acc > best:
            best, bad = acc, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return acc


def timed(fn: Callable[[], list[float | None]]) -> dict[str, Any]:
    l0 = load()
    w0, c0 = time.perf_counter(), time.process_time()
    accs = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    ok = [a for a in accs if a is not None]
    return {
        "seconds": round(wall, 2),
        "driver_cpu_seconds": round(cpu, 2),
        "children_per_s": round(len(accs) / wall, 3),
        "mean_val_acc": round(statistics.fmean(ok), 4) if ok else None,
        "failed": len(accs) - len(ok),
        "load_before": round(l0, 2),
        "load_after": round(load(), 2),
    }


def accs_of(results: list[Result]) -> list[float | None]:
    return [r.val_acc if r.ok else None for r in results]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="architectures in the list")
    ap.add_argument("--seed", type=int, default=0, help="seed of the architecture list")
    ap.add_argument("--max-epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2, help="pool size of mode d")
    ap.add_argument("--modes", default="abcd", help="subset of abcd to run")
    ap.add_argument("--bucket", default="auto", choices=["auto", "merge", "shape"],
                    help="batched trainer grouping of modes c and d")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = make_task({"name": "moons"})
    space = SequenceSpace(grammar="free", max_len=6)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.n)]
    seeds = [1000 + i for i in range(args.n)]
    common = dict(
        optimizer="adam", lr=1e-2, batch_size=32, max_epochs=args.max_epochs,
        patience=args.patience, reward="last", val_metric="batch_mean", val_batch_size=32,
    )
    single = TrainEvaluator(space=space, task=task, trainer="single", **common)
    batched = TrainEvaluator(
        space=space, task=task, trainer="batched", bucket=args.bucket, **common
    )

    pool = LocalExecutor(workers=args.workers, threads_per_worker=1)

    def run_pool() -> list[float | None]:
        got = dict(pool.map(batched, archs, seeds))
        return accs_of([got[i] for i in range(len(archs))])

    modes: dict[str, tuple[str, Callable[[], list[float | None]]]] = {
        "a": ("seed-style DataLoader loop, one by one", lambda: [
            seed_loop(space, task, a, s, args.max_epochs, args.patience)
            for a, s in zip(archs, seeds)
        ]),
        "b": ("nasforge one by one (trainer: single)",
              lambda: accs_of(single.evaluate_batch(archs, seeds))),
        "c": ("nasforge batched (trainer: batched)",
              lambda: accs_of(batched.evaluate_batch(archs, seeds))),
        "d": (f"nasforge batched + {args.workers}-process pool", run_pool),
    }
    batched.evaluate_batch(archs[:2], seeds[:2])  # warm up lazy imports / kernels once
    out: dict[str, Any] = {
        "n": args.n, "torch_threads": 1, "cores": os.cpu_count(), "bucket": args.bucket,
    }
    for key in args.modes:
        label, fn = modes[key]
        if key == "d":  # start the pool (spawn, imports) and warm both workers: not timed
            t0 = time.perf_counter()
            list(pool.map(batched, archs[: args.workers], seeds[: args.workers]))
            out["pool_start_seconds"] = round(time.perf_counter() - t0, 2)
        out[key] = timed(fn)
        print(f"{key}. {label}: {json.dumps(out[key])}", flush=True)
    pool.close()
    if "a" in out:
        ref = out["a"]
        fast = [out[k]["children_per_s"] for k in "cd" if k in out]
        if fast:
            out["speedup"] = round(max(fast) / ref["children_per_s"], 2)
        gaps = [abs(out[k]["mean_val_acc"] - ref["mean_val_acc"]) for k in "bcd" if k in out]
        if gaps:
            out["acc_gap"] = round(max(gaps), 4)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
