"""Ends a local Ray's processes when the driver that started them dies (even by SIGKILL).

Started by :class:`nasforge.executors.ray.RayExecutor` right after it starts a local Ray, as
``python -I .../_reaper.py PID:START ...`` (by path: it imports nothing of nasforge, no torch)
with a pipe on stdin. The arguments are the processes Ray just started under the driver (pid
and start time, so a reused pid is never hit); while it waits, the reaper adds every process
they start (Ray's workers). When stdin reaches end of file (the driver exited or was killed),
it sends SIGKILL to all of them and exits. A ``done`` line on stdin (a clean ``ray.shutdown()``)
makes it exit without killing anything. Linux only (it reads ``/proc``); elsewhere it is not
started.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path


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


def main(argv: list[str]) -> int:
    roots = {int(a.split(":")[0]): int(a.split(":")[1]) for a in argv}
    while True:  # wait for "done" or end of file (the driver is gone); meanwhile note every
        # process Ray starts (workers), so they are known even if their parent dies first
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready:
            line = sys.stdin.readline()
            if line.strip() == "done":
                return 0
            if not line:
                break
        for p in tree(roots):
            st = _stat(p)
            if st is not None:
                roots.setdefault(p, st[1])
    for _ in range(3):  # processes may still be starting workers: sweep a few times
        pids = tree(roots)
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
