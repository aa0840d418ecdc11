"""The tabular space vs scikit-learn on the same split (issue 17, item 2).

For each data set (sklearn's bundled sets, standardised on the train split, the task's own split
seed 0 / 60-20-20), run the default tabular config (configs/tabular.yaml: random search over the
`tabular` MLP space, 100 trials, top-5 retrained with 3 seeds) with search seeds 0..S-1 and
compare the test score of the pick with LogisticRegression / Ridge, MLPClassifier / MLPRegressor
and HistGradientBoosting fitted on the same training rows (sklearn defaults).

    nice -n 10 python benchmarks/tabular_vs_sklearn.py --datasets breast_cancer iris wine \
        --seeds 3 --out benchmarks/results/tabular_vs_sklearn.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import nasforge
from nasforge.baselines import baselines
from nasforge.data import make_task

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["breast_cancer", "iris", "wine"])
    ap.add_argument("--seeds", type=int, default=3, help="search seeds 0..S-1")
    ap.add_argument("--budget", type=int, default=100, help="trials per search")
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "tabular.yaml"))
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--out", default=str(HERE / "results" / "tabular_vs_sklearn.json"))
    args = ap.parse_args()
    out = Path(args.out)
    results: dict = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("datasets", {})
    results["config"] = args.config
    results["overrides"] = args.set
    start_wall = time.time()
    for ds in args.datasets:
        task = make_task({"name": "sklearn", "dataset": ds})
        reg = task.kind == "regression"
        metric = "rmse" if reg else "acc"
        base = baselines(task, extra=True) or {}
        runs = []
        for seed in range(args.seeds):
            t0 = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                over = [f"task.dataset={ds}", *args.set]
                if reg:
                    over.append("objective=val_rmse")
                run = nasforge.search(
                    args.config, budget=args.budget, seed=seed, run_dir=Path(tmp) / "run",
                    overrides=over, progress=False,
                )
                s = run.summary()
            best = s["best"]
            tm = best.get("test_metrics") or {}
            runs.append({
                "seed": seed,
                "arch": best.get("describe"),
                "test": tm.get(f"test_{metric}", best.get("test_score")),
                "objective": s["objective"]["name"],
                "val": best.get("score"),
                "wall_s": round(time.time() - t0, 1),
            })
            print(ds, runs[-1], flush=True)
        tests = [r["test"] for r in runs]
        best_base = (min if reg else max)(v[f"test_{metric}"] for v in base.values())
        mean = statistics.fmean(tests)
        gap = (best_base - mean) if not reg else (mean - best_base)
        results["datasets"][ds] = {
            "kind": task.kind,
            "metric": f"test_{metric}",
            "rows": {"train": len(task.train), "val": len(task.val), "test": len(task.test)},
            "searched_mean": mean,
            "searched_std": statistics.pstdev(tests),
            "runs": runs,
            "baselines": base,
            "best_baseline": best_base,
            "gap_to_best_baseline": gap,  # positive: the network is worse
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    results.setdefault("timing", []).append({
        "datasets": args.datasets,
        "wall_s": round(time.time() - start_wall, 1),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
        "load": os.getloadavg(),
    })
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    out.with_suffix(".md").write_text(table(results) + "\n")


def table(results: dict) -> str:
    lines = [
        "| data set | metric | searched (mean +- std over seeds) | logistic/ridge | sklearn MLP "
        "| hist. gradient boosting | gap to best baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds, r in results["datasets"].items():
        m = r["metric"]
        b = r["baselines"]
        lin = b.get("logistic_regression", b.get("ridge", {})).get(m)
        cells = [
            ds, m, f"{r['searched_mean']:.4f} +- {r['searched_std']:.4f}",
            f"{lin:.4f}" if lin is not None else "-",
            f"{b.get('mlp_sklearn', {}).get(m, float('nan')):.4f}",
            f"{b.get('gradient_boosting', {}).get(m, float('nan')):.4f}",
            f"{r['gap_to_best_baseline']:+.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
