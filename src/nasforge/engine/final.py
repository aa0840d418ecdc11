"""The end of a search: one :class:`FinalReport` value, built by one function, and the one place
``best_model.pt`` is written.

Every family reports through :func:`build_report`: the ask/tell strategies through
:func:`report_best` (retrain the top candidates with fresh seeds, test the chosen one once), the
one-shot base after retraining its derived architecture, PBT-NAS for its final population's best
member, meta-RL NAS for each task's best networks. ``show``, ``--json``, ``plot``, ``export``
and the Python API (:attr:`nasforge.Run.final`) read the same value back with
:meth:`FinalReport.from_json`, which also reads runs stored before the report had a type.

Scores: ``val_acc`` is the objective's *utility* (higher is better, as in every stored
trial); :attr:`FinalReport.score` converts it to the objective's own units. ``test_acc`` is the
test score in the objective's units (accuracy, loss, return, FID: its name is the objective's
``test_name``), the mean over the retrainings when there were any.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from nasforge.evaluators.base import ReportsTestMetrics, Retrainable
from nasforge.logging import get_logger
from nasforge.objectives import DEFAULT, Objective
from nasforge.seeding import derive_seed
from nasforge.spaces.base import Architecture
from nasforge.storage.base import Record

if TYPE_CHECKING:
    from nasforge.engine.context import SearchContext

_logger = get_logger(__name__)
BEST_MODEL = "best_model.pt"
TASK_MODELS = "task_models"
"""Folder of a multi-task run's best trained network per task (``<i>.pt``, the i-th task of
the report's ``extra.task_models`` mapping)."""

#: the report's own JSON keys; everything else a family adds is kept in ``extra``
_CORE = (
    "arch", "arch_id", "describe", "trial", "val_acc", "params", "retrain_seeds",
    "retrain_val_accs", "test_accs", "test_acc", "test_std", "candidates", "test_metrics",
    "error",
)


@dataclass(frozen=True)
class Retraining:
    """One retraining of the chosen architecture: its seed, validation utility, test score."""

    seed: int
    val_acc: float
    test: float


@dataclass(frozen=True)
class FinalReport:
    """What a finished search chose, and how well it did.

    ``arch`` is the architecture's JSON (``None`` with ``error`` when nothing completed);
    ``trial`` the stored trial it came from; ``params`` its parameter count; ``retrainings`` the
    fresh-seed retrainings (empty when the family does not retrain, e.g. PBT-NAS);
    ``candidates`` the trials that were retrained to choose it; ``extra`` what a family adds
    (REINFORCE's greedy decode, PBT-NAS's population and soup, DARTS's genotype).
    """

    objective: Objective = DEFAULT
    arch: dict[str, Any] | None = None
    arch_id: str | None = None
    describe: str | None = None
    trial: int | None = None
    val_acc: float | None = None
    params: int | None = None
    retrainings: tuple[Retraining, ...] = ()
    test_acc: float | None = None
    test_std: float | None = None
    candidates: tuple[int, ...] | None = None
    test_metrics: Mapping[str, float] | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The chosen architecture's validation score in the objective's units."""
        return self.objective.score(self.val_acc)

    @property
    def test_score(self) -> float | None:
        """Its test score (objective units), the retrainings' mean where it was retrained."""
        return self.test_acc

    @property
    def retrained(self) -> bool:
        return bool(self.retrainings)

    def to_json(self) -> dict[str, Any]:
        """The stored layout (``meta.final``); the objective is the run's ``meta.objective``."""
        out: dict[str, Any] = {"arch": self.arch}
        if self.error is not None:
            out["error"] = self.error
        if self.arch is not None:
            out.update(arch_id=self.arch_id, describe=self.describe, trial=self.trial,
                       val_acc=self.val_acc, params=self.params)
        out.update(self.extra)
        if self.retrainings:
            out.update(
                retrain_seeds=[r.seed for r in self.retrainings],
                retrain_val_accs=[r.val_acc for r in self.retrainings],
                test_accs=[r.test for r in self.retrainings],
            )
        if self.test_acc is not None:
            out["test_acc"] = self.test_acc
        if self.test_std is not None:
            out["test_std"] = self.test_std
        if self.candidates is not None:
            out["candidates"] = list(self.candidates)
        if self.test_metrics is not None:
            out["test_metrics"] = dict(self.test_metrics)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], objective: Objective = DEFAULT) -> FinalReport:
        """Read a stored report, including those of runs before the report had a type (PBT-NAS
        on RL stored ``test_return`` / ``test_return_std``)."""
        d = dict(doc)
        extra = {k: v for k, v in d.items() if k not in _CORE}
        test, std = d.get("test_acc"), d.get("test_std")
        if test is None and "test_return" in extra:  # runs before objectives had names
            test = extra.pop("test_return")
            std = extra.pop("test_return_std", std)
        seeds = d.get("retrain_seeds") or []
        vals = d.get("retrain_val_accs") or []
        tests = d.get("test_accs") or []
        cands = d.get("candidates")
        return cls(
            objective=objective,
            arch=d.get("arch"),
            arch_id=d.get("arch_id"),
            describe=d.get("describe"),
            trial=d.get("trial"),
            val_acc=d.get("val_acc"),
            params=d.get("params"),
            retrainings=tuple(Retraining(int(s), float(v), float(t))
                              for s, v, t in zip(seeds, vals, tests)),
            test_acc=test,
            test_std=std,
            candidates=None if cands is None else tuple(int(c) for c in cands),
            test_metrics=d.get("test_metrics"),
            error=d.get("error"),
            extra=extra,
        )


def save_best_model(run_dir: Path, model: nn.Module, name: str = BEST_MODEL) -> Path:
    """The one place a run's trained models are written: the ``state_dict`` (tensors only, so
    ``export`` and ``load`` read it with ``weights_only=True``) as ``name`` in the run (the best
    model, or a task's under ``task_models/``). Called by :func:`build_report` only."""
    path = Path(run_dir) / name
    torch.save(model.state_dict(), path)
    return path


def build_report(
    ctx: SearchContext,
    *,
    arch: Architecture | None = None,
    trial: int | None = None,
    val_acc: float | None = None,
    params: int | None = None,
    retrainings: Sequence[Retraining] = (),
    test_acc: float | None = None,
    test_std: float | None = None,
    candidates: Sequence[int] | None = None,
    test_metrics: Mapping[str, float] | None = None,
    model: nn.Module | None = None,
    task_models: Mapping[str, nn.Module] | None = None,
    extra: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> FinalReport:
    """The one constructor of a run's :class:`FinalReport` (every family calls it).

    ``arch``: the chosen :class:`~nasforge.spaces.base.Architecture` (``None`` with ``error``).
    With ``retrainings`` the test score and its spread are their mean and population std unless
    given. ``model``: the chosen trained network, saved as ``best_model.pt`` for ``export``;
    ``task_models``: a multi-task run's trained network per task id, saved under
    ``task_models/`` and listed (task id -> file relative to the run) in ``extra.task_models``.
    """
    if arch is None:
        return FinalReport(objective=ctx.objective, error=error or "no trial completed",
                           extra=dict(extra or {}))
    extra = dict(extra or {})
    if task_models:
        (Path(ctx.run_dir) / TASK_MODELS).mkdir(exist_ok=True)
        files: dict[str, str] = {}
        for i, (tid, net) in enumerate(task_models.items()):
            files[tid] = f"{TASK_MODELS}/{i}.pt"
            save_best_model(ctx.run_dir, net, files[tid])
        extra["task_models"] = files
    rs = tuple(retrainings)
    if rs and test_acc is None:
        tests = [r.test for r in rs]
        test_acc, test_std = statistics.fmean(tests), statistics.pstdev(tests)
    report = FinalReport(
        objective=ctx.objective,
        arch=arch.to_json(),
        arch_id=arch.arch_id,
        describe=ctx.space.describe(arch),
        trial=trial,
        val_acc=val_acc,
        params=params,
        retrainings=rs,
        test_acc=test_acc,
        test_std=test_std,
        candidates=None if candidates is None else tuple(candidates),
        test_metrics=None if test_metrics is None else dict(test_metrics),
        error=error,
        extra=extra,
    )
    if model is not None:
        save_best_model(ctx.run_dir, model)
    if report.test_acc is not None:
        _logger.info("final: %s %s %.4f%s", report.describe, ctx.objective.test_name,
                     report.test_acc, f" over {len(rs)} seeds" if rs else "")
    return report


def ranked_distinct(
    records: list[Record], keep: Literal["first", "best"] = "first", by_task: bool = False
) -> list[Record]:
    """Complete trials, one per architecture, best validation first (ties: earliest).

    ``keep="first"``: an architecture's first evaluation (re-evaluations of a noisy reward are
    not cherry-picked); ``"best"``: its best one (PBT-NAS, where a member improves every round).
    ``by_task``: one per architecture and task (a run over several tasks, e.g. ``meta_a2c``).
    """
    kept: dict[tuple[str, str | None], Record] = {}
    for r in records:
        if not r.ok:
            continue
        key = (r.arch_id, r.task if by_task else None)
        old = kept.get(key)
        if old is None or (keep == "best" and r.val_acc > old.val_acc):
            kept[key] = r
    return sorted(kept.values(), key=lambda r: (-r.val_acc, r.number))


def final_seeds(ctx: SearchContext) -> list[int]:
    """The seeds of the final retrainings (``final.seeds`` of them, from the run seed)."""
    return [derive_seed(ctx.seed, "final", i) for i in range(ctx.config.final.seeds)]


def report_best(ctx: SearchContext) -> FinalReport:
    """Retrain the top ``final.candidates`` architectures with ``final.seeds`` seeds each, pick
    the one with the best mean retrained validation score, and report its test score.

    The test split is touched only here, for the chosen architecture. Its first retrained model
    is saved as ``best_model.pt`` for ``nasforge export``. The strategy's pick under noise
    (``meta.pick``) is the first candidate.
    """
    cfg = ctx.config.final
    ranked = ranked_distinct(ctx.records())
    if not ranked:
        return build_report(ctx, error="no trial completed")
    pick = ctx.get_meta("pick")
    if pick:
        ranked.sort(key=lambda r: r.arch_id != pick.get("arch_id"))
    extra: dict[str, Any] = {}
    if pick:
        extra = {"picked_by": pick.get("how"), "pick_mean_val_acc": pick.get("mean_val_acc"),
                 "pick_evaluations": pick.get("evaluations")}
    best = ranked[0]
    ev = ctx.evaluator
    if not isinstance(ev, Retrainable) or cfg.seeds == 0:
        return build_report(ctx, arch=best.arch, trial=best.number, val_acc=best.val_acc,
                            params=best.result.params, extra=extra)
    seeds = final_seeds(ctx)
    scored = []
    for cand in ranked[: cfg.candidates]:
        done = fit_all(ev, cand.arch, seeds)
        if done is not None:
            models, vals = done
            scored.append((statistics.fmean(vals), -cand.number, cand, models, vals))
        ctx.emit_step(len(scored), cfg.candidates, {"phase": "final"})
    if not scored:
        return build_report(ctx, arch=best.arch, trial=best.number, val_acc=best.val_acc,
                            params=best.result.params, extra=extra,
                            error="the best architectures failed to retrain")
    _, _, chosen, models, vals = max(scored, key=lambda t: (t[0], t[1]))
    runs = [Retraining(s, v, float(ev.test_accuracy(m))) for s, v, m in zip(seeds, vals, models)]
    metrics = None
    if isinstance(ev, ReportsTestMetrics):  # e.g. test_acc beside a val_loss objective
        per = [ev.test_metrics(m) for m in models]
        metrics = {k: statistics.fmean(p[k] for p in per) for k in per[0]}
    return build_report(
        ctx, arch=chosen.arch, trial=chosen.number, val_acc=chosen.val_acc,
        params=chosen.result.params, retrainings=runs, test_metrics=metrics,
        candidates=[c.number for c in ranked[: cfg.candidates]], model=models[0], extra=extra,
    )


def fit_all(
    ev: Retrainable, arch: Architecture, seeds: Sequence[int]
) -> tuple[list[nn.Module], list[float]] | None:
    """Retrain ``arch`` once per seed: ``(models, validation utilities)``, or ``None`` as soon
    as one retraining fails."""
    models, vals = [], []
    for s in seeds:
        model, res = ev.fit(arch, seed=s)
        if model is None:
            return None
        models.append(model)
        vals.append(res.val_acc)
    return models, vals
