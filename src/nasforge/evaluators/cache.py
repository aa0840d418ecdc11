"""Persistent evaluation cache shared across runs (evaluator param ``cache_dir``).

Within one run the run store already acts as the reward cache: a repeated architecture re-uses
its stored result unless the strategy sets ``reevaluate`` (``SearchContext.evaluate_batch``).
This cache adds reuse *across* runs: a result is stored under the key

    sha1(task spec, task content hash, architecture id, evaluator settings, seed)

so the same child trained with the same settings and seed is never trained twice, whichever run
asks. The seed is part of the key because results depend on it; runs with the same run seed
(trial seeds derive from it and the trial number) or the same final-retraining seeds hit it.

Single writer: only the driver process opens the file. The engine's middleware
(:mod:`nasforge.engine.middleware`) looks results up before any executor (local or Ray)
dispatches work and stores the results its workers return (:func:`cached_map`); workers never
touch it. Only ``complete`` results are stored (a failure may be environmental). A hit is
returned with ``train_seconds = 0`` and ``metrics["cache"] = "hit"`` (the original time is kept
as ``metrics["cached_train_seconds"]``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nasforge.evaluators.base import Evaluator, Result
from nasforge.logging import get_logger
from nasforge.spaces.base import Architecture, sha1_id

_logger = get_logger(__name__)
CACHE_FILE = "evalcache.sqlite"


def cache_key(evaluator: Evaluator, arch: Architecture, seed: int) -> str:
    """Key of one evaluation: the task's spec and *content* hash (so a replaced data file is a
    new task), the architecture id, the evaluator settings and the seed."""
    task = getattr(evaluator, "task", None)
    payload = {
        "task": getattr(task, "spec", None),
        "data": getattr(task, "content_hash", None),
        "arch": arch.arch_id,
        "settings": evaluator.settings(),
        "seed": int(seed),
    }
    return sha1_id(payload, n=40)


class EvalCache:
    """A small SQLite key -> Result table in ``directory/evalcache.sqlite``."""

    def __init__(self, directory: str | Path) -> None:
        path = Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / CACHE_FILE
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result TEXT NOT NULL, "
            "created REAL NOT NULL)"
        )
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, Result]:
        out: dict[str, Result] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, result FROM results WHERE key IN ({marks})", chunk
            ).fetchall()
            for key, blob in rows:
                out[key] = Result.from_json(json.loads(blob))
        return out

    def put(self, key: str, result: Result) -> None:
        if not result.ok:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO results (key, result, created) VALUES (?, ?, ?)",
            (key, json.dumps(result.to_json()), time.time()),
        )
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def cache_dir_of(evaluator: Evaluator) -> str | None:
    """The evaluator's ``cache_path`` (its ``cache_dir`` param), or None."""
    path = getattr(evaluator, "cache_path", None)
    return str(path) if path else None


def as_hit(result: Result) -> Result:
    metrics: dict[str, Any] = {
        **result.metrics, "cache": "hit", "cached_train_seconds": result.train_seconds,
    }
    return replace(result, train_seconds=0.0, metrics=metrics)


MapFn = Callable[[Evaluator, Sequence[Architecture], Sequence[int]], Iterator[tuple[int, Result]]]


def cached_map(
    run: MapFn,
    evaluator: Evaluator,
    archs: Sequence[Architecture],
    seeds: Sequence[int],
) -> Iterator[tuple[int, Result]]:
    """``run(evaluator, archs, seeds)`` (an executor's uncached map) with the evaluator's
    persistent cache in front: hits are yielded first, the misses are evaluated by ``run``
    and stored by this (driver) process as they arrive."""
    directory = cache_dir_of(evaluator)
    if directory is None:
        yield from run(evaluator, archs, seeds)
        return
    cache = EvalCache(directory)
    try:
        keys = [cache_key(evaluator, a, s) for a, s in zip(archs, seeds)]
        hits = cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in hits]
        _logger.info("evaluation cache %s: %d hits, %d to train", cache.path,
                     len(archs) - len(todo), len(todo))
        for i, k in enumerate(keys):
            if k in hits:
                yield i, as_hit(hits[k])
        if todo:
            for j, result in run(evaluator, [archs[i] for i in todo], [seeds[i] for i in todo]):
                cache.put(keys[todo[j]], result)
                yield todo[j], result
    finally:
        cache.close()
