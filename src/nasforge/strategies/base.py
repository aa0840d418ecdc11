"""The Strategy interface and the base of black-box strategies.

* :class:`Strategy` is what every search family implements: ``run(ctx)``, then ``finalize(ctx)``
  returning the run's :class:`~nasforge.engine.final.FinalReport`. One-shot (DARTS, MetaNAS),
  population (PBT-NAS) and meta-learning searches override ``run`` and own their loop, writing
  through the :class:`~nasforge.engine.context.SearchContext`.
* :class:`AskTellStrategy` is the base of black-box strategies (random search, REINFORCE,
  evolution, TPE, bo_evolution): they write ``ask(n)`` and ``tell(records)``; the loop, its
  budget, reward cache, resume protocol and pick are the engine's
  (:mod:`nasforge.engine.loop`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasforge.config import validate_params
from nasforge.data.base import Task
from nasforge.engine.context import Callback, SearchContext
from nasforge.engine.final import FinalReport, report_best
from nasforge.engine.loop import run_ask_tell
from nasforge.registry import Registry
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.storage.base import Record

__all__ = ["STRATEGIES", "AskTellParams", "AskTellStrategy", "Callback", "SearchContext",
           "Strategy"]


class Strategy(ABC):
    """A search strategy. ``run(ctx)`` performs the search, writing the run through ``ctx``.

    Constructors take the run ``seed`` and the validated params (keyword-only, cheap: no tensors
    or I/O). ``finalize(ctx)`` reports the chosen architecture after the search; by default it
    retrains the best stored trial (see :func:`report_best`).
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def check(
        self, space: SearchSpace, evaluator: Any, budget: int, tasks: Mapping[str, Task]
    ) -> None:
        """Raise :class:`ConfigError` if this strategy cannot run with these parts; called by
        ``search`` before the run directory is created, so bad input writes nothing. ``tasks``
        are the run's loaded tasks by id (``task:`` or the ``tasks:`` suite, the primary first;
        empty when the evaluator needs none)."""
        return None

    @abstractmethod
    def run(self, ctx: SearchContext) -> None:
        """Search until the budget is spent (or the strategy is done)."""

    def finalize(self, ctx: SearchContext) -> FinalReport:
        """The run's final report; by default the best stored trials retrained and the chosen
        one tested (:func:`~nasforge.engine.final.report_best`)."""
        return report_best(ctx)


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
        "fresh seeds; the pick is then the best mean (0: no re-evaluation phase; a share "
        "giving fewer evaluations than reeval_top goes to the search)",
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

    transient: ClassVar[tuple[str, ...]] = ("space", "picked", "p")
    Params: ClassVar[type[BaseModel]] = AskTellParams
    history: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        """``params``: the config entry's fields, validated by the class's ``Params`` (the one
        definition of every field, its type and default); kept as ``self.p``."""
        super().__init__(seed=seed)
        p: Any = validate_params(type(self), "strategy", params)
        self.p = p
        self.batch_size: int = p.batch_size
        self.reevaluate: bool | None = p.reevaluate
        self.reeval_share: float = p.reeval_share
        self.reeval_top: int = p.reeval_top
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

    def run(self, ctx: SearchContext) -> None:
        """The engine's ask/tell loop (:func:`nasforge.engine.loop.run_ask_tell`)."""
        run_ask_tell(self, ctx)


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
