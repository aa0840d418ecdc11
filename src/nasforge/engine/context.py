"""The search context: what a strategy reads (space, tasks, records, best, trial seeds) and the
only way it writes a run (record a trial, log a series, save state, set run metadata, emit
progress).

The context wraps the run store; strategies never touch the store itself (a test checks that no
module under ``nasforge/strategies`` names ``ctx.store``). Recording a trial, whoever records it
(the ask/tell loop, a one-shot epoch, a PBT round), goes through one path, :meth:`record_trial`,
which stores it, keeps :meth:`best` current and calls the callbacks (progress bar, user hooks).
Evaluations go through :func:`nasforge.engine.middleware.evaluate_all` (the persistent cache
for every executor).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasforge.engine.middleware import evaluate_all
from nasforge.evaluators.base import Evaluator
from nasforge.logging import get_logger
from nasforge.objectives import Objective
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.storage.base import Record

if TYPE_CHECKING:
    from nasforge.config import RunConfig
    from nasforge.data.base import Task
    from nasforge.executors.base import Executor
    from nasforge.storage.sqlite import SQLiteRunStore

_logger = get_logger(__name__)


class Callback:
    """Hooks called by the driver. Override what you need; all default to no-ops."""

    def on_start(self, ctx: SearchContext) -> None:
        """Once, before the first trial (also on resume, with ``ctx.store`` holding old trials)."""

    def on_trial(self, record: Record, ctx: SearchContext) -> None:
        """After each trial is stored."""

    def on_step(self, step: int, total: int, info: dict[str, Any], ctx: SearchContext) -> None:
        """Strategies with their own loop (DARTS epochs, PBT rounds) report progress here."""

    def on_end(self, ctx: SearchContext) -> None:
        """Once, after the search and the final report."""


@dataclass
class SearchContext:
    """Everything a strategy needs; built by :func:`nasforge.search.search`."""

    config: RunConfig
    space: SearchSpace
    task: Task | None
    evaluator: Evaluator
    executor: Executor
    store: SQLiteRunStore
    budget: int
    seed: int
    device: torch.device
    run_dir: Path
    callbacks: list[Callback] = field(default_factory=list)
    reevaluate: bool = False
    tasks: dict[str, Task] = field(default_factory=dict)
    """The run's tasks by id (a task suite: ``tasks:`` in the config); ``task`` is the first."""
    _best: Record | None = field(default=None, init=False, repr=False)
    _best_loaded: bool = field(default=False, init=False, repr=False)
    _depth: int = field(default=0, init=False, repr=False)
    _deferred: list[Record] = field(default_factory=list, init=False, repr=False)
    _end: int | None = field(default=None, init=False, repr=False)
    """One past the highest stored trial number (None: read it from the store when needed)."""
    _staged: dict[str, bytes | None] = field(default_factory=dict, init=False, repr=False)
    """State writes (None: a delete) that land with the next trial (:meth:`stage_state`)."""

    @property
    def task_id(self) -> str | None:
        """The id of the primary task, recorded with each trial of a multi-task run."""
        return next(iter(self.tasks), None) if len(self.tasks) > 1 else None

    # ---------------------------------------------------------- write-through
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them land, or (on a crash or kill) none. Callbacks of the trials
        recorded inside run once the transaction has landed (a callback that stops the run
        cannot undo a committed trial, nor see one that was rolled back)."""
        self._depth += 1
        try:
            with self.store.transaction():
                yield
        except BaseException:
            if self._depth == 1:  # rolled back: forget what it recorded
                self._deferred.clear()
                self._best_loaded = False
                self._end = None
            raise
        finally:
            self._depth -= 1
        if self._depth == 0:
            done, self._deferred = self._deferred, []
            for rec in done:
                self._notify(rec)

    def record_trial(self, rec: Record) -> Record:
        """Store a finished trial, keep :meth:`best` current and tell the callbacks: the one
        path every trial of every family takes into the run. Returns the trial as stored (as
        :meth:`records` reads it back). Staged state (:meth:`stage_state`) lands with it, in
        the same transaction."""
        if self._staged:
            with self.transaction():
                self.flush_staged()
                return self._record(rec)
        return self._record(rec)

    def _record(self, rec: Record) -> Record:
        rec = self.store.add_trial(rec)
        self._end = max(self._stored_end(), rec.number + 1)
        best = self.best()
        if rec.ok and (best is None or rec.val_acc > best.val_acc):
            self._best = best = rec
        obj = self.objective
        lead = (f"best: trial {best.number}, {obj.name} {obj.score(best.val_acc):.4g}"
                if best is not None else "no trial has succeeded yet")
        if rec.ok or rec.result.status != "failed":
            _logger.info("Trial %d %s %s=%.4g %s (%s)", rec.number, rec.result.status,
                         obj.name, obj.score(rec.val_acc), rec.arch, lead)
        else:  # with its error (the search goes on; `show` counts the errors)
            _logger.info("Trial %d failed: %s; %s (%s)", rec.number,
                         rec.result.error or "no error text", rec.arch, lead)
        if self._depth:
            self._deferred.append(rec)
        else:
            self._notify(rec)
        return rec

    def _notify(self, rec: Record) -> None:
        for cb in self.callbacks:
            cb.on_trial(rec, self)

    def log_series(
        self, kind: str, step: int, data: Any, member: str | None = None,
        truncate: bool = False,
    ) -> None:
        """Append a series entry; ``truncate`` first drops entries at ``step`` and later (a
        resumed loop rewrites them)."""
        if truncate:
            self.store.truncate_series(kind, step)
        self.store.add_series(kind, step, data, member=member)

    def save_state(self, key: str, blob: bytes) -> None:
        """Store a strategy's checkpoint blob under ``key`` (inside :meth:`transaction` to land
        it together with the trials it belongs to); replaces a staged write of ``key``."""
        self._staged.pop(key, None)
        self.store.put_state(key, blob)

    def stage_state(self, key: str, blob: bytes | None) -> None:
        """Store ``blob`` under ``key`` (None: delete the key) together with the next recorded
        trial, in its transaction, or at :meth:`flush_staged`, whichever comes first: a
        checkpoint that costs no transaction of its own. Until then the stored state is the
        previous one, so a run killed in between resumes from there (for the ask/tell loop:
        it tells the previous batch again and asks again, which is exact)."""
        self._staged[key] = blob

    def flush_staged(self) -> None:
        """Write the staged state now (in one transaction with whatever encloses it)."""
        if not self._staged:
            return
        with self.transaction():
            for key, blob in self._staged.items():
                if blob is None:
                    self.store.delete_state(key)
                else:
                    self.store.put_state(key, blob)
        self._staged.clear()

    def load_state(self, key: str) -> bytes | None:
        if key in self._staged:
            return self._staged[key]
        return self.store.get_state(key)

    def delete_state(self, key: str) -> None:
        self._staged.pop(key, None)
        self.store.delete_state(key)

    def set_meta(self, key: str, value: Any) -> None:
        """Run metadata a strategy reports (its preset, the pick, the task it trained on)."""
        self.store.set_meta(key, value)

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self.store.get_meta(key, default)

    def trial_seed(self, number: int) -> int:
        """Seed of trial ``number``: depends on the run seed and the number only."""
        return derive_seed(self.seed, "trial", number)

    def records(self, numbers: range | None = None) -> list[Record]:
        """The stored trials (those numbered in ``numbers``), in trial order."""
        return self.store.trials(numbers)

    def count_trials(self) -> int:
        return self.store.count_trials()

    def _stored_end(self) -> int:
        if self._end is None:
            self._end = self.store.end_number()
        return self._end

    def find_complete(self, arch_id: str) -> Record | None:
        """The first complete stored trial of an architecture, if any."""
        return self.store.find_complete(arch_id)

    @property
    def objective(self) -> Objective:
        """The run's objective (name, direction, unit): the evaluator's."""
        return self.evaluator.objective

    def best(self) -> Record | None:
        """The best stored trial (highest val_acc, earliest on ties); kept up to date in memory."""
        if not self._best_loaded:
            ok = [r for r in self.store.trials() if r.ok]
            self._best = max(ok, key=lambda r: (r.val_acc, -r.number)) if ok else None
            self._best_loaded = True
        return self._best

    def emit_step(self, step: int, total: int, info: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_step(step, total, info, self)

    def evaluate_batch(
        self, first: int, archs: Sequence[Architecture], limit: int | None = None
    ) -> list[Record]:
        """Evaluate trials ``first, first+1, ...``; store each as it finishes; return them.

        Trials already stored (a resumed pending batch) are not evaluated again. Unless
        ``reevaluate`` is set, an architecture seen before re-uses its stored result (reward
        cache) and is recorded with ``cached_from``. ``limit``: at most this many new
        evaluations (cached answers are free); the batch is then cut before the first trial
        that would exceed it, and only that prefix is returned.
        """
        numbers = range(first, first + len(archs))
        # (a resumed batch may be partly stored; a new one is not: skip the query)
        stored = self.store.trials(numbers) if first < self._stored_end() else []
        done = {r.number: r for r in stored}
        out = dict(done)  # trial number -> the record as stored
        todo: list[int] = []
        copies: dict[int, int] = {}  # trial number -> earlier trial number in this batch
        first_in_batch: dict[str, int] = {}
        used = sum(1 for r in done.values() if r.cached_from is None)
        end = len(archs)
        for k, arch in enumerate(archs):
            n = first + k
            if n in done:
                continue
            if not self.reevaluate:
                hit = self.store.find_complete(arch.arch_id)
                if hit is not None and hit.number < first:
                    out[n] = self.record_trial(self._cached(n, arch, hit))
                    continue
                if arch.arch_id in first_in_batch:
                    copies[n] = first_in_batch[arch.arch_id]
                    continue
            if limit is not None and used >= limit:
                end = k
                break
            used += 1
            if not self.reevaluate:
                first_in_batch[arch.arch_id] = n
            todo.append(n)
        if todo:
            seeds = [self.trial_seed(n) for n in todo]
            for i, result in evaluate_all(
                self.executor, self.evaluator, [archs[n - first] for n in todo], seeds
            ):
                n = todo[i]
                out[n] = self.record_trial(
                    Record(n, archs[n - first], seeds[i], result, finished_at=time.time(),
                           task=self.task_id)
                )
        for n, src in sorted(copies.items()):
            if n in done or n >= first + end:
                continue
            out[n] = self.record_trial(self._cached(n, archs[n - first], out[src]))
        return [out[n] for n in range(first, first + end)]

    def _cached(self, number: int, arch: Architecture, source: Record) -> Record:
        result = replace(source.result, train_seconds=0.0)
        return Record(
            number,
            arch,
            self.trial_seed(number),
            result,
            cached_from=source.number,
            finished_at=time.time(),
            task=self.task_id,
        )
