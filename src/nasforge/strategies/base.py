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

Checkpoints are incremental and safe: the state is a small JSON/array document
(:mod:`nasforge.strategies._state`, never pickle; a blob that is not one is refused with
:class:`~nasforge.strategies._state.StateError`). What grows with the trial count (histories,
seen sets, an Optuna study) is not checkpointed: it is rebuilt from the stored trials on resume
(``history`` attributes and :meth:`AskTellStrategy.rebuild`), so a checkpoint costs the same at
trial 10 and at trial 5,000.

Batches do not depend on the budget: ``ask`` always gets ``batch_size``; when the budget runs out
inside a batch, the rest stays pending (untold), so a 50-query run is exactly the first 50
queries of a 200-query run, and raising the budget on resume continues that batch.

Repeats: with a noisy evaluator (``evaluator.noisy``, true unless it says otherwise) a repeated
architecture is evaluated again with its trial's fresh seed (it counts; strategies see each
observation, so they learn the mean). With a deterministic one it is answered from the reward
cache (``cached_from``) and does not count against the budget. ``reevaluate: true/false`` forces
either. After ``MAX_IDLE_BATCHES`` batches in a row without a new evaluation the search stops.

The pick: with ``reeval_share`` > 0 the last share of the budget re-evaluates the
``reeval_top`` best candidates (by the strategy's model estimate where it has one, else their
mean observation) round-robin with fresh seeds, and the pick is the best mean. Without it,
model-based strategies (:meth:`AskTellStrategy.estimate`) pick by their estimate and the others
by the best mean observation. The pick and how it was made are stored in ``meta.pick``.
"""

from __future__ import annotations

import math
import statistics
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
from nasforge.strategies import _state

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
        done = {r.number: r for r in self.store.trials(numbers)}
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
                    self._commit(self._cached(n, arch, hit))
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
                self._commit(
                    Record(n, archs[n - first], seeds[i], result, finished_at=time.time(),
                           task=self.task_id)
                )
        for n, src in sorted(copies.items()):
            if n in done or n >= first + end:
                continue
            source = self.store.trials(range(src, src + 1))[0]
            self._commit(self._cached(n, archs[n - first], source))
        return self.store.trials(range(first, first + end))

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


MAX_IDLE_BATCHES = 50
"""Batches in a row that bring no new evaluation (all answered from the cache) before a search
stops: the strategy keeps proposing what it has already seen."""


class AskTellParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    batch_size: int = Field(
        default=1, ge=1, description="architectures per ask (evaluated together)"
    )
    reevaluate: bool | None = Field(
        default=None,
        description="a repeated architecture: null (auto) evaluates it again with a fresh seed "
        "when the evaluator is noisy and answers it from the cache (free) when it is "
        "deterministic; true: always evaluate again; false: always answer from the cache",
    )
    reeval_share: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="share of the budget spent at the end re-evaluating the top candidates with "
        "fresh seeds; the pick is then the best mean (0: no re-evaluation phase)",
    )
    reeval_top: int = Field(default=5, ge=1, description="candidates of the re-evaluation phase")


class AskTellStrategy(Strategy):
    """A black-box strategy: implement ``setup``, ``ask`` and ``tell``; the loop is here.

    ``setup(ctx)`` runs once on a fresh run; on resume the attributes saved by ``state_dict``
    are restored instead. Attributes named in ``transient`` are not saved (e.g. the space,
    which ``run`` sets from the context before anything else); those named in ``history`` are
    not saved either but rebuilt by :meth:`rebuild` from the stored trials (they grow with the
    trial count; checkpoints stay small).
    """

    transient: ClassVar[tuple[str, ...]] = ("space", "picked")
    history: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        seed: int = 0,
        batch_size: int = 1,
        reevaluate: bool | None = None,
        reeval_share: float = 0.0,
        reeval_top: int = 5,
    ) -> None:
        super().__init__(seed=seed)
        self.batch_size = batch_size
        self.reevaluate = reevaluate
        self.reeval_share = reeval_share
        self.reeval_top = reeval_top
        self.space: SearchSpace | None = None
        self.rng = np.random.default_rng(derive_seed(seed, "strategy"))
        self.picked: dict[str, Any] | None = None

    def setup(self, ctx: SearchContext) -> None:
        """Prepare a fresh search (models, optimisers). Default: nothing."""

    @abstractmethod
    def ask(self, n: int) -> list[Architecture]:
        """Up to ``n`` architectures to evaluate next; fewer (or none) when the space is spent."""

    @abstractmethod
    def tell(self, records: list[Record]) -> None:
        """Learn from the finished trials of the last ask (in ask order; failures included)."""

    def rebuild(self, told: list[Record], pending: list[Architecture]) -> None:
        """On resume: rebuild the ``history`` attributes from the trials already told (in trial
        order) and the architectures of the pending batch (asked, not told). Default: nothing."""

    def estimate(self, archs: list[Architecture]) -> np.ndarray | None:
        """The model's estimate of each architecture's mean score (higher is better), or None
        for a strategy without a model of the score (the pick then uses observations)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        skip = set(self.transient) | set(self.history)
        return {k: v for k, v in vars(self).items() if k not in skip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    def _save(self, ctx: SearchContext, pending: tuple[int, list[Architecture]] | None) -> None:
        with ctx.store.transaction():
            ctx.store.put_state("strategy", _state.dumps(self.state_dict()))
            if pending is None:
                ctx.store.delete_state("pending")
            else:
                first, archs = pending
                blob = _state.dumps({"first": first, "archs": [a.to_json() for a in archs]})
                ctx.store.put_state("pending", blob)

    def run(self, ctx: SearchContext) -> None:
        self.space = ctx.space
        if self.reevaluate is not None:
            ctx.reevaluate = self.reevaluate
        else:
            ctx.reevaluate = bool(getattr(ctx.evaluator, "noisy", True))
        saved = ctx.store.get_state("strategy")
        raw = ctx.store.get_state("pending")
        pending: tuple[int, list[Architecture]] | None = None
        if raw is not None:
            doc = _state.loads(raw, "pending batch")
            try:
                pending = (int(doc["first"]), [Architecture.from_json(a) for a in doc["archs"]])
            except (KeyError, TypeError, ValueError):
                raise _state.StateError(
                    "the stored pending batch is corrupted or tampered with; refusing to load it"
                ) from None
        records = ctx.store.trials()
        if saved is None:
            self.setup(ctx)
        else:
            state = _state.loads(saved)
            if not isinstance(state, dict):
                raise _state.StateError(
                    "the stored strategy state is corrupted or tampered with; refusing to load it"
                )
            self.load_state_dict(state)
            cut = pending[0] if pending is not None else math.inf
            self.rebuild([r for r in records if r.number < cut], pending[1] if pending else [])
        phase = ctx.store.get_state("reeval_plan")
        extra = 0 if self.reeval_share <= 0 else max(1, round(self.reeval_share * ctx.budget))
        search_budget = max(1, ctx.budget - extra) if extra else ctx.budget
        cut = pending[0] if pending is not None else math.inf
        evaluated = sum(1 for r in records if r.cached_from is None and r.number < cut)
        next_number = len(records) if pending is None else pending[0] + len(pending[1])
        idle = 0
        while phase is None:
            if pending is None:
                if evaluated >= search_budget:
                    break
                archs = self.ask(self.batch_size)
                if not archs:
                    _logger.info("strategy %s has nothing left to ask; stopping", self.name)
                    break
                pending = (next_number, [ctx.space.validate(a) for a in archs])
                self._save(ctx, pending)
            first, archs = pending
            batch = ctx.evaluate_batch(first, archs, limit=search_budget - evaluated)
            new = sum(1 for r in batch if r.cached_from is None)
            evaluated += new
            if len(batch) < len(archs):  # the budget ends inside this batch: it stays pending
                if extra:  # ... unless the re-evaluation phase takes the next trial numbers
                    with ctx.store.transaction():
                        ctx.store.delete_state("pending")
                break
            self.tell(batch)
            self._save(ctx, None)
            next_number = first + len(archs)
            pending = None
            idle = 0 if new else idle + 1
            if idle >= MAX_IDLE_BATCHES:
                _logger.warning(
                    "strategy %s proposed only evaluated architectures for %d batches; stopping",
                    self.name, idle,
                )
                break
        if extra:
            self._reeval_phase(ctx, phase, ctx.budget - evaluated)
        self.picked = self._pick(ctx)
        with ctx.store.transaction():
            ctx.store.set_meta("pick", self.picked)

    # ---------------------------------------------------------------- the pick
    def _observations(self, ctx: SearchContext) -> dict[str, list[Record]]:
        """Evaluated (not cached) complete trials per architecture, in trial order."""
        obs: dict[str, list[Record]] = {}
        for r in ctx.store.trials():
            if r.ok and r.cached_from is None and math.isfinite(r.val_acc):
                obs.setdefault(r.arch_id, []).append(r)
        return obs

    def _ranked(
        self, obs: dict[str, list[Record]]
    ) -> tuple[list[str], np.ndarray, str]:
        """Architecture ids best first, their scores, and what the scores are."""
        ids = list(obs)
        est = self.estimate([obs[k][0].arch for k in ids]) if ids else None
        if est is not None:
            scores, how = np.asarray(est, dtype=float), "model estimate"
        else:
            scores = np.array([statistics.fmean(r.val_acc for r in obs[k]) for k in ids])
            how = "mean observation"
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], obs[ids[i]][0].number))
        return [ids[i] for i in order], scores[order], how

    def _reeval_phase(self, ctx: SearchContext, plan: bytes | None, left: int) -> None:
        """Spend ``left`` evaluations on the top candidates, round-robin, with fresh seeds."""
        doc: dict[str, Any]
        if plan is None:
            obs = self._observations(ctx)
            ids, _, how = self._ranked(obs)
            top = ids[: self.reeval_top]
            doc = {"archs": [obs[k][0].arch.to_json() for k in top], "ranked_by": how,
                   "first": ctx.store.count_trials()}
            with ctx.store.transaction():
                ctx.store.put_state("reeval_plan", _state.dumps(doc))
        else:
            doc = _state.loads(plan, "re-evaluation plan")
        archs = [Architecture.from_json(a) for a in doc["archs"]]
        if not archs or left <= 0:
            return
        first = int(doc["first"])
        stored = ctx.store.count_trials()
        total = stored - first + left  # trials of the phase, done or to do
        plan_archs = [archs[i % len(archs)] for i in range(total)]
        prev = ctx.reevaluate
        ctx.reevaluate = True  # a re-evaluation is the point here, whatever the evaluator
        try:
            ctx.evaluate_batch(first, plan_archs)
        finally:
            ctx.reevaluate = prev

    def _pick(self, ctx: SearchContext) -> dict[str, Any] | None:
        obs = self._observations(ctx)
        if not obs:
            return None
        raw = ctx.store.get_state("reeval_plan")
        doc = None if raw is None else _state.loads(raw, "re-evaluation plan")
        ids = [] if doc is None else [Architecture.from_json(a).arch_id for a in doc["archs"]]
        ids = [k for k in ids if k in obs]
        if doc is not None and ids:
            means = [statistics.fmean(r.val_acc for r in obs[k]) for k in ids]
            extra = ctx.store.count_trials() - int(doc["first"])
            i = max(range(len(ids)), key=lambda j: (means[j], -j))
            chosen, score = ids[i], means[i]
            how = (
                f"best mean over re-evaluations: the top {len(ids)} by {doc['ranked_by']} "
                f"re-evaluated {extra} times with fresh seeds ({self.reeval_share:.0%} of "
                "the budget)"
            )
        else:
            ids, scores, what = self._ranked(obs)
            chosen, score = ids[0], float(scores[0])
            multi = any(len(v) > 1 for v in obs.values())
            how = (
                "best model estimate (posterior mean) over the evaluated architectures"
                if what == "model estimate"
                else "best mean observation" if multi else "best single observation"
            )
        rs = obs[chosen]
        return {
            "arch": rs[0].arch.to_json(),
            "arch_id": chosen,
            "trial": rs[0].number,
            "how": how,
            "score": float(score),
            "mean_val_acc": statistics.fmean(r.val_acc for r in rs),
            "evaluations": len(rs),
        }


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
