"""MetaNAS: temperature, pruning, pairwise discretisation, Reptile (Q2), presets, a tiny run
above chance, resume, and the regularizer schedules in meta-train vs meta-test."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nasforge.data.base import TASKS
from nasforge.exceptions import NasforgeError
from nasforge.spaces import SPACES
from nasforge.spaces.darts.supernet import Alphas
from nasforge.strategies.oneshot.metanas import (
    MetaNAS,
    discretize_pairwise,
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


def _state(s: MetaNAS) -> list[torch.Tensor]:
    out = [v.clone() for v in s.model.net.state_dict().values()]
    assert s.model.alphas is not None
    out += [v.clone() for v in s.model.alphas.state_dict().values()]
    for o in (s.w_opt, s.a_opt):
        assert o is not None
        out += [t.clone() for st in o.state_dict()["state"].values() for t in st.values()]
    return out


@pytest.mark.parametrize("preset", ["default", "reference"])
def test_resume_is_exact(parts: Any, preset: str) -> None:
    """Checkpoint after meta-epoch 1 (through the torch.save / weights-only codec), restore
    into a new strategy, continue: identical to the uninterrupted run (meta state, optimiser
    states, pruning masks, frozen copy, evaluation counter)."""
    from nasforge.strategies.oneshot.base import decode_checkpoint, encode_checkpoint

    kw = dict(preset=preset, meta_epochs=4, warm_up_epochs=1, eval_freq=2, darts_minus=True)

    class Ctx(_Ctx):
        def records(self) -> list[Any]:
            return []

    a = _strategy(parts, **kw)
    for e in range(4):
        a.train_epoch(Ctx(*parts), e)  # type: ignore[arg-type]
    b = _strategy(parts, **kw)
    for e in range(2):
        b.train_epoch(Ctx(*parts), e)  # type: ignore[arg-type]
    blob = encode_checkpoint(b.checkpoint(1))
    c = MetaNAS(seed=0, **{**TINY, **kw})
    c.setup(_Ctx(*parts))  # type: ignore[arg-type]
    start = c.restore(decode_checkpoint(blob))
    assert start == 2 and c.evals == 1
    for e in range(start, 4):
        c.train_epoch(Ctx(*parts), e)  # type: ignore[arg-type]
    assert c.evals == a.evals == 2 and c.last_test == a.last_test
    assert all(torch.equal(x, y) for x, y in zip(_state(a), _state(c), strict=True))


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

    class Ctx(_Ctx):
        def records(self) -> list[Any]:
            return []

    rec, series = s.train_epoch(Ctx(*parts), 0)  # type: ignore[arg-type]
    assert rec is not None and 0.0 <= rec.val_acc <= 1.0
    assert any(not torch.equal(q, w) for q, w in zip(s.model.net.parameters(), w0))
    if s.model.alphas is not None:
        assert all(not torch.equal(q, a) for q, a in zip(s.model.alphas.parameters(), a0))
