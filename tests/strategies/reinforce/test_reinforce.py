"""The REINFORCE controller: maths by hand, learning on a toy reward, determinism, resume, API."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict

import nasforge
from nasforge.evaluators.base import EVALUATORS, Evaluator, Result
from nasforge.exceptions import ConfigError, NasforgeError, UnknownName
from nasforge.spaces import SPACES, SequenceSpace, StateSpace, make_space
from nasforge.spaces.base import Architecture
from nasforge.strategies.base import Callback, SearchContext
from nasforge.strategies.reinforce._math import (
    ema_advantages,
    mixture_logprob,
    reinforce_loss,
    shaping_penalty,
)
from nasforge.strategies.reinforce.controller import (
    PRESETS,
    Controller,
    Rollout,
    resolve_config,
)
from nasforge.testing.toys import toy_space

TOY = "reinforce_toy_target"
TARGET = [3, 1, 0, 2, 2, 3, 0, 1, 3]


class _ToyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: list[int]


class TargetEvaluator(Evaluator):
    """Deterministic toy reward: the fraction of tokens equal to a hidden target."""

    name: ClassVar[str] = TOY
    Params: ClassVar[type[BaseModel]] = _ToyParams
    needs_task = False

    def __init__(self, *, target: list[int], space: Any = None, task: Any = None,
                 device: Any = None) -> None:
        self.target = list(target)

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        hits = sum(1 for a, b in zip(arch.tokens, self.target) if a == b)
        return Result("complete", val_acc=hits / len(self.target))


if TOY not in EVALUATORS:
    EVALUATORS.add(TOY, TargetEvaluator)

TOY_SPACE = {
    "name": "state",
    "states": [{"name": n, "values": [0, 1, 2, 3]} for n in ("a", "b", "c")],
    "num_layers": 3,
    "buildable": False,
}  # 4^9 = 262,144 architectures


def toy_config(strategy: dict[str, Any], budget: int, seed: int = 0) -> dict[str, Any]:
    return {
        "name": "toy", "seed": seed, "budget": budget, "device": "cpu", "space": TOY_SPACE,
        "strategy": strategy, "evaluator": {"name": TOY, "target": TARGET},
        "final": {"seeds": 0},
    }


def rows(run: nasforge.Run) -> list[tuple[Any, ...]]:
    return [(r.number, r.arch_id, r.seed, r.val_acc, r.cached_from) for r in run.trials]


# ----------------------------------------------------------------------------- maths
def test_shaping_penalty_follows_seed_002_rules() -> None:
    kw = {"early_stop": -1.0, "repeat": -0.1}
    assert shaping_penalty(["eos"], **kw) == -1.0  # stop at length 1
    assert shaping_penalty(["width", "eos"], **kw) == -1.0  # stop at length 2
    assert shaping_penalty(["width", "act", "eos"], **kw) == 0.0
    assert shaping_penalty(["width", "width", "act", "act", "eos"], **kw) == pytest.approx(-0.2)
    # if/elif: an early EOS after a width is only the early-stop penalty
    assert shaping_penalty(["act", "act", "width", "width", "width", "act"], **kw) == (
        pytest.approx(-0.3)
    )


def test_ema_baseline_by_hand() -> None:
    adv, b = ema_advantages([0.5, 0.7], None, beta=0.8, init="first")
    assert adv == pytest.approx([-0.1, 0.1]) and b == pytest.approx(0.6)
    adv, b = ema_advantages([0.9], None, beta=0.8, init="zero")  # seed 003: first r = acc - 0
    assert adv == pytest.approx([0.9]) and b == pytest.approx(0.9)
    adv, b = ema_advantages([1.0, 0.0], 0.5, beta=0.8, init="first")
    assert adv == pytest.approx([0.5, -0.5])
    assert b == pytest.approx(0.8 * (0.8 * 0.5 + 0.2 * 1.0) + 0.2 * 0.0)


def test_mixture_logprob_by_hand() -> None:
    lp = torch.tensor(math.log(0.3))
    got = mixture_logprob(lp, math.log(0.01), 0.8)
    assert float(got) == pytest.approx(math.log(0.2 * 0.3 + 0.8 * 0.01))
    assert mixture_logprob(lp, -5.0, 0.0) is lp


def test_reinforce_loss_by_hand() -> None:
    loss = reinforce_loss(
        torch.tensor([-1.0, -2.0]), torch.tensor([0.5, 0.25]), torch.tensor([2, 4]),
        torch.tensor([0.3, -0.1]), torch.tensor([0.01, 0.0099]), normalize=True,
    )
    t0 = (-(-1.0 * 0.3) - 0.01 * 0.5) / 2
    t1 = (-(-2.0 * -0.1) - 0.0099 * 0.25) / 4
    assert float(loss) == pytest.approx((t0 + t1) / 2)


def _hand_logits(
    c: Controller, inputs: list[torch.Tensor], steps: list[int]
) -> list[torch.Tensor]:
    """Run the controller's modules by hand (GRU equations written out)."""
    rnn = c.net.rnn
    h = torch.zeros(1, c.config.hidden_size)
    out = []
    for x, t in zip(inputs, steps):
        gi = x @ rnn.weight_ih.T + rnn.bias_ih
        gh = h @ rnn.weight_hh.T + rnn.bias_hh
        r = torch.sigmoid(gi[:, :64] + gh[:, :64])
        z = torch.sigmoid(gi[:, 64:128] + gh[:, 64:128])
        n = torch.tanh(gi[:, 128:] + r * gh[:, 128:])
        h = (1 - z) * n + z * h
        head = c.net.heads[c.layout.head[t]]
        assert isinstance(head, torch.nn.Linear)
        out.append((h @ head.weight.T + head.bias)[0])
    return out


def test_reference_002_loss_equals_hand_computation() -> None:
    space = SequenceSpace(grammar="free")
    c = Controller(space, preset="reference_002", seed=3)
    taken = (space.vocab.index(8), space.vocab.index(16), space.eos)  # [8, 16] then EOS
    roll = Rollout(space.decode(taken), taken, taken, False, 0.0, None)
    acc = 0.8
    zero = torch.zeros(1, c.config.embedding_dim)  # Q-M1: zero input at every step
    with torch.no_grad():
        logits = _hand_logits(c, [zero] * 3, [0, 1, 2])
    reward = acc - 0.1  # width after width: -0.1; EOS at length 3 is not an early stop
    beta = 0.01
    total = 0.0
    for t, a in enumerate(taken):
        p = torch.softmax(logits[t], 0)
        total += -math.log(float(p[a])) * reward - beta * float(-(p * p.log()).sum())
    stats = c.learn([roll], [acc])
    assert stats["rewards"] == [pytest.approx(reward)]
    assert stats["loss"] == pytest.approx(total / 3, rel=1e-5)


def test_default_loss_with_baseline_and_feedback_equals_hand_computation() -> None:
    space = StateSpace(num_layers=1, buildable=False)  # never built: a controller test
    space.add_state("k", [1, 3])
    space.add_state("f", [8, 16, 32])
    c = Controller(space, preset="default", seed=1, entropy_weight=0.02)
    taken = (1, 2)
    roll = Rollout(space.decode(taken), taken, taken, False, 0.0, None)
    c.baseline_value = 0.5
    with torch.no_grad():
        x0 = c.net.start
        table = c.net.embeddings[c.layout.embed[0]]
        assert isinstance(table, torch.nn.Embedding)
        x1 = table.weight[1:2]  # the sampled token is fed back
        logits = _hand_logits(c, [x0, x1], [0, 1])
    adv = 0.9 - 0.5
    total = 0.0
    for t, a in enumerate(taken):
        p = torch.softmax(logits[t], 0)
        total += -math.log(float(p[a])) * adv - 0.02 * float(-(p * p.log()).sum())
    stats = c.learn([roll], [0.9])
    assert stats["advantages"] == [pytest.approx(adv)]
    assert stats["loss"] == pytest.approx(total / 2, rel=1e-5)
    assert c.baseline_value == pytest.approx(0.8 * 0.5 + 0.2 * 0.9)


def test_full_exploration_gives_no_policy_gradient() -> None:
    """With epsilon = 1 the evaluated architectures do not depend on the policy: the mixture's
    log-probability has zero gradient, so the controller must not move (no entropy bonus)."""
    space = make_space({"name": "cnn"})
    c = Controller(space, epsilon=1.0, entropy_weight=0.0, batch_size=4)
    before = [p.detach().clone() for p in c.net.parameters()]
    rolls = c.sample(4)
    assert all(r.explored for r in rolls)
    c.learn(rolls, [0.1, 0.9, 0.5, 0.3])
    assert all(torch.equal(a, b) for a, b in zip(before, c.net.parameters()))
    # without the mixture (seed 003's T2 behaviour) the same rollouts do move the policy
    c2 = Controller(space, epsilon=1.0, entropy_weight=0.0, mixture_logprob=False)
    rolls = c2.sample(4)
    before = [p.detach().clone() for p in c2.net.parameters()]
    c2.learn(rolls, [0.1, 0.9, 0.5, 0.3])
    assert not all(torch.equal(a, b) for a, b in zip(before, c2.net.parameters()))


# ------------------------------------------------------------------- presets, spaces
def test_presets_and_explicit_overrides() -> None:
    cfg = resolve_config("reference_003", {"cell": "gru", "lr": None})
    assert cfg.cell == "gru" and cfg.lr == 0.1 and cfg.epsilon == 0.8 and cfg.reward_clip == 0.1
    assert resolve_config("reference_002").baseline == "none"
    assert resolve_config().baseline == "ema" and resolve_config().baseline_beta == 0.8
    assert set(PRESETS) == {"default", "reference_002", "reference_003"}
    with pytest.raises(UnknownName, match="reference_002"):
        resolve_config("nope")
    with pytest.raises(ConfigError, match="strategy.lr"):
        resolve_config("default", {"lr": -1})
    with pytest.raises(ConfigError, match="shaping"):
        Controller(make_space({"name": "cnn"}), shaping=True)
    with pytest.raises(ConfigError, match="strategy.cell"):
        bad = toy_config({"name": "reinforce", "cell": "rnn"}, 4)
        nasforge.search(bad, run_dir="/nonexistent/x")


def _spaces() -> list[Any]:
    out: list[Any] = [SequenceSpace(grammar="free"), SequenceSpace(grammar="mask")]
    for name in SPACES.names():
        try:
            space = make_space(name)
            space.max_steps()
        except NasforgeError:
            continue  # needs params (e.g. `state` without states)
        out.append(space)
    return out


@pytest.mark.parametrize("space", _spaces(), ids=lambda s: f"{s.name}")
def test_works_on_every_space(space: Any) -> None:
    for preset in PRESETS:
        if preset == "reference_002" and not isinstance(space, SequenceSpace):
            continue
        c = Controller(space, preset=preset, seed=0, batch_size=3)
        rolls = c.sample(3)
        for r in rolls:
            space.validate(r.arch)
        stats = c.learn(rolls, [0.2, None, 0.7])  # None: a failed child
        assert math.isfinite(stats["loss"])
        space.validate(c.greedy())


# -------------------------------------------------------------------------- learning
def test_finds_the_target_and_beats_random_search(tmp_path: Path) -> None:
    budget = 320
    rl = nasforge.search(toy_config({"name": "reinforce"}, budget), run_dir=tmp_path / "rl")
    rnd = nasforge.search(
        toy_config({"name": "random", "batch_size": 8}, budget), run_dir=tmp_path / "rnd"
    )
    rl_acc = [r.val_acc for r in rl.trials]
    rnd_acc = [r.val_acc for r in rnd.trials]
    assert max(rl_acc) == 1.0  # the hidden target was found
    assert max(rnd_acc) < 0.8
    assert np.mean(rl_acc[-40:]) > max(rnd_acc)  # the policy, not luck: late samples beat random
    assert rl.final is not None and rl.final.extra["greedy"]["arch"]["tokens"] == TARGET
    series = rl.series("controller")
    assert len(series) == budget // 8
    assert series[-1][2]["entropy_weight"] == pytest.approx(0.01 * 0.99 ** (budget - 8))


# ------------------------------------------------------------ determinism and resume
def test_same_seed_same_run_different_seed_different_run(tmp_path: Path) -> None:
    strat = {"name": "reinforce", "preset": "reference_003", "batch_size": 2}
    a = nasforge.search(toy_config(strat, 24), run_dir=tmp_path / "a")
    b = nasforge.search(toy_config(strat, 24), run_dir=tmp_path / "b")
    c = nasforge.search(toy_config(strat, 24, seed=1), run_dir=tmp_path / "c")
    assert rows(a) == rows(b)
    assert a.series("controller") == b.series("controller")
    assert [r[1] for r in rows(a)] != [r[1] for r in rows(c)]


class _Crash(Callback):
    """Simulates a kill in the middle of a batch: raises after the n-th stored trial."""

    def __init__(self, after: int) -> None:
        self.after = after

    def on_trial(self, record: Any, ctx: SearchContext) -> None:
        if record.number + 1 == self.after:
            raise KeyboardInterrupt


def test_resume_continues_the_same_policy(tmp_path: Path) -> None:
    cfg = toy_config({"name": "reinforce", "epsilon": 0.3}, 96)
    full = nasforge.search(cfg, run_dir=tmp_path / "full")
    # run to 48 trials, then raise the budget to 96
    nasforge.search(cfg, budget=48, run_dir=tmp_path / "ext")
    ext = nasforge.search(cfg, budget=96, run_dir=tmp_path / "ext", resume=True)
    assert rows(ext) == rows(full)
    assert ext.series("controller") == full.series("controller")
    # killed in the middle of a batch (trial 53 of the batch 48..55), then resumed
    with pytest.raises(KeyboardInterrupt):
        nasforge.search(cfg, run_dir=tmp_path / "kill", callbacks=[_Crash(53)])
    killed = nasforge.search(cfg, run_dir=tmp_path / "kill", resume=True)
    assert rows(killed) == rows(full)
    assert killed.series("controller") == full.series("controller")
    assert killed.final is not None and full.final is not None
    assert killed.final.extra["greedy"] == full.final.extra["greedy"]


def test_controller_state_dict_round_trip() -> None:
    space = make_space({"name": "mlp"})
    a = Controller(space, seed=5, batch_size=4)
    a.learn(a.sample(4), [0.5, 0.6, 0.7, 0.8])
    b = Controller(space, seed=99, batch_size=4)
    b.seed = 5
    b.load_state_dict(a.state_dict())
    ra, rb = a.sample(4), b.sample(4)
    assert ra == rb
    assert a.learn(ra, [0.1, 0.2, 0.3, 0.4]) == b.learn(rb, [0.1, 0.2, 0.3, 0.4])


# ------------------------------------------------------------------ seed 003's usage
def test_seed_003_public_api_loop() -> None:
    space = nasforge.StateSpace(num_layers=2)
    space.add_state("kernel", [1, 3])
    space.add_state("filters", [4, 8])
    controller = nasforge.Controller(space, preset="reference_003", seed=0)
    manager = nasforge.NetworkManager(
        "digits", space, seed=0, max_epochs=1, patience=0, batch_size=256
    )
    for _ in range(3):
        arch = controller.get_actions()
        reward = manager.get_reward(arch)
        assert 0.0 <= reward <= 1.0
        stats = controller.update(reward)
        assert len(stats["rewards"]) == 1
    assert len(manager.history) == 3
    space.validate(controller.greedy())
    with pytest.raises(ConfigError, match="evaluator.max_epochs"):
        nasforge.NetworkManager("digits", space, max_epochs=0)


def test_controller_plot_info(tmp_path: Path) -> None:
    from nasforge.viz import plot_run
    from nasforge.viz.controller import controller_info

    run = nasforge.search(toy_config({"name": "reinforce"}, 16), run_dir=tmp_path / "r")
    info = controller_info(run.series("controller"), window=4)
    assert info.rollouts == list(range(16)) and info.update_rollouts == [7, 15]
    assert info.rewards == pytest.approx([r.val_acc for r in run.trials])  # no shaping here
    assert info.moving_mean[5] == pytest.approx(np.mean(info.rewards[2:6]))
    assert math.isnan(info.baseline[0]) and info.baseline[1] == pytest.approx(
        np.mean(info.rewards[:8])
    )
    paths = plot_run(run.dir, tmp_path / "h.png")
    assert tmp_path / "h_controller.png" in paths


def test_reference_003_rmsprop_is_tf1s_with_accumulator_one() -> None:
    """TF1's RMSPropOptimizer: ms starts at 1.0, ms <- 0.9 ms + 0.1 g^2, p -= lr g / sqrt(ms +
    eps); so the first step is about lr * g (PyTorch's, from ms = 0, would be lr * g / 0.316)."""
    from nasforge.strategies.reinforce.controller import TF1RMSprop

    p = torch.nn.Parameter(torch.tensor([0.5, -2.0], dtype=torch.float64))
    opt = TF1RMSprop([p], lr=0.1, decay=0.9, eps=1e-10)
    ms = torch.ones(2, dtype=torch.float64)
    expect = p.detach().clone()
    for g in (torch.tensor([0.3, 4.0]), torch.tensor([-1.0, 0.01])):
        g = g.to(torch.float64)
        p.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g
        expect = expect - 0.1 * g / torch.sqrt(ms + 1e-10)
        torch.testing.assert_close(p.detach(), expect)
    ctrl = Controller(toy_space(3, 3), preset="reference_003", seed=0)
    assert isinstance(ctrl.optimizer, TF1RMSprop)


def test_reference_003_l2_is_the_seeds_sum_of_squares() -> None:
    """Seed 003 adds 1e-3 * sum(p^2) (no 1/2), reward-scaled: the loss difference with and
    without it is exactly l2 * sum(p^2) * A."""
    space = toy_space(3, 3)
    losses, sq = [], 0.0
    for l2 in (1e-3, 0.0):
        c = Controller(space, preset="reference_003", seed=4, l2=l2)
        sq = float(sum((p.detach().double() ** 2).sum() for p in c.net.parameters()))
        (r,) = c.sample(1)
        stats = c.learn([r], [0.7])
        losses.append(stats["loss"])
        adv = stats["advantages"][0]
    assert losses[0] - losses[1] == pytest.approx(1e-3 * sq * adv, rel=1e-4)
