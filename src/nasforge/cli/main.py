"""The ``nasforge`` command line: search, show, plot, export. No algorithm logic lives here.

Bad input (config, argument, architecture, data file) ends with one line on stderr naming the
problem and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pickle
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import BaseModel

import nasforge
from nasforge.cli import extra
from nasforge.cli.options import add_run_options
from nasforge.components import load_registries
from nasforge.data.base import TASKS
from nasforge.evaluators.base import EVALUATORS
from nasforge.exceptions import NasforgeError, WorkerLost
from nasforge.executors.base import EXECUTORS
from nasforge.objectives import Objective
from nasforge.progress import ProgressCallback
from nasforge.report import fmt, print_summary, say
from nasforge.run import EXPORT_ARCH, EXPORT_PROGRAM, EXPORT_WEIGHTS, Run, export
from nasforge.search import search
from nasforge.spaces.base import SPACES
from nasforge.strategies.base import STRATEGIES
from nasforge.viz import plot_run

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


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


def _version() -> str:
    return str(nasforge.__version__)


VERBOSE_HELP = "log progress (a search: every trial) to stderr"

EXAMPLES = {
    "search": "nasforge search configs/demo.yaml --run-dir runs/demo",
    "show": "nasforge show runs/demo --top 10 (or --json)",
    "plot": "nasforge plot runs/demo --out history.png",
    "export": "nasforge export runs/demo --out best/ (then nasforge.load('best/'))",
    "list": "nasforge list strategies",
    "init": "nasforge init tabular (writes tabular.yaml)",
    "bench": "nasforge bench configs/bench_nb201_cifar10.yaml --out runs/b --set seeds=5",
    "tabulate": "nasforge tabulate CONFIG --out table.npz",
}
"""One example command per subcommand, shown by ``nasforge CMD -h``."""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nasforge", description="Neural architecture search on PyTorch.")
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    p.add_argument("--version", action="version", version=f"nasforge {_version()}")
    # -v is accepted after the subcommand as well (a shared parent parser)
    common = _Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_parser = sub.add_parser

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        if "help" in kw and "description" not in kw:  # `nasforge CMD -h` says what CMD does
            example = EXAMPLES.get(name)
            kw["description"] = kw["help"][0].upper() + kw["help"][1:] + "." + (
                f" Example: {example}" if example else "")
        return _add_parser(name, parents=[common, *kw.pop("parents", [])], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign,assignment]

    s = sub.add_parser("search", help="run (or resume) a search from a YAML config")
    s.add_argument(
        "config", help="YAML config file, or the name of a packaged example (nasforge list)"
    )
    s.add_argument("--budget", type=_positive_int,
                   help="trials of a black-box search (DARTS / MetaNAS run strategy.epochs / "
                   "meta_epochs; PBT-NAS: population x rounds member-steps)")
    s.add_argument("--seed", type=_nonneg_int, help="run seed")
    s.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    s.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    add_run_options(s, "a config value, e.g. --set strategy.lr=0.001")

    sh = sub.add_parser("show", help="table of the best trials of a run")
    sh.add_argument("run_dir", help="run directory")
    sh.add_argument("--top", type=_positive_int, default=10, help="rows to show (default 10)")
    sh.add_argument("--json", action="store_true", help="print one JSON object")

    pl = sub.add_parser("plot", help="plot a run (accuracy per trial, best so far)")
    pl.add_argument("run_dir", help="run directory")
    pl.add_argument("--out", help="output image (default: RUN_DIR/history.png)")

    ex = sub.add_parser("export", help="export the best architecture and its trained weights")
    ex.add_argument("run_dir", help="run directory")
    ex.add_argument("--out", required=True, help="output directory")
    ex.add_argument(
        "--torch-export", action="store_true",
        help="also write model.pt2, a torch.export program that needs only torch "
        "(torch.export.load(path).module())",
    )

    ls = sub.add_parser(
        "list", help="strategies, spaces, tasks, evaluators (with parameters) and examples"
    )
    ls.add_argument(
        "kind", nargs="?",
        choices=["strategies", "spaces", "tasks", "evaluators", "executors", "examples"],
        help="list only this kind (default: all)",
    )
    it = sub.add_parser("init", help="copy a packaged example config to edit")
    it.add_argument("name", help="example name (nasforge list examples), e.g. tabular")
    it.add_argument("--out", help="output file (default: NAME.yaml here)")

    extra.add_commands(sub)
    return p


def _examples() -> dict[str, Any]:
    from importlib.resources import files

    root = files("nasforge") / "examples"
    return {f.name[:-5]: f for f in root.iterdir() if f.name.endswith(".yaml")}


def _config_path(config: str) -> Any:
    """A config file, or a packaged example by name (``nasforge search demo``)."""
    from pathlib import Path

    if Path(config).exists() or config.endswith((".yaml", ".yml")):
        return config
    examples = _examples()
    if config in examples:
        return Path(str(examples[config]))
    raise NasforgeError(
        f"config file {config!r} not found and not a packaged example; examples: "
        f"{', '.join(sorted(examples))}"
    )


def _params_text(cls: Any) -> str:
    model = getattr(cls, "Params", None)
    if model is None:
        return ""
    parts = []
    for name, f in model.model_fields.items():
        if f.is_required():
            parts.append(f"{name}=required")
            continue
        value = f.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):  # a nested block: its fields as a YAML mapping
            value = value.model_dump(mode="json")
        parts.append(f"{name}={json.dumps(value, default=str)}")
    return ", ".join(parts)


def _cmd_list(args: argparse.Namespace) -> int:
    import textwrap

    load_registries()
    kinds: dict[str, Any] = {
        "strategies": STRATEGIES, "spaces": SPACES, "tasks": TASKS, "evaluators": EVALUATORS,
        "executors": EXECUTORS,
    }
    for kind, reg in kinds.items():
        if args.kind not in (None, kind):
            continue
        print(f"{kind}:")
        for name in reg.names():
            print(f"  {name}")
            text = _params_text(reg.get(name))
            if text:
                print(textwrap.fill(text, 78, initial_indent="    ", subsequent_indent="    "))
    if args.kind in (None, "examples"):
        print("examples (nasforge search NAME, nasforge init NAME):")
        for name in sorted(_examples()):
            print(f"  {name}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    examples = _examples()
    if args.name not in examples:
        raise NasforgeError(
            f"unknown example {args.name!r}; allowed: {', '.join(sorted(examples))}"
        )
    out = Path(args.out or f"{args.name}.yaml")
    if out.exists():
        raise NasforgeError(f"{str(out)!r} already exists; choose another --out")
    out.write_text(examples[args.name].read_text())
    print(f"wrote {out} (edit it, then: nasforge search {out})")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:

    callbacks = [] if args.no_progress else [ProgressCallback()]
    run = search(
        _config_path(args.config),
        progress=False,
        budget=args.budget,
        seed=args.seed,
        run_dir=args.run_dir,
        resume=args.resume,
        overrides=args.set,
        callbacks=callbacks,
    )
    _print_summary(run.summary(top=5))
    return 0


def _print_summary(summary: dict[str, Any], top: int = 5) -> None:
    print_summary(summary, top)


def _print_pbt(pbt: dict[str, Any], objective: Objective) -> None:
    """Fitness per population slot and round in the objective's units (``*``: a child entered
    the slot after that round), then the lineage of every child."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    entered = {(c["round"], c["slot"]) for c in pbt["children"]}
    table = Table(title=f"PBT-NAS: {objective.label} per slot (member id) and round; "
                  "* = replaced after")
    table.add_column("slot")
    for r in pbt["rounds"]:
        table.add_column(str(r), justify="right")
    nd = objective.decimals

    def cell(f: float | None) -> str:
        return "-" if f is None else f"{objective.score(f):.{nd}f}"

    for slot, fits in pbt["fitness"].items():
        ids = pbt["members"][slot]
        cells = [
            cell(f) + f" #{ids[r]}"
            + ("*" if (r, int(slot)) in entered else "")
            for r, f in enumerate(fits)
        ]
        table.add_row(slot, *cells)
    table.add_row("best", *[cell(f) for f in pbt["best"]])
    console.print(table)
    for c in pbt["children"]:
        genes = c.get("genes_from_donor")
        say(
            console,
            f"after round {c['round']}: slot {c['slot']} #{c['replaced_id']} -> #{c['id']} "
            f"({c.get('op')}: base #{c.get('base')}, donor #{c.get('donor')}"
            + (f", genes from donor {genes}" if genes is not None else "") + ")"
        )


def _cmd_show(args: argparse.Namespace) -> int:

    summary = Run(args.run_dir).summary(top=args.top)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        _print_summary(summary, top=args.top)
        if summary.get("status") == "interrupted":
            print(f"interrupted; continue with: {summary.get('resume_command')}")
        if summary.get("pbt"):
            _print_pbt(summary["pbt"], Objective.from_json(summary.get("objective")))
        if summary.get("metarl"):
            _print_metarl(summary["metarl"])
    return 0


def _print_metarl(doc: dict[str, Any]) -> None:
    """Per environment (task): progress and the best networks found (and retrained)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="meta_a2c: progress per environment (task)")
    for col in ("task", "steps", "episodes", "distinct", "mean reward", "last 50", "best"):
        table.add_column(col, justify="right" if col != "task" else "left")
    for tid, t in doc["tasks"].items():
        best = t["best"][0]["reward"] if t["best"] else None
        table.add_row(tid, str(t["steps"]), str(t["episodes"]), str(t["distinct_networks"]),
                      fmt(t["mean_reward"]), fmt(t["mean_reward_last50"]), fmt(best))
    console.print(table)
    for tid, t in doc["tasks"].items():
        say(console, f"{tid}: best networks (NSC rows: index, type, kernel, pred1, pred2)")
        for b in t["best"]:
            say(console, f"  trial {b['trial']}: reward {fmt(b['reward'])}  {b['nsc']}")
        for f in t.get("final") or []:
            say(console, f"  retrained trial {f['trial']}: test accuracy "
                f"{fmt(f['test_acc'])} (search reward {fmt(f['search_reward'])})")


def _cmd_plot(args: argparse.Namespace) -> int:

    for path in plot_run(args.run_dir, args.out):
        print(path)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:

    out = export(args.run_dir, args.out, torch_export=args.torch_export)
    nets = sorted(p.parent for p in out.glob(f"*/{EXPORT_ARCH}")
                  if (p.parent / EXPORT_WEIGHTS).is_file())
    plugins = Run(args.run_dir).config.plugins
    extra = f", plugins={plugins!r}" if plugins else ""
    if (out / EXPORT_ARCH).is_file():
        print(f"exported to {out} (load with nasforge.load({str(out)!r}{extra}))")
        if args.torch_export:
            prog = str(out / EXPORT_PROGRAM)
            print(f"torch.export program: {prog} (load with torch.export.load({prog!r})"
                  ".module(), no nasforge needed)")
    elif nets:  # meta_a2c: one network per task
        print(f"exported to {out}: one trained network per task (load with "
              f"nasforge.load({str(nets[0])!r}{extra}), and likewise for the others)")
    else:
        print(f"exported to {out} (architectures only: the run has no final retraining)")
    return 0


COMMANDS = {
    "search": _cmd_search,
    "show": _cmd_show,
    "plot": _cmd_plot,
    "export": _cmd_export,
    "list": _cmd_list,
    "init": _cmd_init,
}


def _one_line(err: BaseException | str, code: int) -> int:
    msg = " ".join(str(err).split("\n")).strip()
    print(f"nasforge: error: {msg}", file=sys.stderr)
    return code


def _sigterm_interrupts() -> Any:
    """SIGTERM stops a search like Ctrl-C (the run is marked ``interrupted``); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, _raise)


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

    fn = COMMANDS.get(args.command) or extra.COMMANDS[args.command]
    start = time.perf_counter()
    prev_term = _sigterm_interrupts()
    try:
        return fn(args)
    except WorkerLost as err:  # not bad input: the machine lost workers; the run is resumable
        return _one_line(err, EXIT_FAILURE)
    except NasforgeError as err:
        return _one_line(err, EXIT_BAD_INPUT)
    except pickle.UnpicklingError as err:  # a garbage strategy state (its codec: issue 18)
        return _one_line(f"a stored strategy state is damaged ({err}); the run was left as "
                         "it was", EXIT_BAD_INPUT)
    except sqlite3.DatabaseError as err:  # a store damaged while it was read
        return _one_line(f"a run store is damaged or not a nasforge store (sqlite: {err})",
                         EXIT_BAD_INPUT)
    except BrokenPipeError:  # `nasforge list | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
    except OSError as err:  # a path that cannot be read or written
        where = f" {err.filename!r}" if err.filename else ""
        return _one_line(f"cannot use{where}: {err.strerror or err}", EXIT_BAD_INPUT)
    except KeyboardInterrupt as err:
        cmd = getattr(err, "resume_command", None)
        print(
            f"nasforge: interrupted after {time.perf_counter() - start:.0f}s; "
            + (f"continue with: {cmd}" if cmd else "continue with --resume"),
            file=sys.stderr,
        )
        return 130
    finally:
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)
        lib_logger.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
