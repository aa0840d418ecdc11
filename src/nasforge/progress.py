"""A rich progress bar as a search callback: trials done, ETA, best so far.

Strategies that own their loop count their own unit: DARTS epochs and PBT rounds (their
``emit_step`` phases ``darts`` and ``pbt``) replace the trial count of the main bar, whose
total would otherwise be the (unused) trial budget. Scores are shown in the objective's units.
"""

from __future__ import annotations

import math
from typing import Any

from nasforge.engine.context import Callback, SearchContext
from nasforge.objectives import DEFAULT, Objective
from nasforge.storage.base import Record

#: emit_step phases that are the strategy's own main loop -> the unit the main bar counts
OWN_LOOP_UNITS = {
    "darts": "epochs", "oneshot": "epochs", "metanas": "meta-epochs", "pbt": "rounds",
}


class ProgressCallback(Callback):
    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            transient=False,
        )
        self.task_id: Any = None
        self.step_id: Any = None
        self.best = -math.inf
        self.objective: Objective = DEFAULT
        self.own_loop = False

    def on_start(self, ctx: SearchContext) -> None:
        self.objective = ctx.objective
        self.progress.start()
        done = ctx.count_trials()
        best = ctx.best()
        self.best = best.val_acc if best else -math.inf
        self.task_id = self.progress.add_task(
            f"search {ctx.config.name}", total=ctx.budget, completed=done, best=self._best_text()
        )

    def _best_text(self) -> str:
        if self.best == -math.inf:
            return "best -"
        score = self.objective.score(self.best)
        name = "" if self.objective == DEFAULT else f"{self.objective.name} "
        return f"best {name}{score:.4f}"

    def on_trial(self, record: Record, ctx: SearchContext) -> None:
        if record.ok and record.val_acc > self.best:
            self.best = record.val_acc
        self.progress.update(
            self.task_id, advance=0 if self.own_loop else 1, best=self._best_text()
        )

    def on_step(self, step: int, total: int, info: dict[str, Any], ctx: SearchContext) -> None:
        desc = str(info.get("phase", "step"))
        unit = OWN_LOOP_UNITS.get(desc)
        if unit is not None:  # the main bar counts epochs / rounds, not trials
            self.own_loop = True
            self.progress.update(
                self.task_id, description=f"search {ctx.config.name} ({unit})",
                completed=step, total=total, best=self._best_text(),
            )
            return
        text = " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in info.items()
            if k != "phase"
        )
        if self.step_id is None or self.progress.tasks[self.step_id].description != desc:
            self.step_id = self.progress.add_task(desc, total=total, best=text)
        self.progress.update(self.step_id, completed=step, total=total, best=text)

    def on_end(self, ctx: SearchContext) -> None:
        self.progress.stop()
