"""Seed 002's full experiment: 5000 REINFORCE rollouts on half-moons, timed end to end (issue #4).

Runs ``configs/moons_reinforce.yaml`` (the controller's ``default`` preset: masking grammar,
EMA baseline, best-epoch reward; seed 002's child training: Adam 1e-2, minibatch 32, up to 100
epochs, patience 10) for ``--budget`` rollouts. The controller asks M architectures per update
(``strategy.batch_size``: the preset's 8 unless ``--batch-size`` is given), the batched trainer
trains the new ones of each ask as one population, and the reward cache re-uses repeated
architectures. The timing covers
everything ``nasforge search`` does: loading, the search, and the final report (the top
``final.candidates`` architectures retrained with ``final.seeds`` seeds, test accuracy of the
chosen one, plus the controller's greedy decode).

Last line: one JSON object with ``seconds`` and ``best_test_acc`` (the final report's mean test
accuracy over the chosen architecture's retrainings), plus context (load, cache hits, ...).

    nice -n 10 .venv/bin/python benchmarks/seed002_full.py
    nice -n 10 .venv/bin/python benchmarks/seed002_full.py --workers 2     # 2-process pool
    .venv/bin/python benchmarks/seed002_full.py --budget 200                # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "moons_reinforce.yaml"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=5000, help="rollouts")
    ap.add_argument(
        "--batch-size", type=int, default=None,
        help="M: rollouts per controller ask (default: the preset's, 8)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="local executor processes")
    ap.add_argument("--trainer", default="auto", choices=["auto", "batched", "single"])
    ap.add_argument("--run-dir", default=None, help="default: a temporary folder, removed")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    load0 = os.getloadavg()
    start_wall, start_cpu = time.perf_counter(), time.process_time()

    import nasforge

    tmp = None
    run_dir = args.run_dir
    if run_dir is None:
        tmp = tempfile.mkdtemp(prefix="seed002_")
        run_dir = str(Path(tmp) / "run")
    overrides = [
        f"evaluator.trainer={args.trainer}",
        "executor.name=local",
        f"executor.workers={args.workers}",
    ]
    if args.workers > 1:
        overrides.append("executor.threads_per_worker=1")
    if args.batch_size is not None:
        overrides.append(f"strategy.batch_size={args.batch_size}")
    try:
        run = nasforge.search(
            CONFIG, budget=args.budget, seed=args.seed, run_dir=run_dir, overrides=overrides
        )
        seconds = time.perf_counter() - start_wall
        cpu = time.process_time() - start_cpu
        trials = run.trials
        final = run.final.to_json() if run.final else {}
        batch_size = (run.meta("controller") or {}).get("batch_size")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    cached = sum(1 for t in trials if t.cached_from is not None)
    trained = [t for t in trials if t.cached_from is None]
    out = {
        "seconds": round(seconds, 1),
        "best_test_acc": final.get("test_acc"),
        "best_arch": final.get("arch"),
        "best_val_acc": final.get("val_acc"),
        "test_accs": final.get("test_accs"),
        "greedy_test_acc": (final.get("greedy") or {}).get("test_acc"),
        "rollouts": len(trials),
        "trained": len(trained),
        "cached": cached,
        "failed": sum(1 for t in trials if not t.ok),
        "batch_size": batch_size,
        "workers": args.workers,
        "trainer": args.trainer,
        "driver_cpu_seconds": round(cpu, 1),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
