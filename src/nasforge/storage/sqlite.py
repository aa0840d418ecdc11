"""SQLiteRunStore: one SQLite file per run directory, written only by the driver process.

Tables: ``meta`` (JSON values: config, space, final report), ``trials`` (one row per finished
trial), ``state`` (pickled strategy checkpoints and the pending batch, for ``--resume``) and
``series`` (per-step data of strategies that own their loop: DARTS alphas, PBT members).
Writes that belong together (a batch's checkpoint and its bookkeeping) share one transaction,
so a SIGKILL leaves either all of them or none.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nasforge.evaluators.base import Result
from nasforge.exceptions import RunDirError
from nasforge.spaces.base import Architecture
from nasforge.storage.base import Record

DB_NAME = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    arch_id TEXT NOT NULL,
    arch TEXT NOT NULL,
    status TEXT NOT NULL,
    val_acc REAL,
    params INTEGER,
    train_seconds REAL,
    epochs INTEGER,
    seed INTEGER NOT NULL,
    error TEXT,
    metrics TEXT NOT NULL,
    cached_from INTEGER,
    finished_at REAL NOT NULL,
    task TEXT
);
CREATE INDEX IF NOT EXISTS trials_arch ON trials (arch_id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    member TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS series_kind ON series (kind, step);
"""


class SQLiteRunStore:
    """The run store. Open with ``readonly=True`` from any process that is not the driver."""

    def __init__(self, path: str | Path, *, readonly: bool = False, create: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / DB_NAME
        if not create and not self.path.is_file():
            raise RunDirError(f"{str(self.path.parent)!r} is not a nasforge run (no {DB_NAME})")
        self.readonly = readonly
        if readonly:
            self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            self._con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.executescript(_SCHEMA)
            cols = {r[1] for r in self._con.execute("PRAGMA table_info(trials)")}
            if "task" not in cols:  # a run from before multi-task runs
                self._con.execute("ALTER TABLE trials ADD COLUMN task TEXT")
        self._depth = 0

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> SQLiteRunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them land, or (on a crash or kill) none."""
        if self._depth == 0:
            self._con.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._con.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._con.execute("COMMIT")

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        self._con.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # ---------------------------------------------------------------- trials
    def add_trial(self, rec: Record) -> None:
        r = rec.result
        self._con.execute(
            "INSERT INTO trials (number, arch_id, arch, status, val_acc, params, train_seconds,"
            " epochs, seed, error, metrics, cached_from, finished_at, task)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.number,
                rec.arch_id,
                json.dumps(rec.arch.to_json()),
                r.status,
                None if math.isnan(r.val_acc) else r.val_acc,
                r.params,
                r.train_seconds,
                r.epochs,
                rec.seed,
                r.error,
                json.dumps(r.metrics),
                rec.cached_from,
                rec.finished_at or time.time(),
                rec.task,
            ),
        )

    def _row_to_record(self, row: tuple[Any, ...]) -> Record:
        (
            number,
            _aid,
            arch,
            status,
            val_acc,
            params,
            secs,
            epochs,
            seed,
            error,
            metrics,
            cached_from,
            finished_at,
            *rest,
        ) = row
        result = Result(
            status=status,
            val_acc=math.nan if val_acc is None else float(val_acc),
            params=int(params or 0),
            train_seconds=float(secs or 0.0),
            epochs=int(epochs or 0),
            error=error,
            metrics=json.loads(metrics),
        )
        return Record(
            number=int(number),
            arch=Architecture.from_json(json.loads(arch)),
            seed=int(seed),
            result=result,
            cached_from=cached_from,
            finished_at=float(finished_at),
            task=rest[0] if rest else None,  # runs from before multi-task runs have no column
        )

    def trials(self, numbers: range | None = None) -> list[Record]:
        sql = "SELECT * FROM trials"
        args: tuple[int, ...] = ()
        if numbers is not None:
            sql += " WHERE number >= ? AND number < ?"
            args = (numbers.start, numbers.stop)
        rows = self._con.execute(sql + " ORDER BY number", args).fetchall()
        return [self._row_to_record(r) for r in rows]

    def count_trials(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def find_complete(self, arch_id: str) -> Record | None:
        """The first stored (non-cached) trial of this architecture, for the reward cache."""
        row = self._con.execute(
            "SELECT * FROM trials WHERE arch_id = ? AND cached_from IS NULL"
            " ORDER BY number LIMIT 1",
            (arch_id,),
        ).fetchone()
        return None if row is None else self._row_to_record(row)

    # ----------------------------------------------------------------- state
    def put_state(self, key: str, blob: bytes) -> None:
        self._con.execute("INSERT OR REPLACE INTO state (key, blob) VALUES (?, ?)", (key, blob))

    def get_state(self, key: str) -> bytes | None:
        row = self._con.execute("SELECT blob FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def delete_state(self, key: str) -> None:
        self._con.execute("DELETE FROM state WHERE key = ?", (key,))

    # ---------------------------------------------------------------- series
    def add_series(self, kind: str, step: int, data: Any, member: str | None = None) -> None:
        self._con.execute(
            "INSERT INTO series (kind, step, member, data) VALUES (?, ?, ?, ?)",
            (kind, step, member, json.dumps(data)),
        )

    def series(self, kind: str) -> list[tuple[int, str | None, Any]]:
        rows = self._con.execute(
            "SELECT step, member, data FROM series WHERE kind = ? ORDER BY id", (kind,)
        ).fetchall()
        return [(int(s), m, json.loads(d)) for s, m, d in rows]

    def series_kinds(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT DISTINCT kind FROM series ORDER BY kind")]

    def truncate_series(self, kind: str, from_step: int) -> None:
        """Drop steps >= from_step (a resumed loop rewrites them)."""
        self._con.execute("DELETE FROM series WHERE kind = ? AND step >= ?", (kind, from_step))
