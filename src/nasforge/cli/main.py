"""The ``nasforge`` command line: search, show, plot, export. No algorithm logic lives here.

Bad input (config, argument, architecture, data file) ends with one line on stderr naming the
problem and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from nasforge.exceptions import NasforgeError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's default is 2 too)
        self.exit(EXIT_BAD_INPUT, f"nasforge: error: {message}\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {s!r}")
    return v


def add_run_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--set KEY=VALUE`` (repeatable; overrides ``what``) and ``--no-progress``."""
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help=f"override {what} (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nasforge", description="Neural architecture search on PyTorch.")
    p.add_argument("-v", "--verbose", action="store_true", help="log every trial")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="run (or resume) a search from a YAML config")
    s.add_argument("config", help="YAML config file")
    s.add_argument("--budget", type=_positive_int, help="number of trials")
    s.add_argument("--seed", type=_nonneg_int, help="run seed")
    s.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    s.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    add_run_options(s, "a config value, e.g. --set strategy.lr=0.001")

    sh = sub.add_parser("show", help="table of the best trials of a run")
    sh.add_argument("run_dir")
    sh.add_argument("--top", type=_positive_int, default=10)
    sh.add_argument("--json", action="store_true", help="print one JSON object")

    pl = sub.add_parser("plot", help="plot a run (accuracy per trial, best so far)")
    pl.add_argument("run_dir")
    pl.add_argument("--out", help="output image (default: RUN_DIR/history.png)")

    ex = sub.add_parser("export", help="export the best architecture and its trained weights")
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True, help="output directory")

    from nasforge.cli import extra

    extra.add_commands(sub)
    return p


def _cmd_search(args: argparse.Namespace) -> int:
    from nasforge.cli.progress import ProgressCallback
    from nasforge.search import search

    callbacks = [] if args.no_progress else [ProgressCallback()]
    run = search(
        args.config,
        budget=args.budget,
        seed=args.seed,
        run_dir=args.run_dir,
        resume=args.resume,
        overrides=args.set,
        callbacks=callbacks,
    )
    _print_summary(run.summary(top=5))
    return 0


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _print_summary(summary: dict[str, Any], top: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    final = summary.get("final") or {}
    rl = final.get("test_return") is not None  # PBT-NAS on an RL task: fitness is a return
    table = Table(
        title=f"{summary['run_dir']}: {summary['trials']} trials "
        f"({summary['failed']} failed, {summary['cached']} cached)"
    )
    for col in ("trial", "return" if rl else "val acc", "params", "epochs", "architecture"):
        table.add_column(col)
    for row in summary["top"][:top]:
        table.add_row(
            str(row["trial"]),
            _fmt(row["val_acc"], 1 if rl else 4),
            str(row["params"]),
            str(row["epochs"]),
            json.dumps(row["arch"].get("tokens", row["arch"])),
        )
    console.print(table)
    best = summary["best"]
    if best.get("arch") is None:
        return
    console.print(f"best architecture: {best.get('describe') or best['arch']}")
    if rl:
        console.print(
            f"  fitness (mean evaluation return) {_fmt(best.get('val_acc'), 1)}, test return "
            f"{_fmt(final['test_return'], 1)} (std {_fmt(final.get('test_return_std'), 1)}; "
            "the final population's best member, not retrained)"
        )
        return
    line = f"  validation accuracy {_fmt(best.get('val_acc'))}"
    if best.get("test_acc") is not None:
        accs = final.get("test_accs") or []
        if accs:
            line += (
                f", test accuracy {_fmt(best['test_acc'])} "
                f"(mean of {len(accs)} retrainings, std {_fmt(final.get('test_std'))})"
            )
        else:
            line += f", test accuracy {_fmt(best['test_acc'])} (as trained, not retrained)"
    console.print(line)
    pick = summary.get("pick")
    if pick:
        console.print(
            f"  picked by {pick['how']}; mean validation accuracy "
            f"{_fmt(pick.get('mean_val_acc'))} over {pick.get('evaluations')} evaluation(s)"
        )


def _print_pbt(pbt: dict[str, Any], rl: bool) -> None:
    """Fitness per population slot and round (``*``: a child entered the slot after that round),
    then the lineage of every child."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    entered = {(c["round"], c["slot"]) for c in pbt["children"]}
    table = Table(title="PBT-NAS: fitness per slot (member id) and round; * = replaced after")
    table.add_column("slot")
    for r in pbt["rounds"]:
        table.add_column(str(r), justify="right")
    nd = 1 if rl else 4
    for slot, fits in pbt["fitness"].items():
        ids = pbt["members"][slot]
        cells = [
            ("-" if f is None else f"{f:.{nd}f}") + f" #{ids[r]}"
            + ("*" if (r, int(slot)) in entered else "")
            for r, f in enumerate(fits)
        ]
        table.add_row(slot, *cells)
    table.add_row("best", *["-" if f is None else f"{f:.{nd}f}" for f in pbt["best"]])
    console.print(table)
    for c in pbt["children"]:
        genes = c.get("genes_from_donor")
        console.print(
            f"after round {c['round']}: slot {c['slot']} #{c['replaced_id']} -> #{c['id']} "
            f"({c.get('op')}: base #{c.get('base')}, donor #{c.get('donor')}"
            + (f", genes from donor {genes}" if genes is not None else "") + ")"
        )


def _cmd_show(args: argparse.Namespace) -> int:
    from nasforge.run import Run

    summary = Run(args.run_dir).summary(top=args.top)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        _print_summary(summary, top=args.top)
        if summary.get("pbt"):
            final = summary.get("final") or {}
            _print_pbt(summary["pbt"], rl=final.get("test_return") is not None)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from nasforge.viz import plot_run

    for path in plot_run(args.run_dir, args.out):
        print(path)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from nasforge.run import export

    out = export(args.run_dir, args.out)
    print(f"exported to {out} (load with nasforge.load({str(out)!r}))")
    return 0


COMMANDS = {"search": _cmd_search, "show": _cmd_show, "plot": _cmd_plot, "export": _cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad argument (2, one line printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    lib_logger = logging.getLogger("nasforge")
    lib_logger.addHandler(handler)
    lib_logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    from nasforge.cli import extra

    fn = COMMANDS.get(args.command) or extra.COMMANDS[args.command]
    start = time.perf_counter()
    try:
        return fn(args)
    except NasforgeError as err:
        msg = str(err).replace("\n", " ")
        print(f"nasforge: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"nasforge: interrupted after {time.perf_counter() - start:.0f}s; "
            "continue with --resume",
            file=sys.stderr,
        )
        return 130
    finally:
        lib_logger.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
