"""The alpha-editing environment (seed 000, §1.4) on synthetic accuracies: gymnasium contract,
graph and observation, probability edits, masks, rewards, revisits, episode ends, presets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasforge.envs.alpha import (
    AlphaEnvCore,
    AlphaEnvSettings,
    SyntheticAccuracy,
    adjacency,
    edge_row,
    edit_probs,
    softmax,
)
from nasforge.exceptions import ConfigError

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from nasforge.envs.alpha_env import ALPHA_ENV_ID, AlphaEnv  # noqa: E402

K, NOPS = 5, 7  # vertices, ops
INC = K  # first increase action


class Scripted:
    """Returns the accuracies it is given, in order; counts resets."""

    def __init__(self, accs: list[float]) -> None:
        self.accs, self.i, self.resets = accs, 0, 0

    def __call__(self, logits: np.ndarray) -> float:
        a = self.accs[min(self.i, len(self.accs) - 1)]
        self.i += 1
        return a

    def reset(self) -> None:
        self.resets += 1


def core(accs: list[float] | None = None, preset: str = "default", **over: object
         ) -> AlphaEnvCore:
    est = Scripted(accs) if accs is not None else SyntheticAccuracy([3] * 9)
    return AlphaEnvCore(np.zeros((9, NOPS)), est, AlphaEnvSettings.of(preset, random_start=False,
                                                                    **over))


@pytest.mark.parametrize("preset", ["default", "reference"])
@pytest.mark.parametrize("increase_only", [True, False])
def test_env_checker_passes(preset: str, increase_only: bool) -> None:
    env = AlphaEnv(np.zeros((9, NOPS)), SyntheticAccuracy([3] * 9), preset,
                   increase_only=increase_only)
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (3 + K + NOPS,)
    assert env.action_space.n == K + NOPS * (1 if increase_only else 2)


def test_gymnasium_make_registered_id() -> None:
    env = gymnasium.make(ALPHA_ENV_ID, logits=np.zeros((9, NOPS)),
                         estimator=SyntheticAccuracy([0] * 9))
    obs, info = env.reset(seed=0)
    assert obs.shape == (15,) and info["action_mask"].shape == (12,)


def test_graph_five_nodes_nine_edges_in_alpha_row_order() -> None:
    a = adjacency(3)
    assert a.shape == (5, 5) and a[0, 1] == a[1, 0] == 0 and a.sum() == 2 * 9
    assert not np.diag(a).any()
    # rows of edge j -> node i+2 as the supernet's alpha matrix: 0-2, 1-2, 0-3, 1-3, 2-3, ...
    assert [edge_row(j, i) for i, j in [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0)]] == list(
        range(6))
    assert edge_row(4, 3) == edge_row(3, 4) == 8
    with pytest.raises(ValueError):
        edge_row(0, 1)
    c = core()
    assert len(c.directed) == 18 and len(set(c.directed)) == 18


def test_observation_layout() -> None:
    c = core()
    logits = np.zeros((9, NOPS))
    logits[3, 2] = 5.0  # edge 1 -> 3 strongest into node 3, then 0 -> 3 (tie order)
    c.set_alphas(logits)
    c.reset()
    c.edge = (3, 1)  # the reverse direction of that edge
    obs = c.observe()
    assert obs[0] == 3 and obs[1] == 1 and obs[2] == 1
    assert list(obs[3:8]) == list(adjacency(3)[1])
    assert np.allclose(obs[8:], softmax(logits[3]))
    c.edge = (2, 3)  # edge 2 -> 3 is the weakest input of node 3 (ties broken by order)
    assert c.observe()[2] == 0


def test_increase_and_decrease_edits() -> None:
    p = np.full(NOPS, 1 / NOPS)
    q = edit_probs(p, 2, 0.1)
    assert math.isclose(q[2], 1 / NOPS + 0.1 + 0.01) and math.isclose(q[0], 1 / NOPS + 0.01)
    assert math.isclose(edit_probs(np.array([0.95, 0.05]), 0, 0.1)[0], 0.99 + 0.01)
    assert math.isclose(edit_probs(np.array([0.05, 0.95]), 0, -0.1)[0], 0.01 + 0.01)
    c = core(increase_only=False)
    c.reset()
    before = c.weights()[edge_row(*c.edge)].copy()
    c.step(INC + 4)
    after = c.weights()[edge_row(*c.edge)]
    assert after[4] > before[4] and np.isclose(after.sum(), 1.0)
    # written back as log p + log 10: softmax gives p renormalised
    assert np.allclose(after, edit_probs(before, 4, 0.1) / edit_probs(before, 4, 0.1).sum())
    c.step(INC + NOPS + 4)  # decrease the same op
    assert c.weights()[edge_row(*c.edge)][4] < after[4]


def test_masks_moves_and_used_alpha_actions() -> None:
    c = core()
    obs = c.reset()
    assert c.edge == (0, 2)
    m = c.action_mask()
    assert list(m[:K]) == list(adjacency(3)[2]) and m[K:].all()
    out = c.step(INC + 1)
    assert out.info["action_mask"][INC + 1] == 0 and out.info["action_mask"][INC].all()
    out = c.step(3)  # move 2 -> 3: the used alpha action is allowed again
    assert out.info["action_mask"][INC + 1] == 1 and c.edge == (2, 3)
    assert out.info["action_mask"][:K].tolist() == adjacency(3)[3].tolist()
    nomask = core(alpha_action_masking=False)
    nomask.reset()
    assert nomask.step(INC + 1).info["action_mask"][INC + 1] == 1
    # an illegal move (the agent ignored the mask) does nothing
    c2 = core()
    c2.reset()
    out = c2.step(2)  # 0 -> 2, then to 2 again: no self-loop
    assert out.info["kind"] == "illegal_move" and c2.edge == (0, 2) and out.reward == 0
    assert obs.shape == (15,)


def test_estimation_reward_relative_to_baseline_and_revisits() -> None:
    c = core([0.5, 0.75, 0.6, 0.9])
    c.reset()
    assert c.baseline == 0.5 and c.estimations == 1
    assert c.step(3).info["kind"] == "move"  # a move without edits: no estimation
    assert c.step(INC).reward == 0.0  # edit on 2 -> 3
    out = c.step(4)  # onto edge 3 -> 4, not estimated yet: estimation
    assert out.info["kind"] == "estimate" and out.info["accuracy"] == 0.75
    assert math.isclose(out.reward, 0.2 + (0.75 - 0.5) * 0.8 / 0.5)
    assert c.baseline == 0.75
    c.step(INC + 1)
    out = c.step(3)  # back onto 4 -> 3: the same undirected edge, a revisit
    assert out.info["kind"] == "revisit" and out.reward == 0.0 and c.estimations == 2
    c.step(INC + 1)
    out = c.step(0)  # 3 -> 0: new edge, accuracy 0.6 < b = 0.75: reward 0, b follows it
    assert out.info["accuracy"] == 0.6 and out.reward == 0.0 and c.baseline == 0.6
    assert c.best.accuracy == 0.75


def test_estimation_bonus_reference_only_q8() -> None:
    assert AlphaEnvSettings.of("reference").estimation_bonus == 0.2
    assert AlphaEnvSettings.of("default").estimation_bonus == 0.0
    rewards = {}
    for preset in ("default", "reference"):
        c = core([0.5, 0.4, 0.45], preset)
        c.reset()
        c.step(INC)
        r1 = c.step(3).reward  # first rewarded estimation, below b
        c.step(INC)
        r2 = c.step(4).reward  # second, above the new b = 0.4
        rewards[preset] = (r1, r2)
    assert rewards["default"][0] == 0.0
    assert math.isclose(rewards["reference"][0], 0.2)
    assert math.isclose(rewards["reference"][1] - rewards["default"][1], 0.4)


def _walk(c: AlphaEnvCore) -> tuple[int, bool, bool]:
    """Edit, then move to a fresh neighbour, until the episode ends; (steps, term, trunc)."""
    while True:
        out = c.step(INC)
        if out.terminated or out.truncated:
            return c.steps, out.terminated, out.truncated
        u, v = c.edge
        for k in range(K):
            if c.A[v, k] and edge_row(v, k) not in c.estimated:
                break
        out = c.step(k)
        if out.terminated or out.truncated:
            return c.steps, out.terminated, out.truncated


def test_episode_ends_after_five_estimations_or_max_steps() -> None:
    est = SyntheticAccuracy([3] * 9)
    c = AlphaEnvCore(np.zeros((9, NOPS)), est, AlphaEnvSettings.of(random_start=False))
    c.reset()
    steps, term, trunc = _walk(c)
    assert term and not trunc and c.estimations == 5 and est.calls == 5 and steps == 8
    with pytest.raises(RuntimeError):
        c.step(0)
    short = AlphaEnvCore(np.zeros((9, NOPS)), est, AlphaEnvSettings.of(max_steps=3,
                                                                    random_start=False))
    short.reset()
    assert _walk(short) == (3, False, True)
    # only alpha edits, never a move: truncated at 200 steps
    c.reset()
    outs = [c.step(INC + (i % NOPS)) for i in range(200)]
    assert outs[-1].truncated and not any(o.truncated for o in outs[:-1])


def test_each_episode_restarts_from_the_given_alphas_on_a_random_edge() -> None:
    est = Scripted([0.3])
    logits = np.random.default_rng(0).normal(size=(9, NOPS))
    c = AlphaEnvCore(logits, est, AlphaEnvSettings.of(), seed=0)
    starts = set()
    for _ in range(30):
        c.reset()
        starts.add(c.edge)
        c.step(INC)
        assert not np.allclose(c.logits, logits)
    assert len(starts) > 5 and est.resets == 30
    c.reset()
    assert np.allclose(c.logits, logits)
    a = AlphaEnvCore(logits, est, seed=3)
    b = AlphaEnvCore(logits, est, seed=3)
    assert [a.reset() for _ in range(3)][-1].tolist() == [b.reset() for _ in range(3)][-1].tolist()


def test_estimator_alpha_step_and_best() -> None:
    def est(logits: np.ndarray) -> tuple[float, np.ndarray]:
        new = logits.copy()
        new[:, 0] += 1.0  # an "alpha step"
        return float(softmax(new)[:, 0].mean()), new

    c = AlphaEnvCore(np.zeros((9, NOPS)), est, AlphaEnvSettings.of(random_start=False))
    c.reset()
    assert np.allclose(c.logits[:, 0], 1.0) and c.best.accuracy == c.baseline
    c.step(INC)
    c.step(3)
    assert c.best.accuracy > c.baseline - 1e-12 and np.allclose(c.best.logits, c.logits)


def test_bad_settings_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="allowed: reference, default"):
        AlphaEnvSettings.of("paper")
    with pytest.raises(ConfigError, match="allowed: "):
        AlphaEnvSettings.of(bonus=1)
    with pytest.raises(ConfigError, match=r"shape \(9, ops\)"):
        AlphaEnvCore(np.zeros((6, NOPS)), SyntheticAccuracy([0] * 9))
