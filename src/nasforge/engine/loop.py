"""The one ask/tell loop of black-box strategies (random search, REINFORCE, evolution, TPE,
bo_evolution): they only write ``ask(n)`` and ``tell(records)`` (the :class:`AskTell` protocol);
this loop handles the budget, evaluation through the executor (behind the middleware), the reward
cache, failure capture, recording, callbacks and resumable checkpoints.

Resume protocol (exact, SIGKILL included): after ``ask`` the loop checkpoints the pending batch
and the strategy's state; the checkpoint lands in the transaction of the batch's first finished
trial (:meth:`SearchContext.stage_state`: no transaction of its own), and each finished trial is
committed as it completes. The state after ``tell`` is not stored on its own (one checkpoint per
batch, not two): the next ask's checkpoint holds it, and when the loop ends it replaces the
pending batch. A resumed run restores the state, re-uses the trials of the pending batch that
were already stored, evaluates only the missing ones (same trial numbers, same seeds), tells the
batch again (``tell`` is a function of the state and the records, so a batch whose trials had
all landed is told exactly as before the kill), and continues as if never interrupted. A run
killed after an ask but before any trial of its batch landed resumes from the checkpoint before
it: it tells the previous batch again and asks again (``ask`` is a function of the state, the
random generators included), which gives the same batch.

Checkpoints are incremental and safe: the state is a small JSON/array document
(:mod:`nasforge.storage.state`, never pickle; a blob that is not one is refused with
:class:`~nasforge.storage.state.StateError`). What grows with the trial count (histories,
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
mean observation) round-robin with fresh seeds, and the pick is the best mean; a share that
gives fewer re-evaluations than ``reeval_top`` (a short run) goes to the search instead.
Once the phase has begun, the search is over: resuming the run with a larger budget spends the
extra trials on re-evaluating the same candidates (a warning says so), so such a run differs
from one started with the larger budget. Without it, model-based strategies
(:meth:`AskTellStrategy.estimate`) pick by their estimate
and the others by the best mean observation. The pick and how it was made are stored in
``meta.pick``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar, Protocol

import numpy as np

from nasforge.engine.context import SearchContext
from nasforge.logging import get_logger
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.storage import state as _state
from nasforge.storage.base import Record

_logger = get_logger(__name__)

MAX_IDLE_BATCHES = 50
"""Batches in a row that bring no new evaluation (all answered from the cache) before a search
stops: the strategy keeps proposing what it has already seen."""


class AskTell(Protocol):
    """What the loop needs of a black-box strategy (``AskTellStrategy`` implements it; any
    object with these members runs in the loop)."""

    name: ClassVar[str]
    batch_size: int
    reevaluate: bool | None
    reeval_share: float
    reeval_top: int
    space: SearchSpace | None
    picked: dict[str, Any] | None

    def setup(self, ctx: SearchContext) -> None: ...
    def ask(self, n: int) -> list[Architecture]: ...
    def tell(self, records: list[Record]) -> None: ...
    def rebuild(self, told: list[Record], pending: list[Architecture]) -> None: ...
    def estimate(self, archs: list[Architecture]) -> np.ndarray | None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _stage(strategy: AskTell, ctx: SearchContext, first: int, archs: list[Architecture]) -> None:
    """The checkpoint after an ask: it lands with the batch's first trial."""
    ctx.stage_state("strategy", _state.dumps(strategy.state_dict()))
    ctx.stage_state(
        "pending", _state.dumps({"first": first, "archs": [a.to_json() for a in archs]})
    )


def _save_final(strategy: AskTell, ctx: SearchContext) -> None:
    """The state after the last tell, with no pending batch."""
    with ctx.transaction():
        ctx.save_state("strategy", _state.dumps(strategy.state_dict()))
        ctx.delete_state("pending")

def run_ask_tell(strategy: AskTell, ctx: SearchContext) -> None:
    """The loop of every black-box strategy: ask, evaluate, record, tell, checkpoint; resumable
    exactly at any point (see the module docstring)."""
    strategy.space = ctx.space
    if strategy.reevaluate is not None:
        ctx.reevaluate = strategy.reevaluate
    else:
        ctx.reevaluate = ctx.evaluator.noisy
    saved = ctx.load_state("strategy")
    raw = ctx.load_state("pending")
    pending: tuple[int, list[Architecture]] | None = None
    if raw is not None:
        doc = _state.loads(raw, "pending batch")
        try:
            pending = (int(doc["first"]), [Architecture.from_json(a) for a in doc["archs"]])
        except (KeyError, TypeError, ValueError):
            raise _state.StateError(
                "the stored pending batch is corrupted or tampered with; refusing to load it"
            ) from None
    records = ctx.records()
    if saved is None:
        strategy.setup(ctx)
    else:
        state = _state.loads(saved)
        if not isinstance(state, dict):
            raise _state.StateError(
                "the stored strategy state is corrupted or tampered with; refusing to load it"
            )
        strategy.load_state_dict(state)
        cut = pending[0] if pending is not None else math.inf
        strategy.rebuild([r for r in records if r.number < cut], pending[1] if pending else [])
    raw_plan = ctx.load_state("reeval_plan")
    phase = None if raw_plan is None else _state.loads(raw_plan, "re-evaluation plan")
    if phase is not None:
        _warn_if_grown(phase, ctx)
    extra = 0 if strategy.reeval_share <= 0 else max(1, round(strategy.reeval_share * ctx.budget))
    if 0 < extra < strategy.reeval_top and phase is None:
        # fewer re-evaluations than candidates: one more draw for some of them says little,
        # and the search makes better use of the evaluations
        _logger.info(
            "reeval_share %.2f of budget %d gives %d re-evaluation(s) for a top %d; no "
            "re-evaluation phase (the search gets them)", strategy.reeval_share, ctx.budget,
            extra, strategy.reeval_top,
        )
        extra = 0
    search_budget = max(1, ctx.budget - extra) if extra else ctx.budget
    cut = pending[0] if pending is not None else math.inf
    evaluated = sum(1 for r in records if r.cached_from is None and r.number < cut)
    next_number = len(records) if pending is None else pending[0] + len(pending[1])
    idle = 0
    told = False  # a tell not yet checkpointed (the next ask's checkpoint, or the last one)
    while phase is None:
        if pending is None:
            if evaluated >= search_budget:
                break
            archs = strategy.ask(strategy.batch_size)
            if not archs:
                _logger.info("strategy %s has nothing left to ask; stopping", strategy.name)
                break
            pending = (next_number, [ctx.space.validate(a) for a in archs])
            _stage(strategy, ctx, *pending)
            told = False
        first, archs = pending
        batch = ctx.evaluate_batch(first, archs, limit=search_budget - evaluated)
        new = sum(1 for r in batch if r.cached_from is None)
        evaluated += new
        if len(batch) < len(archs):  # the budget ends inside this batch: it stays pending
            with ctx.transaction():
                ctx.flush_staged()  # (the checkpoint of a batch cut before its first trial)
                if extra:  # ... unless the re-evaluation phase takes the next trial numbers
                    ctx.delete_state("pending")
            break
        strategy.tell(batch)
        told = True
        next_number = first + len(archs)
        pending = None
        idle = 0 if new else idle + 1
        if idle >= MAX_IDLE_BATCHES:
            _logger.warning(
                "strategy %s proposed only evaluated architectures for %d batches; stopping",
                strategy.name, idle,
            )
            break
    if told:
        _save_final(strategy, ctx)
    if extra:
        _reeval_phase(strategy, ctx, phase, ctx.budget - evaluated)
    strategy.picked = pick(strategy, ctx)
    with ctx.transaction():
        ctx.set_meta("pick", strategy.picked)

# ---------------------------------------------------------------- the pick
def _observations(ctx: SearchContext) -> dict[str, list[Record]]:
    """Evaluated (not cached) complete trials per architecture, in trial order."""
    obs: dict[str, list[Record]] = {}
    for r in ctx.records():
        if r.ok and r.cached_from is None and math.isfinite(r.val_acc):
            obs.setdefault(r.arch_id, []).append(r)
    return obs

def _ranked(
    strategy: AskTell, obs: dict[str, list[Record]]
) -> tuple[list[str], np.ndarray, str]:
    """Architecture ids best first, their scores, and what the scores are."""
    ids = list(obs)
    est = strategy.estimate([obs[k][0].arch for k in ids]) if ids else None
    if est is not None:
        scores, how = np.asarray(est, dtype=float), "model estimate"
    else:
        scores = np.array([statistics.fmean(r.val_acc for r in obs[k]) for k in ids])
        how = "mean observation"
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], obs[ids[i]][0].number))
    return [ids[i] for i in order], scores[order], how

def _warn_if_grown(doc: Any, ctx: SearchContext) -> None:
    """A resumed run whose re-evaluation phase has begun, with a larger budget than then."""
    old = doc.get("budget") if isinstance(doc, dict) else None
    if isinstance(old, int) and ctx.budget > old:
        _logger.warning(
            "the re-evaluation phase of this run began at trial %s under budget %d: the search "
            "is over, so the %d more trials of budget %d re-evaluate the same %d candidates "
            "(start a new run for a longer search)", doc.get("first"), old, ctx.budget - old,
            ctx.budget, len(doc.get("archs") or []),
        )


def _reeval_phase(strategy: AskTell, ctx: SearchContext, plan: Any, left: int) -> None:
    """Spend ``left`` evaluations on the top candidates, round-robin, with fresh seeds;
    ``plan``: the stored (decoded) plan of a resumed phase, or None to make it."""
    doc: dict[str, Any]
    if plan is None:
        obs = _observations(ctx)
        ids, _, how = _ranked(strategy, obs)
        top = ids[: strategy.reeval_top]  # run_ask_tell gives the phase >= reeval_top draws
        doc = {"archs": [obs[k][0].arch.to_json() for k in top], "ranked_by": how,
               "first": ctx.count_trials(), "budget": ctx.budget}
        with ctx.transaction():
            ctx.save_state("reeval_plan", _state.dumps(doc))
    else:
        doc = plan
    archs = [Architecture.from_json(a) for a in doc["archs"]]
    if not archs or left <= 0:
        return
    first = int(doc["first"])
    stored = ctx.count_trials()
    total = stored - first + left  # trials of the phase, done or to do
    plan_archs = [archs[i % len(archs)] for i in range(total)]
    prev = ctx.reevaluate
    ctx.reevaluate = True  # a re-evaluation is the point here, whatever the evaluator
    try:
        ctx.evaluate_batch(first, plan_archs)
    finally:
        ctx.reevaluate = prev

def pick(strategy: AskTell, ctx: SearchContext) -> dict[str, Any] | None:
    obs = _observations(ctx)
    if not obs:
        return None
    raw = ctx.load_state("reeval_plan")
    doc = None if raw is None else _state.loads(raw, "re-evaluation plan")
    ids = [] if doc is None else [Architecture.from_json(a).arch_id for a in doc["archs"]]
    ids = [k for k in ids if k in obs]
    if doc is not None and ids:
        means = [statistics.fmean(r.val_acc for r in obs[k]) for k in ids]
        extra = ctx.count_trials() - int(doc["first"])
        i = max(range(len(ids)), key=lambda j: (means[j], -j))
        chosen, score = ids[i], means[i]
        how = (
            f"best mean over re-evaluations: the top {len(ids)} by {doc['ranked_by']} "
            f"re-evaluated {extra} times with fresh seeds ({strategy.reeval_share:.0%} of "
            "the budget)"
        )
    else:
        ids, scores, what = _ranked(strategy, obs)
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
