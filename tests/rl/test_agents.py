"""The PPO and A2C updates learn: a bandit, a task that needs memory, a fixed best sequence."""

from __future__ import annotations

import torch
from torch import nn

from nasforge.rl import (
    A2CSettings,
    MaskedCategorical,
    PPOSettings,
    RecurrentActorCritic,
    a2c_update,
    n_step_returns,
    ppo_update,
    sequence_chunks,
)
from nasforge.rl.ppo import PPOBatch


def test_ppo_learns_the_best_arm_of_a_bandit() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    logits = nn.Parameter(torch.zeros(3))
    value = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([logits, value], lr=0.05)
    means = torch.tensor([0.1, 0.9, 0.4])
    s = PPOSettings(epochs=4, minibatch=32, ent_coef=0.0)
    for _ in range(30):
        with torch.no_grad():
            dist = MaskedCategorical(logits.expand(64, 3))
            a = dist.sample(g)
            old_logp = dist.log_prob(a)
        r = means[a] + 0.1 * torch.randn(64, generator=g)
        adv = r - value.detach()

        def evaluate(
            idx: torch.Tensor, a: torch.Tensor = a
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            d = MaskedCategorical(logits.expand(len(idx), 3))
            return d.log_prob(a[idx]), d.entropy(), value.expand(len(idx))

        ppo_update([logits, value], opt, evaluate, PPOBatch(old_logp, adv, r), s, g)
    assert torch.softmax(logits.detach(), -1)[1] > 0.9


def _memory_rollout(
    pol: RecurrentActorCritic, n: int, g: torch.Generator
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Two-step episodes: a cue (+-1) is shown at t=0, a blank at t=1; the action at t=1 is
    rewarded 1 if it names the cue. Only memory solves it (the blank carries nothing)."""
    cue = torch.randint(0, 2, (n,), generator=g)
    obs = torch.zeros(2, n, 1)
    obs[0, :, 0] = cue.float() * 2 - 1
    h = pol.initial(n)
    prev_a = torch.full((n,), -1)
    prev_r = torch.zeros(n)
    acts, logps, vals, rews = [], [], [], []
    with torch.no_grad():
        for t in range(2):
            lg, v, h = pol.step(obs[t], prev_a, prev_r, h)
            dist = MaskedCategorical(lg)
            a = dist.sample(g)
            r = (a == cue).float() if t == 1 else torch.zeros(n)
            acts.append(a)
            logps.append(dist.log_prob(a))
            vals.append(v)
            rews.append(r)
            prev_a, prev_r = a, r
    roll = {
        "obs": obs, "act": torch.stack(acts), "logp": torch.stack(logps),
        "val": torch.stack(vals), "rew": torch.stack(rews),
    }
    return roll, rews[1].mean()


def test_recurrent_ppo_learns_a_task_that_needs_memory() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    pol = RecurrentActorCritic(1, 2, hidden=16, cell="gru", encoder=16)
    opt = torch.optim.Adam(pol.parameters(), lr=3e-3, eps=1e-5)
    s = PPOSettings(epochs=4, minibatch=16, clip_value=True, ent_coef=0.0)
    n = 64
    first = last = 0.0
    for it in range(60):
        roll, acc = _memory_rollout(pol, n, g)
        first = float(acc) if it == 0 else first
        last = float(acc)
        done = torch.zeros(2, n)
        done[1] = 1.0
        ret = n_step_returns(roll["rew"], done, torch.zeros(n), 1.0)
        adv = ret - roll["val"]
        prev_a = torch.cat([torch.full((1, n), -1), roll["act"][:1]])
        prev_r = torch.cat([torch.zeros(1, n), roll["rew"][:1]])
        seq = {k: sequence_chunks(v, 2) for k, v in {**roll, "adv": adv, "ret": ret,
                                                      "pa": prev_a, "pr": prev_r}.items()}

        def evaluate(
            idx: torch.Tensor, seq: dict[str, torch.Tensor] = seq
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            lg, v = pol.unroll(seq["obs"][idx], seq["pa"][idx], seq["pr"][idx],
                               pol.initial(len(idx)))
            d = MaskedCategorical(lg)
            return d.log_prob(seq["act"][idx]), d.entropy(), v

        batch = PPOBatch(seq["logp"], seq["adv"], seq["ret"], old_val=seq["val"])
        ppo_update(pol, opt, evaluate, batch, s, g)
    assert first < 0.7 and last > 0.9, (first, last)


def test_a2c_lstm_learns_a_fixed_best_sequence() -> None:
    """Three decisions of four options; reward 1 per step that matches (2, 0, 3)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    best = torch.tensor([2, 0, 3])
    pol = RecurrentActorCritic(1, 4, hidden=32, cell="lstm", extra_dim=1)
    opt = torch.optim.RMSprop(pol.parameters(), lr=3e-3, alpha=0.99, eps=1e-5)
    s = A2CSettings(ent_coef=0.01)
    n = 32
    score = 0.0
    for _ in range(150):
        h = pol.initial(n)
        prev_a, prev_r = torch.full((n,), -1), torch.zeros(n)
        logps, ents, vals, rews = [], [], [], []
        for t in range(3):
            lg, v, h = pol.step(torch.zeros(n, 1), prev_a, prev_r, h,
                                extra=torch.full((n, 1), t / 3))
            dist = MaskedCategorical(lg)
            a = dist.sample(g)
            r = (a == best[t]).float()
            logps.append(dist.log_prob(a))
            ents.append(dist.entropy())
            vals.append(v)
            rews.append(r)
            prev_a, prev_r = a, r
        rew = torch.stack(rews)
        done = torch.zeros(3, n)
        done[2] = 1.0
        ret = n_step_returns(rew, done, torch.zeros(n), 0.9)
        a2c_update(pol, opt, torch.stack(logps), torch.stack(ents), torch.stack(vals), ret, s)
        score = float(rew.sum(0).mean())
    assert score > 2.7
