"""The end of a search: retrain the best architecture with fresh seeds and test it once."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from nasforge.logging import get_logger
from nasforge.seeding import derive_seed

if TYPE_CHECKING:
    from nasforge.storage.base import Record
    from nasforge.strategies.base import SearchContext

_logger = get_logger(__name__)
BEST_MODEL = "best_model.pt"


def save_best_model(run_dir: Path, model: nn.Module) -> Path:
    """The one place a run's best model is written: its ``state_dict`` (tensors only, so
    ``export`` and ``load`` read it with ``weights_only=True``)."""
    path = Path(run_dir) / BEST_MODEL
    torch.save(model.state_dict(), path)
    return path


def ranked_distinct(
    records: list[Record], keep: Literal["first", "best"] = "first"
) -> list[Record]:
    """Complete trials, one per architecture, best validation first (ties: earliest).

    ``keep="first"``: an architecture's first evaluation (re-evaluations of a noisy reward are
    not cherry-picked); ``"best"``: its best one (PBT-NAS, where a member improves every round).
    """
    kept: dict[str, Record] = {}
    for r in records:
        if not r.ok:
            continue
        old = kept.get(r.arch_id)
        if old is None or (keep == "best" and r.val_acc > old.val_acc):
            kept[r.arch_id] = r
    return sorted(kept.values(), key=lambda r: (-r.val_acc, r.number))


def report_best(ctx: SearchContext) -> dict[str, Any]:
    """Retrain the top ``final.candidates`` architectures with ``final.seeds`` seeds each, pick
    the one with the best mean retrained validation accuracy, and report its test accuracy.

    The test split is touched only here, for the chosen architecture. Its first retrained model
    is saved as ``best_model.pt`` for ``nasforge export``.
    """
    cfg = ctx.config.final
    ranked = ranked_distinct(ctx.records())
    if not ranked:
        return {"arch": None, "error": "no trial completed"}
    pick = ctx.store.get_meta("pick")  # the strategy's pick under noise comes first
    if pick:
        ranked.sort(key=lambda r: r.arch_id != pick.get("arch_id"))
    fit = getattr(ctx.evaluator, "fit", None)
    test = getattr(ctx.evaluator, "test_accuracy", None)
    best = ranked[0]
    report: dict[str, Any] = {
        "arch": best.arch.to_json(),
        "arch_id": best.arch_id,
        "describe": ctx.space.describe(best.arch),
        "trial": best.number,
        "val_acc": best.val_acc,
        "params": best.result.params,
    }
    if pick:
        report["picked_by"] = pick.get("how")
        report["pick_mean_val_acc"] = pick.get("mean_val_acc")
        report["pick_evaluations"] = pick.get("evaluations")
    if fit is None or test is None or cfg.seeds == 0:
        return report
    seeds = [derive_seed(ctx.seed, "final", i) for i in range(cfg.seeds)]
    scored = []
    for cand in ranked[: cfg.candidates]:
        models, vals = [], []
        for s in seeds:
            model, res = fit(cand.arch, seed=s)
            if model is None:
                break
            models.append(model)
            vals.append(res.val_acc)
        if len(models) == len(seeds):
            scored.append((statistics.fmean(vals), -cand.number, cand, models, vals))
        ctx.emit_step(len(scored), cfg.candidates, {"phase": "final"})
    if not scored:
        report["error"] = "the best architectures failed to retrain"
        return report
    _, _, chosen, models, vals = max(scored, key=lambda t: (t[0], t[1]))
    tests = [float(test(m)) for m in models]
    more = getattr(ctx.evaluator, "test_metrics", None)
    if more is not None:  # all of the task's metrics, e.g. test_acc beside a val_loss objective
        per = [more(m) for m in models]
        report["test_metrics"] = {k: statistics.fmean(p[k] for p in per) for k in per[0]}
    save_best_model(ctx.run_dir, models[0])
    report.update(
        arch=chosen.arch.to_json(),
        arch_id=chosen.arch_id,
        describe=ctx.space.describe(chosen.arch),
        trial=chosen.number,
        val_acc=chosen.val_acc,
        params=chosen.result.params,
        retrain_seeds=seeds,
        retrain_val_accs=vals,
        test_accs=tests,
        test_acc=statistics.fmean(tests),
        test_std=statistics.pstdev(tests),
        candidates=[c.number for c in ranked[: cfg.candidates]],
    )
    _logger.info(
        "final: %s test score (the objective's, on test) %.4f over %d seeds",
        chosen.arch,
        report["test_acc"],
        len(tests),
    )
    return report
