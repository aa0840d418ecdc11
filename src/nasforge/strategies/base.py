"""The Strategy interface, the search context, and the one ask/tell loop.

* :class:`Strategy` is what every search family implements: ``run(ctx)``. One-shot (DARTS,
  MetaNAS) and population (PBT-NAS) searches override ``run`` and own their loop.
* :class:`AskTellStrategy` owns the single loop of black-box strategies (random search, REINFORCE,
  evolution, TPE, meta-RL): they only write ``ask(n)`` and ``tell(records)``. The loop handles the
  budget, evaluation through the executor, the reward cache, failure capture, store writes,
  callbacks and resumable checkpoints.

Resume protocol (exact, SIGKILL included): after ``ask`` the loop stores the pending batch and
the strategy's state in one transaction; each finished trial is committed as it completes; after
``tell`` the new state replaces the pending batch in one transaction. A resumed run restores the
state, re-uses the trials of the pending batch that were already stored, evaluates only the
missing ones (same trial numbers, same seeds), and continues as if never interrupted.
"""

from __future__ import annotations

import math
import pickle
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nasforge.engine.middleware import evaluate_all
from nasforge.evaluators.base import Evaluator
from nasforge.final import report_best
from nasforge.logging import get_logger
from nasforge.registry import Registry
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

    @property
    def task_id(self) -> str | None:
        """The id of the primary task, recorded with each trial of a multi-task run."""
        return next(iter(self.tasks), None) if len(self.tasks) > 1 else None

    # ---------------------------------------------------------- write-through
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them land, or (on a crash or kill) none."""
        return self.store.transaction()

    def record_trial(self, rec: Record) -> None:
        """Store a finished trial (strategies that own their loop call this)."""
        self.store.add_trial(rec)

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
        self.store.put_state(key, blob)

    def load_state(self, key: str) -> bytes | None:
        return self.store.get_state(key)

    def trial_seed(self, number: int) -> int:
        """Seed of trial ``number``: depends on the run seed and the number only."""
        return derive_seed(self.seed, "trial", number)

    def records(self) -> list[Record]:
        return self.store.trials()

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

    def _commit(self, rec: Record) -> None:
        self.store.add_trial(rec)
        best = self.best()
        if rec.ok and (best is None or rec.val_acc > best.val_acc):
            self._best = best = rec
        _logger.info(
            "Trial %d %s val_acc=%.4f %s (best: trial %d, %.4f)",
            rec.number,
            rec.result.status,
            rec.val_acc,
            rec.arch,
            best.number if best else -1,
            best.val_acc if best else math.nan,
        )
        for cb in self.callbacks:
            cb.on_trial(rec, self)

    def evaluate_batch(self, first: int, archs: Sequence[Architecture]) -> list[Record]:
        """Evaluate trials ``first, first+1, ...``; store each as it finishes; return them.

        Trials already stored (a resumed pending batch) are not evaluated again. Unless
        ``reevaluate`` is set, an architecture seen before re-uses its stored result (reward
        cache) and is recorded with ``cached_from``.
        """
        numbers = range(first, first + len(archs))
        done = {r.number: r for r in self.store.trials(numbers)}
        todo: list[int] = []
        copies: dict[int, int] = {}  # trial number -> earlier trial number in this batch
        first_in_batch: dict[str, int] = {}
        for k, arch in enumerate(archs):
            n = first + k
            if n in done:
                continue
            if not self.reevaluate:
                hit = self.store.find_complete(arch.arch_id)
                if hit is not None and hit.number < first:
                    self._commit(self._cached(n, arch, hit))
                    continue
                if arch.arch_id in first_in_batch:
                    copies[n] = first_in_batch[arch.arch_id]
                    continue
                first_in_batch[arch.arch_id] = n
            todo.append(n)
        if todo:
            seeds = [self.trial_seed(n) for n in todo]
            for i, result in evaluate_all(
                self.executor, self.evaluator, [archs[n - first] for n in todo], seeds
            ):
                n = todo[i]
                self._commit(
                    Record(n, archs[n - first], seeds[i], result, finished_at=time.time(),
                           task=self.task_id)
                )
        for n, src in sorted(copies.items()):
            if n in done:
                continue
            source = self.store.trials(range(src, src + 1))[0]
            self._commit(self._cached(n, archs[n - first], source))
        return self.store.trials(numbers)

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


class Strategy(ABC):
    """A search strategy. ``run(ctx)`` performs the search and stores everything in ``ctx.store``.

    Constructors take the run ``seed`` and the validated params (keyword-only, cheap: no tensors
    or I/O). ``finalize(ctx)`` reports the chosen architecture after the search; by default it
    retrains the best stored trial (see :func:`report_best`).
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def check(self, space: SearchSpace, evaluator: Any, budget: int) -> None:
        """Raise :class:`ConfigError` if this strategy cannot run with these parts; called by
        ``search`` before the run directory is created, so bad input writes nothing."""
        return None

    @abstractmethod
    def run(self, ctx: SearchContext) -> None:
        """Search until the budget is spent (or the strategy is done)."""

    def finalize(self, ctx: SearchContext) -> dict[str, Any]:

        return report_best(ctx)


class AskTellParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    batch_size: int = Field(
        default=1, ge=1, description="architectures per ask (evaluated together)"
    )
    reevaluate: bool = Field(
        default=False,
        description="train a repeated architecture again with a fresh seed instead of re-using "
        "its stored result (the reward cache)",
    )


class AskTellStrategy(Strategy):
    """A black-box strategy: implement ``setup``, ``ask`` and ``tell``; the loop is here.

    ``setup(ctx)`` runs once on a fresh run; on resume the attributes saved by ``state_dict``
    are restored instead. Attributes named in ``transient`` are not saved (e.g. the space,
    which ``run`` sets from the context before anything else).
    """

    transient: ClassVar[tuple[str, ...]] = ("space",)

    def __init__(self, *, seed: int = 0, batch_size: int = 1, reevaluate: bool = False) -> None:
        super().__init__(seed=seed)
        self.batch_size = batch_size
        self.reevaluate = reevaluate
        self.space: SearchSpace | None = None
        self.rng = np.random.default_rng(derive_seed(seed, "strategy"))

    def setup(self, ctx: SearchContext) -> None:
        """Prepare a fresh search (models, optimisers). Default: nothing."""

    @abstractmethod
    def ask(self, n: int) -> list[Architecture]:
        """Up to ``n`` architectures to evaluate next; fewer (or none) when the space is spent."""

    @abstractmethod
    def tell(self, records: list[Record]) -> None:
        """Learn from the finished trials of the last ask (in ask order; failures included)."""

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in self.transient}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    def _save(self, ctx: SearchContext, pending: tuple[int, list[Architecture]] | None) -> None:
        with ctx.store.transaction():
            ctx.store.put_state("strategy", pickle.dumps(self.state_dict()))
            if pending is None:
                ctx.store.delete_state("pending")
            else:
                first, archs = pending
                blob = pickle.dumps((first, [a.to_json() for a in archs]))
                ctx.store.put_state("pending", blob)

    def run(self, ctx: SearchContext) -> None:
        self.space = ctx.space
        saved = ctx.store.get_state("strategy")
        if saved is None:
            self.setup(ctx)
        else:
            self.load_state_dict(pickle.loads(saved))
        raw = ctx.store.get_state("pending")
        pending: tuple[int, list[Architecture]] | None = None
        if raw is not None:
            first, archs_json = pickle.loads(raw)
            pending = (first, [Architecture.from_json(a) for a in archs_json])
        while True:
            if pending is None:
                done = ctx.store.count_trials()
                if done >= ctx.budget:
                    break
                archs = self.ask(min(self.batch_size, ctx.budget - done))
                if not archs:
                    _logger.info("strategy %s has nothing left to ask; stopping", self.name)
                    break
                pending = (done, [ctx.space.validate(a) for a in archs])
                self._save(ctx, pending)
            first, archs = pending
            records = ctx.evaluate_batch(first, archs)
            self.tell(records)
            self._save(ctx, None)
            pending = None


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
