"""The printed summary of a run (``nasforge search`` / ``show``, and ``nasforge.search``).

Scores are labelled by the run's objective (name and direction); tabular tasks get the sklearn
baselines beside the result; the "best" line says which trial is the pick and why. Kept within
80 columns: architectures are shown by their short description and long cells wrap.
"""

from __future__ import annotations

import json
import math
import textwrap
from typing import Any

from nasforge.objectives import Objective


def fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _arch_text(row: dict[str, Any]) -> str:
    return row.get("describe") or json.dumps(row["arch"].get("tokens", row["arch"]))


def say(console: Any, text: str) -> None:
    """Print ``text`` wrapped to the console's width with a hanging indent (continuation lines
    4 columns further in than its own leading blanks), as plain text: no markup, so
    architectures in brackets print as they are."""
    lead = len(text) - len(text.lstrip(" "))
    width = max(40, int(console.width) - 1)
    lines = textwrap.wrap(text.strip(), width=width, initial_indent=" " * lead,
                          subsequent_indent=" " * (lead + 4), break_on_hyphens=False,
                          break_long_words=False) or [""]
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_summary(summary: dict[str, Any], top: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=min(Console().width, 100))
    final = summary.get("final") or {}
    obj = summary.get("objective") or {"name": "val_acc", "direction": "maximize"}
    name = obj["name"]
    nd = Objective.from_json(obj).decimals
    table = Table(
        title=f"{summary['run_dir']}: {summary['trials']} trials "
        f"({summary['failed']} failed, {summary['cached']} cached)"
    )
    short = "max" if obj["direction"] == "maximize" else "min"
    score_col = f"{name} ({short})"
    for col in ("trial", score_col, "params", "epochs"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("architecture", overflow="fold")
    pick = summary["best"].get("trial")
    rows = summary["top"][:top]
    # the pick's row: its trial, or else the first row of its architecture (a table of
    # distinct architectures shows one trial per architecture)
    star = next((r["trial"] for r in rows if r["trial"] == pick), None)
    if star is None:
        pick_arch = json.dumps(summary["best"].get("arch"), sort_keys=True)
        star = next((r["trial"] for r in rows
                     if json.dumps(r["arch"], sort_keys=True) == pick_arch), None)
    for row in rows:
        mark = row["trial"] == star
        table.add_row(
            str(row["trial"]) + ("*" if mark else ""),
            fmt(row["score"], nd),
            str(row["params"]),
            str(row["epochs"]),
            json.dumps(row["arch"].get("tokens", row["arch"])),
        )
    console.print(table)
    for err in summary.get("errors") or []:
        say(console, f"  failed: {err['trials']} trial(s), first {err['first']}: {err['error']}")
    best = summary["best"]
    if best.get("arch") is None:
        return
    if star is None:
        where = f"trial {best.get('trial')}, not in the rows above"
    elif star == best.get("trial"):
        where = f"*, trial {star}"
    else:  # a later trial of the architecture marked in the table
        where = f"trial {best.get('trial')}; * marks trial {star}, the same architecture"
    say(console, f"best architecture ({where}): {_arch_text(best)}")
    if best.get("why"):
        say(console, f"  picked: {best['why']}")
    test_name = Objective.from_json(obj).test_name
    if name == "val_acc":
        line = f"  validation accuracy {fmt(best.get('score'))}"
        test_label = "test accuracy"
    else:
        line = f"  {name} {fmt(best.get('score'), nd)} ({obj['direction']})"
        test_label = test_name
    test = best.get("test_score", best.get("test_acc"))
    if test is not None:
        accs = final.get("test_accs") or []
        std = final.get("test_std")
        if accs:
            line += (
                f", {test_label} {fmt(test, nd)} "
                f"(mean of {len(accs)} retrainings, std {fmt(std, nd)})"
            )
        elif summary.get("metarl"):
            line += f", {test_label} {fmt(test, nd)} (retrained on its task)"
        else:
            spread = "" if std is None else f"std {fmt(std, nd)}; "
            line += f", {test_label} {fmt(test, nd)} ({spread}as trained, not retrained)"
    say(console, line)
    if final.get("final_fid") is not None:  # PBT-NAS on a GAN (evaluators/pbt_gan.py)
        say(console,
            f"  final FID {fmt(final.get('final_fid'))}, test FID {fmt(final.get('test_acc'))} "
            f"(the final population's best generator, not retrained; "
            f"{final.get('fid_note', '')})"
        )
        if final.get("samples"):
            say(console, f"  samples: {final['samples']} in the run directory")
    pick = summary.get("pick")
    if pick:
        mean = Objective.from_json(obj).score(pick.get("mean_val_acc"))
        say(console,
            f"  the search's pick (first candidate of the retraining): {pick['how']}; mean "
            f"{name} {fmt(mean, nd)} over {pick.get('evaluations')} evaluation(s)"
        )
    if best.get("test_metrics") and name != "val_acc":
        cells = ", ".join(f"{k} {fmt(v)}" for k, v in best["test_metrics"].items())
        how = "mean of the retrainings" if final.get("test_accs") else "as trained"
        say(console, f"  test metrics ({how}): {cells}")
    base = summary.get("baselines")
    if base:
        say(console, "  baselines (sklearn, same train split):")
        for model, scores in base.items():
            cells = ", ".join(f"{k} {fmt(v)}" for k, v in scores.items())
            say(console, f"    {model}: {cells}")
    front = summary.get("pareto")
    if front:
        say(console, f"  Pareto front ({name} vs params, {len(front)} trials):")
        for p in front:
            say(console,
                f"    trial {p['trial']}: params {p['params']}, {name} {fmt(p['score'])}"
            )
