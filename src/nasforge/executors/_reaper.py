"""Ends a local Ray's processes when the driver that started them dies (even by SIGKILL).

:class:`nasforge.executors.ray.RayExecutor` starts it just *before* it starts a local Ray, as
``python -I .../_reaper.py DRIVER_PID TAG`` (by path: it imports nothing of nasforge, no torch)
with a pipe on stdin, after putting ``NASFORGE_REAPER_TAG=TAG`` in the driver's environment,
which every process Ray starts inherits. While it waits, the reaper also notes every descendant
of the driver (pid and start time, so a reused pid is never hit). When stdin reaches end of file
(the driver exited or was killed, even in the middle of ``ray.init``), it sends SIGKILL to every
process carrying the tag and to the noted ones and their descendants, then exits. A ``done``
line on stdin (after a clean ``ray.shutdown()``) ends only the tagged processes left. Linux only
(it reads ``/proc``); elsewhere it is not started.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path

TAG_VAR = "NASFORGE_REAPER_TAG"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid`` from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[19])


def tree(roots: dict[int, int]) -> list[int]:
    """Live ``roots`` (pid -> start time, still matching) and all their descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    out: list[int] = []
    todo = [p for p, start in roots.items() if (s := _stat(p)) is not None and s[1] == start]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def descendants(pid: int) -> dict[int, int]:
    """Every descendant of ``pid`` now: pid -> start time."""
    found = tree({pid: s[1]}) if (s := _stat(pid)) is not None else []
    return {p: st[1] for p in found if p != pid and (st := _stat(p)) is not None}


def tagged(tag: str) -> list[int]:
    """Processes whose environment holds ``NASFORGE_REAPER_TAG=tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0"):
                out.append(int(entry))
    return out


def main(argv: list[str]) -> int:
    driver, tag = int(argv[0]), argv[1]
    seen: dict[int, int] = {}
    while True:  # wait for "done" or end of file (the driver is gone); meanwhile note what
        # descends from the driver, so it is known even if its parent dies first
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready:
            line = sys.stdin.readline()
            if line.strip() == "done":  # a clean shutdown: only what Ray left behind
                seen = {}
                break
            if not line:
                break
        for p, start in descendants(driver).items():
            if p != os.getpid():
                seen.setdefault(p, start)
    for _ in range(3):  # processes may still be starting workers: sweep a few times
        pids = set(tree(seen)) | set(tagged(tag))
        pids.discard(os.getpid())
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
