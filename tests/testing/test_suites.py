"""Every registered component passes its contract suite (nasforge.testing.suites).

Classes are generated from the registries, so a newly registered space, ask/tell strategy,
evaluator, executor or member trainer is checked without editing this file; a component that
needs arguments the generator cannot guess is listed in ``SPACE_ARGS`` / ``EVALUATORS`` below,
and a test fails if a registered name is covered by neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nasforge.components  # noqa: F401  (fills the registries)
from nasforge.config import build_component
from nasforge.data import make_task
from nasforge.evaluators.base import EVALUATORS, Evaluator
from nasforge.evaluators.pbt import MemberTrainer
from nasforge.evaluators.pbt_rl import PBTRLTrainer
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.executors.local import LocalExecutor
from nasforge.spaces.base import SPACES, Architecture, SearchSpace, make_space
from nasforge.strategies.base import STRATEGIES, AskTellStrategy
from nasforge.testing.contracts import black_box_strategies
from nasforge.testing.suites import (
    EvaluatorSuite,
    ExecutorSuite,
    MemberTrainerSuite,
    SpaceSuite,
    StrategySuite,
)

# space name -> (spec overrides, input shape, classes)
SPACE_ARGS: dict[str, tuple[dict[str, Any], tuple[int, ...], int]] = {
    "cnn": ({}, (1, 8, 8), 3),
    "darts": ({"nodes": 2, "channels": 4, "layers": 2, "reductions": [1]}, (1, 8, 8), 3),
    "gene_cnn": ({"channels": 4, "num_layers": 2, "reduce_after": [0]}, (1, 8, 8), 3),
    "gene_mlp": ({"hidden": 8, "num_layers": 2}, (6,), 3),
    "mlp": ({}, (2,), 2),
    "tabular": ({}, (6,), 3),
    "nb201": ({"channels": 4, "cells_per_stage": 1}, (1, 8, 8), 3),
    "state": ({"states": [{"name": "kernel", "values": [1, 3]},
                          {"name": "filters", "values": [4, 8]}], "num_layers": 2},
              (1, 8, 8), 3),
}
_GAN = {"resolution": 8, "bottom": 1, "channels": 4, "df_channels": 4, "latent": 6,
        "d_blocks": 2}
SPACE_ARGS.update({"gan_hard": (_GAN, (1, 8, 8), 0), "gan": (_GAN, (1, 8, 8), 0)})
SPACE_FORWARD: dict[str, tuple[int, ...]] = {"gan_hard": (6,), "gan": (6,)}  # latents
SPACE_EXEMPT = {"gene_ac": "builds actor-critics (obs_dim, n_actions); checked by the PBT-RL "
                           "member-trainer suite"}
EXECUTOR_ARGS: dict[str, dict[str, Any]] = {"local": {"workers": 1}}
EXECUTOR_EXEMPT = {"ray": "starts a Ray cluster; covered by tests/strategies/pbt/test_pbt_ray.py"}


def _space_suite(name: str) -> type:
    over, shape, classes = SPACE_ARGS[name]

    class _S(SpaceSuite):
        input_shape = shape
        num_classes = classes
        forward_shape = SPACE_FORWARD.get(name)

        def make_space(self) -> SearchSpace:
            return make_space({"name": name, **over})

    return _S


def _strategy_suite(name: str) -> type:
    class _S(StrategySuite):
        def make_strategy(self, seed: int) -> AskTellStrategy:
            strategy: AskTellStrategy = build_component(STRATEGIES, "strategy", name, seed=seed)
            return strategy

    return _S


def _executor_suite(name: str) -> type:
    class _S(ExecutorSuite):
        def make_executor(self) -> Executor:
            ex: Executor = build_component(EXECUTORS, "executor",
                                           {"name": name, **EXECUTOR_ARGS[name]})
            return ex

    return _S


for _name in SPACE_ARGS:
    globals()[f"TestSpace_{_name}"] = _space_suite(_name)
for _name in black_box_strategies():
    globals()[f"TestStrategy_{_name}"] = _strategy_suite(_name)
for _name in EXECUTOR_ARGS:
    globals()[f"TestExecutor_{_name}"] = _executor_suite(_name)


class TestExecutor_local_pool(ExecutorSuite):
    def make_executor(self) -> Executor:
        return LocalExecutor(workers=2)


class TestEvaluator_train(EvaluatorSuite):
    def make(self) -> tuple[Evaluator, Architecture]:
        space = make_space({"name": "mlp", "max_len": 2})
        ev: Evaluator = build_component(
            EVALUATORS, "evaluator", {"name": "train", "max_epochs": 2, "patience": 0},
            space=space, task=make_task("moons"), device="cpu",
        )
        return ev, space.sample(np.random.default_rng(0))


class TestEvaluator_table(EvaluatorSuite):
    def make(self) -> tuple[Evaluator, Architecture]:
        space = make_space({"name": "cnn", "kernels": [1, 3], "filters": [8, 16, 32],
                            "num_layers": 4})
        ev: Evaluator = build_component(
            EVALUATORS, "evaluator", {"name": "table", "table": "digits-cnn"},
            space=space, task=None, device="cpu",
        )
        return ev, space.sample(np.random.default_rng(0))


class TestMemberTrainer_pbt_train(MemberTrainerSuite):
    def make(self) -> tuple[MemberTrainer, Architecture]:
        space = make_space({"name": "gene_cnn", "channels": 4, "num_layers": 2,
                            "reduce_after": [0]})
        tr: MemberTrainer = build_component(
            EVALUATORS, "evaluator", {"name": "pbt_train", "batch_size": 256},
            space=space, task=make_task({"name": "digits", "seed": 0}), device="cpu",
        )
        return tr, space.sample(np.random.default_rng(0))


class TestMemberTrainer_pbt_rl(MemberTrainerSuite):
    def make(self) -> tuple[MemberTrainer, Architecture]:
        space = make_space({"name": "gene_ac", "hidden": 8, "num_layers": 1})
        tr = PBTRLTrainer(space=space, env="CartPole-v1", frames_per_unit=128, n_envs=2,
                          n_steps=32, epochs=1, minibatch=32, eval_episodes=1)
        return tr, space.sample(np.random.default_rng(0))


class TestMemberTrainer_pbt_gan(MemberTrainerSuite):
    def make(self) -> tuple[MemberTrainer, Architecture]:
        space = make_space({"name": "gan_hard", **_GAN})
        tr: MemberTrainer = build_component(
            EVALUATORS, "evaluator", {"name": "pbt_gan", "batch_size": 16,
                                      "batches_per_unit": 4, "n_critic": 2, "fid_samples": 64,
                                      "feature_dim": 8, "feature_epochs": 1},
            space=space, task=make_task({"name": "digits", "seed": 0}), device="cpu",
        )
        return tr, space.sample(np.random.default_rng(0))


MEMBER_TRAINERS = {"pbt_train", "pbt_rl", "pbt_gan"}
EVALUATOR_SUITES = {"train", "table"}


def _builtin(registry: Any) -> list[str]:
    """Names registered by nasforge itself (tests register throw-away components too)."""
    return [n for n in registry.names()
            if getattr(registry.get(n), "__module__", "").startswith("nasforge.")]


def test_every_registered_component_has_a_suite() -> None:
    for name in _builtin(SPACES):
        assert name in SPACE_ARGS or name in SPACE_EXEMPT, f"space {name!r} has no suite"
    for name in _builtin(EXECUTORS):
        assert name in EXECUTOR_ARGS or name in EXECUTOR_EXEMPT, f"executor {name!r}"
    for name in _builtin(EVALUATORS):
        assert name in EVALUATOR_SUITES | MEMBER_TRAINERS, f"evaluator {name!r} has no suite"
    one_shot = {n for n in _builtin(STRATEGIES) if n not in black_box_strategies()}
    assert one_shot == {"darts", "metanas", "pbt_nas", "meta_a2c"}, (
        "a new strategy that owns its loop needs its own resume test "
        "(tests/strategies/oneshot/darts, tests/strategies/oneshot/metanas, "
        "tests/strategies/pbt, tests/strategies/metarl)")


@pytest.mark.parametrize("name", sorted(SPACE_EXEMPT))
def test_exemptions_name_registered_components(name: str) -> None:
    assert name in SPACES


def test_the_strategy_suite_catches_a_strategy_that_forgets_its_state() -> None:
    """A strategy whose random generator is not saved resumes differently: the suite fails."""
    from nasforge.strategies.blackbox.random_search import RandomSearch

    class Forgetful(RandomSearch):
        transient = (*RandomSearch.transient, "rng")

    class _S(StrategySuite):
        def make_strategy(self, seed: int) -> AskTellStrategy:
            return Forgetful(seed=seed, batch_size=4, replacement=True)

    with pytest.raises(AssertionError):
        _S().test_exact_resume_after_a_kill_on_a_fixed_length_space()
