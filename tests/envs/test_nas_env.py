"""The NSC environment: gymnasium contract, build rules, dynamics, presets and the reward cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasforge.data.base import Split, Task
from nasforge.envs.core import EnvSettings, NasEnvCore
from nasforge.envs.nsc import (
    ADD,
    AVGPOOL,
    CONCAT,
    CONV,
    MAXPOOL,
    NSCNet,
    nsc_hash,
    observation,
    shapes,
    unused,
)
from nasforge.envs.rewards import RewardCache, TrainReward
from nasforge.exceptions import ConfigError, InvalidArchitecture

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from nasforge.envs.nas_env import ENV_ID, NasEnv  # noqa: E402


def image_task(hw: int = 8, n: int = 60, classes: int = 3, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.rand(n, 1, hw, hw, generator=g) * 0.1 + y.view(-1, 1, 1, 1) / classes
    s = Split(x, y)
    return Task(f"img{hw}", s, s, s, (1, hw, hw), classes, {"name": f"img{hw}", "seed": seed})


class Counting:
    """A synthetic reward: more conv layers score higher; counts its calls."""

    protocol = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rows: tuple[tuple[int, ...], ...], task: Task, seed: int) -> float:
        self.calls += 1
        return min(1.0, 0.1 + 0.1 * sum(r[1] == CONV for r in rows))


@pytest.mark.parametrize("space", ["chain", "multibranch"])
@pytest.mark.parametrize("preset", ["default", "reference"])
def test_env_checker_passes(space: str, preset: str) -> None:
    env = NasEnv(image_task(), space, preset, reward_fn=Counting())
    check_env(env, skip_render_check=True)
    assert env.action_space.n == (8 if space == "chain" else 14)
    assert env.observation_space.shape == (10, 25 if space == "chain" else 36)


def test_gymnasium_make_registered_id() -> None:
    env = gymnasium.make(ENV_ID, task=image_task(), space="multibranch", reward_fn=Counting())
    obs, info = env.reset(seed=0)
    assert obs.shape == (10, 36) and info["action_mask"].shape == (14,)


def test_observation_layout_empty_rows_first() -> None:
    rows = [(1, CONV, 3, 0, 0), (2, MAXPOOL, 2, 1, 0)]
    obs = observation(rows, "chain")
    assert obs.shape == (10, 25)
    assert not obs[:8].any()
    assert obs[8, CONV] == 1 and obs[8, 8 + 3] == 1 and obs[8, 14 + 0] == 1
    assert obs[9, MAXPOOL] == 1 and obs[9, 8 + 2] == 1 and obs[9, 14 + 1] == 1
    mb = observation([(1, ADD, 0, 0, 0), (2, CONCAT, 0, 1, 0)], "multibranch")
    assert mb[9, 25 + 0] == 1 and mb[9, 14 + 1] == 1


def test_build_add_zero_pads_space_and_channels() -> None:
    rows = [(1, MAXPOOL, 2, 0, 0), (2, CONV, 1, 0, 0), (3, ADD, 0, 1, 2)]
    shp = shapes(rows, (1, 8, 8), "same")
    assert shp[1] == (1, 4, 4) and shp[3] == (32, 8, 8)
    net = NSCNet(rows, (1, 8, 8), 3).eval()
    x = torch.rand(2, 1, 8, 8)
    z = net.features(x)
    pooled = torch.nn.functional.max_pool2d(x, 2)
    conv = net.layers["2"](x)
    want = conv.clone()
    want[:, :1, :4, :4] += pooled  # the 1-channel 4x4 map, zero-padded to 32x8x8
    assert torch.allclose(z, want)


def test_build_concat_and_unused_rows_concatenated() -> None:
    # rows 2 and 3 both read row 1; neither is read later, so both form the output
    rows = [(1, CONV, 3, 0, 0), (2, AVGPOOL, 2, 1, 0), (3, CONV, 1, 1, 0)]
    assert unused(rows) == [2, 3]
    net = NSCNet(rows, (1, 8, 8), 3).eval()
    x = torch.rand(2, 1, 8, 8)
    z = net.features(x)
    assert z.shape == (2, 64, 8, 8)
    r1 = net.layers["1"](x)
    assert torch.allclose(z[:, :32, :4, :4], torch.nn.functional.avg_pool2d(r1, 2))
    assert not z[:, :32, 4:, :].any() and not z[:, :32, :, 4:].any()
    cat = [(1, MAXPOOL, 2, 0, 0), (2, CONCAT, 0, 0, 1)]
    z2 = NSCNet(cat, (1, 8, 8), 3).eval().features(x)
    assert z2.shape == (2, 2, 8, 8)
    assert torch.equal(z2[:, 0], x[:, 0])
    assert torch.equal(z2[:, 1, :4, :4], torch.nn.functional.max_pool2d(x, 2)[:, 0])
    assert NSCNet(cat, (1, 8, 8), 3)(x).shape == (2, 3)


def test_valid_padding_invalid_net_ends_episode_with_zero() -> None:
    with pytest.raises(InvalidArchitecture, match="below 1 pixel"):
        shapes([(1, CONV, 5, 0, 0), (2, CONV, 5, 1, 0)], (1, 8, 8), "valid")
    env = NasEnvCore(image_task(), EnvSettings.of("chain", "reference"), Counting())
    env.reset()
    assert env.step(2).reward > 0  # conv5: 8 -> 4
    out = env.step(2)  # conv5: 4 -> 0
    assert out.reward == 0.0 and out.terminated and not out.info["valid"]


def test_default_mask_blocks_pooling_below_one_pixel() -> None:
    env = NasEnvCore(image_task(), EnvSettings.of("chain", "default"), Counting())
    env.reset()
    assert list(env.action_mask()) == [1] * 8
    env.step(4)  # maxpool3: 8 -> 2
    assert list(env.action_mask()) == [1, 1, 1, 1, 0, 1, 0, 1]  # window 3 on 2x2: 0 pixels
    out = env.step(4)  # an agent that ignores the mask: reward 0, episode over
    assert out.reward == 0.0 and out.terminated
    # same padding: convolutions never shrink, so deep chains stay valid
    env.reset()
    for _ in range(10):
        out = env.step(2)
    assert out.terminated and out.reward > 0 and len(env.rows) == 10


def test_pointer_moves_sigma_and_out_of_bounds() -> None:
    fn = Counting()
    env = NasEnvCore(image_task(), EnvSettings.of("multibranch", "default", sigma=0.1), fn)
    env.reset()
    assert list(env.action_mask()[10:]) == [0, 0, 0, 0]  # p1, p2 at the input: no moves
    r_conv = env.step(1).reward  # conv3 on the input
    out = env.step(10)  # p1 up: points at the input now
    assert out.reward == pytest.approx(0.1 * r_conv) and not out.terminated
    out = env.step(8)  # add(row current - p1 = input, row current - p2 = row 1)
    assert env.rows[-1] == (2, ADD, 0, 0, 1)
    bad = NasEnvCore(image_task(), EnvSettings.of("multibranch", "reference"), fn)
    bad.reset()
    out = bad.step(11)  # p1 down from 0: out of bounds
    assert out.reward == 0.0 and out.terminated


def test_episode_ends_at_max_steps() -> None:
    env = NasEnvCore(image_task(), EnvSettings.of("multibranch", "default"), Counting())
    env.reset()
    env.step(0)
    outs = [env.step(12 if k % 2 == 0 else 13) for k in range(19)]  # p2 up / down
    assert outs[-1].truncated and not outs[-1].terminated and env.steps == 20
    assert not any(o.truncated for o in outs[:-1])


def test_revisit_reward_pays_only_networks_new_to_the_trial() -> None:
    fn = Counting()
    env = NasEnvCore(image_task(), EnvSettings.of("chain", "default", revisit_reward=0.0), fn)
    env.reset()
    first = [env.step(a) for a in (0, 1, 7)]  # conv1, conv3, terminal (same network again)
    assert [o.reward for o in first[:2]] == [o.info["base_reward"] for o in first[:2]]
    assert first[2].reward == 0.0 and first[2].info["revisit"]
    assert first[2].info["base_reward"] == pytest.approx(first[1].reward)
    env.reset()  # a new episode of the same trial: the prefix conv1 was seen
    again = env.step(0)
    assert again.reward == 0.0 and again.info["base_reward"] == pytest.approx(first[0].reward)
    new = env.step(2)  # conv1, conv5: new
    assert new.reward == new.info["base_reward"] > 0 and not new.info["revisit"]
    resumed = NasEnvCore(image_task(), env.s, fn)
    resumed.load_state_dict(env.state_dict())  # a resumed trial remembers what it saw
    assert resumed.step(7).reward == 0.0
    plain = NasEnvCore(image_task(), EnvSettings.of("chain", "default"), fn)
    plain.reset()
    outs = [plain.step(a) for a in (0, 1, 7)]
    assert outs[2].reward == outs[1].reward > 0 and "seen" not in plain.state_dict()


def test_reward_cache_persists_and_keys_on_task_content(tmp_path: Path) -> None:
    path = tmp_path / "rewards.sqlite"
    fn = Counting()
    task = image_task()
    env = NasEnvCore(task, EnvSettings.of("chain", "default"), fn, cache=str(path))
    env.reset()
    r = [env.step(a).reward for a in (0, 1, 7)]
    assert fn.calls == 2  # terminal re-uses the two-layer network's reward
    env2 = NasEnvCore(task, EnvSettings.of("chain", "default"), fn, cache=str(path))
    env2.reset()
    assert [env2.step(a).reward for a in (0, 1, 7)] == r
    assert fn.calls == 2 and env2.cache.hits == 3
    other = NasEnvCore(image_task(seed=1), EnvSettings.of("chain", "default"), fn,
                       cache=str(path))
    other.reset()
    other.step(0)
    assert fn.calls == 3  # same NSC, other data: trained again
    assert nsc_hash([(2, 2, 2, 1, 0), (1, 1, 3, 0, 0)]) == nsc_hash(
        [(1, 1, 3, 0, 0), (2, 2, 2, 1, 0)])
    c = RewardCache(path)
    assert len(c) == 3


def test_train_reward_learns_above_chance() -> None:
    task = image_task(n=90)
    acc = TrainReward(epochs=3, batch_size=32, dense=64)(((1, CONV, 3, 0, 0),), task, 0)
    assert 0.6 < acc <= 1.0


def test_non_image_task_is_a_config_error() -> None:
    s = Split(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    t = Task("flat", s, s, s, (2,), 2, {"name": "flat"})
    with pytest.raises(ConfigError, match="image task"):
        NasEnvCore(t, EnvSettings.of("chain", "default"), Counting())
    with pytest.raises(ConfigError, match="allowed: reference, default"):
        EnvSettings.of("chain", "fast")


def test_runs_under_stable_baselines3_dqn() -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    env = NasEnv(image_task(), "chain", "default", reward_fn=Counting())
    model = sb3.DQN("MlpPolicy", env, learning_starts=20, buffer_size=200, batch_size=8,
                    train_freq=4, seed=0, device="cpu")
    model.learn(total_timesteps=60)
    a, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert 0 <= int(a) < 8
    assert env.core.cache.hits > 0  # 60 steps revisit networks: answered from the cache
