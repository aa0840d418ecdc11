"""The run store: every trial of a run in one SQLite file."""

from nasforge.storage.base import Record
from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore

__all__ = ["DB_NAME", "Record", "SQLiteRunStore"]
