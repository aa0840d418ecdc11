"""Rewards of NSC networks: the real one trains the child network; a persistent cache.

A reward function is any callable ``fn(rows, task, seed) -> accuracy in [0, 1]`` with a
``protocol`` string (what it computes, for the cache key). It raises
:class:`~nasforge.exceptions.InvalidArchitecture` (or a ``RuntimeError`` such as a diverged
loss, :class:`~nasforge.evaluators.fit.Diverged`) for a network
that cannot be built or trained; the environment turns that into reward 0 and the episode's end.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from nasforge.data.base import Split, Task
from nasforge.envs.nsc import (
    CHAIN_ACTIONS,
    MULTIBRANCH_ACTIONS,
    NSCNet,
    Padding,
    Row,
    nsc_hash,
    shapes,
)
from nasforge.evaluators.fit import accuracy, train_epoch
from nasforge.exceptions import ConfigError, InvalidArchitecture


class RewardFn(Protocol):
    protocol: str

    def __call__(self, rows: tuple[Row, ...], task: Task, seed: int) -> float: ...


class TrainReward:
    """§2.5: build the NSC network and train it with Adam(lr, 0.9/0.999, eps 1e-8), batch 128,
    ``epochs`` epochs (12 in the paper; fewer for CPU); reward = accuracy on ``split``.

    ``lr_decay`` offers the intended x0.2 step every 5 epochs that the release never applied
    (quirk L1); off by default in both presets. ``max_train`` caps the training rows (CPU)."""

    def __init__(
        self,
        *,
        padding: Padding = "same",
        epochs: int = 12,
        batch_size: int = 128,
        lr: float = 1e-3,
        lr_decay: bool = False,
        lr_schedule: Literal["constant", "exp"] = "constant",
        split: Literal["val", "test"] = "val",
        max_train: int | None = None,
        filters: int | Sequence[int] = 32,
        dense: int = 1024,
        dropout: float = 0.4,
        device: torch.device | str = "cpu",
    ) -> None:
        self.padding, self.epochs, self.batch_size, self.lr = padding, epochs, batch_size, lr
        self.lr_decay, self.split, self.max_train = lr_decay, split, max_train
        self.filters, self.dense, self.dropout = filters, dense, dropout
        self.lr_schedule = lr_schedule
        self.device = torch.device(device)
        self.protocol = json.dumps(
            {"fn": "train", "padding": padding, "epochs": epochs, "batch": batch_size, "lr": lr,
             "lr_decay": lr_decay, "split": split, "max_train": max_train,
             "filters": filters if isinstance(filters, int) else list(filters), "dense": dense,
             "dropout": dropout, "schedule": lr_schedule}, sort_keys=True)

    def __call__(self, rows: tuple[Row, ...], task: Task, seed: int) -> float:
        return self.fit(rows, task, seed)[1]

    def fit(self, rows: tuple[Row, ...], task: Task, seed: int) -> tuple[NSCNet, float]:
        """The trained network and its accuracy on ``split``."""
        # the caller's global RNG streams (an agent's, SB3's) are left as they were
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._train(rows, task, seed)

    @property
    def build_args(self) -> dict[str, Any]:
        """What :class:`NSCNet` needs besides the rows and shapes to rebuild a trained network."""
        filters = self.filters if isinstance(self.filters, int) else list(self.filters)
        return {"padding": self.padding, "filters": filters, "dense": self.dense,
                "dropout": self.dropout}

    def _train(self, rows: tuple[Row, ...], task: Task, seed: int) -> tuple[NSCNet, float]:
        g = torch.Generator().manual_seed(seed)
        model = NSCNet(rows, task.input_shape, task.num_classes, self.padding, self.filters,
                       self.dense, self.dropout).to(self.device)
        train = task.train if self.max_train is None else Split(
            task.train.x[: self.max_train], task.train.y[: self.max_train])
        train = train.to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, betas=(0.9, 0.999), eps=1e-8)
        sched: torch.optim.lr_scheduler.LRScheduler | None = None
        if self.lr_decay:
            sched = torch.optim.lr_scheduler.StepLR(opt, 5, 0.2)
        elif self.lr_schedule == "exp":  # the final protocol's exponential decay
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.95)
        for epoch in range(1, self.epochs + 1):
            train_epoch(model, opt, train, batch_size=self.batch_size, generator=g,
                        loss_fn=nn.functional.cross_entropy, min_batch=2,  # BatchNorm: 2 rows
                        epoch=epoch)
            if sched is not None:
                sched.step()
        split = task.val if self.split == "val" else task.test
        return model, accuracy(model, split.to(self.device), 512)


class ToyReward:
    """A synthetic reward for tests and demos (no training): the fraction of the first
    ``len(target)`` layers whose action label matches ``target`` (e.g. ``("conv3", "maxpool2")``)
    minus ``0.05`` per extra layer, in [0, 1]. The best sequence is ``target`` then terminal."""

    def __init__(self, target: Sequence[str] = ("conv3", "maxpool2", "conv5")) -> None:
        allowed = [a.label for a in MULTIBRANCH_ACTIONS if a.kind == "layer"]
        bad = [t for t in target if t not in allowed]
        if not target or bad:
            raise ConfigError(f"toy reward target {list(target)}: "
                              + (f"unknown layer label(s) {bad}" if bad else "empty")
                              + f"; allowed: {', '.join(allowed)}")
        self.target = tuple(target)
        self.protocol = json.dumps({"fn": "toy", "target": list(self.target)})

    def __call__(self, rows: tuple[Row, ...], task: Task, seed: int) -> float:
        labels = [_label(r) for r in rows]
        hits = sum(a == b for a, b in zip(labels, self.target, strict=False))
        extra = max(0, len(labels) - len(self.target))
        return max(0.0, hits / len(self.target) - 0.05 * extra)


def _label(r: Row) -> str:
    names = {1: "conv", 2: "maxpool", 3: "avgpool", 4: "identity", 5: "add", 6: "concat"}
    return f"{names.get(r[1], '?')}{r[2] or ''}"


TABLE_FORMAT = "nasforge-nsc-table/1"


def chain_networks(depth: int, input_shape: tuple[int, ...], padding: Padding) -> list[
        tuple[Row, ...]]:
    """Every buildable chain network of at most ``depth`` layers (the empty one first), in the
    order a depth-first walk over the 7 layer actions meets them (prefixes before extensions)."""
    layers = [a for a in CHAIN_ACTIONS if a.kind == "layer"]
    out: list[tuple[Row, ...]] = [()]

    def walk(rows: tuple[Row, ...]) -> None:
        if len(rows) >= depth:
            return
        for a in layers:
            i = len(rows)
            nxt = (*rows, (i + 1, a.type, a.kernel, i, 0))
            try:
                shapes(nxt, input_shape, padding)
            except InvalidArchitecture:
                continue
            out.append(nxt)
            walk(nxt)

    walk(())
    return out


class TableReward:
    """Rewards read from a table of every chain network up to a depth (built once by training
    each with :class:`TrainReward`; ``benchmarks/metarl_heldout.py tables``). The file is JSON:
    ``{"format", "depth", "protocol", "tasks": {name: {"content_hash", "rewards": {nsc_hash:
    accuracy}}}}``. A task is looked up by name and must have the table's content hash (another
    data seed or split is refused, not answered from the wrong table)."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as e:  # (JSON and UTF-8 decoding errors included)
            raise ConfigError(f"reward table {str(path)!r} cannot be read: "
                              f"{type(e).__name__}: not a JSON reward table") from None
        if not isinstance(doc, dict) or doc.get("format") != TABLE_FORMAT:
            raise ConfigError(f"reward table {str(path)!r} is not a {TABLE_FORMAT} file")
        self.path = p
        self.depth = int(doc["depth"])
        self.tasks: dict[str, dict[str, object]] = doc["tasks"]
        self.protocol = json.dumps({"fn": "table", "depth": self.depth,
                                    "train": doc.get("protocol")}, sort_keys=True)

    def check_task(self, task: Task) -> None:
        """One-line :class:`ConfigError` unless the table has ``task`` (same content)."""
        entry = self.tasks.get(task.name)
        if entry is None:
            raise ConfigError(f"reward table {str(self.path)!r} has no task {task.name!r}; it "
                              f"has {', '.join(sorted(self.tasks))}")
        if entry.get("content_hash") != task.content_hash:
            raise ConfigError(f"task {task.name!r} differs from the one reward table "
                              f"{str(self.path)!r} was built on (content hash)")

    def __call__(self, rows: tuple[Row, ...], task: Task, seed: int) -> float:
        self.check_task(task)
        rewards = self.tasks[task.name]["rewards"]
        assert isinstance(rewards, dict)
        key = nsc_hash(rows)
        if key not in rewards:
            raise ConfigError(f"network {list(rows)} is not in reward table {str(self.path)!r} "
                              f"(depth {self.depth}); set max_layers <= {self.depth}")
        return float(rewards[key])


class RewardCache:
    """Rewards keyed by (task content hash, sorted NSC hash, protocol), in an sqlite file
    (``path``) or in memory (``path=None``). Failed networks are cached too (reward 0,
    ``ok=False``) so they are never trained twice."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_dir():
            raise ConfigError(f"reward cache {str(self.path)!r} is a folder; the cache "
                              "(strategy.cache) is an sqlite file, created if missing")
        try:
            self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path),
                                       check_same_thread=False)
            # a lost last entry after a crash only costs a retraining: no fsync per reward
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS rewards (task TEXT, nsc TEXT, protocol TEXT, "
                "reward REAL, ok INTEGER, PRIMARY KEY (task, nsc, protocol))")
            self._db.commit()
        except sqlite3.Error as err:
            raise ConfigError(f"reward cache {str(self.path)!r} cannot be used ({err}); the "
                              "cache (strategy.cache) is an sqlite file, created if "
                              "missing") from None
        self.hits = 0
        self.misses = 0

    def get(self, task_hash: str, nsc: str, protocol: str) -> tuple[float, bool] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT reward, ok FROM rewards WHERE task=? AND nsc=? AND protocol=?",
                (task_hash, nsc, protocol)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return float(row[0]), bool(row[1])

    def put(self, task_hash: str, nsc: str, protocol: str, reward: float, ok: bool) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO rewards VALUES (?, ?, ?, ?, ?)",
                             (task_hash, nsc, protocol, float(reward), int(ok)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM rewards").fetchone()[0])

    def close(self) -> None:
        self._db.close()
