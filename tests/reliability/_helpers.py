"""Fault-injection helpers: evaluators that kill their own worker process, malicious pickles,
a file-tree snapshot (to assert that nothing was written), process-tree inspection."""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path
from typing import Any, ClassVar

from nasforge.evaluators.base import Evaluator, Result
from nasforge.spaces.base import Architecture

MARKER_ENV = "NASFORGE_TEST_MARKER"


class _Boom:
    """Unpickling this runs ``os.system``: it creates the marker file (proof of execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Boom(marker)})


def malicious_torch_file(path: Path, marker: Path) -> None:
    """A torch.save-style zip whose data.pkl runs code when unpickled without weights_only."""
    import torch

    torch.save({"weight": _Boom(marker)}, path)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``root``: relative path -> (size, mtime_ns)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


class LoggingEvaluator(Evaluator):
    """A deterministic evaluator that appends ``index seed pid`` to ``log`` on every call, and
    kills its own process (SIGKILL, like the OOM killer) on the first call for an arch whose
    first token is in ``kill_tokens`` (once per token: a file ``log.killed-<token>`` records it),
    or on every call when ``always`` is set."""

    name: ClassVar[str] = "logging_toy"

    def __init__(self, log: Path, kill_tokens: tuple[int, ...] = (), always: bool = False,
                 padding: int = 0, die_on_load: bool = False) -> None:
        self.log, self.kill_tokens, self.always = str(log), kill_tokens, always
        self.padding = b"x" * padding  # a large payload, as a real evaluator with data has
        self.die_on_load = die_on_load

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if state.get("die_on_load") and os.getpid() != int(os.environ.get("DRIVER_PID", "0")):
            flag = Path(state["log"] + ".died-on-load")
            if not flag.exists():  # die while starting, once
                flag.touch()
                os.kill(os.getpid(), signal.SIGKILL)

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        tok = int(arch.tokens[0])
        with open(self.log, "a") as f:
            f.write(f"{tok} {seed} {os.getpid()}\n")
        flag = Path(f"{self.log}.killed-{tok}")
        if self.always or (tok in self.kill_tokens and not flag.exists()):
            flag.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return Result(status="complete", val_acc=(tok * 7919 + seed) % 1000 / 1000.0,
                      metrics={"pid": 0})


def proc_start(pid: int) -> int | None:
    """Start time (clock ticks) of a live ``pid``, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    if rest[0] == "Z":  # a zombie has ended
        return None
    return int(rest[19])


def alive(procs: dict[int, int]) -> list[int]:
    """The pids of ``procs`` (pid -> start time) still running as the same process."""
    return [p for p, s in procs.items() if proc_start(p) == s]
