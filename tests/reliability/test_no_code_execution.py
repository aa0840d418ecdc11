"""Nothing in a run directory or an export runs code: checkpoints load with
``weights_only=True``; a tampered one is refused with one line and the payload never runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import nasforge
from nasforge.exceptions import RunDirError
from nasforge.safeload import load_checkpoint
from nasforge.storage.sqlite import SQLiteRunStore
from tests.reliability._helpers import malicious_pickle, malicious_torch_file
from tests.strategies.oneshot.darts._darts_helpers import tiny_config as darts_config


def test_malicious_checkpoint_bytes_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    malicious_torch_file(tmp_path / "ck.pt", marker)
    for source in (tmp_path / "ck.pt", (tmp_path / "ck.pt").read_bytes(),
                   malicious_pickle(marker)):
        with pytest.raises(RunDirError, match="refused|damaged"):
            load_checkpoint(source)
    assert not marker.exists()


def test_refusal_names_the_refused_global_on_one_clean_line(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    malicious_torch_file(tmp_path / "ck.pt", marker)
    with pytest.raises(RunDirError) as err:
        load_checkpoint(tmp_path / "ck.pt", what="best_model.pt")
    msg = str(err.value)
    assert msg.startswith("best_model.pt holds objects other than tensors")
    assert "it references " in msg and "\n" not in msg and "\x1b" not in msg
    assert not marker.exists()


def test_junk_bytes_are_named_damaged_without_a_bare_number() -> None:
    with pytest.raises(RunDirError, match=r"damaged or not a torch checkpoint \(its first bytes"):
        load_checkpoint(b"junk text here", what="best_model.pt")


def test_tampered_darts_checkpoint_refused_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = darts_config(tmp_path, epochs=2)
    run = nasforge.search(cfg, run_dir=tmp_path / "run")
    with SQLiteRunStore(run.dir) as store:
        blob = store.get_state("darts")
        assert blob is not None
        load_checkpoint(blob)  # the genuine checkpoint loads as plain tensors
    marker = tmp_path / "PWNED"
    malicious_torch_file(tmp_path / "evil.pt", marker)
    with SQLiteRunStore(run.dir) as store, store.transaction():
        store.put_state("darts", (tmp_path / "evil.pt").read_bytes())
    with pytest.raises(RunDirError, match="DARTS checkpoint .*refused"):
        nasforge.search(cfg, run_dir=run.dir, resume=True, overrides=["strategy.epochs=2"])
    assert not marker.exists(), "code ran from a tampered DARTS checkpoint"
    assert nasforge.load_run(run.dir).meta("status") == "finished"  # the failed resume: as it was


def test_environment_state_allow_list(tmp_path: Path) -> None:
    gym = pytest.importorskip("gymnasium")
    import pickle

    from nasforge.safeload import load_environments

    envs = [gym.make("Pendulum-v1") for _ in range(2)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    back = load_environments(pickle.dumps(envs))
    assert [type(e.unwrapped).__name__ for e in back] == ["PendulumEnv"] * 2
    assert (back[1].unwrapped.state == envs[1].unwrapped.state).all()
    marker = tmp_path / "PWNED"
    with pytest.raises(RunDirError, match="refused"):
        load_environments(malicious_pickle(marker))
    with pytest.raises(RunDirError, match="refused"):  # a gymnasium function, not a class
        load_environments(pickle.dumps(gym.make))
    assert not marker.exists()
