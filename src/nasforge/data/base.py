"""Tasks: a data set already split into train / validation / test tensors.

Small data stays resident in memory as tensors, so child training needs no DataLoader. A search
only ever sees ``train`` and ``val``; ``test`` is used once, to report the final architecture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel

from nasforge.config import build_component
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


@dataclass(frozen=True)
class Task:
    """A classification task: splits, input shape (without batch) and class count."""

    name: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int
    spec: JSONDict

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
        return Task(
            self.name,
            self.train.to(device),
            self.val.to(device),
            self.test.to(device),
            self.input_shape,
            self.num_classes,
            self.spec,
        )


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
) -> Task:
    """Split ``x, y`` into train / val / test by ``fractions = (train, val)`` (the rest is test).

    ``seed=None`` keeps the given order (first rows train, then val, then test), as seed 002 does.
    Otherwise rows are permuted with a seeded generator, stratified by class when asked.
    """
    n = len(y)
    f_train, f_val = fractions
    if seed is None:
        order = np.arange(n)
        n_tr, n_va = int(round(n * f_train)), int(round(n * f_val))
        idx_tr, idx_va, idx_te = order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va :]
    else:
        rng = np.random.default_rng(seed)
        groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
        parts: list[list[np.ndarray]] = [[], [], []]
        for g in groups:
            g = rng.permutation(g)
            a, b = int(round(len(g) * f_train)), int(round(len(g) * (f_train + f_val)))
            parts[0].append(g[:a])
            parts[1].append(g[a:b])
            parts[2].append(g[b:])
        idx_tr, idx_va, idx_te = (rng.permutation(np.concatenate(p)) for p in parts)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(n, *input_shape)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    num_classes = int(yt.max().item()) + 1
    mk = lambda idx: Split(xt[idx].contiguous(), yt[idx].contiguous())  # noqa: E731
    return Task(name, mk(idx_tr), mk(idx_va), mk(idx_te), input_shape, num_classes, spec)
