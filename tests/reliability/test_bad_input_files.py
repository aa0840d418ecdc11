"""Bad files a user points a config at: one clear error naming the file, nothing run."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.data import make_task
from nasforge.envs.rewards import RewardCache, TableReward, ToyReward
from nasforge.exceptions import ConfigError, DataError, NasforgeError
from nasforge.strategies.metarl import load_policy


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch BOOM",))


def test_policy_files_that_are_not_policies(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "nope")
    with pytest.raises(ConfigError, match="not a meta_a2c run: no policy.pt"):
        load_policy(tmp_path)
    pt = tmp_path / "policy.pt"
    pt.write_bytes(os.urandom(512))
    with pytest.raises(ConfigError, match="no policy.json next to policy.pt"):
        load_policy(pt)
    (tmp_path / "policy.json").write_text("not json{")
    with pytest.raises(ConfigError, match="policy.json' cannot be read"):
        load_policy(tmp_path)
    (tmp_path / "policy.json").write_text(json.dumps({"space": "chain"}))
    with pytest.raises(NasforgeError, match="policy file '.*policy.pt' (is damaged|holds obj)"):
        load_policy(tmp_path)
    torch.save({"x": _Boom()}, pt)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(NasforgeError, match="refused without running it"):
            load_policy(tmp_path)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "BOOM").exists()


def test_reward_files_that_are_not_what_they_should_be(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(200, 256)) * 20)
    with pytest.raises(ConfigError, match="not a JSON reward table"):
        TableReward(garbage)
    with pytest.raises(ConfigError, match="is a folder"):
        RewardCache(tmp_path)
    with pytest.raises(ConfigError, match="cannot be used"):
        RewardCache(garbage)
    assert garbage.read_bytes() == bytes(range(200, 256)) * 20  # left as it was
    with pytest.raises(ConfigError, match="unknown layer label.*allowed: conv1"):
        ToyReward(["conv3", "bogus"])


def test_data_files_with_mismatched_rows_or_foreign_bytes(tmp_path: Path) -> None:
    np.savez(tmp_path / "mism.npz", x=np.zeros((10, 3)), y=np.arange(8) % 2)
    with pytest.raises(DataError, match="10 feature rows but 8 labels"):
        make_task({"name": "file", "path": str(tmp_path / "mism.npz")})
    (tmp_path / "g.npy").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="not a numpy .npy / .npz file of plain arrays"):
        make_task({"name": "file", "path": str(tmp_path / "g.npy")})
