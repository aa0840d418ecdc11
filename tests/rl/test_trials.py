"""Recurrent PPO trials (RL²): learning a task that needs memory across episodes, the E-RL²
value zeroing, the agent state round trip, and the random policy's masking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nasforge.exceptions import ConfigError, RunDirError
from nasforge.rl.distributions import MaskedCategorical
from nasforge.rl.ppo import erl2_zero_values
from nasforge.rl.trials import RandomMaskedPolicy, RecurrentPPOAgent, RecurrentPPOSettings
from nasforge.seeding import make_rng

Obs = tuple[np.ndarray, dict[str, Any]]


class TwoArmTrial:
    """One good arm per trial (drawn from its seed). An episode is a wait step, where only
    action 0 is allowed, then a choice between arms 1 and 2 (reward 1 for the good one).

    At the choice the observation, previous action (0) and previous reward (0) are always the
    same, so a memoryless (even an RL²-input reactive) policy scores 0.5 in expectation; only a
    state carried across episodes can exploit what the first choice revealed."""

    def __init__(self, seed: int) -> None:
        self.good = 1 + int(make_rng(seed, "arm").integers(2))
        self.t = 0

    def reset(self, *, seed: int | None = None) -> Obs:
        self.t = 0
        return np.array([1.0, 0.0], np.float32), {"action_mask": np.array([1, 0, 0], np.int8)}

    def step(self, a: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.t == 0:
            self.t = 1
            return (np.array([0.0, 1.0], np.float32), 0.0, False, False,
                    {"action_mask": np.array([0, 1, 1], np.int8)})
        r = float(a == self.good)
        return np.zeros(2, np.float32), r, True, False, {"action_mask": np.ones(3, np.int8)}


SETTINGS = RecurrentPPOSettings(hidden=16, encoder=16, lr=1e-2, updates=1, episodes_per_update=8,
                                test_episodes=8, minibatches=1, gamma=0.9, lam=0.95)


def later_episodes_score(agent: RecurrentPPOAgent, n: int = 20, base: int = 10_000) -> float:
    """Mean reward of episodes 2..8 of ``n`` test trials."""
    return float(np.mean([
        np.mean(agent.run_trial(TwoArmTrial(base + i), seed=base + i, train=False).returns[1:])
        for i in range(n)
    ]))


def memoryless_score(agent: RecurrentPPOAgent, n: int = 20, base: int = 10_000) -> float:
    """The same network with its recurrent state wiped before every step."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        env, rs = TwoArmTrial(base + i), []
        prev_a, prev_r = torch.full((1,), -1), torch.zeros(1)
        for _ in range(8):
            obs, info = env.reset()
            while True:
                with torch.no_grad():
                    lg, _, _ = agent.policy.step(torch.as_tensor(obs)[None], prev_a, prev_r,
                                                 agent.policy.initial(1))
                a = MaskedCategorical(lg, torch.as_tensor(info["action_mask"]).bool()[None]
                                      ).sample(g)
                obs, r, term, _, info = env.step(int(a[0]))
                prev_a, prev_r = a, torch.tensor([r])
                if term:
                    rs.append(r)
                    break
        out.append(np.mean(rs[1:]))
    return float(np.mean(out))


def test_recurrent_ppo_learns_a_task_that_needs_memory_across_episodes() -> None:
    agent = RecurrentPPOAgent(2, 3, SETTINGS, seed=0, device="cpu")
    before = later_episodes_score(agent)
    for i in range(100):
        agent.run_trial(TwoArmTrial(i), seed=i, train=True)
    after = later_episodes_score(agent)
    wiped = memoryless_score(agent)
    assert before < 0.65 and wiped < 0.65, (before, wiped)
    assert after > 0.9, after
    assert agent.updates == 100 and agent.trials == 100 + 2 * 20


def test_erl2_zeroes_the_stored_values_of_a_fraction_of_the_sequences() -> None:
    g = torch.Generator().manual_seed(0)
    old_val = torch.arange(1.0, 11.0)[:, None].expand(10, 4).clone()  # 10 sequences, length 4
    adv = torch.full((10, 4), 0.5)
    ret = old_val + adv
    ov, r = erl2_zero_values(old_val, ret, 0.3, g)
    zeroed = (ov == 0).all(1)
    assert int(zeroed.sum()) == 3 and not (ov[~zeroed] == 0).any()
    assert torch.equal(r[zeroed], adv[zeroed]) and torch.equal(r[~zeroed], ret[~zeroed])
    assert torch.equal(old_val, torch.arange(1.0, 11.0)[:, None].expand(10, 4))  # not in place
    same = erl2_zero_values(old_val, ret, 0.05, g)  # floor(0.5) = 0 sequences
    assert same[0] is old_val and same[1] is ret
    # the option reaches the update: an E-RL² agent trains (and differs from a plain one)
    agents = [RecurrentPPOAgent(2, 3, RecurrentPPOSettings(
        hidden=8, encoder=8, updates=1, episodes_per_update=16, seq_len=4, minibatches=1,
        erl2=e), seed=0,
        device="cpu") for e in (False, True)]
    assert agents[1].s.ppo(10).erl2_frac == 0.3 and agents[0].s.ppo(10).erl2_frac == 0.0
    for ag in agents:
        ag.run_trial(TwoArmTrial(0), seed=0, train=True)
    w0, w1 = (dict(a.policy.named_parameters())["v.weight"] for a in agents)
    assert not torch.allclose(w0, w1)


def test_agent_state_round_trip_gives_identical_actions(tmp_path: Path) -> None:
    s = RecurrentPPOSettings(hidden=8, encoder=8, updates=1, episodes_per_update=4)
    agent = RecurrentPPOAgent(2, 3, s, seed=1, device="cpu")
    agent.run_trial(TwoArmTrial(0), seed=0, train=True)
    path = tmp_path / "agent.pt"
    agent.save(path)
    loaded = RecurrentPPOAgent.load(path, device="cpu")
    assert loaded.updates == agent.updates and loaded.s == agent.s
    for a in (agent, loaded):  # the same next training trial, from the same state
        a.run_trial(TwoArmTrial(5), seed=5, train=True)
    acts: list[list[int]] = [[], []]
    for a, log in zip((agent, loaded), acts):
        class Rec(TwoArmTrial):
            def step(self, a: int, log: list[int] = log) -> Any:
                log.append(a)
                return super().step(a)

        a.run_trial(Rec(7), seed=7, train=False)
    assert acts[0] == acts[1] and len(acts[0]) == 8
    for k, v in agent.policy.state_dict().items():
        assert torch.equal(v, loaded.policy.state_dict()[k]), k
    # weights-only: a file with a pickled object is refused, not run
    torch.save({"policy": object()}, tmp_path / "bad.pt")
    with pytest.raises(RunDirError):
        RecurrentPPOAgent.load(tmp_path / "bad.pt")
    with pytest.raises(RunDirError, match="obs_dim"):
        RecurrentPPOAgent(3, 3, s, device="cpu").load_state_dict(agent.state_dict())


def test_random_policy_only_takes_allowed_actions() -> None:
    seen: list[int] = []

    class Spy(TwoArmTrial):
        def step(self, a: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
            seen.append(a)
            assert (a == 0) == (self.t == 0)
            return super().step(a)

    out = RandomMaskedPolicy(3).run_trial(Spy(0), seed=0, train=True)
    assert len(out.returns) == 12 and out.lengths == [2] * 12 and set(seen) == {0, 1, 2}


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="allowed: gru, lstm"):
        RecurrentPPOSettings(cell="rnn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seq_len"):
        RecurrentPPOSettings(seq_len=0)
