"""Batched population training (nasforge.evaluators.batched) against the one-by-one trainer."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.data import make_task
from nasforge.data.base import Task
from nasforge.evaluators import TrainEvaluator
from nasforge.evaluators.batched import (
    LinearOp,
    StackedOptimizer,
    make_member,
    make_population,
    make_template,
    mlp_ops,
)
from nasforge.evaluators.train import TrainParams
from nasforge.spaces import Architecture, SequenceSpace

_TASK: Task | None = None


def _task() -> Task:
    global _TASK
    if _TASK is None:
        _TASK = make_task("moons")
    return _TASK


def _ev(space: SequenceSpace | None = None, **kw: Any) -> TrainEvaluator:
    return TrainEvaluator(space=space or SequenceSpace(grammar="free"), task=_task(), **kw)


def _archs(n: int, seed: int = 0, grammar: str = "free") -> list[Architecture]:
    space = SequenceSpace(grammar=grammar)
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_template_embeds_every_program_and_ends_with_the_classifier() -> None:
    ev = _ev()
    archs = [Architecture(t) for t in [(), (8, "Tanh"), ("ReLU", 4, 4), (16, 16, 16, 1, 1, 2),
                                       ("Sigmoid", "Tanh", "ReLU", "LeakyReLU")]]
    programs = [mlp_ops(ev.build(a), (2,)) for a in archs]
    assert all(p is not None for p in programs)
    template, maps = make_template([p for p in programs if p is not None])
    assert template[-1] == "L"
    for prog, slots in zip(programs, maps):
        assert prog is not None and len(slots) == len(prog) and slots[-1] == len(template) - 1
        assert slots == sorted(set(slots))  # a subsequence
        assert [template[s] for s in slots] == [
            "L" if isinstance(o, LinearOp) else "A" for o in prog
        ]
    # the mask grammar alternates: one alternating template of 7 body slots covers everything
    mask = _ev(SequenceSpace(grammar="mask"))
    progs = [mlp_ops(mask.build(a), (2,)) for a in _archs(40, grammar="mask")]
    template, _ = make_template([p for p in progs if p is not None])
    assert len(template) <= 8


def test_unsupported_modules_are_not_batchable() -> None:
    assert mlp_ops(nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.1), nn.Linear(4, 2)), (2,)) is None
    assert mlp_ops(nn.Sequential(nn.Linear(2, 4), nn.ReLU()), (2,)) is None  # ends in activation
    assert mlp_ops(nn.Sequential(nn.Linear(64, 2)), (1, 8, 8)) is None  # needs a Flatten
    assert mlp_ops(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), (1, 8, 8)) is not None


@pytest.mark.parametrize("bucket", ["merge", "shape"])
def test_manual_backward_equals_autograd(bucket: str) -> None:
    """Padded, skipped and mixed-activation members get exactly their own model's gradient."""
    space = SequenceSpace(grammar="free", activations=["Sigmoid", "Tanh", "ReLU", "LeakyReLU",
                                                       "ELU", "GELU", "SiLU"])
    ev = _ev(space)
    tokens = [(8, "Tanh", 4, "ELU"), (16, "GELU", 16, "SiLU", 2), ("Sigmoid", 4, "LeakyReLU"),
              (), (8, 8, "ReLU"), (4, "Tanh", 4, "Sigmoid"), (4, "ReLU", 4, "LeakyReLU")]
    if bucket == "shape":  # identical shapes, different activations
        tokens = [(4, a, 4, b) for a, b in [("Tanh", "Sigmoid"), ("ReLU", "LeakyReLU"),
                                            ("Sigmoid", "Sigmoid"), ("GELU", "ELU")]]
    members = [make_member(ev, i, Architecture(t), seed=i) for i, t in enumerate(tokens)]
    assert all(m is not None for m in members)
    pop = make_population(ev, [m for m in members if m is not None])
    x, y = _task().train.x[:32], _task().train.y[:32]
    xb = x.unsqueeze(0).expand(len(tokens), -1, -1).contiguous()
    loss, grads = pop.loss_and_grad(xb, y.unsqueeze(0).expand(len(tokens), -1).contiguous())
    for row, mem in enumerate(pop.members):
        mem.model.zero_grad()
        ref = nn.functional.cross_entropy(mem.model(x), y)
        ref.backward()
        assert float(loss[row]) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-6)
        lins = [m for m in mem.model if isinstance(m, nn.Linear)]
        views = pop.member_linears(row, grads)
        assert len(views) == len(lins)
        for lin, (gw, gb) in zip(lins, views):
            torch.testing.assert_close(gw, lin.weight.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(gb, lin.bias.grad, rtol=1e-4, atol=1e-6)
    for g, mask in zip(grads, pop.masks):  # padded entries get no gradient at all
        if mask is not None:
            assert float(g[mask == 0].abs().max()) == 0.0


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd", "rmsprop"])
def test_flat_optimizer_is_torch_optim_per_member(kind: str) -> None:
    p = TrainParams.model_validate(
        {"optimizer": kind, "lr": 0.01, "weight_decay": 0.01, "momentum": 0.9}
    )
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(3, 20, generator=gen)
    ref = [flat[i].clone().requires_grad_(True) for i in range(3)]
    opts = [
        {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind](
            [r], lr=0.01, weight_decay=0.01) if kind in ("adam", "adamw")
        else torch.optim.SGD([r], lr=0.01, momentum=0.9, weight_decay=0.01) if kind == "sgd"
        else torch.optim.RMSprop([r], lr=0.01, momentum=0.9, weight_decay=0.01)
        for r in ref
    ]
    stacked = [flat[:, :8].contiguous(), flat[:, 8:].contiguous()]  # two stacked tensors
    opt = StackedOptimizer(p, stacked)
    for _ in range(5):
        g = torch.randn(3, 20, generator=gen)
        opt.step(stacked, [g[:, :8].clone(), g[:, 8:].clone()])
        for i in range(3):
            ref[i].grad = g[i].clone()
            opts[i].step()
    for i in range(3):
        torch.testing.assert_close(torch.cat([stacked[0][i], stacked[1][i]]), ref[i].detach(),
                                   rtol=1e-5, atol=1e-6)


def test_batched_and_one_by_one_agree_in_distribution() -> None:
    archs = _archs(12, seed=1)
    seeds = list(range(100, 112))
    kw: dict[str, Any] = {"max_epochs": 8, "patience": 3}
    single = _ev(trainer="single", **kw).evaluate_batch(archs, seeds)
    batched = _ev(trainer="batched", **kw).evaluate_batch(archs, seeds)
    assert all(r.ok for r in single + batched)
    assert all(r.metrics.get("population") == 12 for r in batched)
    ms = statistics.fmean(r.val_acc for r in single)
    mb = statistics.fmean(r.val_acc for r in batched)
    assert abs(ms - mb) <= 0.01
    # same initial weights and minibatches: nearly every child follows the same trajectory
    same = sum(a.epochs == b.epochs and abs(a.val_acc - b.val_acc) < 1e-6
               for a, b in zip(single, batched))
    assert same >= 10


def test_seed002_metric_and_last_reward_match_one_by_one() -> None:
    archs = _archs(6, seed=2, grammar="mask")
    seeds = [7, 8, 9, 10, 11, 12]
    kw: dict[str, Any] = {"max_epochs": 6, "patience": 2, "reward": "last",
                          "val_metric": "batch_mean", "optimizer": "rmsprop", "lr": 0.003,
                          "grad_clip": 1.0, "weight_decay": 1e-4}
    single = _ev(trainer="single", **kw).evaluate_batch(archs, seeds)
    batched = _ev(trainer="batched", bucket="shape", **kw).evaluate_batch(archs, seeds)
    for a, b in zip(single, batched):
        assert a.epochs == b.epochs
        assert b.val_acc == pytest.approx(a.val_acc, abs=1e-6)
        assert b.metrics["train_loss"] == pytest.approx(a.metrics["train_loss"], rel=1e-3)


def test_early_stopping_inside_a_batch_freezes_stopped_members() -> None:
    """Members stop at different epochs; each returned model equals its one-by-one twin, so a
    stopped member's weights did not move while the others trained on."""
    archs = [Architecture(t) for t in [(8, "ReLU"), ("Tanh",), (16, "Tanh", 8, "ReLU"), (2,)]]
    seeds = [3, 4, 5, 6]
    kw: dict[str, Any] = {"max_epochs": 25, "patience": 2, "reward": "last"}
    ev_b, ev_s = _ev(trainer="batched", **kw), _ev(trainer="single", **kw)
    batched = ev_b.fit_batch(archs, seeds)
    epochs = [r.epochs for _, r in batched]
    assert len(set(epochs)) > 1 and min(epochs) < 25  # stopped early, at different epochs
    for (mb, rb), arch, seed in zip(batched, archs, seeds):
        ms, rs = ev_s.fit_single(arch, seed=seed)
        assert mb is not None and ms is not None and rb.epochs == rs.epochs
        for pb, ps in zip(mb.parameters(), ms.parameters()):
            torch.testing.assert_close(pb, ps, rtol=1e-3, atol=1e-4)
    # reward: best restores the best epoch's weights
    ev_best = _ev(trainer="batched", max_epochs=25, patience=2)
    for (model, r), _arch in zip(ev_best.fit_batch(archs, seeds), archs):
        assert model is not None
        assert r.metrics["best_epoch"] <= r.epochs
        assert ev_best.test_accuracy(model) >= 0.0
        from nasforge.evaluators.train import accuracy

        assert accuracy(model, _task().val) == pytest.approx(r.val_acc)


class _PoisonSpace(SequenceSpace):
    """Builds the architecture (8, "Tanh", 4) with a NaN weight: its loss is NaN."""

    def build(self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int) -> Any:
        model: Any = super().build(arch, input_shape, num_classes)
        if arch.tokens == (8, "Tanh", 4):
            with torch.no_grad():
                model[1].weight[0, 0] = float("nan")
        return model


def test_a_failing_member_leaves_the_others_intact() -> None:
    good = [Architecture(t) for t in [(8, "Tanh", 2), ("ReLU", 4), (16, "Sigmoid", 4)]]
    bad = Architecture((8, "Tanh", 4))
    kw: dict[str, Any] = {"max_epochs": 6, "patience": 2}
    ev = _ev(_PoisonSpace(grammar="free"), trainer="batched", **kw)
    alone = ev.evaluate_batch(good, [1, 2, 3])
    mixed = ev.evaluate_batch([good[0], bad, good[1], good[2]], [1, 9, 2, 3])
    assert mixed[1].status == "failed" and "non-finite" in (mixed[1].error or "")
    assert mixed[1].epochs == 1
    for a, b in zip(alone, [mixed[0], mixed[2], mixed[3]]):
        assert b.ok and a.epochs == b.epochs
        assert b.val_acc == pytest.approx(a.val_acc, abs=1e-6)
    # the one-by-one trainer fails the same child the same way
    one = _ev(_PoisonSpace(grammar="free"), trainer="single", **kw).evaluate(bad, seed=9)
    assert one.status == "failed"


class _DropoutSpace(SequenceSpace):
    def build(self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int) -> Any:
        model: Any = super().build(arch, input_shape, num_classes)
        return nn.Sequential(*model, nn.Dropout(0.0)) if arch.tokens == (4,) else model


def test_non_mlp_children_fall_back_to_one_by_one() -> None:
    ev = _ev(_DropoutSpace(grammar="free"), trainer="auto", max_epochs=3, patience=0)
    res = ev.evaluate_batch([Architecture((4,)), Architecture((8, "ReLU"))], [0, 1])
    assert all(r.ok for r in res)
    assert "population" not in res[0].metrics and res[1].metrics["population"] == 1
    assert ev.prefers_batches and not _ev(trainer="single").prefers_batches


def test_auto_buckets_pad_within_width_classes_and_shape_buckets_wide_layers() -> None:
    from nasforge.evaluators.batched import _groups, _width, signature

    ev = _ev()
    archs = _archs(200, seed=3)
    members = [make_member(ev, i, a, seed=i) for i, a in enumerate(archs)]
    mems = [m for m in members if m is not None]
    merged = _groups(mems, "merge", 64)
    assert len(merged) == 1 and len(merged[0]) == len(mems)
    auto = _groups(mems, "auto", 64)
    assert 1 < len(auto) <= 5 and sum(len(g) for g in auto) == len(mems)
    tops = [max(_width(m) for m in g) for g in auto]
    assert tops == sorted(tops)  # contiguous width classes, narrow ones not padded to 16
    few = _groups(mems[:6], "auto", 64)  # a small batch stays one population
    assert len(few) == 1
    wide = _groups(mems, "auto", 4)  # wider than pad_width: exact shape buckets
    for g in wide:
        if max(_width(m) for m in g) > 4:
            assert len({signature(m.ops) for m in g}) == 1
    assert len(wide) > len(auto)
