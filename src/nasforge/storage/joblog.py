"""Small files that survive a kill: atomic writes, an append-only JSON-lines job log, and the
config fingerprint that keeps a different config from resuming into the same log.

Used where a long command keeps its progress outside the SQLite run store: ``nasforge
tabulate`` (``OUT.parts/``) and ``nasforge bench`` (``--out``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nasforge.exceptions import ConfigError


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a kill leaves the old file or the new one, whole."""
    if path.is_file() and path.read_text() == text:
        return  # unchanged: not even its mtime
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a JSON-lines log (none if it is missing); a torn last line (the
    process was killed mid-write) is cut off the file, so the next append starts clean."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    good = raw.rfind(b"\n") + 1
    if good < len(raw):
        with path.open("r+b") as f:
            f.truncate(good)
    return [json.loads(line) for line in raw[:good].decode().splitlines() if line.strip()]


def append_jsonl(log: Any, obj: dict[str, Any], *, sync: bool = False) -> None:
    """Append one line to an open log and flush it (``sync``: also fsync)."""
    log.write(json.dumps(obj) + "\n")
    log.flush()
    if sync:
        os.fsync(log.fileno())


def check_fingerprint(path: Path, fingerprint: dict[str, Any], folder: Path, what: str) -> None:
    """Record ``fingerprint`` in ``path``, or, if one is there, refuse a different one with a
    line naming the keys that differ (``what``: "a tabulation", "a bench")."""
    want = json.loads(json.dumps(fingerprint))
    if not path.is_file():
        write_atomic(path, json.dumps(want, indent=1))
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{str(path)!r} is not readable JSON ({err}); delete {str(folder)!r} "
                          "or use another --out") from None
    if stored != want:
        keys = sorted(set(want) | set(stored if isinstance(stored, dict) else {}))
        diff = [k for k in keys if not isinstance(stored, dict) or stored.get(k) != want.get(k)]
        raise ConfigError(
            f"{str(folder)!r} holds {what} of a different config (differs at "
            f"{', '.join(diff)}); use another --out or delete that folder"
        )


__all__ = ["append_jsonl", "check_fingerprint", "read_jsonl", "write_atomic"]
