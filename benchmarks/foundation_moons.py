"""Issue 2 acceptance: random search on seed 002's space, 100 trials, best test accuracy.

    python benchmarks/foundation_moons.py [--budget 100] [--seeds 0]

Prints one JSON line per run seed and a final JSON line with the mean test accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import nasforge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    accs: list[float] = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run = nasforge.search(
                "configs/moons_random.yaml", budget=args.budget, seed=seed, run_dir=Path(tmp) / "r"
            )
            report = run.final
            final = report.to_json() if report else {}
            row = {
                "seed": seed,
                "budget": args.budget,
                "best": final.get("arch"),
                "val_acc": final.get("val_acc"),
                "test_acc": final.get("test_acc"),
                "test_accs": final.get("test_accs"),
                "seconds": round(time.perf_counter() - start, 1),
            }
            if report is not None and report.test_acc is not None:
                accs.append(report.test_acc)
            print(json.dumps(row), flush=True)
    # a seed without a test score (no report, or a search that failed) leaves the mean unknown
    mean = statistics.fmean(accs) if len(accs) == len(args.seeds) else None
    print(json.dumps({"mean_test_acc": mean, "seeds": args.seeds}))


if __name__ == "__main__":
    main()
