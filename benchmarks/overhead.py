"""Per-trial overhead of every ask/tell strategy: ask, tell and store, on a table.

Each strategy runs its real loop (:func:`nasforge.bench.run_in_memory`: in-memory SQLite run
store, reward cache, a checkpoint per batch) on the noisy NAS-Bench-201 CIFAR-10 table (one
table seed per query) for each budget. ``ask`` and ``tell`` are timed around the strategy's
methods; ``store`` is the rest of the run minus the table look-ups (the store's creation, trial
writes, checkpoints, cache queries, the pick). Printed in milliseconds per trial: the mean over
the run and, for ``ask``, the median of the last 10 % of the asks (the cost *at* that trial
count).

``--optuna`` also times Optuna's TPESampler called directly on the same table (ask, 6
categorical suggestions, tell) against nasforge's ``tpe`` (everything but the table look-ups).
Both sides are timed alike: from before the storage is created (Optuna's study, nasforge's run
store) to the end of the search, its pick included (``study.best_trial``; nasforge's
``meta.pick``); the benchmark's own read-back of nasforge's trials is not timed.

    nice -n 10 python benchmarks/overhead.py --budgets 100 1000 5000 \
        --out benchmarks/results/overhead/overhead.json --optuna
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"name": "random", "batch_size": 1},
    "evolution": {"name": "evolution"},
    "tpe": {"name": "tpe"},
    "tpe_norep": {"name": "tpe", "avoid_repeats": False},
    "bo_evolution": {"name": "bo_evolution"},
    "reinforce": {"name": "reinforce"},
}


CLOCK = time.process_time
"""The timer of every figure: the process's CPU time by default (other jobs on a loaded machine
do not inflate it), wall time with ``--clock wall``."""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_strategy(spec: dict[str, Any], budget: int, seed: int,
                  on_disk: bool = False) -> dict[str, Any]:
    import nasforge.strategies  # noqa: F401
    from nasforge.bench import run_in_memory
    from nasforge.config import build_component
    from nasforge.evaluators.table import TabularEvaluator
    from nasforge.spaces.base import make_space
    from nasforge.strategies.base import STRATEGIES as REG

    space = make_space({"name": "nb201"})
    ev = TabularEvaluator(space=space, table="nb201/cifar10", seed_mode="sample")
    strat = build_component(REG, "strategy", spec, seed=seed)
    asks: list[tuple[int, float]] = []
    tells: list[float] = []
    evals: list[float] = []
    ask0, tell0, eval0 = strat.ask, strat.tell, ev.evaluate

    def ask(n: int) -> Any:
        t = CLOCK()
        out = ask0(n)
        asks.append((len(out), CLOCK() - t))
        return out

    def tell(records: Any) -> None:
        t = CLOCK()
        tell0(records)
        tells.append(CLOCK() - t)

    def evaluate(arch: Any, *, seed: int) -> Any:
        t = CLOCK()
        out = eval0(arch, seed=seed)
        evals.append(CLOCK() - t)
        return out

    run0 = strat.run
    ended: list[tuple[float, float, float]] = []

    def run(ctx: Any) -> None:
        run0(ctx)
        ended.append((CLOCK(), _cpu(), time.perf_counter()))

    strat.ask, strat.tell, strat.run = ask, tell, run
    strat.transient = (*type(strat).transient, "ask", "tell", "run")
    ev.evaluate = evaluate  # type: ignore[method-assign]
    ev.evaluate(next(iter(space.enumerate())), seed=0)  # load the table outside the timing
    evals.clear()
    t0, c0, w0 = CLOCK(), _cpu(), time.perf_counter()
    recs = run_in_memory(strat, space, ev, seed=seed, budget=budget, on_disk=on_disk)
    # (timed: the store's creation and the whole search, its pick included; not timed: the
    # benchmark's own read-back of the trials and the store's closing)
    spent, cpu, wall = ended[0][0] - t0, ended[0][1] - c0, ended[0][2] - w0
    n = len(recs)
    ask_s = sum(t for _, t in asks)
    tell_s = sum(tells)
    store_s = spent - ask_s - tell_s - sum(evals)
    per_ask = [t / max(k, 1) for k, t in asks]
    tail = per_ask[-max(1, len(per_ask) // 10):]
    return {
        "trials": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "ask_ms": 1e3 * ask_s / n, "tell_ms": 1e3 * tell_s / n, "store_ms": 1e3 * store_s / n,
        "ask_median_last10pct_ms": 1e3 * statistics.median(tail),
        "table_ms": 1e3 * sum(evals) / n,
    }


def time_optuna(budget: int, seed: int, storage: str | None = None) -> dict[str, Any]:
    """Optuna's own TPE on the same table: the time of everything but the table look-ups.
    ``storage``: an Optuna storage URL (e.g. its SQLite ``RDBStorage``); default in memory."""
    import optuna

    from nasforge.evaluators.table import TabularEvaluator
    from nasforge.spaces.base import make_space
    from nasforge.strategies.blackbox.tpe import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = make_space({"name": "nb201"})
    ev = TabularEvaluator(space=space, table="nb201/cifar10", seed_mode="sample")
    ev.evaluate(next(iter(space.enumerate())), seed=0)
    steps = space.max_steps()
    table_s = 0.0
    t0, w0 = CLOCK(), time.perf_counter()  # (as for nasforge: the storage's creation is timed)
    study = optuna.create_study(direction="maximize", storage=storage,
                                sampler=make_sampler("TPESampler", {}, seed))
    for i in range(budget):
        trial = study.ask()
        idx = [int(trial.suggest_categorical(f"d{t}", list(range(len(space.options(t))))))
               for t in range(steps)]
        t = CLOCK()
        res = ev.evaluate(space.decode(idx), seed=seed * 100_003 + i)
        table_s += CLOCK() - t
        study.tell(trial, res.val_acc)
    _ = study.best_trial  # the pick, as nasforge's search ends with its pick
    spent, wall = CLOCK() - t0, time.perf_counter() - w0
    return {"trials": budget, "wall_s": round(wall, 3), "ms_per_trial": 1e3 * (spent - table_s)
            / budget}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--optuna", action="store_true", help="also compare tpe with Optuna's own")
    ap.add_argument("--optuna-budgets", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--repeats", type=int, default=3,
                    help="Optuna comparison: the median ratio over this many paired runs")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="time CPU seconds of this process (default) or wall seconds")
    ap.add_argument("--store", choices=["memory", "file"], default="memory",
                    help="nasforge's run store in memory (default) or a file in a temporary "
                    "folder, as a real run keeps it")
    ap.add_argument("--optuna-sqlite", action="store_true",
                    help="Optuna comparison: also time Optuna with its own SQLite storage "
                    "(RDBStorage on a file), the durable counterpart of a file store")
    ap.add_argument("--tpe-variant", default="tpe",
                    choices=[k for k in STRATEGIES if k.startswith("tpe")],
                    help="Optuna comparison: the nasforge strategy timed against it "
                    "(tpe_norep: avoid_repeats false)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    on_disk = args.store == "file"
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        pass
    rows: list[dict[str, Any]] = []
    cpu = platform.processor() or platform.machine()
    print(f"seed {args.seed}; load {os.getloadavg()}; {cpu}; clock {args.clock}; "
          f"store {args.store}")
    print("| strategy | trials | ask ms/trial | ask ms (median, last 10 %) | tell ms/trial | "
          "store ms/trial | wall s | cpu s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.strategies:
        for b in args.budgets:
            r = {"strategy": name, **time_strategy(STRATEGIES[name], b, args.seed, on_disk)}
            rows.append(r)
            print(f"| {name} | {r['trials']} | {r['ask_ms']:.2f} | "
                  f"{r['ask_median_last10pct_ms']:.2f} | {r['tell_ms']:.2f} | "
                  f"{r['store_ms']:.2f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |", flush=True)
    cmp: list[dict[str, Any]] = []
    if args.optuna:
        sq = " | Optuna with its SQLite storage ms/trial (nasforge's ratio)" \
            if args.optuna_sqlite else ""
        print(f"\n| trials | Optuna TPESampler ms/trial | nasforge tpe ask + tell ms/trial "
              f"(ratio) | with the run store ms/trial | ratio (median of {args.repeats}){sq} |")
        print("|---|---|---|---|---|" + ("---|" if sq else ""))
        for b in args.optuna_budgets:
            pairs = []
            sqlite_ms: list[float] = []
            for _ in range(args.repeats):  # paired, alternating, so drifting load hits both
                o = time_optuna(b, args.seed)["ms_per_trial"]
                ours = time_strategy(STRATEGIES[args.tpe_variant], b, args.seed, on_disk)
                pairs.append((o, ours["ask_ms"] + ours["tell_ms"], ours["store_ms"]))
                if args.optuna_sqlite:
                    with tempfile.TemporaryDirectory(prefix="nfov") as tmp:
                        url = f"sqlite:///{tmp}/optuna.db"
                        sqlite_ms.append(time_optuna(b, args.seed, url)["ms_per_trial"])
            o_ms = statistics.median(o for o, _, _ in pairs)
            strat = statistics.median(a for _, a, _ in pairs)
            mine = statistics.median(a + st for _, a, st in pairs)
            r_strat = statistics.median(a / o for o, a, _ in pairs)
            ratio = statistics.median((a + st) / o for o, a, st in pairs)
            row = {"trials": b, "optuna_ms": o_ms, "strategy_ms": strat, "nasforge_ms": mine,
                   "strategy_ratio": r_strat, "ratio": ratio, "pairs": pairs}
            cell = ""
            if sqlite_ms:
                sq_ms = statistics.median(sqlite_ms)
                row.update(optuna_sqlite_ms=sq_ms, optuna_sqlite_runs=sqlite_ms)
                cell = f" {sq_ms:.2f} ({mine / sq_ms:.2f}x) |"
            cmp.append(row)
            print(f"| {b} | {o_ms:.2f} | {strat:.2f} ({r_strat:.2f}x) | {mine:.2f} | "
                  f"{ratio:.2f}x |{cell}", flush=True)
    print(f"load after: {os.getloadavg()}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"seed": args.seed, "clock": args.clock,
                                        "store": args.store, "rows": rows,
                                        "optuna": cmp,
                                        "load_after": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
