"""One writer per run directory: an OS-level lock (``flock``) on ``RUN_DIR/.lock``.

The driver takes the lock before it reads or writes anything in the run directory and holds it
until the search returns (the kernel drops it when the process dies, SIGKILL included, so a
stale lock never blocks a resume). The lock file holds the holder's PID, which a second process
names in its one-line error. Readers (``show``, ``export``, plots) never take it; they use
:func:`holder` to tell a live run from an interrupted one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nasforge.exceptions import RunDirError

LOCK_NAME = ".lock"

try:  # POSIX; on other systems the lock is a no-op (documented in docs/reliability.md)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(raw) if raw.isdigit() else None
    except OSError:
        return None


def holder(run_dir: str | Path) -> int | None:
    """PID of the process holding the run directory's lock, or None if nobody holds it."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_unlocked(run_dir: str | Path) -> None:
    """Raise :class:`RunDirError` naming the PID if another process holds ``run_dir``."""
    pid = holder(run_dir)
    if pid is not None:
        raise _busy(Path(run_dir), pid)


def _busy(run_dir: Path, pid: int) -> RunDirError:
    who = f"process {pid}" if pid > 0 else "another process"
    return RunDirError(
        f"run directory {str(run_dir)!r} is in use by {who} (a search or resume is running); "
        "wait for it to finish or stop it first"
    )


class RunLock:
    """The exclusive lock of one run directory (which must exist). Release with :meth:`release`
    or a ``with`` block; idempotent."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        if fcntl is None:  # pragma: no cover
            return
        path = self.run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunDirError(
                f"cannot create the lock file {str(path)!r}: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise _busy(self.run_dir, pid or -1) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
