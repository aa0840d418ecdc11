"""PBT-NAS on GANs (seed 004, issue 16) at CPU scale: PBT-NAS vs random search vs mutation PBT,
and the ablations (no mixing, copy exactly (1, 0), re-initialise (0, 1)).

Every variant trains the same budget (population x rounds x ``batches_per_unit`` discriminator
batches) from the same seeded initial population; a row's score is the final FID of the final
population's best member (``final_fid``, ``final_fid_samples`` EMA-generator samples against the
training images). FIDs are in the features of a small classifier trained on the task's images,
**not comparable with published Inception FIDs**. Reported: mean ± std over seeds, and each
variant minus random search paired by seed (negative = better than random search), with CPU s and
wall s per run and the machine's load average.

Presets: ``mnist`` (MNIST-5k padded to 32x32, gan_hard at widths 8, population 4 x 4 rounds of
40 D batches of 16, G-EMA decay 0.9: a member makes 32 G updates in its life, far inside the
seed's 0.999 horizon of ~1000, where the EMA generator would stay near its initialisation) and
``digits`` (sklearn digits 8x8, a smaller and faster check). The FID classifier is kept in
``--feature-cache`` (trained once for all runs); each run's sample grid is copied to
``--samples``, and ``--best-grid`` copies PBT-NAS's best one.

Usage (nice, one torch thread, one run at a time)::

    nice -n 10 .venv/bin/python benchmarks/pbt_gan.py --preset mnist --seeds 0 1 2 --workers 1 \
        --best-grid docs/img/pbt_gan_mnist5k_grid.png

Results are appended to ``--out`` (JSON lines; finished runs are skipped on a re-run, so a killed
benchmark resumes), and the table is printed as markdown.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {  # row -> strategy overrides
    "PBT-NAS (0.4, 0.1)": {},
    "No mixing": {"mode": "no_mixing"},
    "Copy exactly (1, 0)": {"shrink": 1.0, "perturb": 0.0},
    "Re-initialise (0, 1)": {"shrink": 0.0, "perturb": 1.0},
    "Random search": {"mode": "random"},
    "Mutation PBT": {"mode": "mutation"},
}
PRESETS: dict[str, dict[str, Any]] = {
    "mnist": {
        "task": {"name": "mnist5k32", "seed": 0},
        "space": {"name": "gan_hard", "resolution": 32, "bottom": 4, "channels": 8,
                  "df_channels": 8, "latent": 15},
        "population": 4, "rounds": 4,
        "evaluator": {"name": "pbt_gan", "batch_size": 16, "batches_per_unit": 40, "ema": 0.9,
                      "fid_samples": 256, "final_fid_samples": 1000},
    },
    "digits": {
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "gan_hard", "resolution": 8, "bottom": 1, "channels": 8,
                  "df_channels": 8, "latent": 12, "d_blocks": 2},
        "population": 4, "rounds": 4,
        "evaluator": {"name": "pbt_gan", "batch_size": 32, "batches_per_unit": 40, "lr": 1e-3,
                      "fid_samples": 256, "final_fid_samples": 1000, "feature_dim": 16},
    },
}


CACHE = Path(tempfile.gettempdir()) / "nasforge-fid-cache"
SAMPLES = Path(tempfile.gettempdir()) / "nasforge-pbt-gan-samples"


def config(preset: str, variant: str, seed: int, cache: Path | None = None) -> dict[str, Any]:
    """One run's config; ``cache`` keeps the FID classifier on disk (trained once for all runs:
    the same seeded classifier, so the FIDs are those of a run without it)."""
    p = PRESETS[preset]
    ev = {**p["evaluator"], **({"feature_cache": str(cache)} if cache is not None else {})}
    return {
        "name": f"gan_{preset}", "seed": seed, "budget": p["population"] * p["rounds"],
        "task": p["task"], "space": p["space"], "evaluator": ev,
        "strategy": {"name": "pbt_nas", "population_size": p["population"],
                     **VARIANTS[variant]},
        "executor": {"name": "local", "workers": 1},
    }


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _slug(preset: str, variant: str, seed: int) -> str:
    v = "".join(c if c.isalnum() else "_" for c in variant.lower()).strip("_")
    return f"{preset}_{v}_{seed}"


def run_one(preset: str, variant: str, seed: int, cache: Path | None = None,
            samples: Path | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from nasforge.search import search

    t0, c0 = time.perf_counter(), time.process_time()
    grid = None
    with tempfile.TemporaryDirectory() as tmp:
        run = search(config(preset, variant, seed, cache), run_dir=Path(tmp) / "r",
                     progress=False)
        final = run.meta("final") or {}  # the stored report's layout
        fids = [t.result.metrics.get("fid") for t in run.trials]
        png = Path(tmp) / "r" / "samples.png"
        if samples is not None and png.is_file():
            samples.mkdir(parents=True, exist_ok=True)
            grid = str(samples / f"{_slug(preset, variant, seed)}.png")
            shutil.copyfile(png, grid)
    return {"preset": preset, "variant": variant, "seed": seed,
            "final_fid": final.get("final_fid"), "fitness_fid": -float(final["val_acc"]),
            "test_fid": final.get("test_acc"), "samples": grid,
            "round_best_fid": _round_best(fids, PRESETS[preset]["population"]),
            "cpu_s": round(time.process_time() - c0, 1),
            "wall_s": round(time.perf_counter() - t0, 1), "load": os.getloadavg()}


def _round_best(fids: list[Any], pop: int) -> list[float]:
    rows = [fids[i:i + pop] for i in range(0, len(fids), pop)]
    return [round(min(float(f) for f in r if f is not None), 4) for r in rows]


def load_done(out: Path) -> list[dict[str, Any]]:
    if not out.is_file():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _ms(v: list[float]) -> str:
    if not v:
        return "-"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.3f} ± {sd:.3f}"


def table(records: list[dict[str, Any]], preset: str, seeds: list[int]) -> str:
    by = {(r["variant"], r["seed"]): r for r in records if r["preset"] == preset}
    lines = [f"| Variant ({preset}) | final FID (lower is better) | minus random, paired | "
             "better than random (seeds) | CPU s / run | wall s / run | n |",
             "|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        done = [by[(v, s)] for s in seeds if (v, s) in by]
        fid = [float(r["final_fid"]) for r in done]
        pairs = [(float(by[(v, s)]["final_fid"]) - float(by[("Random search", s)]["final_fid"]))
                 for s in seeds if (v, s) in by and ("Random search", s) in by]
        wins = sum(1 for d in pairs if d < 0)
        cpu = statistics.mean(r["cpu_s"] for r in done) if done else float("nan")
        wall = statistics.mean(r["wall_s"] for r in done) if done else float("nan")
        lines.append(f"| {v} | {_ms(fid)} | {_ms(pairs)} | {wins}/{len(pairs)} | {cpu:.0f} | "
                     f"{wall:.0f} | {len(done)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mnist")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pbt_gan.jsonl")
    ap.add_argument("--feature-cache", type=Path, default=CACHE,
                    help="folder keeping the FID classifier across runs (evaluator.feature_cache)")
    ap.add_argument("--samples", type=Path, default=SAMPLES,
                    help="folder for each run's sample grid (samples.png)")
    ap.add_argument("--best-grid", type=Path, default=None,
                    help="copy the sample grid of PBT-NAS's best run (lowest final FID) here")
    ap.add_argument("--table-only", action="store_true", help="print the table, run nothing")
    args = ap.parse_args(argv)
    if args.table_only:
        print(table(load_done(args.out), args.preset, args.seeds))
        return 0
    done = load_done(args.out)
    have = {(r["preset"], r["variant"], r["seed"]) for r in done}
    # seeds outermost, so a partial run still has complete pairs
    todo = [(args.preset, v, s) for s in args.seeds for v in args.variants
            if (args.preset, v, s) not in have]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as ex:
        futs = [ex.submit(run_one, *t, args.feature_cache, args.samples) for t in todo]
        for f in cf.as_completed(futs):
            rec = f.result()
            with args.out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"{rec['variant']} seed {rec['seed']}: final FID {rec['final_fid']:.3f} "
                  f"({rec['wall_s']} s, load {rec['load'][0]:.2f})", flush=True)
    records = load_done(args.out)
    print(table(records, args.preset, args.seeds))
    if args.best_grid is not None:
        best = min((r for r in records if r["preset"] == args.preset and r.get("samples")
                    and r["variant"] == "PBT-NAS (0.4, 0.1)" and r["seed"] in args.seeds),
                   key=lambda r: float(r["final_fid"]), default=None)
        if best is None or not Path(best["samples"]).is_file():
            print("no PBT-NAS sample grid to copy", file=sys.stderr)
            return 1
        args.best_grid.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best["samples"], args.best_grid)
        print(f"best PBT-NAS grid: seed {best['seed']}, final FID {best['final_fid']:.3f} -> "
              f"{args.best_grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
