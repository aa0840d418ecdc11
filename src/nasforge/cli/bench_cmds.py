"""CLI sub-commands ``tabulate`` and ``bench`` (registered by :mod:`nasforge.cli.extra`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nasforge.bench import bench, load_bench_config
from nasforge.cli.options import add_run_options
from nasforge.evaluators.table import Table
from nasforge.tabulate import tabulate


def add(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``tabulate`` and ``bench`` to the ``nasforge`` parser."""
    t = sub.add_parser(
        "tabulate", help="train every architecture of a finite space (seeds x archs) into a table"
    )
    t.add_argument("config", help="YAML run config (+ optional 'tabulate:' block)")
    t.add_argument("--out", required=True, help="table file to write (.npz); resumes if started")
    add_run_options(t, "a config value, e.g. --set tabulate.seeds=3")
    commands["tabulate"] = _cmd_tabulate

    b = sub.add_parser(
        "bench", help="benchmark strategies x seeds x budget on a tabular evaluator"
    )
    b.add_argument("config", help="YAML bench config")
    b.add_argument(
        "--out", required=True,
        help="output folder (results.json, table.md, regret.png, runs.jsonl); a rerun resumes",
    )
    add_run_options(b, "a bench config value, e.g. --set seeds=5")
    commands["bench"] = _cmd_bench


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar shown while the block runs; yields its ``update(done, total)``."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    prog = Progress(
        f"[bold]{label}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    task = prog.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    with prog:
        yield update


def _cmd_tabulate(args: argparse.Namespace) -> int:

    with _progress(not args.no_progress, "tabulate") as update:
        out = tabulate(args.config, args.out, overrides=args.set, progress=update)
    if out is None:
        print("tabulate: stopped early (tabulate.limit); run again to continue")
        return 0

    table = Table.load(out)
    print(
        f"wrote {out}: {table.num_rows} architectures x {table.num_seeds} seeds, "
        f"optimum {table.optimum():.4f}, wall {table.meta.get('wall_seconds')} s"
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:

    load_bench_config(args.config, args.set)  # a bad config: its one line, before any bar
    with _progress(not args.no_progress, "bench") as update:
        results = bench(args.config, args.out, overrides=args.set, progress=update)
    print(json.dumps({"out": str(args.out), "optimum": results["optimum"],
                      "runs_reused": results["runs_reused"]}))
    print((Path(args.out) / "table.md").read_text())
    return 0
