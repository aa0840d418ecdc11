"""PBT-NAS ablation (seed 004's Table 2 form) on digits, Pendulum-v1 and Acrobot-v1, and local vs
Ray timing.

Rows: PBT-NAS (0.4, 0.1), no mixing, copy exactly (1, 0), re-initialise (0, 1), random search and
mutation PBT; columns: the classification task (sklearn digits, test accuracy of the final best
member, no retraining) and the RL tasks (``rl``: Pendulum-v1; ``acrobot``: Acrobot-v1; mean return
of fresh greedy test episodes of the final best member: 100 on Pendulum, 20 on Acrobot); mean ±
std over seeds, and PBT-NAS minus random search paired by seed. Digits and
Pendulum use the configs in ``configs/pbt/`` unchanged (``configs/pbt/digits_*.yaml``,
``configs/rl_pbt_nas.yaml``, ``configs/pbt/rl_*.yaml``); Acrobot uses
``configs/pbt/acrobot_pbt_nas.yaml`` with each variant's overrides (``VARIANT_OVERRIDES``, the
same differences as between the variant files). ``seed`` is set per run, so all variants get the
same training budget (population x rounds x step).

Digits rather than MNIST-5k: on this shared 2-core machine one MNIST-5k epoch of a 16-channel CNN
costs about 15x a digits epoch, which would not fit 36 runs in ~30 minutes.

Usage (nice, one torch thread per run, two runs at a time)::

    nice -n 10 .venv/bin/python benchmarks/pbt_ablation.py --seeds 0 1 2 --workers 2
    nice -n 10 .venv/bin/python benchmarks/pbt_ablation.py --tasks rl --seeds 5 6 7 8 9 \
        --variants pbt_nas random_search --no-timing
    nice -n 10 .venv/bin/python benchmarks/pbt_ablation.py --timing-only

Results are appended to ``--out`` (JSON lines; finished runs are skipped on a re-run), and the
table is printed as markdown.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, str] = {
    "PBT-NAS (0.4, 0.1)": "pbt_nas",
    "No mixing": "no_mixing",
    "Copy exactly (1, 0)": "copy_exact",
    "Re-initialise (0, 1)": "reinit",
    "Random search": "random_search",
    "Mutation PBT": "mutation_pbt",
}
TASKS = {"digits": "Digits test acc %", "rl": "Pendulum test return",
         "acrobot": "Acrobot test return"}
# what each variant changes in the default config (the variant files differ exactly so)
VARIANT_OVERRIDES: dict[str, list[str]] = {
    "pbt_nas": [],
    "no_mixing": ["strategy.mode=no_mixing"],
    "copy_exact": ["strategy.shrink=1.0", "strategy.perturb=0.0"],
    "reinit": ["strategy.shrink=0.0", "strategy.perturb=1.0"],
    "random_search": ["strategy.mode=random"],
    "mutation_pbt": ["strategy.mode=mutation"],
}


def config_path(task: str, variant: str) -> Path:
    if task == "acrobot":
        return ROOT / "configs" / "pbt" / "acrobot_pbt_nas.yaml"
    if task == "rl" and variant == "pbt_nas":
        return ROOT / "configs" / "rl_pbt_nas.yaml"
    return ROOT / "configs" / "pbt" / f"{task}_{variant}.yaml"


def variant_overrides(task: str, variant: str) -> list[str]:
    return VARIANT_OVERRIDES[variant] if task == "acrobot" else []


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_one(task: str, variant: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    """One search in a fresh run directory; returns the measured figures."""
    from nasforge.search import search

    with tempfile.TemporaryDirectory(prefix="pbtab") as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        run = search(config_path(task, variant), seed=seed, run_dir=Path(tmp) / "run",
                     overrides=variant_overrides(task, variant) + overrides)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        final = run.final.to_json() if run.final else {}
        pop = [m["fitness"] for m in final.get("population", [])]
        return {
            "task": task, "variant": variant, "seed": seed, "overrides": overrides,
            "fitness": final.get("fitness"),
            "test": final.get("test_acc", final.get("test_return")),
            "pop_mean": statistics.fmean(pop) if pop else None,
            "population": pop, "arch": final.get("arch"), "restarts": final.get("restarts"),
            "wall_s": wall, "cpu_s": cpu,
        }


def load_done(out: Path) -> list[dict[str, Any]]:
    if not out.is_file():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def ablation(args: argparse.Namespace) -> None:
    done = load_done(args.out)
    have = {(r["task"], r["variant"], r["seed"]) for r in done if not r.get("overrides")}
    todo = [(t, v, s) for t in args.tasks for v in args.variants for s in args.seeds
            if (t, v, s) not in have]
    todo.sort(key=lambda x: (x[2], x[0] != "rl"))  # seed-major, long RL runs first
    print(f"{len(todo)} runs to do ({len(have)} done)", flush=True)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as pool:
        futs = {pool.submit(run_one, t, v, s, []): (t, v, s) for t, v, s in todo}
        for fut in cf.as_completed(futs):
            try:
                rec = fut.result()
            except Exception as err:  # report and go on with the other runs
                print(f"FAILED {futs[fut]}: {type(err).__name__}: {err}", flush=True)
                continue
            with args.out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"{rec['task']:6s} {rec['variant']:14s} seed {rec['seed']}: fitness "
                  f"{rec['fitness']:.4f} test {rec['test']:.4f} ({rec['wall_s']:.0f} s wall, "
                  f"{rec['cpu_s']:.0f} s cpu)", flush=True)


def timing(args: argparse.Namespace) -> None:
    """The default digits config, seed 0, with executor local (1 and 2 workers) and ray (2 CPUs);
    sequential, nothing else of this script running."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rows = []
    with tempfile.TemporaryDirectory(prefix="r", dir="/tmp") as rtmp:
        execs = {
            "local, workers 1": ["executor.name=local", "executor.workers=1"],
            "local, workers 2": ["executor.name=local", "executor.workers=2"],
            "ray, num_cpus 2": ["executor={name: ray, num_cpus: 2, temp_dir: " + rtmp + "}"],
        }
        for task in args.timing_tasks:
            for label, ov in execs.items():
                rec = run_one(task, "pbt_nas", 0, ov)
                rec["executor"] = label
                rows.append(rec)
                with args.out.open("a") as f:
                    f.write(json.dumps({**rec, "timing": True}) + "\n")
                print(f"timing {task} {label}: {rec['wall_s']:.1f} s wall, population "
                      f"{[round(x, 4) for x in rec['population']]}", flush=True)


def table(records: list[dict[str, Any]], seeds: list[int]) -> str:
    def cell(task: str, variant: str, key: str, scale: float, nd: int) -> str:
        vals = [r[key] * scale for r in records if r["task"] == task and r["variant"] == variant
                and not r.get("overrides") and r["seed"] in seeds and r[key] is not None]
        if not vals:
            return "-"
        sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.fmean(vals):.{nd}f} ± {sd:.{nd}f} (n={len(vals)})"

    tasks = [t for t in TASKS if any(r["task"] == t for r in records)]
    scale = {"digits": 100.0}
    nd = {"digits": 2}
    fit = {"digits": "Digits best val acc %", "rl": "Pendulum best fitness",
           "acrobot": "Acrobot best fitness"}
    head = " | ".join(f"{TASKS[t]} | {fit[t]}" for t in tasks)
    lines = [f"| Variant | {head} |", "|---" * (1 + 2 * len(tasks)) + "|"]
    for label, v in VARIANTS.items():
        cells = " | ".join(
            f"{cell(t, v, 'test', scale.get(t, 1.0), nd.get(t, 1))} | "
            f"{cell(t, v, 'fitness', scale.get(t, 1.0), nd.get(t, 1))}" for t in tasks
        )
        lines.append(f"| {label} | {cells} |")
    lines += ["", "Mean fitness of the final population (all 8 members):", "",
              "| Variant | " + " | ".join(fit[t].replace(" best fitness", " return")
                                       .replace(" best val acc %", " val acc %")
                                       for t in tasks) + " |",
              "|---" * (1 + len(tasks)) + "|"]
    for label, v in VARIANTS.items():
        lines.append(f"| {label} | " + " | ".join(
            cell(t, v, "pop_mean", scale.get(t, 1.0), nd.get(t, 1)) for t in tasks) + " |")
    return "\n".join(lines)


def paired(records: list[dict[str, Any]], seeds: list[int], base: str = "random_search") -> str:
    """PBT-NAS minus ``base`` on the seeds both have (same seed = same initial population):
    mean difference +- standard error, and better / equal / worse counts, test and fitness."""
    lines = []
    for task in TASKS:
        by = {(r["variant"], r["seed"]): r for r in records if r["task"] == task
              and not r.get("overrides") and not r.get("timing") and r["seed"] in seeds}
        common = sorted(s for v, s in by if v == "pbt_nas" and (base, s) in by)
        if len(common) < 2:
            continue
        for key in ("test", "fitness"):
            d = [by["pbt_nas", s][key] - by[base, s][key] for s in common]
            se = statistics.stdev(d) / len(d) ** 0.5
            nd = 4 if task == "digits" else 1
            lines.append(
                f"{task} {key}: PBT-NAS - {base} = {statistics.fmean(d):+.{nd}f} +- {se:.{nd}f} "
                f"(s.e., n={len(d)}); better {sum(x > 0 for x in d)}, equal "
                f"{sum(x == 0 for x in d)}, worse {sum(x < 0 for x in d)}")
    return "\n".join(lines)


def timing_table(records: list[dict[str, Any]]) -> str:
    rows = [r for r in records if r.get("timing")]
    if not rows:
        return ""
    lines = ["| Task | Executor | Wall s | Driver CPU s | Final population fitness |",
             "|---|---|---|---|---|"]
    for r in rows:
        pop = ", ".join(f"{x:.4f}" if r["task"] == "digits" else f"{x:.1f}"
                        for x in r["population"])
        lines.append(f"| {r['task']} | {r['executor']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
                     f"| {pop} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["digits", "rl"], choices=list(TASKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS.values()),
                    choices=list(VARIANTS.values()), help="rows to run (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "pbt_ablation.jsonl")
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-tasks", nargs="+", default=["digits"], choices=list(TASKS))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    if not args.table_only:
        if not args.timing_only:
            ablation(args)
        if not args.no_timing:
            timing(args)
    records = load_done(args.out)
    print()
    print(table(records, args.seeds))
    print()
    print(paired(records, args.seeds))
    print()
    print(timing_table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
