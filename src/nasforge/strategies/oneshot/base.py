"""The one-shot base: what every supernet search shares, whatever its inner loop.

A one-shot search trains one supernet (weights and architecture parameters together) for a
number of epochs and then discretises it. The lifecycle, owned here:

1. ``setup(ctx)``: read the parts (space, task, device) and build what does not depend on the
   checkpoint; called once per run (and again on resume).
2. Inside a forked torch RNG (the caller's global RNG is left as it was): ``init_state()``
   (generators, architecture parameters), then either ``fresh()`` (a new supernet; returns the
   first epoch, 0) or ``restore(state)`` (from the last committed checkpoint; returns the next
   epoch).
3. Per epoch: ``train_epoch(ctx, epoch)`` returns the epoch's :class:`Record` (the derived
   architecture, scored by the supernet) and its series entry; :meth:`commit` stores the record,
   the series entry and ``checkpoint()`` in **one transaction**, so a SIGKILL leaves the run at
   the previous epoch and ``--resume`` reproduces the uninterrupted run exactly. An epoch may
   return no record (``None``: MetaNAS scores only its meta-test epochs); its series entry and
   checkpoint are still committed.
4. ``finalize(ctx)``: the last epoch's architecture is retrained from scratch with
   ``final.seeds`` seeds (``retrain``), tested once (``test``), and the first model saved as the
   run's best model. A family that does not retrain (``retrains = False``: MetaNAS, whose
   product is the meta-learned supernet) reports ``report_extras`` and saves ``final_model()``.

Checkpoints are encoded with ``torch.save`` and decoded with ``weights_only=True`` (tensors,
numbers, strings and containers only), so a run directory cannot run code when resumed.
"""

from __future__ import annotations

import io
import statistics
from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from nasforge.engine.final import FinalReport, Retraining, build_report, final_seeds
from nasforge.exceptions import RunDirError
from nasforge.logging import get_logger
from nasforge.safeload import load_checkpoint
from nasforge.spaces.base import Architecture
from nasforge.storage.base import Record
from nasforge.strategies.base import SearchContext, Strategy

_logger = get_logger(__name__)


def encode_checkpoint(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def decode_checkpoint(
    blob: bytes, map_location: torch.device | str = "cpu", label: str = "one-shot"
) -> dict[str, Any]:
    """A checkpoint written by :func:`encode_checkpoint`; anything else is refused with one
    line (:func:`nasforge.safeload.load_checkpoint`), never executed."""
    state = load_checkpoint(blob, map_location, f"the run's {label} checkpoint")
    if not isinstance(state, dict):
        raise RunDirError("the run's one-shot checkpoint is not a nasforge checkpoint")
    return state


class OneShotSearch(Strategy):
    """Base of supernet searches; subclasses implement the hooks named in the module docstring.

    Attributes a subclass sets: ``checkpoint_key`` (the state key in the run store),
    ``series_kind`` (the per-epoch series, e.g. ``"alphas"``), ``phase`` (the progress label).
    """

    checkpoint_key: ClassVar[str]
    series_kind: ClassVar[str]
    phase: ClassVar[str] = "oneshot"
    label: ClassVar[str] = "one-shot"  # how messages name the family (e.g. "DARTS")
    retrains: ClassVar[bool] = True  # finalize retrains the architecture from scratch

    # ------------------------------------------------------------------ hooks
    @property
    @abstractmethod
    def epochs(self) -> int:
        """Search epochs in all."""

    @abstractmethod
    def setup(self, ctx: SearchContext) -> None:
        """Read the parts of the run; raise :class:`ConfigError` if they do not fit."""

    def init_state(self) -> None:
        """Create what a checkpoint restores into (inside the forked RNG). Default: nothing."""

    @abstractmethod
    def fresh(self) -> int:
        """Build a new supernet and its optimisers; return the first epoch (0)."""

    @abstractmethod
    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """Everything needed to continue after ``epoch`` (tensors, numbers, containers)."""

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> int:
        """Load a :meth:`checkpoint`; return the epoch to continue with."""

    def before_epoch(self, epoch: int) -> None:
        """Called before each epoch (e.g. P-DARTS' stage changes). Default: nothing."""

    @abstractmethod
    def train_epoch(
        self, ctx: SearchContext, epoch: int
    ) -> tuple[Record | None, dict[str, Any]]:
        """Train one epoch; return its record (or None: not scored) and its series entry."""

    @abstractmethod
    def retrain(
        self, ctx: SearchContext, arch: Architecture, seed: int
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Train ``arch`` from scratch; return the model and an info dict with ``val_acc``,
        ``params`` and ``seconds``."""

    @abstractmethod
    def test(self, ctx: SearchContext, model: nn.Module) -> float:
        """The test score of a retrained model (the test split is touched only here)."""

    def report_extras(self, ctx: SearchContext, last: Record) -> dict[str, Any]:
        """Family-specific entries of the final report (before retraining). Default: none."""
        return {}

    def final_model(self, ctx: SearchContext) -> nn.Module | None:
        """``retrains = False``: the model saved as the run's best model. Default: none."""
        return None

    # ------------------------------------------------------------------- loop
    def run(self, ctx: SearchContext) -> None:
        self.setup(ctx)
        with torch.random.fork_rng(devices=[]):
            self.init_state()
            blob = ctx.load_state(self.checkpoint_key)
            start = self.fresh() if blob is None else self.restore(
                decode_checkpoint(blob, ctx.device, self.label)
            )
            for epoch in range(start, self.epochs):
                self.before_epoch(epoch)
                rec, series = self.train_epoch(ctx, epoch)
                self.commit(ctx, epoch, rec, series)

    def commit(
        self, ctx: SearchContext, epoch: int, rec: Record | None, series: dict[str, Any]
    ) -> None:
        """Store the epoch's record, series entry and checkpoint in one transaction."""
        with ctx.transaction():
            ctx.log_series(self.series_kind, epoch, series, truncate=True)
            if rec is not None:
                ctx.record_trial(rec)
            ctx.save_state(self.checkpoint_key, encode_checkpoint(self.checkpoint(epoch)))
        if rec is None:
            ctx.emit_step(epoch + 1, self.epochs, {"phase": self.phase})
            return
        _logger.info("epoch %d val_acc=%.4f %s", epoch, rec.val_acc,
                     series.get("describe", rec.arch))
        ctx.emit_step(epoch + 1, self.epochs, {
            "phase": self.phase, "val_acc": float(rec.val_acc),
            "loss": rec.result.metrics.get("train_loss")})

    # ------------------------------------------------------------------ final
    def finalize(self, ctx: SearchContext) -> FinalReport:
        recs = ctx.records()
        if not recs:
            return build_report(ctx, error="no search epoch finished")
        last = recs[-1]
        extra: dict[str, Any] = {"search_val_acc": last.val_acc, **self.report_extras(ctx, last)}
        if not self.retrains:  # the search's own model is the result (MetaNAS)
            return build_report(ctx, arch=last.arch, trial=last.number, val_acc=last.val_acc,
                                params=last.result.params, test_acc=extra.pop("test_acc", None),
                                model=self.final_model(ctx), extra=extra)
        if ctx.task is None or ctx.config.final.seeds == 0:
            return build_report(ctx, arch=last.arch, trial=last.number, val_acc=last.val_acc,
                                params=last.result.params, extra=extra)
        seeds = final_seeds(ctx)
        runs, infos = [], []
        first_model: nn.Module | None = None
        for i, s in enumerate(seeds):
            model, info = self.retrain(ctx, last.arch, s)
            acc = self.test(ctx, model)
            runs.append(Retraining(s, info["val_acc"], acc))
            infos.append(info)
            first_model = first_model or model
            ctx.emit_step(i + 1, len(seeds), {"phase": "retrain", "test_acc": acc})
        extra["retrain_seconds"] = statistics.fmean(i["seconds"] for i in infos)
        return build_report(
            ctx, arch=last.arch, trial=last.number,
            val_acc=statistics.fmean(r.val_acc for r in runs), params=infos[0]["params"],
            retrainings=runs, model=first_model, extra=extra,
        )
