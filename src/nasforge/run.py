"""Reading a stored run (read-only): config, trials, best, final report; export and load."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.config import RunConfig, load_config, read_yaml
from nasforge.exceptions import RunDirError
from nasforge.storage.base import Record
from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore

CONFIG_NAME = "config.yaml"
EXPORT_ARCH = "architecture.json"
EXPORT_WEIGHTS = "model.pt"


class Run:
    """A run directory opened read-only. Safe while the driver is still writing."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        if not (self.dir / DB_NAME).is_file():
            raise RunDirError(f"{str(self.dir)!r} is not a nasforge run (no {DB_NAME})")

    def _store(self) -> SQLiteRunStore:
        return SQLiteRunStore(self.dir / DB_NAME, readonly=True)

    @property
    def config(self) -> RunConfig:
        return load_config(read_yaml(self.dir / CONFIG_NAME))

    def meta(self, key: str, default: Any = None) -> Any:
        with self._store() as s:
            return s.get_meta(key, default)

    @property
    def trials(self) -> list[Record]:
        with self._store() as s:
            return s.trials()

    def series(self, kind: str) -> list[tuple[int, str | None, Any]]:
        with self._store() as s:
            return s.series(kind)

    def series_kinds(self) -> list[str]:
        with self._store() as s:
            return s.series_kinds()

    @property
    def final(self) -> dict[str, Any] | None:
        return self.meta("final")

    @property
    def best(self) -> Record | None:
        ok = [r for r in self.trials if r.ok]
        return max(ok, key=lambda r: (r.val_acc, -r.number)) if ok else None

    def summary(self, top: int = 10) -> dict[str, Any]:
        """The JSON of ``nasforge show --json``."""
        trials = self.trials
        final = self.final or {}
        from nasforge.final import ranked_distinct

        pbt = self._pbt_summary()  # PBT-NAS: a member's architecture improves every round
        ranked = ranked_distinct(trials, keep="best" if pbt else "first")
        best_rec = ranked[0] if ranked else None
        best: dict[str, Any] = {"arch": None, "val_acc": None, "test_acc": None}
        if final.get("arch") is not None:
            best = {
                "arch": final["arch"],
                "describe": final.get("describe"),
                "trial": final.get("trial"),
                "val_acc": final.get("val_acc"),
                "test_acc": final.get("test_acc"),
                "test_accs": final.get("test_accs"),
                "test_return": final.get("test_return"),
            }
        elif best_rec is not None:
            best = {
                "arch": best_rec.arch.to_json(),
                "trial": best_rec.number,
                "val_acc": best_rec.val_acc,
                "test_acc": None,
            }
        return {
            "run_dir": str(self.dir),
            "status": self.meta("status"),
            "trials": len(trials),
            "failed": sum(1 for r in trials if r.result.status == "failed"),
            "cached": sum(1 for r in trials if r.cached_from is not None),
            "distinct": len({r.arch_id for r in trials}),
            "best": best,
            "top": [
                {
                    "trial": r.number,
                    "arch": r.arch.to_json(),
                    "val_acc": r.val_acc,
                    "params": r.result.params,
                    "epochs": r.result.epochs,
                    "train_seconds": round(r.result.train_seconds, 3),
                }
                for r in ranked[:top]
            ],
            "final": final,
            "pick": self.meta("pick"),
            **pbt,
        }

    def _pbt_summary(self) -> dict[str, Any]:
        from nasforge.viz.pbt import pbt_summary  # None unless the run has a "pbt" series

        out = pbt_summary(self.series("pbt"))
        return {} if out is None else {"pbt": out}


def load_run(run_dir: str | Path) -> Run:
    return Run(run_dir)


def export(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the best architecture (JSON) and its trained weights to ``out_dir``."""
    from nasforge.final import BEST_MODEL

    run = Run(run_dir)
    final = run.final
    weights = run.dir / BEST_MODEL
    if not final or final.get("arch") is None or not weights.is_file():
        raise RunDirError(
            f"{str(run.dir)!r} has no trained best model yet; let the search finish "
            "(with final.seeds >= 1) or resume it"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = run.meta("task") or {}
    doc = {
        "format": "nasforge-model/1",
        "space": run.meta("space"),
        "arch": final["arch"],
        "describe": final.get("describe"),
        "input_shape": task.get("input_shape"),
        "num_classes": task.get("num_classes"),
        "task": task.get("spec"),
        "build": task.get("build") or {},
        "val_acc": final.get("val_acc"),
        "test_acc": final.get("test_acc"),
        "run_dir": str(run.dir),
    }
    shutil.copyfile(weights, out / EXPORT_WEIGHTS)
    (out / EXPORT_ARCH).write_text(
        json.dumps(doc, indent=2, allow_nan=False if _finite(doc) else True)
    )
    return out


def _finite(doc: dict[str, Any]) -> bool:
    return all(not (isinstance(v, float) and math.isnan(v)) for v in doc.values())


def load(model_dir: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The exported network as a plain ``nn.Module`` in eval mode, weights loaded."""
    from nasforge.search import _registries
    from nasforge.spaces.base import make_space

    _registries()
    d = Path(model_dir)
    if not (d / EXPORT_ARCH).is_file() or not (d / EXPORT_WEIGHTS).is_file():
        raise RunDirError(
            f"{str(d)!r} is not an exported model ({EXPORT_ARCH} + {EXPORT_WEIGHTS})"
        )
    doc = json.loads((d / EXPORT_ARCH).read_text())
    space = make_space(doc["space"])
    arch = space.arch_from_json(doc["arch"])
    model = space.build(  # "build": extra build() arguments, e.g. continuous RL actions
        arch, tuple(doc["input_shape"]), int(doc["num_classes"]), **(doc.get("build") or {})
    )
    model.load_state_dict(torch.load(d / EXPORT_WEIGHTS, map_location=map_location))
    model.eval()
    return model
