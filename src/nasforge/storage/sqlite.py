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
from nasforge.storage.lock import holder

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of a store this code writes; 0 is a store from before versioning
(accepted when its tables are complete), anything newer is refused."""
_COLUMNS = {
    "meta": {"key", "value"},
    "trials": {"number", "arch_id", "arch", "status", "val_acc", "params", "train_seconds",
               "epochs", "seed", "error", "metrics", "cached_from", "finished_at"},
    "state": {"key", "blob"},
    "series": {"id", "kind", "step", "member", "data"},
}

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


def damaged(path: Path, err: BaseException) -> RunDirError:
    """The one-line error for a store SQLite cannot read."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    return RunDirError(
        f"{str(path)!r} is damaged or not a nasforge store (sqlite: {msg}); "
        "it was left unchanged"
    )


def _real(x: float) -> float | None:
    """A REAL column's value as SQLite keeps it: NaN becomes NULL and -0.0 becomes 0.0."""
    return None if math.isnan(x) else float(x) + 0.0


class SQLiteRunStore:
    """The run store. Open with ``readonly=True`` from any process that is not the driver."""

    def __init__(self, path: str | Path, *, readonly: bool = False, create: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / DB_NAME
        existed = self.path.is_file()
        if not create and not existed:
            raise RunDirError(f"{str(self.path.parent)!r} is not a nasforge run (no {DB_NAME})")
        self.readonly = readonly
        self._depth = 0
        if existed:  # checked before anything is written: a damaged store stays as it is
            self._verify()
        try:
            if readonly:
                # no write-ahead log and no driver holding the lock: nobody writes, so read it
                # as immutable (creates no -wal/-shm files next to it)
                quiet = not self._wal().exists() and holder(self.path.parent) is None
                uri = f"file:{self.path}?mode=ro" + ("&immutable=1" if quiet else "")
                self._con = sqlite3.connect(uri, uri=True, timeout=30)
            else:
                self._con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as err:
            raise damaged(self.path, err) from None
        try:
            if not readonly:
                self._con.execute("PRAGMA journal_mode=WAL")
                self._con.execute("PRAGMA synchronous=NORMAL")
                if not existed:
                    self._con.executescript(_SCHEMA)
                    self._con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                cols = {r[1] for r in self._con.execute("PRAGMA table_info(trials)")}
                if "task" not in cols:  # a run from before multi-task runs
                    self._con.execute("ALTER TABLE trials ADD COLUMN task TEXT")
        except sqlite3.Error as err:
            self._con.close()
            raise damaged(self.path, err) from None

    def _wal(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def _verify(self) -> None:
        """Schema version, integrity (``PRAGMA quick_check``) and the expected tables, on a
        separate read-only connection that creates no files (``immutable`` unless a write-ahead
        log is present, whose content must be read)."""
        if self.path.stat().st_size == 0:
            raise RunDirError(f"{str(self.path)!r} is empty: not a nasforge store (damaged run?)")
        uri = f"file:{self.path}?mode=ro" + ("" if self._wal().exists() else "&immutable=1")
        try:
            con = sqlite3.connect(uri, uri=True, timeout=30)
        except sqlite3.Error as err:
            raise damaged(self.path, err) from None
        try:
            self._verify_with(con)
        except sqlite3.Error as err:
            raise damaged(self.path, err) from None
        finally:
            con.close()

    def _verify_with(self, con: sqlite3.Connection) -> None:
        version = int(con.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RunDirError(
                f"{str(self.path)!r} has store schema version {version}; this nasforge reads "
                f"versions up to {SCHEMA_VERSION} (upgrade nasforge)"
            )
        check = con.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            raise RunDirError(
                f"{str(self.path)!r} is damaged (integrity check: {check[0][0]}); "
                "it was left unchanged"
            )
        for table, cols in _COLUMNS.items():
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if not cols <= have:
                what = "is missing" if not have else "lacks columns of"
                raise RunDirError(
                    f"{str(self.path)!r} is not a complete nasforge store (it {what} table "
                    f"{table!r}); it was left unchanged"
                )

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
    def add_trial(self, rec: Record) -> Record:
        """Store ``rec``; return it as :meth:`trials` will read it back (decoded from the row
        written, so a caller that keeps it sees what a resumed run sees, without a query)."""
        r = rec.result
        row = (
            rec.number,
            rec.arch_id,
            json.dumps(rec.arch.to_json()),
            r.status,
            _real(r.val_acc),
            r.params,
            _real(r.train_seconds),
            r.epochs,
            rec.seed,
            r.error,
            json.dumps(r.metrics),
            rec.cached_from,
            rec.finished_at or time.time(),
            rec.task,
        )
        self._con.execute(
            "INSERT INTO trials (number, arch_id, arch, status, val_acc, params, train_seconds,"
            " epochs, seed, error, metrics, cached_from, finished_at, task)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return self._row_to_record(row, rec.arch)  # (an architecture round-trips its JSON)

    def _row_to_record(
        self, row: tuple[Any, ...], arch_value: Architecture | None = None
    ) -> Record:
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
            error=None if error is None else str(error),
            metrics=json.loads(metrics),
        )
        return Record(
            number=int(number),
            arch=Architecture.from_json(json.loads(arch)) if arch_value is None else arch_value,
            seed=int(seed),
            result=result,
            cached_from=None if cached_from is None else int(cached_from),
            finished_at=float(finished_at),
            # (runs from before multi-task runs have no task column)
            task=None if not rest or rest[0] is None else str(rest[0]),
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

    def end_number(self) -> int:
        """One past the highest stored trial number (0 for an empty run)."""
        row = self._con.execute("SELECT MAX(number) FROM trials").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

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

    def states(self) -> dict[str, bytes | None]:
        """Every stored state blob by key (to tell whether a run made progress)."""
        return {k: bytes(b) for k, b in self._con.execute("SELECT key, blob FROM state")}

    def delete_meta(self, key: str) -> None:
        self._con.execute("DELETE FROM meta WHERE key = ?", (key,))
