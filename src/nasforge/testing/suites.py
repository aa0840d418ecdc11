"""Contract suites for every extension point, as pytest mixins: one named test per property.

Subclass a suite in a test module, name the class ``Test...`` and implement its factory method;
pytest collects every ``test_*`` method. nasforge's own test suite runs them on every registered
component (``tests/testing/test_suites.py``); a plugin author runs them on theirs::

    from nasforge.testing.suites import StrategySuite

    class TestMyStrategy(StrategySuite):
        def make_strategy(self, seed):
            return MyStrategy(seed=seed)

Suites:

* :class:`SpaceSuite`: sampling, validation, JSON round trip, stable ids, the decision view
  replays every sampled architecture, build and forward, a named error for a foreign token.
* :class:`StrategySuite` (ask/tell strategies): exactly ``budget`` evaluated trials (answers
  from the reward cache are free), ``ask(n)`` never over-asks,
  determinism, failures survived, and **exact resume after a kill** mid-batch, on
  :func:`sequence_toy_space` (masks, a stop token, variable length) as well as the fixed-length
  :func:`~nasforge.testing.toys.toy_space`.
* :class:`EvaluatorSuite`: a complete result with finite score, the same seed the same result,
  JSON-serialisable settings, a failure returned as data by ``evaluate_safely``.
* :class:`ExecutorSuite`: every index once, results equal to in-process evaluation, ``close``
  twice is safe.
* :class:`MemberTrainerSuite` (PBT member trainers): a step from scratch, a continued step,
  determinism, checkpoints made of tensors and plain values.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from nasforge.config import RunConfig
from nasforge.engine.context import SearchContext
from nasforge.evaluators.base import Evaluator, Result, evaluate_safely
from nasforge.evaluators.pbt import MemberTrainer, StepJob, member_step
from nasforge.exceptions import InvalidArchitecture
from nasforge.executors.base import Executor
from nasforge.executors.local import LocalExecutor
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.sequence import SequenceSpace
from nasforge.storage.base import Record
from nasforge.storage.sqlite import SQLiteRunStore
from nasforge.strategies.base import AskTellStrategy
from nasforge.testing.toys import ToyTable, ToyTableEvaluator, toy_space


# ------------------------------------------------------------------------------- toy problems
def sequence_toy_space() -> SequenceSpace:
    """A space with masks, a stop token and variable length: seed 002's grammar, small."""
    return SequenceSpace(widths=(2, 4), activations=("ReLU", "Tanh"), max_len=4, grammar="mask")


class HashEvaluator(Evaluator):
    """A deterministic score for any architecture (a hash of its id), with seed noise and an
    optional deterministic share of failures; ``kill_after`` raises :class:`Killed` (not an
    ``Exception``, so nothing catches it) at that evaluation, as a SIGKILL would stop the run."""

    name: ClassVar[str] = "hash"
    needs_task: ClassVar[bool] = False

    def __init__(
        self, *, noise: float = 0.0, fail_fraction: float = 0.0, kill_after: int | None = None
    ) -> None:
        self.noise, self.fail_fraction, self.kill_after = noise, fail_fraction, kill_after
        self.calls = 0

    def _h(self, arch: Architecture) -> int:
        return int(hashlib.sha1(arch.arch_id.encode()).hexdigest()[:12], 16)

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            raise Killed
        h = self._h(arch)
        if (h % 1000) < self.fail_fraction * 1000:
            raise RuntimeError(f"hash failure for {arch}")
        acc = 0.1 + 0.85 * ((h >> 10) % 10_000) / 10_000
        if self.noise:
            acc += float(np.random.default_rng(seed).normal(0.0, self.noise))
        return Result(status="complete", val_acc=acc, train_seconds=0.0)

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "noise": self.noise, "fail_fraction": self.fail_fraction}


class Killed(BaseException):
    """Raised by :class:`HashEvaluator` to stop a run the way a kill would."""


def run_stored(
    strategy: AskTellStrategy,
    space: SearchSpace,
    evaluator: Evaluator,
    *,
    seed: int,
    budget: int,
    store_path: Path,
) -> list[Record]:
    """Run ``strategy`` through its real ask/tell loop on the store at ``store_path`` (created
    or resumed); return its records. ``Killed`` propagates, leaving the store as a kill would."""
    store = SQLiteRunStore(store_path, create=True)
    try:
        ctx = SearchContext(
            config=RunConfig(name="suite", seed=seed, budget=budget), space=space, task=None,
            evaluator=evaluator, executor=LocalExecutor(workers=1), store=store, budget=budget,
            seed=seed, device=torch.device("cpu"), run_dir=store_path.parent,
            reevaluate=bool(strategy.reevaluate),
        )
        strategy.run(ctx)
        return store.trials()
    finally:
        store.close()


def _sig(records: list[Record]) -> list[tuple[Any, ...]]:
    return [(r.number, r.arch_id, r.seed, r.result.status, r.val_acc, r.cached_from)
            for r in records]


# ------------------------------------------------------------------------------------ spaces
class SpaceSuite:
    """Contract of a :class:`SearchSpace`. Implement :meth:`make_space`; override
    ``input_shape`` / ``num_classes`` for spaces that need other inputs."""

    input_shape: ClassVar[tuple[int, ...]] = (1, 8, 8)
    num_classes: ClassVar[int] = 3
    samples: ClassVar[int] = 8
    forward_shape: ClassVar[tuple[int, ...] | None] = None
    """What the built network's ``forward`` takes when not ``input_shape`` (a GAN: latents)."""

    def make_space(self) -> SearchSpace:
        raise NotImplementedError

    def _archs(self) -> list[Architecture]:
        space, rng = self.make_space(), np.random.default_rng(0)
        return [space.sample(rng) for _ in range(self.samples)]

    def test_samples_validate(self) -> None:
        space = self.make_space()
        for a in self._archs():
            assert space.validate(a) == a

    def test_json_round_trip_and_stable_ids(self) -> None:
        space = self.make_space()
        for a in self._archs():
            back = space.arch_from_json(json.loads(json.dumps(a.to_json())))
            assert back == a and back.arch_id == a.arch_id and hash(back) == hash(a)

    def test_decision_view_replays_every_sample(self) -> None:
        space = self.make_space()
        for a in self._archs():
            idx = space.encode(a)
            for t in range(len(idx)):
                assert bool(space.allowed(list(idx[:t]))[idx[t]]), (a, t)
            assert space.is_complete(list(idx)) and space.decode(idx) == a

    def test_build_and_forward(self) -> None:
        space = self.make_space()
        a = self._archs()[0]
        model = space.build(a, self.input_shape, self.num_classes)
        with torch.no_grad():
            out = model(torch.randn(2, *(self.forward_shape or self.input_shape)))
        assert out.shape[0] == 2

    def test_foreign_token_is_a_named_error(self) -> None:
        space = self.make_space()
        bad = Architecture(("no-such-token",) * max(1, space.max_steps()))
        try:
            space.validate(bad)
        except InvalidArchitecture as err:
            assert str(err)
        else:  # pragma: no cover - the failing branch of the contract
            raise AssertionError("validate accepted a foreign architecture")

    def test_spec_is_json(self) -> None:
        spec = self.make_space().spec()
        assert json.loads(json.dumps(spec)) == spec


# -------------------------------------------------------------------------------- strategies
class StrategySuite:
    """Contract of an ask/tell strategy. Implement :meth:`make_strategy`."""

    budget: ClassVar[int] = 24

    def make_strategy(self, seed: int) -> AskTellStrategy:
        raise NotImplementedError

    def _run(self, seed: int, space: SearchSpace, evaluator: Evaluator, tmp: str,
             name: str = "run") -> list[Record]:
        return run_stored(self.make_strategy(seed), space, evaluator, seed=seed,
                          budget=self.budget, store_path=Path(tmp) / f"{name}.sqlite")

    def test_exact_budget_and_no_over_ask(self) -> None:
        strategy = self.make_strategy(0)
        asked: list[tuple[int, int]] = []
        original = strategy.ask

        def ask(n: int) -> list[Architecture]:
            out: list[Architecture] = original(n)
            asked.append((n, len(out)))
            return out

        strategy.ask = ask  # type: ignore[method-assign]
        setattr(strategy, "transient", (*type(strategy).transient, "ask"))  # noqa: B010
        space = toy_space(4, 3)
        with tempfile.TemporaryDirectory() as tmp:
            recs = run_stored(strategy, space, ToyTableEvaluator(ToyTable(4, 3), space=space),
                              seed=0, budget=self.budget, store_path=Path(tmp) / "r.sqlite")
        evaluated = sum(1 for r in recs if r.cached_from is None)  # cache answers are free
        assert evaluated == self.budget, (evaluated, self.budget)
        assert all(k <= n for n, k in asked), asked

    def test_same_seed_same_trials(self) -> None:
        space = sequence_toy_space()
        with tempfile.TemporaryDirectory() as tmp:
            a = self._run(0, space, HashEvaluator(noise=0.01), tmp, "a")
            b = self._run(0, space, HashEvaluator(noise=0.01), tmp, "b")
        assert _sig(a) == _sig(b)

    def test_failures_are_survived(self) -> None:
        space = sequence_toy_space()
        with tempfile.TemporaryDirectory() as tmp:
            recs = self._run(1, space, HashEvaluator(fail_fraction=0.3), tmp)
        evaluated = sum(1 for r in recs if r.cached_from is None)
        assert evaluated == self.budget and any(not r.ok for r in recs)

    def _resume(self, space: SearchSpace, kill_after: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            full = self._run(0, space, HashEvaluator(noise=0.01), tmp, "full")
            try:
                self._run(0, space, HashEvaluator(noise=0.01, kill_after=kill_after), tmp, "k")
            except Killed:
                pass
            resumed = self._run(0, space, HashEvaluator(noise=0.01), tmp, "k")
        assert _sig(resumed) == _sig(full)

    def test_exact_resume_after_a_kill_on_a_masked_variable_length_space(self) -> None:
        self._resume(sequence_toy_space(), kill_after=self.budget // 2 + 1)

    def test_exact_resume_after_a_kill_on_a_fixed_length_space(self) -> None:
        self._resume(toy_space(4, 3), kill_after=self.budget // 3)


# -------------------------------------------------------------------------------- evaluators
class EvaluatorSuite:
    """Contract of an :class:`Evaluator`. Implement :meth:`make` returning ``(evaluator,
    a valid architecture)``."""

    def make(self) -> tuple[Evaluator, Architecture]:
        raise NotImplementedError

    def test_complete_result_with_a_finite_score(self) -> None:
        ev, arch = self.make()
        res = ev.evaluate(arch, seed=0)
        assert res.status == "complete" and math.isfinite(res.val_acc)

    def test_same_seed_same_result(self) -> None:
        ev, arch = self.make()
        a, b = ev.evaluate(arch, seed=3), ev.evaluate(arch, seed=3)
        assert a.val_acc == b.val_acc and a.metrics.get("train_loss") == b.metrics.get(
            "train_loss")

    def test_settings_are_json(self) -> None:
        ev, _ = self.make()
        settings = ev.settings()
        assert json.loads(json.dumps(settings)) == settings

    def test_a_failure_is_returned_as_data(self) -> None:
        ev, _ = self.make()
        res = evaluate_safely(ev, Architecture(("no-such-token",)), seed=0)
        assert res.status == "failed" and res.error


# --------------------------------------------------------------------------------- executors
class ExecutorSuite:
    """Contract of an :class:`Executor`. Implement :meth:`make_executor`."""

    def make_executor(self) -> Executor:
        raise NotImplementedError

    def _problem(self) -> tuple[Evaluator, list[Architecture]]:
        space = toy_space(4, 3)
        rng = np.random.default_rng(0)
        return ToyTableEvaluator(ToyTable(4, 3), space=space), [
            space.sample(rng) for _ in range(6)]

    def test_every_index_once_with_in_process_results(self) -> None:
        ev, archs = self._problem()
        seeds = list(range(len(archs)))
        with self.make_executor() as ex:
            got = list(ex.map(ev, archs, seeds))
        assert sorted(i for i, _ in got) == list(range(len(archs)))
        want = [ev.evaluate(a, seed=s).val_acc for a, s in zip(archs, seeds)]
        assert [r.val_acc for _, r in sorted(got, key=lambda t: t[0])] == want

    def test_map_jobs_runs_every_job_once(self) -> None:
        payloads = list(range(5))
        with self.make_executor() as ex:
            got = dict(ex.map_jobs(_square_plus, 10, payloads))
            assert ex.restarts == 0 and ex.workers >= 1
        assert got == {i: 10 + i * i for i in payloads}

    def test_close_twice_is_safe(self) -> None:
        ex = self.make_executor()
        ex.close()
        ex.close()


def _square_plus(shared: int, payload: int) -> int:
    """A job for :meth:`ExecutorSuite.test_map_jobs_runs_every_job_once` (module level: it is
    sent to worker processes)."""
    return shared + payload * payload


# --------------------------------------------------------------------------- member trainers
class MemberTrainerSuite:
    """Contract of a PBT :class:`MemberTrainer`. Implement :meth:`make` returning
    ``(trainer, architecture)``."""

    def make(self) -> tuple[MemberTrainer, Architecture]:
        raise NotImplementedError

    def _job(self, arch: Architecture, ckpt: dict[str, Any], seed: int = 0) -> StepJob:
        return StepJob(0, 0, tuple(arch.tokens), ckpt, 1, seed, 100)

    def _fresh(self, trainer: MemberTrainer, arch: Architecture) -> dict[str, Any]:
        return trainer.init_member(arch, 0)

    def test_a_step_from_scratch_and_a_continued_step(self) -> None:
        trainer, arch = self.make()
        first = member_step(trainer, self._job(arch, self._fresh(trainer, arch)))
        assert first.error is None and math.isfinite(first.fitness), first.error
        second = member_step(trainer, self._job(arch, first.ckpt, seed=1))
        assert second.error is None and second.ckpt["units"] == first.ckpt["units"] + 1

    def test_same_seed_same_fitness(self) -> None:
        trainer, arch = self.make()
        a = member_step(trainer, self._job(arch, self._fresh(trainer, arch)))
        b = member_step(trainer, self._job(arch, self._fresh(trainer, arch)))
        assert a.fitness == b.fitness

    def test_checkpoint_model_and_optimiser_are_tensors(self) -> None:
        trainer, arch = self.make()
        ck = member_step(trainer, self._job(arch, self._fresh(trainer, arch))).ckpt
        buf = io.BytesIO()
        torch.save({"model": ck["model"], "opt": ck["opt"], "units": ck["units"]}, buf)
        buf.seek(0)
        back = torch.load(buf, weights_only=True)  # no pickled objects in the checkpoint
        assert set(back["model"]) == set(ck["model"])
