"""Tasks: a data set already split into train / validation / test tensors.

Small data stays resident in memory as tensors, so child training needs no DataLoader. A search
only ever sees ``train`` and ``val``; ``test`` is used once, to report the final architecture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel

from nasforge.config import build_component
from nasforge.exceptions import DataError
from nasforge.registry import Registry
from nasforge.spaces.base import JSONDict, sha1_id


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Task:
    """A task: splits, input shape (without batch) and class count (1 for regression).

    ``preprocess`` is what was fitted on the training split and applied to every split: feature
    ``mean`` / ``std`` (standardisation), regression target ``y_mean`` / ``y_std`` and the original
    class ``classes`` (string or integer labels, in class-index order). An exported model carries
    it, so it takes the raw features a user has.
    """

    name: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int
    spec: JSONDict
    kind: TaskKind = "classification"
    preprocess: JSONDict = field(default_factory=dict)
    raw_train: Split | None = None  # the training split before standardisation (baselines)

    @property
    def task_id(self) -> str:
        return sha1_id(self.spec)

    @cached_property
    def content_hash(self) -> str:
        """sha1 of every split's tensors (shape, dtype, bytes): two tasks with the same spec but
        other data (a replaced file) differ here. Computed once per task."""
        h = hashlib.sha1()
        for split in (self.train, self.val, self.test):
            for t in (split.x, split.y):
                c = t.detach().cpu().contiguous()
                h.update(f"{tuple(c.shape)}{c.dtype}".encode())
                h.update(c.numpy().tobytes())
        return h.hexdigest()

    def to(self, device: torch.device) -> Task:
        return replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )

    @property
    def tabular(self) -> bool:
        """Rows of features (input rank 1), as opposed to images or sequences."""
        return len(self.input_shape) == 1

    def meta(self) -> JSONDict:
        """What the run store keeps about the task (exports read it)."""
        return {
            "spec": self.spec,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "kind": self.kind,
            "preprocess": self.preprocess,
        }


class TaskFactory:
    """A registered task: ``Params`` validates the config, ``load()`` builds the :class:`Task`."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, **params: Any) -> None:
        self.params = params

    def load(self) -> Task:
        raise NotImplementedError


TASKS: Registry[type[TaskFactory]] = Registry("task")


def suite_ids(specs: list[JSONDict]) -> list[str]:
    """Ids of a task suite's entries: the task name, numbered where a name repeats
    (``digits``, ``mnist5k#0``, ``mnist5k#1``); stable because the config fixes the order."""
    names = [str(s.get("name")) for s in specs]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if names.count(n) == 1:
            out.append(n)
        else:
            out.append(f"{n}#{seen.get(n, 0)}")
            seen[n] = seen.get(n, 0) + 1
    return out


def make_task(spec: JSONDict | str) -> Task:

    factory: TaskFactory = build_component(TASKS, "task", spec)
    return factory.load()


def check_rows(name: object, x: np.ndarray, y: np.ndarray) -> None:
    """One label per feature row, or a one-line :class:`DataError`."""
    if len(x) != len(y):
        raise DataError(
            f"{name}: {len(x)} feature rows but {len(y)} labels; every row needs one label")


PIXEL_SCALE = 255.0
"""Image files are read as 8-bit values divided by this (an export divides raw pixels too)."""

MISSING_CELLS = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "<NA>", "#N/A",
                 "?")
"""Table cells read as a missing value by default (after stripping blanks; case-sensitive,
as pandas' defaults, plus UCI's ``?``): ``none`` or ``na`` stay text. ``task.missing_values``
replaces the list."""


def is_missing(cell: Any, tokens: Sequence[str] = MISSING_CELLS) -> bool:
    """A missing table cell: a text cell among ``tokens``, None, a float NaN, or pandas'
    ``NA`` / ``NaT``."""
    if cell is None or type(cell).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(cell, float | np.floating):
        return bool(np.isnan(cell))
    return isinstance(cell, str) and cell.strip() in tokens


def as_number(cell: Any) -> float | None:
    """A cell's value as a number (text that parses too), or None."""
    if isinstance(cell, bool | np.bool_):
        return float(cell)
    if isinstance(cell, int | float | np.number):
        return float(cell)
    try:
        return float(str(cell).strip())
    except ValueError:
        return None


def encoded_width(columns: list[JSONDict]) -> int:
    """Features :func:`encode_columns` makes of ``columns``: one per number, one per value of a
    category."""
    return sum(len(c["values"]) if c["kind"] == "category" else 1 for c in columns)


def encode_columns(rows: Any, columns: list[JSONDict],
                   tokens: Sequence[str] = MISSING_CELLS) -> np.ndarray:
    """Raw table rows (cells as text or numbers, one per entry of ``columns``) as the encoded
    float features a network takes: a ``number`` column as its value, a ``category`` column
    one-hot over its ``values`` (matched as text, or as numbers where both are numbers: 1,
    1.0 and "1" are one value; a value not among them: all zero); a missing cell (``tokens``)
    is NaN (one-hot: NaN in each of its columns), which :func:`split_arrays`' ``fill``
    replaces."""
    out = np.zeros((len(rows), encoded_width(columns)), dtype=np.float64)
    j = 0
    for k, col in enumerate(columns):
        if col["kind"] == "category":
            index = {v: i for i, v in enumerate(col["values"])}
            by_number = {num: i for i, v in enumerate(col["values"])
                         if (num := as_number(v)) is not None}
            n = len(index)
            for i, row in enumerate(rows):
                cell = row[k]
                if is_missing(cell, tokens):
                    out[i, j : j + n] = np.nan
                    continue
                hit = index.get(str(cell).strip())
                if hit is None and (num := as_number(cell)) is not None:
                    hit = by_number.get(num)
                if hit is not None:
                    out[i, j + hit] = 1.0
            j += n
        else:
            for i, row in enumerate(rows):
                cell = row[k]
                if is_missing(cell, tokens):
                    out[i, j] = np.nan
                    continue
                value = as_number(cell)
                if value is None:
                    raise DataError(f"row {i + 1}, column {col['name']!r}: {cell!r} is not a "
                                    "number")
                out[i, j] = value
            j += 1
    return out


def split_indices(
    y: np.ndarray, fractions: tuple[float, float], seed: int | None, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test row indices of :func:`split_arrays` (``stratify``: by class)."""
    n = len(y)
    f_train, f_val = fractions
    if seed is None:
        order = np.arange(n)
        n_tr, n_va = int(round(n * f_train)), int(round(n * f_val))
        return order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va :]
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    parts: list[list[np.ndarray]] = [[], [], []]
    for g in groups:
        g = rng.permutation(g)
        a, b = int(round(len(g) * f_train)), int(round(len(g) * (f_train + f_val)))
        parts[0].append(g[:a])
        parts[1].append(g[a:b])
        parts[2].append(g[b:])
    tr, va, te = (rng.permutation(np.concatenate(p)) for p in parts)
    return tr, va, te


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    name: str,
    spec: JSONDict,
    input_shape: tuple[int, ...],
    fractions: tuple[float, float],
    seed: int | None,
    stratify: bool = True,
    kind: TaskKind = "classification",
    standardize: bool = False,
    classes: list[Any] | None = None,
    preprocess: JSONDict | None = None,
) -> Task:
    """Split ``x, y`` into train / val / test by ``fractions = (train, val)`` (the rest is test).

    ``seed=None`` keeps the given order (first rows train, then val, then test), as seed 002 does.
    Otherwise rows are permuted with a seeded generator, stratified by class when asked.
    ``standardize``: features (and a regression target) are standardised with the mean and
    standard deviation of the training split only. ``preprocess``: what was applied to ``x``
    before (e.g. ``{"pixel_scale": 255.0}``), recorded so that an export redoes it. NaN
    features (missing values) are filled with the training split's mean of the feature (0 if
    it has none there), recorded as ``preprocess["fill"]``, before standardisation.
    """
    check_rows(name, x, y)
    n = len(y)
    if kind == "regression":
        stratify = False
    idx_tr, idx_va, idx_te = split_indices(y, fractions, seed, stratify)
    pre: JSONDict = {} if classes is None else {"classes": list(classes)}
    pre.update(preprocess or {})
    x = np.asarray(x, dtype=np.float32)
    if np.isnan(x).any():  # missing values: the training split's mean of each feature
        flat = x.reshape(n, -1)
        seen = ~np.isnan(flat[idx_tr])
        total = np.where(seen, flat[idx_tr], 0.0).sum(0)
        fill = np.where(seen.any(0), total / np.maximum(seen.sum(0), 1), 0.0)
        flat = np.where(np.isnan(flat), fill[None].astype(np.float32), flat)
        x = flat.reshape(x.shape)
        pre["fill"] = [float(v) for v in fill]
    xt = torch.as_tensor(x).reshape(n, *input_shape)
    if kind == "regression":
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
        num_classes = 1
    else:
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        num_classes = int(yt.max().item()) + 1
    mk = lambda idx: Split(xt[idx].contiguous(), yt[idx].contiguous())  # noqa: E731
    train, val, test = mk(idx_tr), mk(idx_va), mk(idx_te)
    raw_train = train
    if standardize:
        train, val, test, fitted = standardize_splits(train, val, test, kind)
        pre.update(fitted)
    return Task(
        name, train, val, test, input_shape, num_classes, spec, kind, pre, raw_train
    )


def standardize_splits(
    train: Split, val: Split, test: Split, kind: TaskKind
) -> tuple[Split, Split, Split, JSONDict]:
    """Standardise every split with statistics of ``train`` alone (constant features: std 1)."""
    flat = train.x.reshape(len(train), -1).double()
    mean = flat.mean(0)
    std = flat.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    shape = train.x.shape[1:]
    m32, s32 = mean.float().reshape(shape), std.float().reshape(shape)
    fitted: JSONDict = {"mean": mean.tolist(), "std": std.tolist()}
    y_mean, y_std = 0.0, 1.0
    if kind == "regression":
        y_mean = float(train.y.double().mean())
        y_std = float(train.y.double().std(unbiased=False)) or 1.0
        fitted.update(y_mean=y_mean, y_std=y_std)

    def apply(s: Split) -> Split:
        y = (s.y - y_mean) / y_std if kind == "regression" else s.y
        return Split(((s.x - m32) / s32).contiguous(), y.contiguous())

    return apply(train), apply(val), apply(test), fitted
