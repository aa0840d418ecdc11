"""``nasforge bench``: strategies x seeds x budget on a tabular evaluator, in memory.

Each (strategy, seed) run is the real ask/tell loop (:meth:`AskTellStrategy.run`, with its reward
cache and trial seeds) over an in-memory SQLite store, so a benchmarked strategy behaves exactly
as it does in ``nasforge search``. With ``seed_mode: sample`` every query draws one of the
table's training seeds (from the trial seed), as in the NAS-Bench-201 protocol.

Three scores, each the table mean (over the table's seeds) of one architecture:

* **picked**: what the strategy returns after a run of ``n`` queries (its pick under noise, see
  :class:`~nasforge.strategies.base.AskTellStrategy`: a model estimate, re-evaluations, or the
  best mean observation); one extra run per checkpoint (``pick_runs``), since a pick may spend
  the end of its budget on re-evaluations.
* **best evaluated**: the best table mean among the architectures evaluated in the first ``n``
  queries (what the search found, whether or not it kept it).
* **incumbent** (``mean``/``sem``, the curves and the plot): the architecture with the best
  observed (noisy) validation accuracy after ``n`` queries (earliest on ties).

A query is an evaluation: answers from the reward cache (deterministic tables) are free and not
counted. Regret = table optimum (best mean) - score. Simulated seconds: the table's training time
of each query, summed.

Outputs in ``--out``: ``results.json`` (per strategy: ``queries``, ``mean``, ``sem`` of the score
in percent at every query count, and ``seconds``, ``mean_s``, ``sem_s``, ``n_s`` on a log grid of
simulated seconds; ``per_seed`` scores at the checkpoints), ``regret.png`` (best-so-far regret
with standard-error bands, log scale) and ``table.md``; ``bench.json`` (the space and evaluator)
and ``runs.jsonl`` (one line per finished run, fsynced). Running the same command again, after a
kill or with more seeds, strategies or checkpoints, reuses every run of the log whose strategy
spec, seed and budget are unchanged (``runs_reused`` in results.json; ``wall_seconds`` is that
session's); a folder of another space or evaluator, or one holding other files, is refused.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import math
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import nasforge.evaluators
import nasforge.strategies  # noqa: F401
from nasforge.config import (
    RunConfig,
    apply_overrides,
    build_component,
    format_validation_error,
    read_yaml,
    resolve_table_path,
)
from nasforge.engine.context import SearchContext
from nasforge.evaluators.base import EVALUATORS
from nasforge.evaluators.table import Table
from nasforge.exceptions import ConfigError
from nasforge.executors.local import LocalExecutor
from nasforge.executors.pool import die_with_parent
from nasforge.logging import get_logger
from nasforge.objectives import DEFAULT, Objective
from nasforge.plotting import pyplot, save_figure
from nasforge.spaces.base import Architecture, make_space
from nasforge.storage.joblog import append_jsonl, check_fingerprint, read_jsonl, write_atomic
from nasforge.storage.sqlite import SQLiteRunStore
from nasforge.strategies.base import STRATEGIES, AskTellStrategy

_logger = get_logger(__name__)

Progress = Callable[[int, int], None]


class BenchConfig(BaseModel):
    """A benchmark: one tabular evaluator, several labelled strategies, seeds and a budget."""

    model_config = ConfigDict(extra="forbid")
    name: str = "bench"
    seeds: int = Field(default=30, ge=1, description="runs per strategy (seeds 0..seeds-1)")
    first_seed: int = Field(default=0, ge=0)
    budget: int = Field(default=300, ge=1, description="queries per run")
    checkpoints: list[int] = Field(default=[10, 30, 100, 300], description="columns of table.md")
    space: dict[str, Any] = Field(default_factory=lambda: {"name": "nb201"})
    evaluator: dict[str, Any]
    strategies: dict[str, dict[str, Any]] = Field(
        description="label -> strategy spec {name: ..., **params}"
    )
    workers: int = Field(default=1, ge=1, description="processes over (strategy, seed) runs")
    pick_runs: bool = Field(
        default=True,
        description="score the pick at every checkpoint with a run of that budget (false: only "
        "at the full budget)",
    )
    published: dict[str, Any] = Field(
        default_factory=dict,
        description="published figures shown in table.md, labelled not comparable: "
        "{note: str, rows: {method: value}}",
    )


def load_bench_config(
    source: str | Path | dict[str, Any], overrides: list[str] | None = None
) -> BenchConfig:
    data = dict(source) if isinstance(source, dict) else read_yaml(source)
    if overrides:
        data = apply_overrides(data, overrides)
    if not isinstance(source, dict) and isinstance(data.get("evaluator"), dict):
        data["evaluator"] = resolve_table_path(data["evaluator"], Path(source).resolve().parent)
    try:
        cfg = BenchConfig(**data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model=BenchConfig)) from None
    if not cfg.strategies:
        raise ConfigError("bench needs at least one entry under 'strategies'")
    for label, spec in cfg.strategies.items():
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"strategies.{label} needs a 'name'")
    return cfg


# ------------------------------------------------------------------ one run
def run_in_memory(
    strategy: Any,
    space: Any,
    evaluator: Any,
    *,
    seed: int,
    budget: int,
    config: RunConfig | None = None,
    pick: dict[str, Any] | None = None,
    on_disk: bool = False,
) -> list[Any]:
    """Run an ask/tell ``strategy`` through its real loop on an in-memory store; its records.

    ``pick``: a dict that receives the strategy's pick (``meta.pick``). ``on_disk``: use a run
    store file in a temporary folder (as a real run does) instead of memory."""

    cfg = config or RunConfig(name="in_memory", seed=seed, budget=budget)
    with tempfile.TemporaryDirectory(prefix="nfb") as tmp:
        store = SQLiteRunStore(tmp if on_disk else ":memory:", create=True)
        ctx = SearchContext(
            config=cfg, space=space, task=None, evaluator=evaluator,
            executor=LocalExecutor(workers=1), store=store, budget=budget, seed=seed,
            device=torch.device("cpu"), run_dir=Path(tmp),
        )
        try:
            strategy.run(ctx)
            if pick is not None:
                pick.update(store.get_meta("pick") or {})
            return store.trials()
        finally:
            store.close()


def run_one(
    space_spec: dict[str, Any],
    evaluator_spec: dict[str, Any],
    strategy_spec: dict[str, Any],
    seed: int,
    budget: int,
) -> dict[str, Any]:
    """One search on the table; returns per-query observed score, table mean and cost."""

    space = make_space(space_spec)
    evaluator = build_component(
        EVALUATORS, "evaluator", evaluator_spec, space=space, task=None, device="cpu"
    )
    mean_val = getattr(evaluator, "mean_val", None)
    if mean_val is None:
        raise ConfigError(f"bench needs a tabular evaluator (name: table), got {evaluator.name!r}")
    strategy = build_component(STRATEGIES, "strategy", strategy_spec, seed=seed)
    if not isinstance(strategy, AskTellStrategy):
        raise ConfigError(
            f"bench runs black-box (ask/tell) strategies; {strategy_spec['name']!r} is not one"
        )
    cfg = RunConfig(
        name="bench", seed=seed, budget=budget, space=space_spec, strategy=strategy_spec,
        evaluator=evaluator_spec, task={"name": "moons"},
    )
    start = time.perf_counter()
    pick: dict[str, Any] = {}
    records = run_in_memory(
        strategy, space, evaluator, seed=seed, budget=budget, config=cfg, pick=pick
    )
    evaluated = [r for r in records if r.cached_from is None]  # cached answers are free
    obs = np.array([r.val_acc if r.ok else np.nan for r in evaluated], dtype=float)
    true = np.array([mean_val(r.arch) for r in evaluated], dtype=float)
    cost = np.array([r.result.train_seconds for r in evaluated], dtype=float)
    picked = math.nan
    if pick.get("arch") is not None:
        picked = float(mean_val(space.validate(Architecture.from_json(pick["arch"]))))
    return {
        "obs": obs, "true": true, "cost": cost, "wall": time.perf_counter() - start,
        "unique": len({r.arch_id for r in evaluated}), "picked": picked,
        "how": pick.get("how"), "cached": len(records) - len(evaluated),
    }


def incumbent_scores(obs: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Score after each query: table mean of the best observed so far (earliest on ties)."""
    out = np.full(len(obs), np.nan)
    best, score = -math.inf, math.nan
    for i, (o, t) in enumerate(zip(obs, true)):
        if math.isfinite(o) and o > best:
            best, score = o, t
        out[i] = score
    return out


def best_evaluated(obs: np.ndarray, true: np.ndarray) -> np.ndarray:
    """After each query: the best table mean among the architectures evaluated so far (failed
    queries excluded)."""
    ok = np.where(np.isfinite(obs), true, -np.inf)
    best = np.maximum.accumulate(ok) if len(ok) else ok
    return np.where(np.isfinite(best), best, np.nan)


def scores_at_seconds(
    obs: np.ndarray, true: np.ndarray, cost: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    inc = incumbent_scores(obs, true)
    cum = np.cumsum(cost)
    idx = np.searchsorted(cum, grid, side="right") - 1  # last query finished by time T
    return np.where(idx >= 0, inc[np.clip(idx, 0, None)], np.nan)


def _sem(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Standard error of the mean over ``axis`` (0 where fewer than 2 finite values)."""
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    mean = np.where(ok, x, 0.0).sum(axis=axis) / np.maximum(n, 1)
    dev = np.where(ok, x - np.expand_dims(mean, axis), 0.0)
    var = (dev**2).sum(axis=axis) / np.maximum(n - 1, 1)
    return np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), 0.0)


# ------------------------------------------------------------------- bench
def bench(
    config: str | Path | dict[str, Any],
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every strategy for every seed; write results.json, regret.png and table.md."""

    cfg = load_bench_config(config, overrides)
    space = make_space(cfg.space)
    evaluator = build_component(
        EVALUATORS, "evaluator", cfg.evaluator, space=space, task=None, device="cpu"
    )
    optimum_fn = getattr(evaluator, "optimum", None)
    if optimum_fn is None:
        raise ConfigError(f"bench needs a tabular evaluator (name: table), got {cfg.evaluator}")
    optimum = float(optimum_fn())
    if not math.isfinite(optimum):
        raise ConfigError(f"table {cfg.evaluator.get('table')!r} has no finite score for any "
                          "architecture of the configured space; nothing to benchmark")
    # check every strategy spec before the long part

    for label, spec in cfg.strategies.items():
        s = build_component(STRATEGIES, f"strategies.{label}", spec, seed=0)
        if not isinstance(s, AskTellStrategy):
            raise ConfigError(f"strategies.{label}: {spec['name']!r} is not an ask/tell strategy")
    outdir = Path(out)
    data = getattr(evaluator, "data", None)
    log_path = _open_bench_dir(outdir, cfg, data.digest() if isinstance(data, Table) else None)
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
    budgets = [cfg.budget]
    if cfg.pick_runs:
        budgets = sorted({c for c in cfg.checkpoints if c < cfg.budget}) + budgets
    jobs = [(label, seed, b) for label in cfg.strategies for seed in seeds for b in budgets]
    runs = _done_runs(log_path, cfg, set(jobs))
    todo = [job for job in jobs if job not in runs]
    if runs:
        _logger.info("bench %s: resuming in %s, %d of %d runs done", cfg.name, outdir,
                     len(runs), len(jobs))
    args = {
        (label, seed, b): (cfg.space, cfg.evaluator, cfg.strategies[label], seed, b)
        for label, seed, b in todo
    }
    t0 = time.perf_counter()
    with log_path.open("a") as log:

        def finished(job: tuple[str, int, int], run: dict[str, Any]) -> None:
            runs[job] = run
            append_jsonl(log, _run_line(job, cfg.strategies[job[0]], run), sync=True)
            _logger.info("bench %s: %s seed %d budget %d done (%d/%d)", cfg.name, *job,
                         len(runs), len(jobs))
            if progress is not None:
                progress(len(runs), len(jobs))

        if progress is not None:
            progress(len(runs), len(jobs))
        if cfg.workers == 1 or len(todo) <= 1:
            try:
                from threadpoolctl import threadpool_limits

                limit: Any = threadpool_limits(limits=1)
            except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                limit = contextlib.nullcontext()
            with limit:
                for job in todo:
                    finished(job, run_one(*args[job]))
        else:
            with cf.ProcessPoolExecutor(
                cfg.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                initargs=(os.getpid(),),
            ) as pool:
                gather({pool.submit(run_one, *args[job]): job for job in todo}, finished)
    wall = time.perf_counter() - t0
    results = summarise(cfg, runs, seeds, optimum, objective=evaluator.objective)
    results["wall_seconds"] = round(wall, 1)
    results["runs_reused"] = len(jobs) - len(todo)
    results["published"] = cfg.published
    write_atomic(outdir / "results.json", json.dumps(results, indent=1))
    write_atomic(outdir / "table.md", render_table(results))
    try:
        plot_regret(results, outdir / "regret.png")
    except ImportError:  # matplotlib missing: results and table are still written
        _logger.warning("matplotlib is not installed; regret.png not written")
    return results


BENCH_LOG = "runs.jsonl"
BENCH_FINGERPRINT = "bench.json"


def gather(futs: dict[cf.Future[Any], Any], finished: Callable[[Any, Any], None]) -> None:
    """``finished(job, result)`` for every future as it completes; a failed run is raised only
    after every other run has finished (and is in the log), so a rerun redoes just that one."""
    failed: list[BaseException] = []
    for fut in cf.as_completed(futs):
        try:
            run = fut.result()
        except Exception as err:
            failed.append(err)
            continue
        finished(futs[fut], run)
    if failed:
        raise failed[0]


def _open_bench_dir(outdir: Path, cfg: BenchConfig, table: str | None) -> Path:
    """Create ``outdir`` or check that it is this bench's (same space, evaluator and table
    contents ``table``, a digest: the runs in its log are reused); refuse a folder holding
    other files. Returns the log's path."""
    fp_path = outdir / BENCH_FINGERPRINT
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"--out {str(outdir)!r} is a file; give a folder")
    if outdir.is_dir() and not fp_path.is_file() and any(outdir.iterdir()):
        raise ConfigError(
            f"--out {str(outdir)!r} already holds files and no bench log ({BENCH_FINGERPRINT}); "
            "nothing was overwritten: use a new or empty folder"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    check_fingerprint(fp_path, {"space": cfg.space, "evaluator": cfg.evaluator,
                                "table_digest": table}, outdir, "a bench")
    return outdir / BENCH_LOG


def _nan_list(x: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in x]


def _run_line(job: tuple[str, int, int], spec: dict[str, Any], run: dict[str, Any]
              ) -> dict[str, Any]:
    label, seed, budget = job
    picked = run["picked"]
    return {"label": label, "seed": seed, "budget": budget, "spec": spec,
            **{k: _nan_list(run[k]) for k in ("obs", "true", "cost")},
            "picked": picked if math.isfinite(picked) else None,
            **{k: run[k] for k in ("wall", "unique", "how", "cached")}}


def _done_runs(log_path: Path, cfg: BenchConfig, jobs: set[tuple[str, int, int]]
               ) -> dict[tuple[str, int, int], dict[str, Any]]:
    """The runs of the log that this config would run again: same label, seed, budget and
    strategy spec (a run depends on nothing else once space and evaluator match)."""
    runs: dict[tuple[str, int, int], dict[str, Any]] = {}
    specs = json.loads(json.dumps(cfg.strategies))  # as the log holds them
    for line in read_jsonl(log_path):
        job = (str(line["label"]), int(line["seed"]), int(line["budget"]))
        if job not in jobs or line["spec"] != specs[job[0]]:
            continue
        runs[job] = {
            **{k: np.array(line[k], dtype=float) for k in ("obs", "true", "cost")},
            "picked": math.nan if line["picked"] is None else float(line["picked"]),
            **{k: line[k] for k in ("wall", "unique", "how", "cached")},
        }
    return runs


def _init_worker(parent: int) -> None:
    die_with_parent(parent)  # no orphan workers when the driver is killed
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)  # this worker process only
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def summarise(
    cfg: BenchConfig,
    runs_by_budget: dict[tuple[str, int, int], dict[str, Any]],
    seeds: list[int],
    optimum: float,
    objective: Objective = DEFAULT,
) -> dict[str, Any]:
    """Curves of the incumbent's score. ``val_acc`` tables report percent (x100); other
    objectives report the score in its own units (utilities turned back into scores)."""
    budget = cfg.budget
    pct_acc = objective == DEFAULT
    scale = 100.0 if pct_acc else objective.sign
    runs = {(lb, sd): r for (lb, sd, b), r in runs_by_budget.items() if b == budget}
    all_costs = [r["cost"] for r in runs.values()]
    positive = np.concatenate([c[c > 0] for c in all_costs]) if all_costs else np.array([])
    total = max((float(np.sum(c)) for c in all_costs), default=0.0)
    if len(positive) and total > 0:
        lo = float(np.min(positive))
        grid = np.geomspace(lo, total, 60)
    else:
        grid = np.array([])
    checkpoints = sorted({c for c in cfg.checkpoints if c <= budget} | {budget})
    out: dict[str, Any] = {
        "name": cfg.name,
        "units": "percent (validation accuracy x 100)" if pct_acc else objective.label,
        "objective": objective.to_json(),
        "optimum": round(scale * optimum, 4),
        "budget": budget,
        "seeds": seeds,
        "checkpoints": checkpoints,
        "space": cfg.space,
        "evaluator": cfg.evaluator,
        "protocol": "incumbent = best observed val acc (one table seed drawn per query when "
        "seed_mode is sample); picked = the strategy's pick after a run of that budget; best "
        "evaluated = the best evaluated architecture; each scored by its mean val acc over the "
        "table's seeds; cached answers are free and not counted as queries",
        "strategies": {},
    }
    for label, spec in cfg.strategies.items():
        curves = np.full((len(seeds), budget), np.nan)
        at_s = np.full((len(seeds), len(grid)), np.nan)
        found = np.full((len(seeds), budget), np.nan)
        walls, uniq = [], []
        for j, seed in enumerate(seeds):
            r = runs[(label, seed)]
            inc = incumbent_scores(r["obs"], r["true"])
            n = min(budget, len(inc))
            curves[j, :n] = inc[:n]
            found[j, :n] = best_evaluated(r["obs"], r["true"])[:n]
            if n and n < budget:  # a strategy that stopped early keeps its incumbent
                curves[j, n:] = inc[n - 1]
                found[j, n:] = found[j, n - 1]
            if len(grid):
                at_s[j] = scores_at_seconds(r["obs"], r["true"], r["cost"], grid)
            walls.append(r["wall"])
            uniq.append(r["unique"])
        pct = scale * curves
        pct_s = scale * at_s
        pct_found = scale * found
        picked: dict[str, Any] = {}
        for c in checkpoints:
            vals = [runs_by_budget.get((label, sd, c), {}).get("picked") for sd in seeds]
            if any(v is None for v in vals):
                continue
            arr = scale * np.array(vals, dtype=float)
            picked[str(c)] = {
                "mean": _round(np.array([np.nanmean(arr)]))[0],
                "sem": _round(np.atleast_1d(_sem(arr)))[0],
                "per_seed": _round(arr),
            }
        hows = sorted({str(r.get("how")) for r in runs.values()})
        with np.errstate(invalid="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_s = np.nanmean(pct_s, axis=0) if len(grid) else np.array([])
                mean = np.nanmean(pct, axis=0)
        out["strategies"][label] = {
            "spec": spec,
            "queries": list(range(1, budget + 1)),
            "mean": _round(mean),
            "sem": _round(_sem(pct)),
            "seconds": _round(grid, 1),
            "mean_s": _round(mean_s),
            "sem_s": _round(_sem(pct_s)) if len(grid) else [],
            "n_s": [int(v) for v in np.sum(np.isfinite(pct_s), axis=0)] if len(grid) else [],
            "per_seed": {str(c): _round(pct[:, c - 1]) for c in checkpoints},
            "picked": picked,
            "picked_by": hows,
            "best_evaluated": {
                str(c): {
                    "mean": _round(np.array([np.nanmean(pct_found[:, c - 1])]))[0],
                    "sem": _round(np.atleast_1d(_sem(pct_found[:, c - 1])))[0],
                    "found_optimum": int(np.sum(found[:, c - 1] >= optimum - 1e-12)),
                }
                for c in checkpoints
            },
            "cached_mean": float(np.mean([r["cached"] for r in runs.values()])),
            "unique_archs_mean": float(np.mean(uniq)),
            "wall_seconds_per_run": round(float(np.mean(walls)), 3),
        }
    return out


def _round(x: np.ndarray, nd: int = 4) -> list[float | None]:
    return [None if not math.isfinite(float(v)) else round(float(v), nd) for v in x]


def _num(v: float, obj: Objective) -> str:
    return f"{v:.2f}" if obj == DEFAULT else f"{v:.4g}"


def _pm(mean: float, sem: float, obj: Objective) -> str:
    """``mean +- sem`` at the precision of the objective (percent: 2 decimals; else 4
    significant digits and 2 for the error, so small losses are not rounded away)."""
    err = f"{sem:.2f}" if obj == DEFAULT else f"{sem:.2g}"
    return f"{_num(mean, obj)} +- {err}"


def render_table(results: dict[str, Any]) -> str:
    cps = results["checkpoints"]
    opt = results["optimum"]
    obj = Objective.from_json(results.get("objective"))
    what = "validation accuracy (%)" if obj == DEFAULT else obj.label
    lines = [
        f"# {results['name']}",
        "",
        f"Table optimum (best mean {what}): **{_num(opt, obj)}**. "
        f"{len(results['seeds'])} seeds; mean +- standard error of the mean {what} "
        "of the incumbent (best observed) after N queries.",
        "",
        "| strategy | " + " | ".join(f"{c} queries" for c in cps) + " |",
        "|---|" + "---|" * len(cps),
    ]
    for label, s in results["strategies"].items():
        cells = []
        for c in cps:
            m, e = s["mean"][c - 1], s["sem"][c - 1]
            cells.append("-" if m is None else _pm(m, e, obj))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Picked (what each strategy returns after a run of N queries) and best evaluated (the "
        "best architecture among the first N queries; in brackets: seeds that evaluated the "
        f"table optimum), mean {what}:",
        "",
        "| strategy | score | " + " | ".join(f"{c} queries" for c in cps) + " |",
        "|---|---|" + "---|" * len(cps),
    ]
    for label, s in results["strategies"].items():
        pk, be = s.get("picked", {}), s.get("best_evaluated", {})
        cells = []
        for c in cps:
            v = pk.get(str(c))
            cells.append("-" if v is None or v["mean"] is None else
                         _pm(v["mean"], v["sem"], obj))
        lines.append(f"| {label} | picked | " + " | ".join(cells) + " |")
        cells = []
        for c in cps:
            v = be.get(str(c))
            cells.append("-" if v is None or v["mean"] is None else
                         f"{_pm(v['mean'], v['sem'], obj)} [{v['found_optimum']}]")
        lines.append(f"| {label} | best evaluated | " + " | ".join(cells) + " |")
    hows = {label: "; ".join(s.get("picked_by", [])) for label, s in results["strategies"].items()}
    lines += ["", "How each strategy picked:", ""]
    lines += [f"- {label}: {how}" for label, how in hows.items()]
    pub = results.get("published") or {}
    if pub:
        lines += ["", f"Published figures (NOT comparable: {pub.get('note', '')})", ""]
        lines += ["| method | value |", "|---|---|"]
        for k, v in (pub.get("rows") or {}).items():
            lines.append(f"| {k} | {v} |")
    return "\n".join(lines) + "\n"


def plot_regret(results: dict[str, Any], path: Path) -> Path:
    """Best-so-far regret (log scale) vs queries and vs simulated seconds, with SEM bands."""

    plt = pyplot()
    opt = results["optimum"]
    obj = Objective.from_json(results.get("objective"))
    sign = obj.sign  # regret >= 0 in either direction
    floor = 1e-3
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, s in results["strategies"].items():
        m = np.array([np.nan if v is None else v for v in s["mean"]])
        e = np.array([0.0 if v is None else v for v in s["sem"]])
        q = np.array(s["queries"])
        reg = np.maximum(sign * (opt - m), floor)
        (line,) = axes[0].plot(q, reg, label=label)
        axes[0].fill_between(
            q, np.maximum(reg - e, floor), reg + e, color=line.get_color(), alpha=0.2
        )
        if s["seconds"]:
            t = np.array(s["seconds"])
            ms = np.array([np.nan if v is None else v for v in s["mean_s"]])
            es = np.array([0.0 if v is None else v for v in s["sem_s"]])
            rs = np.maximum(sign * (opt - ms), floor)
            axes[1].plot(t, rs, color=line.get_color(), label=label)
            axes[1].fill_between(
                t, np.maximum(rs - es, floor), rs + es, color=line.get_color(), alpha=0.2
            )
    axes[0].set_xscale("log")
    axes[0].set_xlabel("queries")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("simulated training seconds")
    for ax in axes:
        ax.set_yscale("log")
        unit = "% val acc" if obj == DEFAULT else obj.label
        ax.set_ylabel(f"regret to the table optimum {_num(opt, obj)} ({unit})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{results['name']}: mean +- s.e.m. over {len(results['seeds'])} seeds")
    return save_figure(fig, plt, path)
