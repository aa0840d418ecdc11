"""meta_a2c: learning on a synthetic reward, RL^2 memory, deployment of a saved policy, exact
resume after an interruption, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from nasforge.cli.main import main
from nasforge.config import load_config
from nasforge.exceptions import ConfigError
from nasforge.rl.policies import RecurrentActorCritic
from nasforge.run import Run
from nasforge.search import search
from nasforge.strategies import STRATEGIES
from nasforge.strategies.base import Callback, SearchContext


def _cfg(budget: int, tasks: list[dict[str, Any]] | None = None, **strategy: Any) -> dict:
    st = {"name": "meta_a2c", "hidden": 16, "reward": {"kind": "toy", "target": ["conv3"]},
          "final": {"top": 0}, **strategy}
    return {"name": "meta", "seed": 0, "budget": budget, "device": "cpu",
            "tasks": tasks or [{"name": "textures", "per_class": 10},
                               {"name": "textures", "per_class": 10, "data_seed": 1}],
            "strategy": st, "final": {"seeds": 1}}


def _rewards(run_dir: Path) -> list[tuple[str | None, str, float]]:
    return [(r.task, str(r.arch), r.result.metrics["reward"]) for r in Run(run_dir).trials]


def test_a2c_learns_the_known_best_sequence(tmp_path: Path) -> None:
    # reward 1 for a network that opens with conv3, 0 for any other opening: a random policy
    # stays near 1/8 of the steps rewarded; the trained one must open with conv3 far more often
    one = [{"name": "textures", "per_class": 10}]
    run = search(_cfg(300, one, lr=0.005), run_dir=tmp_path / "r")
    rs = [r.result.metrics["reward"] for r in run.trials]
    assert len(rs) == 300
    first, last = sum(rs[:60]) / 60, sum(rs[-60:]) / 60
    assert first < 0.2 and last > 0.4, (first, last)
    assert all(r.task == "textures" for r in run.trials)
    assert len(run.series("meta_a2c")) == 60  # one A2C update per 5 steps


class _Spy:
    """Counts the policy steps that start from a zero (reset) LSTM state."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.zero_starts = 0
        orig = RecurrentActorCritic.step

        def step(net: RecurrentActorCritic, obs: torch.Tensor, *a: Any, **k: Any) -> Any:
            h = a[2]
            if not torch.is_grad_enabled() and all(not bool(x.any()) for x in h):
                self.zero_starts += 1
            return orig(net, obs, *a, **k)

        monkeypatch.setattr(RecurrentActorCritic, "step", step)


@pytest.mark.parametrize("memory", ["trial", "episode"])
def test_rl2_memory_across_episodes_reset_at_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory: str
) -> None:
    spy = _Spy(monkeypatch)
    run = search(_cfg(40, memory=memory), run_dir=tmp_path / "r")
    starts = sum(r.result.metrics["episode_step"] == 0 for r in run.trials)
    assert starts > 2  # several episodes per trial
    if memory == "trial":
        assert spy.zero_starts == 2  # once per task (trial), never at an episode boundary
    else:
        assert spy.zero_starts == starts


def test_saved_policy_deploys_frozen_on_new_tasks(tmp_path: Path) -> None:
    search(_cfg(20), run_dir=tmp_path / "train")
    meta = json.loads((tmp_path / "train" / "policy.json").read_text())
    assert meta["obs_dim"] == 250 and meta["n_actions"] == 8
    trained = torch.load(tmp_path / "train" / "policy.pt", weights_only=True)
    new_tasks = [{"name": "textures", "per_class": 10, "data_seed": 5}]
    run = search(_cfg(12, new_tasks, policy=str(tmp_path / "train"), train=False),
                 run_dir=tmp_path / "deploy")
    assert len(run.trials) == 12 and run.series("meta_a2c") == []  # no update
    deployed = torch.load(tmp_path / "deploy" / "policy.pt", weights_only=True)
    assert all(torch.equal(trained[k], deployed[k]) for k in trained)
    with pytest.raises(ConfigError, match="saved policy has"):
        search(_cfg(4, new_tasks, space="multibranch", policy=str(tmp_path / "train"),
                    train=False), run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


class _Kill(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step(self, step: int, total: int, info: dict[str, Any], ctx: SearchContext) -> None:
        if step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("extra", [{}, {"revisit_reward": 0.0}])
def test_resume_after_interruption_loses_and_repeats_no_step(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    cfg = _cfg(26, n_steps=4, **extra)
    search(cfg, run_dir=tmp_path / "ref")
    for at in (7, 15):  # mid-rollout, then across the task boundary (13)
        with pytest.raises(KeyboardInterrupt):
            search(cfg, run_dir=tmp_path / "cut", resume=at > 7, callbacks=[_Kill(at)])
        assert len(_rewards(tmp_path / "cut")) == at
    search(cfg, run_dir=tmp_path / "cut", resume=True)
    assert _rewards(tmp_path / "cut") == _rewards(tmp_path / "ref")


def test_revisit_reward_shapes_the_reward_not_the_recorded_accuracy(tmp_path: Path) -> None:
    run = search(_cfg(40, revisit_reward=0.0), run_dir=tmp_path / "r")
    seen: dict[str | None, set[str]] = {}
    revisits = 0
    for r in run.trials:
        m = r.result.metrics
        assert r.val_acc == m["base_reward"]  # the network's accuracy, as the seed records it
        again = m["nsc_hash"] in seen.setdefault(r.task, set())
        seen[r.task].add(m["nsc_hash"])
        assert m["reward"] == (0.0 if again else m["base_reward"])
        revisits += again
    assert revisits > 0  # 40 steps over two tasks of the toy reward do rebuild networks


def test_bad_input_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a saved policy"):
        search(_cfg(4, train=False), run_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="not found"):
        search(_cfg(4, policy=str(tmp_path / "nope")), run_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="steps_per_task sums to 3"):
        search(_cfg(4, steps_per_task=[1, 2]), run_dir=tmp_path / "c")
    # a meta-training config (min_tasks: 2) whose task list was cut to one entry
    one = [{"name": "textures", "per_class": 10}]
    with pytest.raises(ConfigError, match=r"needs at least 2 tasks .*the run has 1 \(textures\)"):
        search(_cfg(4, one, min_tasks=2), run_dir=tmp_path / "d")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_cli_refuses_a_meta_training_config_with_one_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "one.yaml"
    text = Path("configs/metarl/chain_default.yaml").read_text()
    head, _, rest = text.partition("tasks:\n")
    rest = rest[rest.index("strategy:"):]
    cfg.write_text(head + "tasks:\n  - {name: textures, per_class: 10}\n" + rest)
    assert main(["search", str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "meta-training needs at least 2 tasks" in err[0], err
    assert not (tmp_path / "r").exists()


def test_real_child_training_and_final_retraining(tmp_path: Path) -> None:
    st = {"reward": {"kind": "train", "epochs": 1, "max_train": 40, "dense": 16},
          "final": {"top": 2, "epochs": 1, "dense": 16, "max_filters": 32}}
    run = search(_cfg(6, [{"name": "textures", "per_class": 10}], **st), run_dir=tmp_path / "r")
    ok = [r for r in run.trials if r.ok]
    assert ok and all(0.0 <= r.val_acc <= 1.0 for r in ok)
    final = run.meta("final")["tasks"]["textures"]
    assert 1 <= len(final) <= 2
    assert final[0]["search_reward"] == max(r.val_acc for r in ok)
    assert all(0.0 <= f["test_acc"] <= 1.0 for f in final)
    assert (tmp_path / "r" / "reward_cache.sqlite").is_file()


CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs" / "metarl").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    params = {k: v for k, v in cfg.strategy.items() if k != "name"}
    if params.get("policy"):  # the deployment config names a run that does not exist yet
        with pytest.raises(ConfigError, match="not found"):
            STRATEGIES.get("meta_a2c")(seed=cfg.seed, **params)
    else:
        STRATEGIES.get("meta_a2c")(seed=cfg.seed, **params)
    assert len(CONFIGS) == 4


def test_synchronous_a2c_over_env_copies(tmp_path: Path) -> None:
    # two copies step in lockstep: trials alternate between them, one update per 5 locksteps
    cfg = _cfg(40, n_envs=2)
    run = search(cfg, run_dir=tmp_path / "ref")
    envs = [r.result.metrics["env"] for r in run.trials]
    assert len(envs) == 40 and envs[:4] == [0, 1, 0, 1]
    assert len(run.series("meta_a2c")) == 4  # 10 locksteps per task -> 2 updates per task
    assert [r.task for r in run.trials].count(run.trials[0].task) == 20
    # resumed mid-rollout and across the task boundary: the same trials as without a cut
    for at in (8, 26):
        with pytest.raises(KeyboardInterrupt):
            search(cfg, run_dir=tmp_path / "cut", resume=at > 8, callbacks=[_Kill(at)])
        assert len(_rewards(tmp_path / "cut")) == at
    search(cfg, run_dir=tmp_path / "cut", resume=True)
    assert _rewards(tmp_path / "cut") == _rewards(tmp_path / "ref")
    with pytest.raises(ConfigError, match="must divide"):
        search(_cfg(42, n_envs=4), run_dir=tmp_path / "bad")


def test_env_copies_learn_the_known_best_sequence(tmp_path: Path) -> None:
    one = [{"name": "textures", "per_class": 10}]
    run = search(_cfg(300, one, lr=0.005, n_envs=2), run_dir=tmp_path / "r")
    rs = [r.result.metrics["reward"] for r in run.trials]
    first, last = sum(rs[:20]) / 20, sum(rs[-60:]) / 60
    assert last > 0.6 and last > first + 0.3, (first, last)
