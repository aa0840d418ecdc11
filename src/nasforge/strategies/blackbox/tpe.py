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

Decisions: optuna is imported lazily; a failed evaluation is left out (or told ``failed_value``
if set). ``quiet`` lowers optuna's own logger to WARNING (optuna logs every trial at INFO).

Repeats (``avoid_repeats``): a proposal equal to an architecture already asked in this search
is replaced by an unseen single mutation of it (else a random unseen architecture), without a
second sampler call: the open trial's decisions are rewritten to the replacement's (so the study
holds one trial per evaluation, as a study rebuilt on resume does); where the replacement has a
different number of decisions (a variable-length space), the trial is told ``FAIL`` (samplers
ignore it) and the replacement's result is added to the study when told. A repeat is accepted
only when the space is spent (a noisy evaluator then evaluates it again).

State without pickle: an asked trial stays open (running, which samplers ignore) until its
result is told with ``study.tell`` (a failed evaluation without ``failed_value`` is told
``FAIL``). The study is not checkpointed: on resume it is rebuilt from the stored trials (their
decisions and values, in order, through ``study.add_trial``; the pending batch's results are
added the same way when told). The sampler's random states (``numpy.random.RandomState``
objects found on the sampler and its sub-samplers) are not checkpointed either: before every ask
they are reseeded from the strategy seed and the ask count (the key ``[derive_seed(seed,
"optuna", "reseed"), asks, i]``), so the checkpoint holds one integer and a resumed TPE search
continues exactly (saving two Mersenne Twister states after every ask and tell was a third of
the per-trial overhead). What samplers keep in the study's system attributes (QMCSampler's
position in its sequence) is small JSON, checkpointed and restored. Samplers that keep state in
the trials' attributes (CmaEsSampler) resume with that state rebuilt from the trials only.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from nasforge.exceptions import ConfigError
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture
from nasforge.spaces.operations import mutate
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, AskTellParams, AskTellStrategy, SearchContext
from nasforge.strategies.blackbox.evolution import sample_unseen


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
    avoid_repeats: bool = Field(
        default=True,
        description="replace a proposal already asked by an unseen single mutation of it",
    )
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
    transient: ClassVar[tuple[str, ...]] = (*AskTellStrategy.transient, "_root")  # (seed's)
    history: ClassVar[tuple[str, ...]] = ("study", "asked_ids", "_dists", "_open", "_rngs")

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        if importlib.util.find_spec("optuna") is None:
            raise ConfigError("strategy 'tpe' needs optuna: pip install 'nasforge[optuna]' "
                              "(or pick another strategy: nasforge list strategies)")
        super().__init__(seed=seed, **params)
        p = self.p
        self.sampler_name: str = p.sampler
        self.sampler_kwargs: dict[str, Any] = dict(p.sampler_kwargs or {})
        self.max_rejects: int = p.max_rejects
        self.avoid_repeats: bool = p.avoid_repeats
        self.failed_value: float | None = p.failed_value
        self.quiet: bool = p.quiet
        self.study: Any = None
        self.pending: list[list[int]] = []  # decisions of the last ask, in ask order
        self._open: list[Any] = []  # their open optuna trials (none after a resume)
        self.rejected = 0
        self.repeats_avoided = 0
        self.asks = 0  # ask calls so far: the sampler's random states are reseeded from it
        self._rngs: list[Any] = []  # the sampler's random states (found once per study)
        self._root = derive_seed(seed, "optuna", "reseed")  # their seeds' key: (root, asks, i)
        self.study_attrs: dict[str, Any] = {}  # the study's system attributes (JSON values)
        self.asked_ids: set[str] = set()
        self._dists: dict[tuple[int, int], Any] = {}
        make_sampler(p.sampler, self.sampler_kwargs, 0)  # bad names fail at construction

    def setup(self, ctx: SearchContext) -> None:
        self.study = self._new_study()

    def _new_study(self) -> Any:
        import optuna

        if self.quiet:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = make_sampler(
            self.sampler_name, self.sampler_kwargs, derive_seed(self.seed, "optuna")
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        self._rngs = self._random_states(study.sampler)
        return study

    # ------------------------------------------------------------ state
    @staticmethod
    def _random_states(sampler: Any) -> list[Any]:
        """The numpy RandomState objects of the sampler and its sub-samplers, in a fixed order."""
        import numpy as np

        out: list[Any] = []
        seen: set[int] = set()

        def walk(obj: Any, depth: int) -> None:
            if id(obj) in seen or depth > 3:
                return
            seen.add(id(obj))
            if isinstance(obj, np.random.RandomState):
                out.append(obj)
                return
            if type(obj).__name__ == "LazyRandomState":  # optuna's: created on first use
                out.append(obj.rng)
                return
            attrs = getattr(obj, "__dict__", None)
            if not isinstance(attrs, dict):
                return
            for key in sorted(attrs):
                walk(attrs[key], depth + 1)

        walk(sampler, 0)
        return out

    def _reseed(self) -> None:
        """Seed the sampler's random states for ask number ``asks`` (resume-exact, no state)."""
        for i, rs in enumerate(self._rngs):  # (a key array: no seed derivation per ask)
            rs.seed([self._root, self.asks, i])
        self.asks += 1

    def state_dict(self) -> dict[str, Any]:
        if self.study is not None:  # (empty for TPE; QMCSampler counts its samples here)
            self.study_attrs = dict(
                self.study._storage.get_study_system_attrs(self.study._study_id)
            )
        return super().state_dict()

    def rebuild(self, told: list[Record], pending: list[Architecture]) -> None:
        assert self.space is not None
        self.study = self._new_study()
        for key, value in self.study_attrs.items():
            self.study._storage.set_study_system_attr(self.study._study_id, key, value)
        self.asked_ids = {r.arch_id for r in told} | {a.arch_id for a in pending}
        self._add_results([self.space.encode(r.arch) for r in told], told)

    # ------------------------------------------------------------ ask/tell
    def _dist(self, t: int) -> Any:
        import optuna

        assert self.space is not None
        n = len(self.space.options(t))
        d = self._dists.get((t, n))
        if d is None:
            d = self._dists[(t, n)] = optuna.distributions.CategoricalDistribution(
                list(range(n))
            )
        return d

    def _propose(self) -> tuple[list[int], Any, Architecture]:
        import optuna

        assert self.space is not None
        space = self.space
        fail = optuna.trial.TrialState.FAIL
        masked = space.masked
        attempt = 0
        while True:
            if attempt == self.max_rejects:  # repair: enqueue a random valid architecture
                idx = space.encode(space.sample(self.rng))
                self.study.enqueue_trial({f"d{t}": int(i) for t, i in enumerate(idx)})
            trial = self.study.ask()
            prefix: list[int] = []
            ok = True
            while not space.is_complete(prefix):
                t = len(prefix)
                i = int(trial.suggest_categorical(f"d{t}", list(range(len(space.options(t))))))
                if masked and not space.allowed(prefix)[i]:
                    ok = False
                    break
                prefix.append(i)
            if not ok:
                self.study.tell(trial, state=fail)
                self.rejected += 1
                attempt += 1
                if attempt > self.max_rejects:
                    raise RuntimeError("unreachable: the enqueued repair is always valid")
                continue
            arch = space.decode(prefix)
            if arch.arch_id in self.asked_ids and self.avoid_repeats:
                # a repeat: propose instead an unseen single mutation of it (TPE's proposal is
                # near its model's mode), else a random unseen architecture; no optuna trial is
                # opened for it (its result is added when told), so no second sampler call
                other = arch
                for _ in range(20):
                    other = mutate(space, arch, self.rng)
                    if other.arch_id not in self.asked_ids:
                        break
                if other.arch_id in self.asked_ids:
                    other = sample_unseen(space, self.rng, self.asked_ids)
                if other.arch_id in self.asked_ids:
                    return prefix, trial, arch  # the space is spent: accept the repeat
                self.repeats_avoided += 1
                self.asked_ids.add(other.arch_id)
                new = list(space.encode(other))
                if len(new) == len(prefix):  # the open trial takes the replacement's decisions
                    self._set_params(trial, prefix, new)
                    return new, trial, other
                self.study.tell(trial, state=fail)
                return new, None, other
            self.asked_ids.add(arch.arch_id)
            return prefix, trial, arch

    def _set_params(self, trial: Any, old: list[int], new: list[int]) -> None:
        """Rewrite the decisions of the open ``trial`` (a repeat ``old``) to ``new``, so the
        study holds one trial per evaluation, as a rebuilt one does, and no failed trial for
        the sampler to skip on every later ask."""
        storage, tid = self.study._storage, trial._trial_id
        for t, (a, b) in enumerate(zip(old, new)):
            if a != b:
                dist = self._dist(t)
                storage.set_trial_param(tid, f"d{t}", dist.to_internal_repr(b), dist)

    def ask(self, n: int) -> list[Architecture]:
        if self.study is None:
            self.study = self._new_study()
        assert self.space is not None
        self._reseed()
        proposals = [self._propose() for _ in range(n)]
        self.pending = [p for p, _, _ in proposals]
        self._open = [t for _, t, _ in proposals]
        return [a for _, _, a in proposals]

    def _value(self, r: Record) -> float | None:
        """What the sampler is told for ``r``; None: a failure (told FAIL / left out)."""
        if r.ok:
            return float(r.val_acc)
        return None if self.failed_value is None else float(self.failed_value)

    @staticmethod
    def _fail() -> Any:
        import optuna

        return optuna.trial.TrialState.FAIL

    def _add_results(self, decisions: Sequence[Sequence[int]], records: list[Record]) -> None:
        import optuna

        for idx, r in zip(decisions, records):
            value = self._value(r)
            if value is None:
                continue  # samplers ignore failed trials
            params = {f"d{t}": int(i) for t, i in enumerate(idx)}
            dists = {f"d{t}": self._dist(t) for t in range(len(idx))}
            self.study.add_trial(
                optuna.trial.create_trial(params=params, distributions=dists, value=value)
            )

    def tell(self, records: list[Record]) -> None:
        opened = self._open if len(self._open) == len(self.pending) else [None] * len(records)
        for idx, trial, r in zip(self.pending, opened, records):  # (none open after a resume)
            if trial is None:  # a replaced repeat, or resumed: added as a finished trial
                self._add_results([idx], [r])
                continue
            value = self._value(r)
            if value is None:
                self.study.tell(trial, state=self._fail())
            else:
                self.study.tell(trial, value)
        self.pending, self._open = [], []
