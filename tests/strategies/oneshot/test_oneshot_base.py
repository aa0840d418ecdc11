"""The one-shot base: checkpoints load without pickle, and the architect validates its mode."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest
import torch

import nasforge
from nasforge.exceptions import RunDirError
from nasforge.strategies.oneshot import decode_checkpoint, encode_checkpoint
from nasforge.strategies.oneshot.darts.architect import Architect


def _darts_config(epochs: int = 2) -> dict:
    return {
        "name": "oneshot", "seed": 0, "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "darts", "ops": "darts", "nodes": 2, "channels": 4, "layers": 3,
                  "reductions": [1]},
        "strategy": {"name": "darts", "epochs": epochs, "batch_size": 256, "channels": 4,
                     "layers": 2},
        "final": {"seeds": 0},
    }


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def test_checkpoint_round_trip_keeps_tensors_and_rng_states() -> None:
    g = torch.Generator().manual_seed(3)
    state = {"w": torch.arange(4.0), "gen": g.get_state(), "epoch": 2, "nested": {"a": [1, 2]}}
    back = decode_checkpoint(encode_checkpoint(state))
    assert torch.equal(back["w"], state["w"]) and back["epoch"] == 2
    assert torch.equal(back["gen"], state["gen"]) and back["nested"] == {"a": [1, 2]}


def test_a_malicious_checkpoint_is_refused_and_never_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    nasforge.search(_darts_config(), run_dir=run_dir)
    marker = tmp_path / "pwned"
    con = sqlite3.connect(run_dir / "run.sqlite")
    con.execute("UPDATE state SET blob = ? WHERE key = 'darts'",
                (pickle.dumps({"x": _Marker(marker)}),))
    con.commit()
    con.close()
    with pytest.raises(RunDirError, match="refused without running it"):
        nasforge.search(_darts_config(), run_dir=run_dir, resume=True)
    assert not marker.exists()


def test_architect_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="allowed: first, second, tse"):
        Architect(torch.nn.Linear(1, 1), None, None, None, mode="third")  # type: ignore[arg-type]
