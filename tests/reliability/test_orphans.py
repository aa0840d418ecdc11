"""No orphans: SIGKILL the driver of a search and its worker processes (and a local Ray's)
end within seconds; the run then reads ``interrupted`` and resumes to exactly its budget."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import nasforge
from nasforge.executors._reaper import descendants
from tests.conftest import tiny_config
from tests.reliability._helpers import alive

SRC = str(Path(nasforge.__file__).resolve().parents[1])


def _start_driver(tmp_path: Path, cfg: dict) -> tuple[subprocess.Popen[bytes], Path]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasforge.cli.main", "search", str(path), "--run-dir", str(run),
         "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    return proc, run


def _wait_for(pred: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _kill_and_check(proc: subprocess.Popen[bytes], kids: dict[int, int], grace: float) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _wait_for(lambda: not alive(kids), grace), f"orphans left: {alive(kids)}"


@pytest.mark.timeout(240)
def test_sigkilled_driver_leaves_no_pool_workers(tmp_path: Path) -> None:
    cfg = tiny_config(
        budget=8, final={"seeds": 0}, executor={"name": "local", "workers": 2},
        strategy={"name": "random", "batch_size": 4},
        evaluator={"name": "train", "max_epochs": 60, "patience": 60, "batch_size": 16},
    )
    proc, run = _start_driver(tmp_path, cfg)
    try:
        # wait until both pool workers are up (and the first trials are stored)
        assert _wait_for(lambda: len(descendants(proc.pid)) >= 2
                         and (run / "run.sqlite").exists(), 120)
        time.sleep(1.0)
        kids = descendants(proc.pid)
    finally:
        if proc.poll() is None:
            _kill_and_check(proc, kids, grace=10)
    assert nasforge.load_run(run).status == "interrupted"
    resumed = nasforge.search(tmp_path / "c.yaml", run_dir=run, resume=True)
    numbers = [r.number for r in resumed.trials]
    assert numbers == list(range(8))


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_sigkilled_driver_leaves_no_ray_processes(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths are limited
    cfg = tiny_config(
        budget=40, final={"seeds": 0},
        executor={"name": "ray", "num_cpus": 2, "temp_dir": ray_tmp},
        strategy={"name": "random", "batch_size": 2},
        evaluator={"name": "train", "max_epochs": 60, "patience": 60, "batch_size": 16},
    )
    proc, run = _start_driver(tmp_path, cfg)
    kids: dict[int, int] = {}
    try:
        # Ray is up and running tasks once a trial is stored
        def started() -> bool:
            try:
                return len(nasforge.load_run(run).trials) >= 1
            except Exception:
                return False

        assert _wait_for(started, 240)
        kids = descendants(proc.pid)
        assert len(kids) >= 4  # gcs, raylet, ray workers, ..., and the reaper
    finally:
        try:
            if proc.poll() is None:
                _kill_and_check(proc, kids, grace=30)
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
