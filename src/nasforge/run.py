"""Reading a stored run (read-only): config, trials, best, final report; export and load."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.components import load_plugins, load_registries
from nasforge.config import RunConfig, load_config, read_yaml
from nasforge.data.base import MISSING_CELLS, encode_columns, encoded_width, suite_ids
from nasforge.engine.final import BEST_MODEL, FinalReport, ranked_distinct
from nasforge.envs.nsc import NSCNet
from nasforge.exceptions import DataError, NasforgeError, RunDirError
from nasforge.objectives import Objective
from nasforge.safeload import load_checkpoint, state_dict_of
from nasforge.spaces.base import SPACES, make_space
from nasforge.storage.base import Record
from nasforge.storage.lock import holder
from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore
from nasforge.strategies.metarl.report import STRATEGY as METARL
from nasforge.strategies.metarl.report import as_rows, best_networks, metarl_summary
from nasforge.strategies.oneshot.metanas.model import MetaModel
from nasforge.strategies.oneshot.metanas.search import meta_model_from_doc
from nasforge.strategies.pbt.report import pbt_summary

CONFIG_NAME = "config.yaml"
EXPORT_ARCH = "architecture.json"
EXPORT_WEIGHTS = "model.pt"
EXPORT_FORMAT = "nasforge-model/1"


class Run:
    """A run directory opened read-only. Safe while the driver is still writing."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        if not self.dir.exists():
            raise RunDirError(f"run directory {str(self.dir)!r} does not exist")
        if self.dir.is_file():
            raise RunDirError(f"{str(self.dir)!r} is a file; a run is a directory (give the "
                              "--run-dir of a search)")
        if not (self.dir / DB_NAME).is_file():
            raise RunDirError(f"{str(self.dir)!r} is not a nasforge run (no {DB_NAME})")

    def __repr__(self) -> str:
        try:
            trials = self.trials
            best = self.summary(top=1)["best"]
            obj = self.objective
            score = best.get("score")
            tail = f", best {obj.name}={score:.4g}" if isinstance(score, float) else ""
            return (
                f"Run({str(self.dir)!r}: {self.meta('status')}, {len(trials)} trials{tail})"
            )
        except Exception:  # a repr must not raise
            return f"Run({str(self.dir)!r})"

    @property
    def objective(self) -> Objective:
        """What the run optimised (runs stored before objectives existed: val_acc, maximize)."""
        return Objective.from_json(self.meta("objective"))

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
    def status(self) -> str | None:
        """``running`` only while a driver holds the run's lock; a run whose driver died
        (SIGKILL, power loss) reads ``interrupted`` (``resume_command`` continues it)."""
        status = self.meta("status")
        if status == "running" and holder(self.dir) is None:
            return "interrupted"
        return status

    @property
    def final(self) -> FinalReport | None:
        """The run's final report (``None`` until the search has finished)."""
        doc = self.meta("final")
        return None if doc is None else FinalReport.from_json(doc, self.objective)

    @property
    def best(self) -> Record | None:
        """The run's pick: the trial the final report chose (see ``summary()["best"]["why"]``),
        else the top trial by validation score (first evaluation per architecture; ties:
        earliest). ``summary()["best"]`` names the same trial."""
        trials = self.trials
        final = self.final
        if final is not None and final.trial is not None:
            for r in trials:
                if r.number == final.trial:
                    return r
        ranked = ranked_distinct(trials, keep="best" if self.series("pbt") else "first")
        return ranked[0] if ranked else None

    def summary(self, top: int = 10) -> dict[str, Any]:
        """The JSON of ``nasforge show --json``.

        Scores are in the objective's own units (``objective``: name and direction).
        ``utility`` is the stored figure the search ranks by (higher is better: the score, or
        minus it for a minimised objective); ``val_acc`` is given only when the objective is
        validation accuracy (then it equals ``utility`` and ``score``).
        """
        trials = self.trials
        obj = self.objective
        final = self.final or FinalReport(objective=obj)

        pbt = self._pbt_summary()  # PBT-NAS: a member's architecture improves every round
        ranked = ranked_distinct(trials, keep="best" if pbt else "first",
                                 by_task=self.is_metarl)
        best_rec = ranked[0] if ranked else None
        best: dict[str, Any] = {"arch": None, "val_acc": None, "test_acc": None}
        if final.arch is not None:
            best = {
                "arch": final.arch,
                "describe": final.describe,
                "trial": final.trial,
                "val_acc": final.val_acc,
                "test_acc": final.test_acc,
                "test_accs": [r.test for r in final.retrainings] or None,
            }
        elif best_rec is not None:
            best = {
                "arch": best_rec.arch.to_json(),
                "trial": best_rec.number,
                "val_acc": best_rec.val_acc,
                "test_acc": None,
            }
        best["score"] = obj.score(best.get("val_acc"))
        best["utility"] = best.get("val_acc")
        best["test_score"] = best.get("test_acc")
        if final.test_metrics:
            best["test_metrics"] = dict(final.test_metrics)
        best["why"] = _why(final, obj, best, ranked, bool(pbt), self.is_metarl)
        out_pareto: dict[str, Any] = {}
        if self.config.pareto:
            out_pareto = {"pareto": pareto_front(trials, obj)}
        top_rows = [
            {
                "trial": r.number,
                "arch": r.arch.to_json(),
                "val_acc": r.val_acc,
                "utility": r.val_acc,
                "score": obj.score(r.val_acc),
                "params": r.result.params,
                "epochs": r.result.epochs,
                "train_seconds": round(r.result.train_seconds, 3),
            }
            for r in ranked[:top]
        ]
        if obj.name != "val_acc":  # neither figure is an accuracy: test_score holds the test
            for row in (best, *top_rows):
                row.pop("val_acc", None)
            for key in ("test_acc", "test_accs"):
                best.pop(key, None)
            if final.retrainings:
                best["test_scores"] = [r.test for r in final.retrainings]
        return {
            "run_dir": str(self.dir),
            "objective": obj.to_json(),
            "status": self.status,
            **({"resume_command": self.meta("resume_command")}
               if self.status == "interrupted" else {}),
            "trials": len(trials),
            "failed": sum(1 for r in trials if r.result.status == "failed"),
            "errors": _error_counts(trials),
            "cached": sum(1 for r in trials if r.cached_from is not None),
            "distinct": len({r.arch_id for r in trials}),
            "best": best,
            "top": top_rows,
            "final": final.to_json(),
            "baselines": self.meta("baselines"),
            **out_pareto,
            "pick": self.meta("pick"),
            **pbt,
            **({"metarl": metarl_summary(trials, final.extra, top=min(top, 3))}
               if self.is_metarl else {}),
        }

    @property
    def is_metarl(self) -> bool:
        """A ``meta_a2c`` run: one environment (task) per trial, several tasks per run."""
        return self.config.strategy.get("name") == METARL

    def _pbt_summary(self) -> dict[str, Any]:

        out = pbt_summary(self.series("pbt"))
        return {} if out is None else {"pbt": out}


def _error_counts(trials: list[Record], most: int = 3) -> list[dict[str, Any]]:
    """The failed trials' most frequent errors: ``[{"error", "trials", "first"}]``."""
    seen: dict[str, list[int]] = {}
    for r in trials:
        if r.result.status == "failed":
            seen.setdefault(r.result.error or "no error text", []).append(r.number)
    ranked = sorted(seen.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))[:most]
    return [{"error": e, "trials": len(ns), "first": ns[0]} for e, ns in ranked]


def _why(
    final: FinalReport, obj: Objective, best: dict[str, Any], ranked: list[Record], pbt: bool,
    multi_task: bool = False,
) -> str:
    """One sentence: why ``best`` is the pick (the one definition of "best")."""
    if best.get("arch") is None:
        return "no trial completed"
    if multi_task:
        return "the best over all tasks; each task's own best networks are below"
    top = ranked[0].number if ranked else None
    if pbt and final.arch is not None and "population" in final.extra:
        return "the final population's best member by fitness (PBT-NAS, not retrained)"
    if obj.name == "val_acc":
        what = "validation accuracy"
    else:
        what = obj.name if obj.name.startswith("val_") else f"validation {obj.name}"
    if final.retrained:
        cands = final.candidates or ()
        n = len(final.retrainings)
        if not cands:  # one-shot searches: the derived architecture, retrained
            return f"the architecture the search derived, retrained {n} time(s); tested once"
        lead = "the top trial" if best.get("trial") == top else f"not the top trial ({top})"
        return (
            f"best mean {what} over {n} retrainings among the top {len(cands)} "
            f"trials by {what} ({lead}); tested once"
        )
    extreme = "lowest" if obj.direction == "minimize" else "highest"
    if pbt:
        return f"{extreme} {what} of any member in any round"
    return f"{extreme} {what} (each architecture's first evaluation; ties: earliest)"


def pareto_front(trials: list[Record], obj: Objective) -> list[dict[str, Any]]:
    """Complete trials not dominated in (score, fewer parameters), fewest parameters first."""
    pts = ranked_distinct(trials)
    front: list[Record] = []
    for r in sorted(pts, key=lambda r: (r.result.params, -r.val_acc, r.number)):
        if not front or r.val_acc > front[-1].val_acc:
            front.append(r)
    return [
        {"trial": r.number, "params": r.result.params, "score": obj.score(r.val_acc),
         "arch": r.arch.to_json()}
        for r in front
    ]


def load_run(run_dir: str | Path) -> Run:
    return Run(run_dir)


EXPORT_PROGRAM = "model.pt2"
"""``export(..., torch_export=True)``: the network as a ``torch.export`` program."""


def export(run_dir: str | Path, out_dir: str | Path, *, torch_export: bool = False) -> Path:
    """Write the best architecture (JSON) and its trained weights to ``out_dir``.

    ``torch_export``: also write ``model.pt2``, the loaded model (preprocessing included) as a
    ``torch.export`` program with a dynamic batch size, which needs only torch:
    ``torch.export.load(path).module()(x)`` takes what ``nasforge.load(out_dir)(x)`` takes
    (numeric tensors; a CSV's text columns one-hot encoded). If it cannot be traced, nothing
    of the export stays and the error says why."""
    run = Run(run_dir)
    if torch_export and run.final is not None and run.final.extra.get("meta_model") is not None:
        raise RunDirError(f"{str(run.dir)!r} is a MetaNAS run: its meta-model adapts to each "
                          "task (adapt()) before use, so it has no torch.export program; "
                          "export it without --torch-export")
    target = Path(out_dir)
    before = set(target.iterdir()) if target.is_dir() else None
    out = export_metarl(run, out_dir) if run.is_metarl else _export_one(run, out_dir)
    if torch_export:
        folders = [out] if (out / EXPORT_WEIGHTS).is_file() else sorted(
            p.parent for p in out.glob(f"*/{EXPORT_WEIGHTS}"))
        try:
            if not folders:
                raise RunDirError(f"{str(run.dir)!r} has no trained network to export as a "
                                  "torch.export program (the run has no final retraining)")
            for folder in folders:
                _write_program(folder, run.config.plugins)
        except BaseException:  # undo this export: what it added to the folder, or the folder
            if before is None:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for p in set(out.iterdir()) - before:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            raise
    return out


def _write_program(folder: Path, plugins: list[str]) -> Path:
    """``folder/model.pt2`` from the export in ``folder`` (written whole or not at all)."""
    model = load(folder, plugins=plugins)
    assert isinstance(model, LoadedModel)
    example = torch.zeros(2, *model.input_shape)
    tmp = folder / f".tmp-{EXPORT_PROGRAM}"  # torch.export.save wants the .pt2 suffix
    try:
        program = torch.export.export(
            model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, tmp)
    except Exception as err:  # tracing raises many kinds of error: one line for all
        tmp.unlink(missing_ok=True)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunDirError(f"torch.export could not trace the network in {str(folder)!r} "
                          f"({type(err).__name__}: {first}); export it without "
                          "--torch-export") from None
    tmp.replace(folder / EXPORT_PROGRAM)
    return folder / EXPORT_PROGRAM


def _export_one(run: Run, out_dir: str | Path) -> Path:
    """The pick of a (single-task) run: ``architecture.json`` and ``model.pt``."""
    final = run.final
    weights = run.dir / BEST_MODEL
    if final is None or final.arch is None:
        raise RunDirError(
            f"{str(run.dir)!r} has no pick yet; let the search finish or resume it"
        )
    if not weights.is_file():
        raise RunDirError(
            f"{str(run.dir)!r}: its pick has no trained weights to export (final.seeds is 0, "
            "or the evaluator trains no network: a user objective or a table); the pick's "
            "architecture is in `nasforge show` and run.best"
        )
    out = _check_out(out_dir, [EXPORT_ARCH, EXPORT_WEIGHTS, EXPORT_PROGRAM])
    # the weights must load as plain tensors before they are exported
    state_dict_of(load_checkpoint(weights, what=repr(str(weights))), repr(str(weights)))
    _make_out(out)
    task = run.meta("task") or {}
    doc = {
        "format": EXPORT_FORMAT,
        "space": run.meta("space"),
        "arch": final.arch,
        "describe": final.describe,
        "input_shape": task.get("input_shape"),
        "num_classes": task.get("num_classes"),
        "kind": task.get("kind", "classification"),
        "preprocess": task.get("preprocess") or {},
        "objective": run.objective.to_json(),
        "plugins": run.config.plugins,
        "task": task.get("spec"),
        "build": task.get("build") or {},
        "score": run.objective.score(final.val_acc),
        "test_score": final.test_acc,
        "run_dir": str(run.dir),
    }
    if run.objective.name == "val_acc":
        doc.update(val_acc=final.val_acc, test_acc=final.test_acc)
    try:  # a space whose networks are not classifiers of the task says what they are
        doc.update(getattr(make_space(doc["space"]), "export_meta", dict)())
    except NasforgeError:
        pass  # a plugin space not registered here: the task's shapes stand
    ext = final.extra
    if ext.get("meta_model") is not None:  # MetaNAS: the meta-learned supernet + alphas
        doc.update(meta_model=ext["meta_model"], genotype=ext.get("genotype"),
                   sparse_params=ext.get("sparse_params"), dense_params=ext.get("dense_params"))
    shutil.copyfile(weights, out / EXPORT_WEIGHTS)
    (out / EXPORT_ARCH).write_text(
        json.dumps(doc, indent=2, allow_nan=False if _finite(doc) else True)
    )
    return out


NSC_FORMAT = "nasforge-nsc/1"


def _check_out(out_dir: str | Path, names: list[str]) -> Path:
    """The export folder, refused if it is a file or already holds one of ``names``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"export --out {str(out)!r} is a file; give a directory")
    for name in names:
        if (out / name).exists():
            raise RunDirError(
                f"export --out {str(out)!r} already holds {name}; give a new or empty directory"
            )
    return out


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(
            f"cannot create export --out {str(out)!r}: {err.strerror or err}"
        ) from None


def export_metarl(run: Run, out_dir: str | Path) -> Path:
    """A ``meta_a2c`` run's export: the best network of every environment (task) as
    ``<out>/<task id>/architecture.json`` (NSC rows, the shapes and ``build`` arguments of
    :class:`nasforge.envs.nsc.NSCNet`, its search reward and, after the final retraining, its
    test accuracy) with ``model.pt``, the weights of that final retraining (``nasforge.load``
    of the folder gives the trained network; the search trains children without keeping
    weights, so a run without the final retraining exports architectures only), plus the
    run's policy (``policy.pt``, ``policy.json``) when it was saved."""
    final = run.final
    extra = final.extra if final is not None else {}
    best = best_networks(run.trials, extra)
    if not best:
        raise RunDirError(f"{str(run.dir)!r} has no completed environment step to export")
    out = _check_out(out_dir, [*best, "policy.pt", "policy.json"])
    _make_out(out)
    shapes = extra.get("task_shapes") or {}
    specs = dict(zip(suite_ids(run.config.tasks), run.config.tasks, strict=True)) \
        if run.config.tasks else {}
    models = extra.get("task_models") or {}
    for tid, net in best.items():
        weights = _task_weights(run.dir, models.get(tid)) \
            if net.get("test_acc") is not None else None
        doc = {"format": NSC_FORMAT, "task_id": tid, "task": specs.get(tid),
               "space": extra.get("space", run.config.strategy.get("space", "chain")),
               "padding": extra.get("padding"), **(shapes.get(tid) or {}), **net,
               "build": extra.get("build") or {"padding": extra.get("padding")},
               "weights": EXPORT_WEIGHTS if weights is not None else None,
               "run_dir": str(run.dir)}
        (out / tid).mkdir(exist_ok=True)
        if weights is not None:
            shutil.copyfile(weights, out / tid / EXPORT_WEIGHTS)
        (out / tid / EXPORT_ARCH).write_text(json.dumps(doc, indent=2))
    for name in ("policy.pt", "policy.json"):
        if (run.dir / name).is_file():
            shutil.copyfile(run.dir / name, out / name)
    return out


def _task_weights(run_dir: Path, rel: Any) -> Path | None:
    """A task's final-retraining weights named by the run's report (a file inside the run),
    checked to load as plain tensors; None where there are none."""
    if not isinstance(rel, str):
        return None
    path = run_dir / rel
    if not path.is_file() or not path.resolve().is_relative_to(run_dir.resolve()):
        return None
    state_dict_of(load_checkpoint(path, what=repr(str(path))), repr(str(path)))
    return path


def _finite(doc: dict[str, Any]) -> bool:
    return all(not (isinstance(v, float) and math.isnan(v)) for v in doc.values())


class LoadedModel(nn.Module):
    """An exported network with its preprocessing: takes the raw features a user has.

    ``forward(x)``: standardises ``x`` with the training split's statistics (when the run did),
    runs the network, and for regression undoes the target standardisation; classifiers return
    logits. ``predict(x)`` accepts numpy or torch, any float dtype, one row or many, and returns
    class labels (the original ones: strings or integers) or regression values as numpy.
    A ``kind: generator`` export (a GAN) takes latents (``input_shape``: the latent size):
    ``model(z)`` gives images in [-1, 1], ``predict(z)`` and ``sample(n, seed)`` numpy images
    in [0, 1].
    """

    def __init__(
        self,
        net: nn.Module,
        input_shape: tuple[int, ...],
        kind: str = "classification",
        preprocess: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.input_shape = tuple(input_shape)
        self.kind = kind
        pre = preprocess or {}
        self.classes: list[Any] | None = pre.get("classes")
        self.standardized = "mean" in pre
        # images read from files were divided by this (255: raw 8-bit pixels in, as trained)
        self.pixel_scale = float(pre.get("pixel_scale", 1.0))
        if not math.isfinite(self.pixel_scale) or self.pixel_scale <= 0:
            raise ValueError(f"preprocess.pixel_scale must be a positive number, got "
                             f"{pre.get('pixel_scale')!r}")
        mean = torch.tensor(pre.get("mean", [0.0]), dtype=torch.float32)
        std = torch.tensor(pre.get("std", [1.0]), dtype=torch.float32)
        if self.standardized:
            n_in = math.prod(self.input_shape)
            if mean.numel() != n_in or std.numel() != n_in:
                raise ValueError(
                    f"preprocess has {mean.numel()} means and {std.numel()} standard "
                    f"deviations; input_shape {list(self.input_shape)} needs {n_in} of each")
            mean, std = mean.reshape(self.input_shape), std.reshape(self.input_shape)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.y_mean = float(pre.get("y_mean", 0.0))
        self.y_std = float(pre.get("y_std", 1.0))
        # a CSV's raw columns (text ones one-hot) and the training means for missing values
        self.columns: list[dict[str, Any]] | None = pre.get("columns")
        self.missing_values: list[str] = list(pre.get("missing_values", MISSING_CELLS))
        fill = pre.get("fill")
        if fill is not None and len(fill) != math.prod(self.input_shape):
            raise ValueError(f"preprocess has {len(fill)} fill values; input_shape "
                             f"{list(self.input_shape)} needs {math.prod(self.input_shape)}")
        self.register_buffer("fill", None if fill is None else torch.tensor(
            fill, dtype=torch.float32).reshape(self.input_shape))
        if self.columns is not None:
            width = encoded_width(self.columns)
            if (width,) != self.input_shape:
                raise ValueError(f"preprocess.columns encode {width} features; input_shape is "
                                 f"{list(self.input_shape)}")

    mean: torch.Tensor
    std: torch.Tensor
    fill: torch.Tensor | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixel_scale != 1.0:
            x = x / self.pixel_scale
        if self.fill is not None:
            x = torch.where(torch.isnan(x), self.fill, x)
        if self.standardized:
            x = (x - self.mean) / self.std
        out = self.net(x)
        if self.kind == "regression":
            out = out.reshape(-1) * self.y_std + self.y_mean
        return out

    def _batch(self, t: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``t`` as a batch of ``input_shape`` examples, and whether it was one example."""
        shape, n_in = self.input_shape, math.prod(self.input_shape)
        k = len(shape)
        got = tuple(t.shape)
        if got == shape:
            return t.unsqueeze(0), True
        if t.ndim == k + 1 and got[1:] == shape:
            return t, False
        if shape == (1,) and t.ndim == 1:  # one feature: a value per example
            return t.reshape(-1, 1), False
        if k > 1 and got == (n_in,):  # one flattened example
            return t.reshape(1, *shape), True
        if k > 1 and t.ndim == 2 and got[1] == n_in:  # flattened rows
            return t.reshape(-1, *shape), False
        if k == 3:
            c, h, w = shape
            if c == 1 and got[-2:] == (h, w) and t.ndim in (2, 3):  # no channel axis
                return t.reshape(-1, 1, h, w), t.ndim == 2
            if got[-3:] == (h, w, c) and t.ndim in (3, 4):  # channels-last images
                b = t.reshape(-1, h, w, c).permute(0, 3, 1, 2).contiguous()
                return b, t.ndim == 3
        allowed = [list(shape), ["N", *shape]]
        if k > 1:
            allowed += [[n_in], ["N", n_in]]
        if k == 3 and shape[0] == 1:
            allowed += [list(shape[1:]), ["N", *shape[1:]]]
        elif k == 3:
            allowed += [[*shape[1:], shape[0]], ["N", *shape[1:], shape[0]]]
        raise ValueError(
            f"input of shape {list(got)} does not fit this model; allowed: "
            + ", ".join(str(a).replace("'", "") for a in allowed))

    def _encode(self, x: Any) -> tuple[torch.Tensor, bool]:
        """Raw table rows (one cell per column of the file, numbers or text) as features."""
        assert self.columns is not None
        names = [c["name"] for c in self.columns]
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        arr = np.asarray(x, dtype=object)
        single = arr.ndim == 1
        if arr.ndim not in (1, 2) or arr.shape[-1] != len(names):
            raise ValueError(
                f"input of shape {list(arr.shape)} does not fit this model; allowed: raw rows "
                f"of its {len(names)} columns, [{len(names)}] or [N, {len(names)}] "
                f"({', '.join(map(str, names[:6]))}{', ...' if len(names) > 6 else ''})")
        try:
            enc = encode_columns(arr.reshape(-1, len(names)), self.columns,
                                 self.missing_values)
        except DataError as err:
            raise ValueError(str(err)) from None
        return torch.as_tensor(enc, dtype=torch.float32), single

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """A generator's ``n`` images in [0, 1], ``(n, C, H, W)``, from seeded normal
        latents (``kind: generator`` exports, e.g. a PBT-NAS GAN run)."""
        if self.kind != "generator":
            raise ValueError(f"sample() is for generator exports; this model is a {self.kind}")
        z = torch.randn(n, *self.input_shape, generator=torch.Generator().manual_seed(seed))
        out: np.ndarray = self.predict(z.numpy())
        return out

    @torch.no_grad()
    def predict(self, x: Any) -> np.ndarray:
        """Class labels or regression values for ``x`` (numpy/torch): one example or a batch
        of examples of the model's ``input_shape``; rows may also come flattened, one-channel
        images without their channel axis and colour images channels-last (H, W, C), as
        image files load. A model of a CSV takes raw rows, one cell per feature column of the
        file (text, numbers, empty or NA cells: as the file had them, or a pandas DataFrame's
        ``.to_numpy()``); NaN features get the training split's mean wherever training had
        missing values."""
        if self.columns is not None:  # raw rows: text and empty cells as the file had them
            t, single = self._encode(x)
        else:
            t, single = self._batch(torch.as_tensor(np.asarray(x, dtype=np.float32)))
        if self.fill is None and bool(torch.isnan(t).any()):
            raise ValueError("input holds NaN (missing values) but this model was trained "
                             "without any, so it has no fill values; fill them first")
        t = t.to(self.mean.device)
        was = self.training
        self.eval()
        out = self(t)
        self.train(was)
        if self.kind == "generator":  # images in [0, 1] from latents
            res = ((out.clamp(-1, 1) + 1) / 2).cpu().numpy().astype(np.float64)
        elif self.kind == "regression" or (self.kind == "policy"
                                           and getattr(self.net, "continuous", False)):
            res = out.cpu().numpy().astype(np.float64)  # values, or continuous actions
        else:  # class labels, or a discrete policy's greedy actions
            idx = out.argmax(1).cpu().numpy()
            res = np.asarray(self.classes, dtype=object)[idx] if self.classes else idx
            if self.classes and all(isinstance(c, (int, float)) for c in self.classes):
                res = res.astype(np.float64)
        return res[0] if single else res


def load(
    model_dir: str | Path,
    map_location: str | torch.device = "cpu",
    plugins: list[str] | None = None,
) -> LoadedModel | MetaModel:
    """The exported network with its preprocessing (:class:`LoadedModel`: ``model(x)``,
    ``model.predict(x)``; the bare network is ``model.net``), eval mode, weights loaded.

    A model from a custom space needs the module that registers it: installed plugins (entry
    point group ``nasforge.plugins``) are found by themselves; others are named in ``plugins``
    (an export never imports anything by itself).
    """
    load_registries()
    if plugins:
        load_plugins(plugins)
    d = Path(model_dir)
    if not (d / EXPORT_ARCH).is_file() or not (d / EXPORT_WEIGHTS).is_file():
        subs = sorted(p.parent.name for p in d.glob(f"*/{EXPORT_ARCH}")) if d.is_dir() else []
        hint = (f"; it holds one exported network per task: load one of its folders "
                f"({', '.join(subs[:5])})" if subs else "")
        raise RunDirError(
            f"{str(d)!r} is not an exported model ({EXPORT_ARCH} + {EXPORT_WEIGHTS}){hint}"
        )
    doc = _read_export_doc(d / EXPORT_ARCH)
    if doc.get("format") == NSC_FORMAT:
        return _load_nsc(doc, d, map_location)
    where = repr(str(d / EXPORT_ARCH))
    sname = (doc.get("space") or {}).get("name") if isinstance(doc.get("space"), dict) else None
    if sname not in SPACES:
        used = doc.get("plugins") or []
        hint = f" (the run used plugins: {', '.join(used)})" if used else ""
        raise RunDirError(
            f"{where}: space {sname!r} of this model is not registered{hint}; pass "
            f"nasforge.load(..., plugins=['my_module']) or install the plugin under the entry "
            f"point group 'nasforge.plugins'; registered: {', '.join(SPACES.names())}"
        )
    weights = state_dict_of(
        load_checkpoint(d / EXPORT_WEIGHTS, map_location, repr(str(d / EXPORT_WEIGHTS))),
        repr(str(d / EXPORT_WEIGHTS)),
    )
    if doc.get("meta_model") is not None:
        return _load_meta_model(doc, weights, where, map_location)
    try:
        space = make_space(doc["space"])
        arch = space.arch_from_json(doc["arch"])
        kind = doc.get("kind", "classification")
        # a generator is built for its images (output_shape) and takes latents (input_shape)
        shape = doc["output_shape"] if kind == "generator" else doc["input_shape"]
        net = space.build(  # "build": extra build() arguments, e.g. continuous RL actions
            arch, tuple(shape), int(doc["num_classes"]), **(doc.get("build") or {})
        )
        model = LoadedModel(
            net, tuple(doc["input_shape"]), doc.get("kind", "classification"),
            doc.get("preprocess"),
        )
    except NasforgeError as err:
        raise RunDirError(f"{where} does not describe a valid model: {err}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RunDirError(
            f"{where} does not describe a valid model ({type(err).__name__}: {first})"
        ) from None
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise RunDirError(
            f"{str(d / EXPORT_WEIGHTS)!r} does not fit the architecture in {where} ({first})"
        ) from None
    model.to(map_location)
    model.eval()
    return model


def _load_nsc(doc: dict[str, Any], d: Path, map_location: str | torch.device) -> LoadedModel:
    """A ``meta_a2c`` export folder: the task's best NSC network with its final weights."""
    where = repr(str(d / EXPORT_ARCH))
    weights = state_dict_of(
        load_checkpoint(d / EXPORT_WEIGHTS, map_location, repr(str(d / EXPORT_WEIGHTS))),
        repr(str(d / EXPORT_WEIGHTS)),
    )
    try:
        shape = tuple(int(v) for v in doc["input_shape"])
        build = dict(doc.get("build") or {})
        net = NSCNet(as_rows(doc["nsc"]), shape, int(doc["num_classes"]), **build)
        net.load_state_dict(weights)
    except NasforgeError as err:
        raise RunDirError(f"{where} does not describe a valid NSC network: {err}") from None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RunDirError(
            f"{where} does not describe a valid NSC network ({type(err).__name__}: {first})"
        ) from None
    model = LoadedModel(net, shape)
    model.to(map_location)
    model.eval()
    return model


def _load_meta_model(
    doc: dict[str, Any], weights: dict[str, Any], where: str,
    map_location: str | torch.device,
) -> MetaModel:
    """A MetaNAS export: the meta-learned network with ``adapt(support_x, support_y, steps=)``
    (returns an adapted copy) and ``predict``."""
    try:
        model = meta_model_from_doc(make_space(doc["space"]), doc["meta_model"])
        model.load_state_dict(weights)
    except NasforgeError as err:
        raise RunDirError(f"{where} does not describe a valid meta model: {err}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RunDirError(
            f"{where} does not describe a valid meta model ({type(err).__name__}: {first})"
        ) from None
    model.to(map_location)
    return model


def _read_export_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{str(path)!r} is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise RunDirError(f"{str(path)!r} must hold a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt not in (EXPORT_FORMAT, NSC_FORMAT):
        raise RunDirError(f"{str(path)!r} has format {fmt!r}; expected {EXPORT_FORMAT!r} "
                          f"(or {NSC_FORMAT!r}, a meta_a2c task's network)")
    need = ("nsc", "input_shape", "num_classes") if fmt == NSC_FORMAT else (
        "space", "arch", "input_shape", "num_classes")
    missing = [k for k in need if doc.get(k) is None]
    if missing:
        raise RunDirError(f"{str(path)!r} lacks {', '.join(missing)}")
    return doc
