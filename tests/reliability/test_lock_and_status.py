"""One writer per run directory; a failed resume changes nothing; interrupted runs say so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nasforge
from nasforge.cli.main import main
from nasforge.exceptions import RunDirError
from nasforge.storage.lock import LOCK_NAME, RunLock, holder
from nasforge.storage.sqlite import SQLiteRunStore
from nasforge.strategies.base import Callback
from tests.conftest import tiny_config
from tests.reliability._helpers import snapshot


def _cfg(tmp: Path, **over: object) -> Path:
    p = tmp / "c.yaml"
    p.write_text(yaml.safe_dump(tiny_config(**{"budget": 3, "final": {"seeds": 0}, **over})))
    return p


def _hold_lock(run_dir: Path) -> subprocess.Popen[str]:
    """Another process holding the run directory's lock until its stdin closes (the lock
    protocol by hand, without importing torch: flock on RUN_DIR/.lock holding the pid)."""
    code = (
        "import fcntl, os, sys; "
        f"fd = os.open({str(run_dir / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); os.ftruncate(fd, 0); "
        "os.write(fd, str(os.getpid()).encode()); print('locked', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("resume", [False, True])
def test_second_writer_gets_one_line_with_pid(
    resume: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    if resume:
        assert main(["search", str(cfg), "--run-dir", str(run), "--no-progress"]) == 0
    else:
        run.mkdir()
    capsys.readouterr()
    proc = _hold_lock(run)
    try:
        before = snapshot(tmp_path)
        argv = ["search", str(cfg), "--run-dir", str(run), "--no-progress"]
        assert main([*argv, *(["--resume", "--budget", "5"] if resume else [])]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and f"in use by process {proc.pid}" in lines[0], lines
        assert snapshot(tmp_path) == before
        assert holder(run) == proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert holder(run) is None  # the kernel dropped the lock with the process


def test_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(RunDirError, match=f"process {os.getpid()}"):
            RunLock(tmp_path)
    RunLock(tmp_path).release()  # free again


class _StopAfter(Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_trial(self, record: object, ctx: object) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_interrupted_run_is_marked_with_exact_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, budget=6)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as info:
        nasforge.search(cfg, run_dir=run, callbacks=[_StopAfter(2)])
    cmd = getattr(info.value, "resume_command", "")
    loaded = nasforge.load_run(run)
    assert loaded.status == "interrupted"
    assert loaded.summary()["resume_command"] == cmd
    assert cmd == f"nasforge search {run / 'config.yaml'} --run-dir {run} --resume"
    # the command works as printed, from another directory
    monkeypatch.chdir(tmp_path.parent)
    argv = cmd.split()[1:] + ["--no-progress"]
    assert main(argv) == 0
    assert nasforge.load_run(run).status == "finished"
    assert len(nasforge.load_run(run).trials) == 6


def test_killed_driver_reads_interrupted(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--no-progress"]) == 0
    with SQLiteRunStore(run) as store, store.transaction():
        store.set_meta("status", "running")  # what a SIGKILLed driver leaves behind
    assert nasforge.load_run(run).status == "interrupted"
    proc = _hold_lock(run)  # while a driver holds the lock, the run is running
    try:
        assert nasforge.load_run(run).status == "running"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def test_failed_resume_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--no-progress"]) == 0
    # damage the strategy's state blob: the resume fails inside strategy.run
    with SQLiteRunStore(run) as store, store.transaction():
        store.put_state("strategy", b"not a state")
        store.set_meta("status", "interrupted")
    before = {k: v for k, v in snapshot(tmp_path).items() if not k.endswith(LOCK_NAME)}
    cfg_text = (run / "config.yaml").read_text()
    with pytest.raises(Exception):  # noqa: B017  (the state codec's own error, issue 18)
        nasforge.search(cfg, run_dir=run, resume=True, budget=5)
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.endswith(LOCK_NAME)}
    assert (run / "config.yaml").read_text() == cfg_text  # not rewritten with budget 5
    run_obj = nasforge.load_run(run)
    assert run_obj.meta("status") == "interrupted" and run_obj.config.budget == 3
    assert run_obj.meta("config")["budget"] == 3
    assert len(run_obj.trials) == 3
    assert set(after) == set(before)


def test_fresh_run_that_fails_before_progress_leaves_nothing(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, strategy={"name": "random", "batch_size": 3})

    class _Bug(Callback):
        def on_start(self, ctx: object) -> None:
            raise RuntimeError("a bug before the first trial")

    with pytest.raises(RuntimeError):
        nasforge.search(cfg, run_dir=tmp_path / "run", callbacks=[_Bug()])
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(120)
def test_sigterm_marks_interrupted_and_prints_the_command(tmp_path: Path) -> None:
    import signal
    import time

    cfg = _cfg(tmp_path, budget=400, strategy={"name": "random", "batch_size": 1})
    run = tmp_path / "run"
    src = str(Path(nasforge.__file__).resolve().parents[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasforge.cli.main", "search", str(cfg), "--run-dir", str(run),
         "--no-progress"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": src},
    )
    end = time.monotonic() + 90
    while time.monotonic() < end and proc.poll() is None:
        try:
            if len(nasforge.load_run(run).trials) >= 2:
                break
        except Exception:
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"continue with: nasforge search {run / 'config.yaml'} --run-dir {run} --resume" in err
    assert nasforge.load_run(run).meta("status") == "interrupted"
