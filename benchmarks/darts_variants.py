"""DARTS variants on digits: each variant x seeds, CPU-sized.

Part 1 (darts space): seconds (wall and CPU) per search epoch, the derived genotype, its number
of skip connections (normal cell) and the retrained network's test accuracy.
Part 2 (the tabulated NB201-style cell space ``digits-nb201``, built by
``configs/tables/digits_nb201.yaml``): the found cell's true (tabulated, mean over table seeds)
validation accuracy and its rank among the table's cells. The searches do not need the table;
ranks are looked up at the end (or later: ``--merge RESULTS.json ... --out ALL.json``).

    nice -n 10 .venv/bin/python benchmarks/darts_variants.py --workers 2
        --out benchmarks/results/darts_variants.json

Every search runs single-threaded in its own process (``--workers`` of them at a time). The
markdown tables are printed and written next to the JSON (``.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "darts (1st order)": {},
    "darts (2nd order)": {"order": 2},
    "darts-": {"darts_minus": {"schedule": "linear", "beta": 1.0, "beta_end": 0.0}},
    "pc-darts": {"pc": {"k": 2, "edge_norm": True}},
    "p-darts": {"pdarts": {"stages": 2, "keep": [3], "layers": [2, 3],
                           "skip_dropout": [0.0, 0.3], "skip_limit": 2}},
    "sharpdarts": {"sharp": {"max_w": True, "cosine_power": True}},
    "tse-darts": {"tse": {"steps": 2}},
}
NB201_PDARTS = {"pdarts": {"stages": 2, "keep": [2], "layers": [1, 2],
                           "skip_dropout": [0.0, 0.3], "skip_limit": 2}}
TABLE = "digits-nb201"
TABLE_CONFIG = "configs/tables/digits_nb201.yaml"



def _run_name(label: str) -> str:
    """A variant label as a run name (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")

def darts_config(variant: str, seed: int, epochs: int) -> dict[str, Any]:
    ops = "sharp" if variant == "sharpdarts" else "darts_small"
    strategy: dict[str, Any] = {
        "name": "darts", "threads": 1, "epochs": epochs, "batch_size": 64, "channels": 8,
        "layers": 3, "w_lr": 0.05, "alpha_lr": 0.003,
        "retrain": {"epochs": 12, "batch_size": 64, "lr": 0.05},
        **VARIANTS[variant],
    }
    return {
        "name": _run_name(f"bench_{variant}"), "seed": seed, "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "darts", "ops": ops, "nodes": 3, "channels": 12, "layers": 5,
                  "reductions": [1, 3]},
        "strategy": strategy, "final": {"seeds": 1},
    }


def table_space(table: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(space, task) of the table: from its meta, or (not built yet) from its config."""
    from nasforge.evaluators.table import resolve_table
    from nasforge.exceptions import ConfigError

    try:
        meta = resolve_table(table).meta
        return meta["space"], meta.get("task") or {"name": "digits", "seed": 0}
    except ConfigError:
        import yaml

        cfg = yaml.safe_load(Path(TABLE_CONFIG).read_text())
        return cfg["space"], cfg["task"]


def table_config(variant: str, seed: int, epochs: int, table: str) -> dict[str, Any]:
    """A search on the table's own space and task; the rank is looked up afterwards."""
    space, task = table_space(table)
    extra = NB201_PDARTS if variant == "p-darts" else VARIANTS[variant]
    return {
        "name": _run_name(f"bench_nb201_{variant}"), "seed": seed, "device": "cpu", "task": task,
        "space": space,
        "strategy": {"name": "darts", "threads": 1, "epochs": epochs, "batch_size": 64,
                     "w_lr": 0.05, "alpha_lr": 0.003, **extra},
        "final": {"seeds": 0},
    }


def rank_rows(rows: list[dict[str, Any]], table: str) -> bool:
    """Fill in the table columns of the table-part rows; False if the table is missing."""
    from nasforge.exceptions import ConfigError
    from nasforge.spaces.base import Architecture, make_space
    from nasforge.strategies.oneshot.darts.oneshot import table_rank

    for r in rows:
        if r["part"] != "table":
            continue
        try:
            space = make_space(table_space(table)[0])
            r.update(table_rank(space, Architecture(tuple(r["arch"])), table))
        except ConfigError as err:
            print(f"table {table!r} not available: {err}")
            return False
    return True


def run_one(part: str, variant: str, seed: int, epochs: int, root: str,
            table: str) -> dict[str, Any]:
    os.environ["OMP_NUM_THREADS"] = "1"
    import nasforge

    cfg = (darts_config(variant, seed, epochs) if part == "darts"
           else table_config(variant, seed, epochs, table))
    run_dir = Path(root) / f"{part}-{variant.replace(' ', '_')}-{seed}"
    start = time.perf_counter()
    run = nasforge.search(cfg, run_dir=run_dir)
    recs = run.trials
    final = run.final
    m = [r.result.metrics for r in recs]
    return {
        "part": part, "variant": variant, "seed": seed, "epochs": len(recs),
        "epoch_seconds": statistics.fmean(r.result.train_seconds for r in recs),
        "epoch_cpu_seconds": statistics.fmean(x["epoch_cpu_seconds"] for x in m),
        "search_val_acc": recs[-1].val_acc, "skip_connects": m[-1]["skip_connects"],
        "arch": list(recs[-1].arch.tokens), "describe": final.describe if final else None,
        "test_acc": final.test_acc if final else None,
        "retrain_val_acc": final.val_acc if final else None
        if part == "darts" else None,
        "table_val_acc": None, "table_rank": None, "table_quantile": None, "table_rows": None,
        "table_optimum": None,
        "wall_seconds": time.perf_counter() - start,
    }


def _ms(xs: list[float], nd: int = 3) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.{nd}f}"
    return f"{statistics.fmean(xs):.{nd}f} ± {statistics.pstdev(xs):.{nd}f}"


def markdown(rows: list[dict[str, Any]], table_name: str = TABLE) -> str:
    out = ["### digits, darts space (3 nodes, supernet C=8 x 3 cells; retrain C=12 x 5 cells)",
           "", "| variant | s / epoch (wall) | CPU s / epoch | x 1st order (CPU) | skips (normal) "
           "| supernet val acc | retrained test acc |", "|---|---|---|---|---|---|---|"]
    darts = [r for r in rows if r["part"] == "darts"]
    base = [r["epoch_cpu_seconds"] for r in darts if r["variant"] == "darts (1st order)"]
    for v in VARIANTS:
        rs = [r for r in darts if r["variant"] == v]
        if not rs:
            continue
        ratio = (statistics.fmean(r["epoch_cpu_seconds"] for r in rs) / statistics.fmean(base)
                 if base else float("nan"))
        out.append(
            f"| {v} | {_ms([r['epoch_seconds'] for r in rs], 2)} | "
            f"{_ms([r['epoch_cpu_seconds'] for r in rs], 2)} | {ratio:.2f} | "
            f"{_ms([r['skip_connects'] for r in rs], 1)} | "
            f"{_ms([r['search_val_acc'] for r in rs])} | {_ms([r['test_acc'] for r in rs])} |")
    out += ["", "Genotypes (seed: cell pair):", ""]
    for r in darts:
        out.append(f"- {r['variant']}, seed {r['seed']}: `{r['describe']}`")
    table = [r for r in rows if r["part"] == "table" and r.get("table_rank") is not None]
    if table:
        n_rows = table[0]["table_rows"]
        opt = table[0]["table_optimum"]
        shown = Path(table_name).stem if table_name.endswith(".npz") else table_name
        out += ["", f"### digits, tabulated NB201-style cell space `{shown}` "
                f"({n_rows} cells, best mean val acc {opt:.4f})", "",
                "| variant | true val acc | rank per seed (1 = best) | best top-% | skips |",
                "|---|---|---|---|---|"]
        for v in VARIANTS:
            rs = [r for r in table if r["variant"] == v]
            if not rs:
                continue
            best_q = min(r["table_quantile"] for r in rs)
            out.append(
                f"| {v} | {_ms([r['table_val_acc'] for r in rs])} | "
                f"{', '.join(str(r['table_rank']) for r in rs)} | {100 * best_q:.1f} % | "
                f"{_ms([r['skip_connects'] for r in rs], 1)} |")
        out += ["", "Cells (NB201 ops in edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2):", ""]
        for r in table:
            out.append(f"- {r['variant']}, seed {r['seed']}: `{' '.join(map(str, r['arch']))}` "
                       f"(true {r['table_val_acc']:.4f}, rank {r['table_rank']})")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6, help="search epochs (darts space)")
    ap.add_argument("--table-epochs", type=int, default=10, help="search epochs (table space)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--parts", nargs="+", default=["darts", "table"], choices=["darts", "table"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table", default=TABLE, help="table name or .npz path (part 2)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="no searches: combine these results files (a later file's rows replace "
                    "earlier rows of the same part, variant and seed), look the table ranks up "
                    "again and write --out (.json and .md)")
    ap.add_argument("--out", default="benchmarks/results/darts_variants.json")
    args = ap.parse_args()
    if args.merge:
        merged: dict[tuple[str, str, int], dict[str, Any]] = {}
        sources = []
        for name in args.merge:
            doc = json.loads(Path(name).read_text())
            sources.append({"file": name, "args": doc.get("args"),
                            "wall_seconds": doc.get("wall_seconds")})
            for r in doc["rows"]:
                merged[(r["part"], r["variant"], r["seed"])] = r
        order = {v: i for i, v in enumerate(VARIANTS)}
        rows: list[dict[str, Any]] = sorted(
            merged.values(), key=lambda r: (r["part"], order[r["variant"]], r["seed"]))
        rank_rows(rows, args.table)
        out = Path(args.out)
        out.write_text(json.dumps({"merged": sources, "rows": rows}, indent=1))
        md = markdown(rows, args.table)
        out.with_suffix(".md").write_text(md)
        print(md)
        return
    jobs = [(part, v, s, args.epochs if part == "darts" else args.table_epochs)
            for part in args.parts for v in args.variants for s in args.seeds]
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="darts_bench_") as root, ProcessPoolExecutor(
        args.workers, mp_context=get_context("spawn")
    ) as pool:
        futures = [pool.submit(run_one, *job, root, args.table) for job in jobs]
        for job, fut in zip(jobs, futures):
            row = fut.result()
            rows.append(row)
            print(f"[{time.perf_counter() - start:7.0f}s] {job[0]} {job[1]} seed {job[2]}: "
                  f"{row['epoch_cpu_seconds']:.2f} CPU s/epoch, skips {row['skip_connects']}, "
                  f"test {row['test_acc']}, arch {row['arch']}", flush=True)
    rank_rows(rows, args.table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"args": vars(args), "wall_seconds": time.perf_counter() - start, "rows": rows}
    out.write_text(json.dumps(doc, indent=1))
    md = markdown(rows, args.table)
    out.with_suffix(".md").write_text(md)
    print(md)
    print(f"total wall {doc['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
