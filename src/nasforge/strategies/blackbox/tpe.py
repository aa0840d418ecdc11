"""Optuna's TPE (Bergstra et al., "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011;
Watanabe, "Tree-structured Parzen Estimator: Understanding Its Algorithm Components", 2023) behind
nasforge's ask/tell interface, through Optuna's own ask/tell API. Any Optuna sampler plugs in the
same way: ``sampler: RandomSampler``, ``sampler: GPSampler``, or ``sampler: my_pkg.mod:MySampler``
(``module:Class``), with ``sampler_kwargs`` passed to its constructor (a ``seed`` argument is
filled from the strategy seed when the sampler takes one).

Encoding: decision ``t`` of the space's sequential view is the categorical parameter ``d<t>``
whose choices are the indices of ``space.options(t)``, suggested define-by-run, so variable-length
spaces (a stop token) simply have fewer parameters. A suggestion that a mask forbids rejects the
whole proposal: the trial is told ``FAIL`` (samplers ignore failed trials) and another is asked;
after ``max_rejects`` rejections a random valid architecture is enqueued instead.

Decisions: optuna is imported lazily; a failed evaluation is told ``FAIL`` (or ``failed_value``
if set); a repeated architecture is told its cached value again. ``quiet`` lowers optuna's own
logger to WARNING (optuna logs every trial at INFO). The study (in-memory storage) is part of the
pickled strategy state, so a resumed search continues the same sampler exactly.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from nasforge.exceptions import ConfigError
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, AskTellParams, AskTellStrategy, SearchContext


class TPEParams(AskTellParams):
    sampler: str = Field(
        default="TPESampler",
        description="an optuna.samplers class name (TPESampler, RandomSampler, GPSampler, "
        "CmaEsSampler, QMCSampler, ...) or 'module:Class'",
    )
    sampler_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the sampler's constructor"
    )
    max_rejects: int = Field(default=50, ge=0, description="masked proposals before a repair")
    failed_value: float | None = Field(
        default=None, description="value told for a failed evaluation; null: told as FAIL"
    )
    quiet: bool = Field(default=True, description="set optuna's logger to WARNING")


def make_sampler(name: str, kwargs: dict[str, Any], seed: int) -> Any:
    """Instantiate an Optuna sampler by class name or ``module:Class``."""
    import optuna

    if ":" in name:
        module, _, cls_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"strategy.sampler {name!r} cannot be imported: {err}") from None
    else:
        cls = getattr(optuna.samplers, name, None)
        if cls is None or not isinstance(cls, type):
            allowed = [n for n in dir(optuna.samplers) if n.endswith("Sampler") and n[0].isupper()]
            raise ConfigError(
                f"unknown optuna sampler {name!r}; allowed: {', '.join(sorted(allowed))} "
                "or 'module:Class'"
            )
    kw = dict(kwargs)
    try:
        takes_seed = "seed" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes_seed = False
    if takes_seed and "seed" not in kw:
        kw["seed"] = seed
    try:
        return cls(**kw)
    except TypeError as err:
        raise ConfigError(f"strategy.sampler_kwargs do not fit {name}: {err}") from None


@STRATEGIES.register("tpe")
class OptunaTPE(AskTellStrategy):
    """An Optuna sampler (TPE by default) proposing architectures decision by decision."""

    name: ClassVar[str] = "tpe"
    Params: ClassVar[type[BaseModel]] = TPEParams

    def __init__(
        self,
        *,
        seed: int = 0,
        batch_size: int = 1,
        reevaluate: bool = False,
        sampler: str = "TPESampler",
        sampler_kwargs: dict[str, Any] | None = None,
        max_rejects: int = 50,
        failed_value: float | None = None,
        quiet: bool = True,
    ) -> None:
        super().__init__(seed=seed, batch_size=batch_size, reevaluate=reevaluate)
        self.sampler_name = sampler
        self.sampler_kwargs = dict(sampler_kwargs or {})
        self.max_rejects = max_rejects
        self.failed_value = failed_value
        self.quiet = quiet
        self.study: Any = None
        self.pending: list[int] = []  # optuna trial numbers of the last ask, in ask order
        self.rejected = 0
        make_sampler(sampler, self.sampler_kwargs, 0)  # bad names fail at construction

    def setup(self, ctx: SearchContext) -> None:
        self.study = self._new_study()

    def _new_study(self) -> Any:
        import optuna

        if self.quiet:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = make_sampler(
            self.sampler_name, self.sampler_kwargs, derive_seed(self.seed, "optuna")
        )
        return optuna.create_study(direction="maximize", sampler=sampler)

    def _propose(self) -> tuple[Any, Architecture]:
        import optuna

        assert self.space is not None
        space = self.space
        for attempt in range(self.max_rejects + 1):
            if attempt == self.max_rejects:  # repair: enqueue a random valid architecture
                idx = space.encode(space.sample(self.rng))
                self.study.enqueue_trial({f"d{t}": int(i) for t, i in enumerate(idx)})
            trial = self.study.ask()
            prefix: list[int] = []
            ok = True
            while not space.is_complete(prefix):
                t = len(prefix)
                i = int(trial.suggest_categorical(f"d{t}", list(range(len(space.options(t))))))
                if not space.allowed(prefix)[i]:
                    ok = False
                    break
                prefix.append(i)
            if ok:
                return trial, space.decode(prefix)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.rejected += 1
        raise RuntimeError("unreachable: the enqueued repair is always valid")

    def ask(self, n: int) -> list[Architecture]:
        if self.study is None:
            self.study = self._new_study()
        out = []
        self.pending = []
        for _ in range(n):
            trial, arch = self._propose()
            self.pending.append(trial.number)
            out.append(arch)
        return out

    def tell(self, records: list[Record]) -> None:
        import optuna

        for number, r in zip(self.pending, records):
            if r.ok:
                self.study.tell(number, float(r.val_acc))
            elif self.failed_value is not None:
                self.study.tell(number, float(self.failed_value))
            else:
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        for number in self.pending[len(records):]:  # asked but never evaluated
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        self.pending = []
