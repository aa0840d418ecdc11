"""The GAN member trainer: two named optimisers survive mixing correctly (P3), the EMA and
spectral-norm vectors are inherited exactly, G updates follow n_critic, bad inputs are named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from nasforge.data.base import make_task
from nasforge.evaluators.pbt import seeded_build
from nasforge.evaluators.pbt_gan import PBTGANTrainer
from nasforge.exceptions import ConfigError
from nasforge.spaces.base import Architecture
from nasforge.spaces.gan import GanHardSpace, is_sn_vector
from nasforge.spaces.genes import GeneCNNSpace, owned_by
from nasforge.strategies.pbt.pbt_nas import PBTNAS, Member, PBTState

SMALL = {"resolution": 8, "bottom": 1, "channels": 4, "df_channels": 4, "latent": 6,
         "d_blocks": 2}
FAST = {"batch_size": 16, "batches_per_unit": 4, "n_critic": 2, "fid_samples": 64,
        "feature_dim": 8, "feature_epochs": 1}


@pytest.fixture(scope="module")
def trainer() -> PBTGANTrainer:
    return PBTGANTrainer(space=GanHardSpace(**SMALL), task=make_task({"name": "digits"}), **FAST)


def _members(trainer: PBTGANTrainer, n: int) -> list[Member]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        arch = trainer.space.sample(rng)
        ck = trainer.init_member(arch, 10 + i)
        ck = trainer.train_step(arch, ck, 1, seed=i, eval_seed=0).ckpt
        # tag every optimiser moment with its member, to see where each one came from
        for st in ck["opt"].values():
            st["exp_avg"].fill_(float(i))
        out.append(Member(i, i, arch.tokens, ck, fitness=i / 10, founders=(i,) * len(arch.tokens)))
    return out


def test_a_step_keeps_both_optimisers_state_by_name(trainer: PBTGANTrainer) -> None:
    arch = trainer.space.sample(np.random.default_rng(0))
    out = trainer.train_step(arch, trainer.init_member(arch, 0), 1, seed=0, eval_seed=0)
    model = trainer.build(arch)
    gen = {n for n, p in model.named_parameters() if n.startswith("gen.")}
    dis = {n for n, p in model.named_parameters() if n.startswith("dis.")}
    # G-EMA has no optimiser state; a switched-off projection gets no gradient, hence no state
    assert dis <= set(out.ckpt["opt"]) <= gen | dis
    gen = {n for n in gen if n in out.ckpt["opt"]}
    assert {n for n in gen if ".projs." not in n} <= set(out.ckpt["opt"])
    # batches 0..3 with n_critic 2: G steps after batches 1 and 3; Adam counts them
    assert out.metrics["g_steps"] == 2 and out.ckpt["extra"]["batches"] == 4
    assert all(int(out.ckpt["opt"][n]["step"]) == 2 for n in gen)
    assert all(int(out.ckpt["opt"][n]["step"]) == 4 for n in dis)
    assert out.metrics["fid"] == -out.fitness and out.fitness < 0
    # the EMA moved towards the generator but is not equal to it
    ema = {n[len("gen_ema."):]: t for n, t in out.ckpt["model"].items()
           if n.startswith("gen_ema.")}
    g = {n[len("gen."):]: t for n, t in out.ckpt["model"].items() if n.startswith("gen.")}
    assert any(not torch.equal(ema[k], g[k]) for k in g if g[k].is_floating_point())


def test_mixing_g_and_d_keeps_both_optimisers_states_right(trainer: PBTGANTrainer) -> None:
    space = trainer.space
    members = _members(trainer, 4)
    strat = PBTNAS(seed=1, population_size=4, replace_prob=0.5)
    state = PBTState(members=list(members), next_id=4)
    events = strat.exploit(state, 0, trainer, space)
    assert len(events) == 1
    e = events[0]
    child = state.members[e["slot"]]
    base, donor = members[e["base"]], members[e["donor"]]
    genes = e["genes_from_donor"]
    prefixes = [p for k in genes for p in space.gene_prefixes(k)]
    assert any(p.startswith("gen.") for p in prefixes) and any(p.startswith("dis.") for p in
                                                               prefixes)
    fresh = seeded_build(trainer.build, Architecture(child.tokens),
                         strat._fresh_seed(0, e["slot"], base.slot, donor.slot)).state_dict()
    for name, t in child.ckpt["model"].items():
        if not owned_by(name, prefixes):
            assert torch.equal(t, base.ckpt["model"][name]), name
        elif name.startswith("gen_ema.") or is_sn_vector(name) or not t.is_floating_point():
            assert torch.equal(t, donor.ckpt["model"][name]), name  # no shrink-perturb
        else:
            assert torch.allclose(t, 0.4 * donor.ckpt["model"][name] + 0.1 * fresh[name]), name
    # both optimisers: the base's moments outside the replaced layers, none inside them
    model = trainer.build(Architecture(child.tokens))
    groups = trainer.optimizer_groups(model)
    opt = child.ckpt["opt"]
    for key in ("G", "D"):
        kept = [n for n in groups[key] if not owned_by(n, prefixes)]
        assert kept and all(float(opt[n]["exp_avg"].flatten()[0]) == base.slot for n in kept)
        assert all(n not in opt for n in groups[key] if owned_by(n, prefixes))
    # the child trains on from there: every G and D parameter has state afterwards
    out = trainer.train_step(Architecture(child.tokens), child.ckpt, 1, seed=5, eval_seed=0)
    assert set(groups["D"]) <= set(out.ckpt["opt"]) <= set(groups["G"]) | set(groups["D"])
    assert out.error is None and np.isfinite(out.fitness)


def test_positional_p3_loads_each_optimiser_by_position(trainer: PBTGANTrainer) -> None:
    members = _members(trainer, 4)
    strat = PBTNAS(seed=1, population_size=4, replace_prob=0.5, optimizer_state="positional")
    state = PBTState(members=list(members), next_id=4)
    e = strat.exploit(state, 0, trainer, trainer.space)[0]
    child = state.members[e["slot"]]
    groups = trainer.optimizer_groups(trainer.build(Architecture(child.tokens)))
    base_groups = trainer.optimizer_groups(trainer.build(Architecture(members[e["base"]].tokens)))
    for key in ("G", "D"):
        if len(groups[key]) == len(base_groups[key]):  # same count: loaded (shapes permitting)
            assert any(n in child.ckpt["opt"] for n in groups[key])
        else:  # a changed count restarts that optimiser only
            assert not any(n in child.ckpt["opt"] for n in groups[key])


def _task(name: str, **kw: Any) -> Any:
    return make_task({"name": name, **kw})


def test_bad_inputs_are_one_line_config_errors() -> None:
    digits = _task("digits")
    with pytest.raises(ConfigError, match="needs a GAN space"):
        PBTGANTrainer(space=GeneCNNSpace(), task=digits)
    with pytest.raises(ConfigError, match="needs an image task"):
        PBTGANTrainer(space=GanHardSpace(**SMALL), task=_task("moons"))
    with pytest.raises(ConfigError, match="set space.img_channels 1 and space.resolution 8"):
        PBTGANTrainer(space=GanHardSpace(), task=digits)
    with pytest.raises(ConfigError, match="features 'inception'") as err:
        PBTGANTrainer(space=GanHardSpace(**SMALL), task=digits, features="inception")
    assert "\n" not in str(err.value)
