"""PBT-NAS operators: gene mixing, layer transfer, shrink-perturb, selection, optimiser state."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.evaluators.pbt import seeded_build
from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.spaces.base import Architecture
from nasforge.spaces.genes import GeneACSpace, GeneCNNSpace, owned_by
from nasforge.strategies.pbt import operators as ops


def test_mix_genes_takes_donor_with_probability_and_reports_equal_values() -> None:
    base = ("a",) * 8
    donor = ("a", "b") * 4  # genes 0, 2, 4, 6 are equal in both parents
    child, replaced = ops.mix_genes(base, donor, 0.25, np.random.default_rng(3))
    mask = np.random.default_rng(3).random(8) < 0.25  # the same draws, computed independently
    assert replaced == [int(i) for i in np.flatnonzero(mask)]
    assert child == tuple(donor[i] if mask[i] else base[i] for i in range(8))
    # over many children, a gene comes from the donor about 25 % of the time (equal values too)
    rng = np.random.default_rng(0)
    counts = np.zeros(8)
    for _ in range(2000):
        _, rep = ops.mix_genes(base, donor, 0.25, rng)
        counts[rep] += 1
    assert np.all(np.abs(counts / 2000 - 0.25) < 0.04)
    assert counts[0] > 0  # an equal-valued gene is still "replaced" (its weights move)


def test_owned_by_is_exact_prefix_match() -> None:
    assert owned_by("cells.1.op.weight", ["cells.1"])
    assert not owned_by("cells.10.op.weight", ["cells.1"])  # quirk P2: no substring match
    assert owned_by("cells.1", ["cells.1"])


def test_shrink_perturb_formula_and_integer_buffers() -> None:
    g = torch.Generator().manual_seed(0)
    w, f = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.allclose(ops.shrink_perturb(w, f, 0.4, 0.1), 0.4 * w + 0.1 * f)
    assert torch.equal(ops.shrink_perturb(w, f, 1.0, 0.0), w)
    assert torch.equal(ops.shrink_perturb(w, f, 0.0, 1.0), f)
    n = torch.tensor(7)
    assert torch.equal(ops.shrink_perturb(n, torch.tensor(0), 0.4, 0.1), n)


def _state(space: GeneCNNSpace, tokens: tuple[str, ...], seed: int) -> dict[str, torch.Tensor]:
    def build(a: Architecture) -> torch.nn.Module:
        return space.build(a, (1, 8, 8), 10)

    model = seeded_build(build, Architecture(tokens), seed)
    with torch.no_grad():  # make running stats and counters differ from a fresh net
        for buf in model.buffers():
            buf.add_(seed + 1 if not buf.is_floating_point() else 0.5 * (seed + 1))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("lam,gamma", [(0.4, 0.1), (1.0, 0.0), (0.0, 1.0)])
def test_transfer_copies_exactly_the_donor_layers(lam: float, gamma: float) -> None:
    space = GeneCNNSpace(channels=4, num_layers=3, reduce_after=[0])
    base_t = ("conv3", "relu", "skip", "tanh", "sep3", "relu")
    donor_t = ("conv5", "id", "dil3", "relu", "sep3", "swish")
    base, donor = _state(space, base_t, 1), _state(space, donor_t, 2)
    # genes 0 (cell0.op), 4 (cell2.op, equal values) and 5 (cell2.act) come from the donor
    child_t = (donor_t[0], base_t[1], base_t[2], base_t[3], donor_t[4], donor_t[5])
    replaced = [0, 4, 5]
    prefixes = [p for k in replaced for p in space.gene_prefixes(k)]
    assert prefixes == ["cells.0", "cells.2"]
    fresh = _state(space, child_t, 9)
    child = ops.transfer_weights(base, donor, fresh, prefixes, lam, gamma)
    assert set(child) == set(fresh)
    moved = 0
    for name, t in child.items():
        if name.startswith(("cells.0.", "cells.2.")):
            if t.is_floating_point():
                assert torch.equal(t, lam * donor[name] + gamma * fresh[name]), name
            else:
                assert torch.equal(t, donor[name]), name  # BN counter copied as is
            moved += 1
        else:
            assert torch.equal(t, base[name]), name  # stem, cell1 and head: the base's
    assert moved >= 6  # conv5 + BN (cell0) and sep3 dw/pw + BN (cell2)
    child_model = space.build(Architecture(child_t), (1, 8, 8), 10)
    child_model.load_state_dict(child)  # shapes fit the child architecture


def test_a_layer_neither_parent_has_starts_fresh_and_one_parent_has_is_inherited() -> None:
    """Layers that exist only through another gene's value (a GAN block's downsampling layers
    and its down flag): the parent that has the layer gives it, else it is the fresh one."""
    space = GeneCNNSpace(channels=4, num_layers=2)
    base = _state(space, ("conv3", "relu", "conv3", "relu"), 0)
    donor = _state(space, ("conv3", "relu", "conv5", "relu"), 2)
    fresh = _state(space, ("conv5", "relu", "conv5", "relu"), 1)
    child = ops.transfer_weights(base, base, fresh, ["cells.0"], 0.4, 0.1)
    missing = [k for k in fresh if k not in base or base[k].shape != fresh[k].shape]
    assert missing and any(k.startswith("cells.0.") for k in missing)
    for name in missing:  # cell 0's conv5 (owned, the donor lacks it), cell 1's conv5: fresh
        assert torch.equal(child[name], fresh[name]), name
    # not owned, missing in the base, present in the donor: the donor's, unchanged
    child = ops.transfer_weights(base, donor, fresh, ["cells.0"], 0.4, 0.1)
    for name in fresh:
        if name.startswith("cells.1.") and name not in base:
            assert torch.equal(child[name], donor[name]), name


def test_select_replaces_exactly_the_bottom_quarter() -> None:
    fit = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6]
    parents, replaced = ops.select(fit)
    assert sorted(replaced) == [2, 6]  # the two worst of 8 (tau = 25 %)
    assert parents == [1, 5]  # top int(0.25 * 8) = 2
    fit12 = list(np.linspace(0, 1, 12))
    parents, replaced = ops.select(fit12)
    assert sorted(replaced) == [0, 1, 2] and sorted(parents) == [9, 10, 11]
    # NaN (a failed member) ranks last; ties keep the lower index first
    parents, replaced = ops.select([0.5, math.nan, 0.5, 0.9])
    assert replaced == [1] and parents == [3, 0]


def test_stratified_population_covers_every_option() -> None:
    opts = [("a", "b", "c"), ("x", "y"), tuple("pqrstuvwxyz")]
    pop = ops.stratified_population(opts, 8, np.random.default_rng(0))
    assert len(pop) == 8
    for g, o in enumerate(opts):
        col = [m[g] for m in pop]
        for v in o:
            assert col.count(v) >= 8 // len(o)


def test_child_optimizer_state_by_name_and_positional() -> None:
    base = {"a.w": {"exp_avg": torch.ones(2, 2)}, "b.w": {"exp_avg": torch.ones(3)},
            "c.w": {"exp_avg": torch.ones(4)}}
    shapes = {"a.w": (2, 2), "b.w": (5,), "c.w": (4,)}
    by_name = ops.child_optimizer_state(base, [], [], shapes, ["b"], "by_name")
    assert set(by_name) == {"a.w", "c.w"}
    pos = ops.child_optimizer_state(base, ["a.w", "b.w", "c.w"], ["a.w", "b.w", "c.w"], shapes,
                                    ["b"], "positional")
    assert set(pos) == {"a.w", "c.w"}  # b.w dropped: shape mismatch
    pos = ops.child_optimizer_state(base, ["a.w", "b.w", "c.w"], ["a.w", "c.w"], shapes, [],
                                    "positional")
    assert pos == {}  # parameter count changed: the whole optimiser starts fresh


def test_greedy_soup_adds_only_helpful_members() -> None:
    states = [{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}, {"w": torch.tensor([-9.0])}]

    def score(s: dict[str, torch.Tensor]) -> float:
        return -abs(float(s["w"]) - 2.0)

    soup, chosen, best = ops.greedy_soup(states, [score(s) for s in states], score)
    assert chosen == [0, 1] and float(soup["w"]) == 2.0 and best == 0.0


def test_gene_spaces_validate_and_build() -> None:
    space = GeneACSpace(hidden=8, num_layers=2)
    arch = space.sample(np.random.default_rng(0))
    assert space.validate(arch) is arch
    model = space.build(arch, (6,), 3)
    assert model(torch.zeros(4, 6)).shape == (4, 3)
    with pytest.raises(InvalidArchitecture, match="allowed"):
        space.validate(Architecture(("bogus",) + arch.tokens[1:]))
    with pytest.raises(ConfigError, match="allowed"):
        GeneCNNSpace(ops=["conv3", "conv7"])
    cnn = GeneCNNSpace(channels=4, num_layers=2)
    assert cnn.size() == (8 * 4) ** 2
    for a in [cnn.sample(np.random.default_rng(i)) for i in range(5)]:
        assert cnn.build(a, (1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def _square_or_die(marker: str, x: int) -> int:
    import os
    import signal

    try:
        os.unlink(marker)  # the first job to claim the marker kills its worker
    except FileNotFoundError:
        return x * x
    os.kill(os.getpid(), signal.SIGKILL)
    return -1


def test_local_job_pool_reruns_the_jobs_of_a_dead_worker(tmp_path: Path) -> None:
    from nasforge.executors.pool import JobPool

    marker = tmp_path / "kill"
    marker.write_text("x")
    pool = JobPool(workers=2, threads=1, start_method="fork")  # fork: no re-imports, fast
    try:
        got = dict(pool.map_jobs(_square_or_die, str(marker), [1, 2, 3]))
    finally:
        pool.close()
    assert got == {0: 1, 1: 4, 2: 9} and pool.restarts == 1 and not marker.exists()
