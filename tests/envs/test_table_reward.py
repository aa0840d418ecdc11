"""TableReward: chain networks up to a depth read from a table file; meta_a2c on a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nasforge.data.base import make_task
from nasforge.envs.core import EnvSettings, NasEnvCore
from nasforge.envs.nsc import nsc_hash
from nasforge.envs.rewards import TABLE_FORMAT, TableReward, chain_networks
from nasforge.exceptions import ConfigError
from nasforge.run import Run
from nasforge.search import search

TASK = {"name": "textures", "per_class": 10}


def write_table(path: Path, depth: int = 2, seed: int = 0) -> dict[str, float]:
    task = make_task(TASK)
    rng = np.random.default_rng(seed)
    rewards = {nsc_hash(r): float(rng.uniform()) for r in
               chain_networks(depth, task.input_shape, "same")}
    path.write_text(json.dumps({"format": TABLE_FORMAT, "depth": depth, "protocol": {},
                                "tasks": {"textures": {"content_hash": task.content_hash,
                                                       "rewards": rewards}}}))
    return rewards


def test_chain_networks_counts_and_validity() -> None:
    nets = chain_networks(2, (1, 16, 16), "same")
    assert nets[0] == () and len(nets) == 1 + 7 + 49  # 16 px: every pair of layers builds
    small = chain_networks(3, (1, 8, 8), "same")
    assert len(small) < 1 + 7 + 49 + 343  # 8 px: maxpool3 twice is not buildable
    assert len({nsc_hash(r) for r in small}) == len(small)


def test_env_reads_the_table(tmp_path: Path) -> None:
    rewards = write_table(tmp_path / "t.json")
    table = TableReward(tmp_path / "t.json")
    env = NasEnvCore(make_task(TASK), EnvSettings.of("chain", "default", max_layers=2), table)
    env.reset()
    out = env.step(1)  # conv3
    assert out.reward == pytest.approx(rewards[nsc_hash([(1, 1, 3, 0, 0)])])
    out = env.step(3)  # maxpool2: the second layer ends the episode at depth 2
    assert out.terminated
    with pytest.raises(ConfigError, match="no task 'digits'"):
        table.check_task(make_task({"name": "digits"}))
    with pytest.raises(ConfigError, match="content hash"):
        table.check_task(make_task({**TASK, "data_seed": 1}))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="is not a"):
        TableReward(tmp_path / "bad.json")


def test_meta_a2c_on_a_table(tmp_path: Path) -> None:
    write_table(tmp_path / "t.json")
    st = {"name": "meta_a2c", "hidden": 16, "max_layers": 2, "final": {"top": 0},
          "reward": {"kind": "table", "table": str(tmp_path / "t.json")}}
    cfg = {"name": "tab", "seed": 0, "budget": 20, "device": "cpu", "tasks": [TASK],
           "strategy": st, "final": {"seeds": 1}}
    run = search(cfg, run_dir=tmp_path / "r", progress=False)
    assert len(Run(run.dir).trials) == 20
    with pytest.raises(ConfigError, match="exceeds the reward table's depth"):
        search({**cfg, "strategy": {**st, "max_layers": 3}}, run_dir=tmp_path / "r2",
               progress=False)
    assert not (tmp_path / "r2").exists()
