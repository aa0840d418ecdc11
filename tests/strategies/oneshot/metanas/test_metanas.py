"""MetaNAS: temperature, pruning, pairwise discretisation, Reptile (Q2), presets, a tiny run
above chance, resume, the regularizer schedules in meta-train vs meta-test, P-DARTS stages in
the meta setting and executor-parallel meta-batches."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nasforge.data.base import TASKS
from nasforge.exceptions import ConfigError, NasforgeError
from nasforge.executors.local import LocalExecutor
from nasforge.spaces import SPACES
from nasforge.spaces.darts.supernet import Alphas
from nasforge.strategies.oneshot.metanas import (
    MetaNAS,
    discretize_pairwise,
    merge_adam_states,
    prune_alphas,
    reptile_update,
    temperature,
)

SPACE = {"name": "darts", "ops": "fewshot", "nodes": 2, "channels": 4, "layers": 2,
         "reductions": [1], "channel_growth": 1}
TINY: dict[str, Any] = dict(
    threads=1, meta_epochs=4, warm_up_epochs=1, eval_freq=2, n_way=3, k_shot=1, train_shots=3,
    q_query=3, meta_batch_size=2, test_meta_batch_size=3, eval_tasks=4, task_train_steps=2,
    test_task_train_steps=3, batch_size=6, batch_size_test=3, w_lr=0.01, alpha_lr=0.01,
    channels=4, layers=2, reductions=[1],
)


def config(run: str = "m", **strategy: Any) -> dict[str, Any]:
    return {"name": run, "seed": 0, "task": {"name": "digits_rot"}, "space": SPACE,
            "strategy": {"name": "metanas", **{**TINY, **strategy}}}


def test_temperature_schedule() -> None:
    assert temperature(0, 5, 1.0, 0.05) == 1.0
    assert temperature(4, 5, 1.0, 0.05) == pytest.approx(0.05)
    assert temperature(9, 5, 1.0, 0.05) == pytest.approx(0.05)  # capped at S - 1
    assert temperature(2, 5, 1.0, 0.05) == pytest.approx(1.0 - 2 * 0.95 / 4)
    assert temperature(3, 1, 1.0, 0.05) == 1.0


def _alphas(pairwise: bool = True) -> Alphas:
    node_edges = [[0, 1], [2, 3, 4]]
    return Alphas(("normal", "reduce"), 5, ("max_pool_3x3", "skip_connect", "conv_3x3"),
                  node_edges, pairwise=pairwise, generator=torch.Generator().manual_seed(0))


def test_pairwise_edge_weights_sum_the_pairs() -> None:
    a = _alphas()
    with torch.no_grad():
        a.pairs["normal"].copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    e = a.edge_weights("normal")
    assert e is not None
    q = e.detach()
    p1 = torch.softmax(torch.tensor([1.0, 2.0, 3.0]), 0)  # node 1: pairs (2,3), (2,4), (3,4)
    assert q[0] == pytest.approx(1.0) and q[1] == pytest.approx(1.0)  # node 0: one pair
    assert q[2] == pytest.approx(float(p1[0] + p1[1]))
    assert q[4] == pytest.approx(float(p1[1] + p1[2]))
    assert float(q[2:].sum()) == pytest.approx(2.0)  # exactly two inputs in expectation


def test_temperature_sharpens_weights() -> None:
    a = _alphas()
    with torch.no_grad():
        a.logits["normal"][0] = torch.tensor([0.0, 0.1, 0.2])
    soft = a.weights("normal")[0].max().item()
    a.temperature = 0.05
    assert a.weights("normal")[0].max().item() > soft + 0.3


def test_both_prune_thresholds() -> None:
    a = _alphas()
    with torch.no_grad():
        a.logits["normal"][0] = torch.tensor([0.0, -1.0, 0.5])
    # forward threshold: the op at weight <= threshold is not run (but keeps its logit)
    a.prune_threshold = 0.2
    w = a.weights("normal")[0]
    assert w[1] < 0.2 and 1 not in a.active("normal")[0] and 0 in a.active("normal")[0]
    a.prune_threshold = 0.0
    assert a.active("normal")[0] == [0, 1, 2]
    # meta-model threshold at t_min: aggressive; the best op always survives
    n = prune_alphas(a, t_min=0.05, threshold=0.01)
    assert n > 0 and a.mask("normal")[0].tolist() == [False, False, True]
    assert a.weights("normal")[0].tolist() == [0.0, 0.0, 1.0]
    assert int(a.pair_mask("normal").sum()) >= 2  # one pair per node at least


def test_pairwise_discretisation() -> None:
    ops = ("max_pool_3x3", "skip_connect", "conv_3x3")
    w = np.zeros((5, 3))
    w[0, 2] = w[1, 0] = w[2, 1] = w[3, 0] = w[4, 2] = 1.0
    pairs = [np.array([1.0]), np.array([0.1, 0.7, 0.2])]  # node 1 picks pair (2, 4)
    g = discretize_pairwise({"normal": w, "reduce": w}, {"normal": pairs, "reduce": pairs},
                            [[(0, 1)], [(2, 3), (2, 4), (3, 4)]], ops, 2)
    assert g.normal == (("conv_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 0),
                        ("conv_3x3", 2))
    assert g.normal_concat == (2, 3)


def test_reptile_update_moves_only_touched() -> None:
    p = {"a": torch.zeros(2), "b": torch.zeros(2)}
    tasks = [{"a": torch.ones(2), "b": torch.ones(2)}, {"a": 3 * torch.ones(2),
                                                        "b": torch.ones(2)}]
    moved = reptile_update(p, tasks, {"a"}, lr=0.5)
    assert moved == ["a"] and p["a"].tolist() == [1.0, 1.0] and p["b"].tolist() == [0.0, 0.0]


@pytest.fixture(scope="module")
def parts():  # type: ignore[no-untyped-def]
    task = TASKS.get("digits_rot")().load()
    space = SPACES.get("darts")(**{k: v for k, v in SPACE.items() if k != "name"})
    return task, space


class _Ctx:
    def __init__(self, task: Any, space: Any) -> None:
        self.task, self.space, self.device = task, space, torch.device("cpu")
        self.executor = LocalExecutor(workers=1, threads_per_worker=1)

    def records(self) -> list[Any]:
        return []


def _strategy(parts: Any, **kw: Any) -> MetaNAS:
    s = MetaNAS(seed=0, **{**TINY, **kw})
    s.setup(_Ctx(*parts))  # type: ignore[arg-type]
    s.fresh()
    return s


@pytest.mark.parametrize("preset", ["reference", "default"])
def test_meta_step_moves_weights_and_alphas(parts: Any, preset: str) -> None:
    """Q2: after one meta-step (past warm-up) weights and alphas moved; weights of ops that
    the forward threshold pruned everywhere did not."""
    s = _strategy(parts, preset=preset, warm_up_epochs=0, eval_freq=100)
    m = s.model
    assert m.alphas is not None
    with torch.no_grad():  # make conv_3x3 negligible on every edge: it is never run
        k = s.spec.ops.index("conv_3x3")
        for g in ("normal", "reduce"):
            m.alphas.logits[g][:, k] = -20.0
    w0 = {n: q.detach().clone() for n, q in m.net.named_parameters()}
    a0 = {n: q.detach().clone() for n, q in m.alphas.named_parameters()}
    rec, _ = s.train_epoch(None, 0)  # type: ignore[arg-type]
    assert rec is None
    moved = [n for n, q in m.net.named_parameters() if not torch.equal(q, w0[n])]
    assert len(moved) > 10
    assert all(not torch.equal(q, a0[n]) for n, q in m.alphas.named_parameters())
    pruned = [n for n in w0 if ".ops.conv_3x3." in n]
    assert pruned and not set(pruned) & set(moved)
    assert (s.frozen is not None) == (preset == "reference")


def test_frozen_copy_stays_frozen(parts: Any) -> None:
    s = _strategy(parts, preset="reference", warm_up_epochs=0, eval_freq=100)
    assert s.frozen is not None
    f0 = {k: v.clone() for k, v in s.frozen[1].state_dict().items()}
    s.train_epoch(None, 0)  # type: ignore[arg-type]
    assert all(torch.equal(v, f0[k]) for k, v in s.frozen[1].state_dict().items())


def test_aux_skip_schedules(parts: Any) -> None:
    """DARTS- beta per inner step: linear 1 -> 0 over each phase (default), 0 (reference, Q3),
    constant (fixed:0.7); the meta-test phase has its own horizon."""
    seen: list[float] = []
    s = _strategy(parts, darts_minus=True, warm_up_epochs=0, eval_freq=100)
    hook = s.hooks[0]
    orig = hook.on_batch

    def spy(state: Any, step: int, total: int) -> None:
        orig(state, step, total)
        seen.append(state.aux_beta)

    hook.on_batch = spy  # type: ignore[method-assign]
    s.run_task("train", 0, steps=2, arch_steps=2, batch_size=4, train=True)
    assert seen == [1.0, 0.0]
    seen.clear()
    s.run_task("test", 0, steps=3, arch_steps=3, batch_size=4, train=False)
    assert seen == [1.0, 0.5, 0.0]
    ref = _strategy(parts, darts_minus=True, preset="reference")
    fixed = _strategy(parts, darts_minus=True, aux_skip_beta="fixed:0.7")
    for strat, want in ((ref, 0.0), (fixed, 0.7)):
        strat.hooks[0].on_batch(strat.model.fstate, 1, 5)
        assert strat.model.fstate.aux_beta == want


def test_sharp_anneals_meta_lrs(parts: Any) -> None:
    s = _strategy(parts, sharp={}, meta_epochs=10, warm_up_epochs=3)
    w0, a0 = s.meta_lrs(0)
    w5, a5 = s.meta_lrs(5)
    assert w0 == 1.0 and a0 == pytest.approx(0.6) and a5 < a0 and w5 < 1.0
    assert s.model.fstate.weighting == "max_w"


def test_bad_params() -> None:
    with pytest.raises(ValueError, match="aux_skip_beta"):
        MetaNAS(aux_skip_beta="sometimes")


@pytest.mark.parametrize(("kw", "msg"), [
    ({"n_way": 500}, "n_way=500 exceeds the"),
    ({"k_shot": 1, "q_query": 10_000}, "q_query"),
    ({"train_shots": 10_000}, r"train_shots \+ q_query = \d+ exceeds"),
])
def test_episode_sizes_checked_before_anything_is_written(
    tmp_path: Path, kw: dict[str, Any], msg: str
) -> None:
    from nasforge.search import search

    with pytest.raises(NasforgeError, match=msg):
        search(config(**kw), run_dir=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nasforge.search import search

    out = tmp_path_factory.mktemp("metanas") / "run"
    cfg = config(meta_epochs=6, eval_freq=3, warm_up_epochs=2, eval_tasks=20,
                 test_task_train_steps=6, meta_batch_size=2, task_train_steps=3)
    search(cfg, run_dir=out, progress=False)
    return out


def test_tiny_run_beats_chance(tiny_run: Path) -> None:
    from nasforge.run import Run

    run = Run(tiny_run)
    final = run.final
    assert final is not None and final.extra["final_eval_tasks"] == 20
    assert final.test_acc is not None and final.test_acc > 1 / 3 + 0.1  # 3-way: chance 1/3
    assert len(run.trials) == 2 and len(run.series("alphas")) == 6
    assert [t.result.epochs for t in run.trials] == [3, 6]
    ext = final.extra
    assert math.isfinite(ext["test_ci95"]) and ext["sparse_params"] <= ext["dense_params"]
    assert (tiny_run / "best_model.pt").is_file()


def test_export_load_adapt(tiny_run: Path, tmp_path: Path, parts: Any) -> None:
    import json

    import nasforge
    from nasforge.data.fewshot import EpisodeSampler
    from nasforge.run import export
    from nasforge.strategies.oneshot.metanas import MetaModel

    out = export(tiny_run, tmp_path / "exp")
    doc = json.loads((out / "architecture.json").read_text())
    assert doc["genotype"].startswith("normal:") and doc["sparse_params"] > 0
    model = nasforge.load(out)
    assert isinstance(model, MetaModel)
    ep = EpisodeSampler(parts[0].test, n_way=3, k_shot=1, q_query=3, seed=5,
                        name="test").episode(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = model.adapt(ep.support_x, ep.support_y, steps=5, batch_size=3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in adapted.state_dict().items())
    assert adapted.predict(ep.query_x).shape == (9,)
    with pytest.raises(ValueError, match=r"support labels must be 0..2 \(the model is 3-way\)"):
        model.adapt(ep.support_x, ep.support_y + 3, steps=1)


def _state(s: MetaNAS) -> list[torch.Tensor]:
    out = [v.clone() for v in s.model.net.state_dict().values()]
    assert s.model.alphas is not None
    out += [v.clone() for v in s.model.alphas.state_dict().values()]
    for o in (s.w_opt, s.a_opt):
        assert o is not None
        out += [t.clone() for st in o.state_dict()["state"].values() for t in st.values()]
    return out


def _epochs(s: MetaNAS, parts: Any, first: int, last: int) -> list[Any]:
    """Meta-epochs ``first..last-1`` as the one-shot loop runs them; their records."""
    recs = []
    for e in range(first, last):
        s.before_epoch(e)
        recs.append(s.train_epoch(_Ctx(*parts), e)[0])  # type: ignore[arg-type]
    return recs


PDARTS: dict[str, Any] = {"stages": 2, "keep": [3], "layers": [2, 3],
                          "skip_dropout": [0.2, 0.4]}


@pytest.mark.parametrize(("preset", "extra"), [
    ("default", {}), ("reference", {}), ("reference", {"pdarts": PDARTS}),
    ("default", {"pdarts": {**PDARTS, "reset_alphas": False}, "parallel_tasks": True}),
])
def test_resume_is_exact(parts: Any, preset: str, extra: dict[str, Any]) -> None:
    """Checkpoint after meta-epoch 1 (through the torch.save / weights-only codec), restore
    into a new strategy, continue: identical to the uninterrupted run (meta state, optimiser
    states, pruning masks, frozen copy, evaluation counter). With P-DARTS the restored run
    starts at the stage boundary (top-k masks, a deeper supernet, the frozen copy re-made)."""
    from nasforge.strategies.oneshot.base import decode_checkpoint, encode_checkpoint

    kw = dict(preset=preset, meta_epochs=4, warm_up_epochs=1, eval_freq=2, darts_minus=True,
              **extra)
    a = _strategy(parts, **kw)
    _epochs(a, parts, 0, 4)
    b = _strategy(parts, **kw)
    _epochs(b, parts, 0, 2)
    blob = encode_checkpoint(b.checkpoint(1))
    c = MetaNAS(seed=0, **{**TINY, **kw})
    c.setup(_Ctx(*parts))  # type: ignore[arg-type]
    start = c.restore(decode_checkpoint(blob))
    assert start == 2 and c.evals == 1
    _epochs(c, parts, start, 4)
    assert c.evals == a.evals == 2 and c.last_test == a.last_test
    assert all(torch.equal(x, y) for x, y in zip(_state(a), _state(c), strict=True))
    if "pdarts" in extra:
        assert a.stage == c.stage == 1 and len(c.model.net.cells) == 3
        assert c.model.alphas is not None
        assert all(int(r.sum()) <= 3 for g in ("normal", "reduce")
                   for r in c.model.alphas.mask(g))


@pytest.mark.parametrize("kw", [{"tse": {}}, {"pc": {"k": 2}}, {"model": "conv4"},
                                {"darts_minus": True, "sharp": {}}])
def test_variants_take_a_meta_step(parts: Any, kw: dict[str, Any]) -> None:
    """TSE-DARTS, PC-DARTS, the Conv-4 Reptile baseline and combinations run a meta-step
    that moves the weights (and the alphas where there are any)."""
    s = _strategy(parts, warm_up_epochs=0, eval_freq=1, test_meta_batch_size=1,
                  test_task_train_steps=2, **kw)
    w0 = [q.detach().clone() for q in s.model.net.parameters()]
    a0 = [] if s.model.alphas is None else [q.detach().clone()
                                            for q in s.model.alphas.parameters()]

    rec, series = s.train_epoch(_Ctx(*parts), 0)  # type: ignore[arg-type]
    assert rec is not None and 0.0 <= rec.val_acc <= 1.0
    assert any(not torch.equal(q, w) for q, w in zip(s.model.net.parameters(), w0))
    if s.model.alphas is not None:
        assert all(not torch.equal(q, a) for q, a in zip(s.model.alphas.parameters(), a0))


# ----------------------------------------------------------------- P-DARTS in the meta setting
def test_pdarts_stages_over_meta_epochs(parts: Any) -> None:
    """Stages split the meta-epochs; at the boundary every edge keeps its top-k ops and the
    supernet gains a cell; skip dropout follows the stage base in meta-train and is off in
    meta-test adaptation; records carry the stage and the skips the limit removed."""
    s = _strategy(parts, warm_up_epochs=0, eval_freq=2, pdarts=PDARTS)
    seen: list[tuple[bool, float]] = []
    net0 = s.model.net
    orig = s.model.inner_loop

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append((s.model.fstate.drop_path > 0, s.model.fstate.skip_dropout))
        return orig(*args, **kw)

    s.model.inner_loop = spy  # type: ignore[method-assign]
    recs = _epochs(s, parts, 0, 2)
    assert len(s.model.net.cells) == 2 and s.model.net is net0
    train = [d for tr, d in seen if tr]
    test = [d for tr, d in seen if not tr]
    r1 = pytest.approx(0.2 * math.exp(-0.2))  # stage 0 base 0.2, decayed per meta-epoch
    assert train == [0.2, 0.2, r1, r1] and test == [0.0] * 3
    assert recs[1] is not None and recs[1].result.metrics["stage"] == 0
    assert "skips_removed" in recs[1].result.metrics
    a = s.model.alphas
    assert a is not None and all(bool(r.all()) for r in a.mask("normal"))
    recs = _epochs(s, parts, 2, 4)
    assert s.stage == 1 and len(s.model.net.cells) == 3
    assert all(int(r.sum()) == 3 for g in ("normal", "reduce") for r in a.mask(g))
    assert recs[1] is not None and recs[1].result.metrics["stage"] == 1
    assert recs[0] is None
    assert s.model.fstate.skip_dropout == pytest.approx(0.4 * math.exp(-0.2))


def test_pdarts_skip_limit_on_the_pairwise_genotype(parts: Any) -> None:
    """Alphas that favour skip everywhere: without a limit every normal edge is a skip; the
    limit keeps at most ``skip_limit`` (counted on the pairwise genotype) and reports the rest
    as removed."""
    for limit, want in ((None, 4), (1, 1), (0, 0)):
        s = _strategy(parts, pdarts={"stages": 1, "skip_limit": limit})
        a = s.model.alphas
        assert a is not None
        with torch.no_grad():
            a.logits["normal"][:, s.spec.ops.index("skip_connect")] = 5.0
        arch, removed = s._derive()
        assert s.spec.skip_count(arch) == want and removed == 4 - want
        assert s.derive() == arch


@pytest.mark.parametrize(("kw", "msg"), [
    ({"pdarts": {"stages": 5}}, "pdarts.stages (5) exceeds meta_epochs (4); allowed: 1 to 4"),
    ({"pdarts": {"stages": 2, "layers": [2, 3, 4]}}, "pdarts.layers needs 2 values"),
    ({"pdarts": {"stages": 3, "keep": [5]}}, "pdarts.keep needs 2 values"),
    ({"pdarts": {"stages": 2, "skip_dropout": [0.1]}}, "pdarts.skip_dropout needs 2 values"),
    ({"pdarts": {}, "model": "conv4"}, "model conv4 has none"),
    ({"parallel_tasks": True, "preopt": "random"}, "parallel_tasks with preopt 'random'"),
])
def test_bad_stage_plans_are_one_line_config_errors(
    tmp_path: Path, kw: dict[str, Any], msg: str
) -> None:
    from nasforge.search import search

    with pytest.raises(ConfigError, match=re.escape(msg)) as err:
        search(config(**kw), run_dir=tmp_path / "bad", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------ executor-parallel meta-batches
def test_merge_adam_states_means_moments_over_tasks() -> None:
    def st(v: float, step: float, keys: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
        return {"state": {k: {"step": torch.tensor(step), "exp_avg": torch.full((2,), v),
                              "exp_avg_sq": torch.full((2,), v * v)} for k in keys},
                "param_groups": [{"lr": 0.1, "params": [0, 1]}]}

    out = merge_adam_states([st(1.0, 3.0), st(3.0, 3.0), st(5.0, 4.0, keys=(0,))])
    assert out["state"][0]["exp_avg"].tolist() == [3.0, 3.0]
    assert out["state"][0]["exp_avg_sq"].tolist() == pytest.approx([35 / 3] * 2)
    assert float(out["state"][0]["step"]) == 4.0
    assert out["state"][1]["exp_avg"].tolist() == [2.0, 2.0]  # only the tasks that hold it
    assert out["param_groups"] == [{"lr": 0.1, "params": [0, 1]}]
    with pytest.raises(ValueError):
        merge_adam_states([])


def test_parallel_single_task_equals_serial(parts: Any) -> None:
    """A meta-batch of one task: the parallel path (a job on a copy of the strategy's state,
    its optimiser state carried back) reproduces the serial run exactly."""
    kw = dict(meta_batch_size=1, test_meta_batch_size=1, warm_up_epochs=1, eval_freq=2,
              darts_minus=True)
    a = _strategy(parts, **kw)
    b = _strategy(parts, parallel_tasks=True, **kw)
    ra, rb = _epochs(a, parts, 0, 3), _epochs(b, parts, 0, 3)
    assert all(torch.equal(x, y) for x, y in zip(_state(a), _state(b), strict=True))
    assert ra[1] is not None and rb[1] is not None and ra[1].val_acc == rb[1].val_acc


def _untimed(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if "second" not in k}


def test_parallel_tasks_same_with_one_or_two_workers(tmp_path: Path) -> None:
    """``parallel_tasks`` through the local executor: 1 worker (in the driver) and 2 worker
    processes store the same trials, series and meta state (weights, alphas, both Adam
    states)."""
    import sqlite3

    import nasforge
    from nasforge.strategies.oneshot.base import decode_checkpoint

    runs = []
    for w in (1, 2):
        cfg = {**config(f"par{w}", parallel_tasks=True, meta_epochs=2, eval_freq=2,
                        warm_up_epochs=1, eval_tasks=4, pdarts={"stages": 2, "keep": [4]}),
               "executor": {"name": "local", "workers": w, "threads_per_worker": 1}}
        runs.append(nasforge.search(cfg, run_dir=tmp_path / f"w{w}", progress=False))
    a, b = (r.trials for r in runs)
    assert len(a) == len(b) == 1
    assert [_untimed(r.result.metrics) for r in a] == [_untimed(r.result.metrics) for r in b]
    assert [r.arch for r in a] == [r.arch for r in b] and a[0].val_acc == b[0].val_acc
    assert runs[0].final is not None and runs[1].final is not None
    assert runs[0].final.test_acc == runs[1].final.test_acc
    states = []
    for w in (1, 2):
        con = sqlite3.connect(tmp_path / f"w{w}" / "run.sqlite")
        (blob,) = con.execute("SELECT blob FROM state WHERE key = 'metanas'").fetchone()
        con.close()
        states.append(decode_checkpoint(blob))
    sa, sb = states
    for key in ("net", "alphas"):
        assert all(torch.equal(sa[key][k], sb[key][k]) for k in sa[key])
    for key in ("w_opt", "a_opt"):
        oa, ob = sa[key]["state"], sb[key]["state"]
        assert oa.keys() == ob.keys() and all(
            torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])


def _opt_fingerprint(s: MetaNAS) -> list[float]:
    return [float(t.double().sum()) for o in s._opts()
            for st in o.state_dict()["state"].values() for t in st.values()]


@pytest.mark.parametrize(("split", "independent"), [("final", True), ("test", False)])
def test_final_eval_tasks_start_from_the_same_optimiser_state(
    parts: Any, monkeypatch: pytest.MonkeyPatch, split: str, independent: bool
) -> None:
    """The final evaluation restores the inner optimiser states after every task (the
    reference's ``evaluate``), so each task adapts from the meta state and the same optimiser
    state; the periodic meta-test carries them from task to task (the reference's meta-test).
    Either way they are back to their start afterwards."""
    s = _strategy(parts, warm_up_epochs=0, eval_freq=100)
    _epochs(s, parts, 0, 1)  # some optimiser state to carry
    seen: list[list[float]] = []
    run = s.run_task

    def spy(*a: Any, **kw: Any) -> Any:
        seen.append(_opt_fingerprint(s))
        return run(*a, **kw)

    monkeypatch.setattr(s, "run_task", spy)
    before = _opt_fingerprint(s)
    accs = s.meta_test(split, 0, 3, s.p.meta_epochs)
    assert len(accs) == 3 and _opt_fingerprint(s) == before
    assert (seen == [before] * 3) is independent
    if independent:  # a task's accuracy does not depend on the tasks evaluated before it
        assert s.meta_test(split, 2, 1, s.p.meta_epochs) == accs[2:]
