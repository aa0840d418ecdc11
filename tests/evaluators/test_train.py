from __future__ import annotations

import math

import torch

from nasforge.data import make_task
from nasforge.evaluators import Result, TrainEvaluator, evaluate_safely
from nasforge.evaluators.base import Evaluator
from nasforge.spaces import Architecture, SequenceSpace


def _evaluator(**kw: object) -> TrainEvaluator:
    space = SequenceSpace(grammar="free")  # free: the empty (linear) network is legal
    return TrainEvaluator(space=space, task=make_task("moons"), **kw)  # type: ignore[arg-type]


def test_training_learns_and_reports_a_full_record() -> None:
    ev = _evaluator(max_epochs=30, patience=5)
    model, r = ev.fit(Architecture((16, "ReLU", 16, "ReLU")), seed=0)
    assert r.ok and r.val_acc >= 0.9 and r.params == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2
    assert 1 <= r.epochs <= 30 and r.train_seconds > 0
    assert model is not None and ev.test_accuracy(model) >= 0.85
    linear = _evaluator(max_epochs=30, patience=5).evaluate(Architecture(()), seed=0)
    assert linear.val_acc < r.val_acc  # a plain linear classifier cannot fit the moons


def test_early_stopping_and_reward_modes() -> None:
    arch = Architecture((4, "Tanh"))
    best = _evaluator(max_epochs=60, patience=3).evaluate(arch, seed=1)
    assert best.epochs < 60 and best.epochs >= best.metrics["best_epoch"] + 3
    last = _evaluator(max_epochs=60, patience=3, reward="last").evaluate(arch, seed=1)
    assert last.val_acc <= best.val_acc


def test_same_seed_same_result_different_seed_differs() -> None:
    arch = Architecture((8, "Tanh", 8, "ReLU"))
    a = _evaluator(max_epochs=5).evaluate(arch, seed=3)
    b = _evaluator(max_epochs=5).evaluate(arch, seed=3)
    c = _evaluator(max_epochs=5).evaluate(arch, seed=4)
    assert a.val_acc == b.val_acc and a.metrics == b.metrics
    assert (a.metrics["train_loss"], a.val_acc) != (c.metrics["train_loss"], c.val_acc)


def test_divergence_and_exceptions_become_failed_records() -> None:
    diverging = _evaluator(max_epochs=5, lr=1e30, optimizer="sgd")
    r = diverging.evaluate(Architecture((16, "ReLU", 16, "ReLU")), seed=0)
    assert r.status == "failed" and "diverged" in (r.error or "")

    class Boom(Evaluator):
        name = "boom"

        def evaluate(self, arch: Architecture, *, seed: int) -> Result:
            raise torch.cuda.OutOfMemoryError("child too large")

    r = evaluate_safely(Boom(), Architecture(()), seed=0)
    assert r.status == "failed" and "OutOfMemoryError" in (r.error or "")
    assert math.isnan(r.val_acc)
