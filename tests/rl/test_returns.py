"""GAE and n-step returns against hand computation."""

from __future__ import annotations

import pytest
import torch

from nasforge.rl import gae, n_step_returns


def test_gae_matches_the_recursion_by_hand() -> None:
    rew = torch.tensor([[1.0], [0.0], [2.0]])
    val = torch.tensor([[0.5], [0.2], [0.1]])
    done = torch.tensor([[0.0], [1.0], [0.0]])
    last_v = torch.tensor([0.3])
    g, lam = 0.9, 0.8
    # t=2: delta = 2 + .9*.3 - .1; t=1 ends the episode: delta = 0 - .2; t=0 bootstraps t=1
    d2 = 2 + g * 0.3 - 0.1
    d1 = 0.0 - 0.2
    d0 = 1 + g * 0.2 - 0.5
    want = [d0 + g * lam * d1, d1, d2]
    got = gae(rew, val, done, last_v, g, lam).squeeze(1).tolist()
    assert got == pytest.approx(want)


def test_gae_with_lambda_one_is_the_discounted_return_minus_value() -> None:
    torch.manual_seed(0)
    rew, val = torch.rand(5, 2), torch.rand(5, 2)
    done, last_v = torch.zeros(5, 2), torch.rand(2)
    adv = gae(rew, val, done, last_v, 0.9, 1.0)
    torch.testing.assert_close(adv + val, n_step_returns(rew, done, last_v, 0.9))


def test_n_step_returns_cut_at_episode_ends() -> None:
    rew = torch.tensor([[1.0], [1.0], [1.0]])
    done = torch.tensor([[0.0], [1.0], [0.0]])
    got = n_step_returns(rew, done, torch.tensor([10.0]), 0.5).squeeze(1).tolist()
    assert got == pytest.approx([1 + 0.5 * 1, 1.0, 1 + 0.5 * 10])
