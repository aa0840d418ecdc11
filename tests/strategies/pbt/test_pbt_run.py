"""PBT-NAS end to end on tiny budgets: exploit, stored lineage, finalize, resume after a kill."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nasforge.data.base import make_task
from nasforge.evaluators.pbt import PBTClassifierTrainer, seeded_build
from nasforge.run import Run, export, load
from nasforge.search import search
from nasforge.spaces.base import Architecture
from nasforge.spaces.genes import GeneCNNSpace, owned_by
from nasforge.strategies.pbt.pbt_nas import PBTNAS, Member, PBTState
from nasforge.viz.pbt import fitness_info, lineage_info


def tiny_cfg(**strategy: Any) -> dict[str, Any]:
    return {
        "name": "pbt_tiny", "seed": 3, "budget": 12,
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "gene_cnn", "channels": 4, "num_layers": 2, "reduce_after": [0]},
        "strategy": {"name": "pbt_nas", "population_size": 4, **strategy},
        "evaluator": {"name": "pbt_train", "lr": 0.01, "batch_size": 128},
        "executor": {"name": "local", "workers": 1},
    }


def population(run_dir: Path) -> list[tuple[int, list[Any], float]]:
    final = Run(run_dir).final
    assert final is not None
    return [(m["member"], m["arch"], m["fitness"]) for m in final.extra["population"]]


def test_exploit_replaces_bottom_members_with_mixed_children() -> None:
    space = GeneCNNSpace(channels=4, num_layers=3, reduce_after=[0])
    trainer = PBTClassifierTrainer(space=space, task=make_task({"name": "digits"}))
    strat = PBTNAS(seed=5, population_size=8, replace_prob=0.5)
    rng = np.random.default_rng(0)
    members = []
    for i in range(8):
        arch = space.sample(rng)
        ckpt = trainer.init_member(arch, 100 + i)
        ckpt["opt"] = {n: {"exp_avg": torch.full(t.shape, float(i))}
                       for n, t in ckpt["model"].items() if t.is_floating_point()}
        members.append(Member(i, i, arch.tokens, ckpt, fitness=i / 10, founders=(i,) * 6))
    state = PBTState(members=list(members), next_id=8)
    events = strat.exploit(state, 0, trainer, space)
    assert sorted(e["slot"] for e in events) == [0, 1]  # the two worst of 8
    assert [m.id for m in state.members[2:]] == [2, 3, 4, 5, 6, 7]  # survivors untouched
    for e in events:
        child = state.members[e["slot"]]
        assert {e["base"], e["donor"]} <= {6, 7} and e["base"] != e["donor"]
        assert e["base"] == 7  # the fitter parent is the base
        base, donor = members[e["base"]], members[e["donor"]]
        genes = e["genes_from_donor"]
        assert child.tokens == tuple(
            donor.tokens[k] if k in genes else base.tokens[k] for k in range(6)
        )
        prefixes = [p for k in genes for p in space.gene_prefixes(k)]
        fresh = seeded_build(trainer.build, Architecture(child.tokens),
                             strat._fresh_seed(0, e["slot"], base.slot, donor.slot)).state_dict()
        for name, t in child.ckpt["model"].items():
            if owned_by(name, prefixes) and t.is_floating_point():
                assert torch.equal(t, 0.4 * donor.ckpt["model"][name] + 0.1 * fresh[name])
            elif owned_by(name, prefixes):
                assert torch.equal(t, donor.ckpt["model"][name])
            else:
                assert torch.equal(t, base.ckpt["model"][name])
        # optimiser state (quirk P3 default): the base's, minus the replaced layers
        opt = child.ckpt["opt"]
        assert all(not owned_by(n, prefixes) for n in opt)
        assert all(float(v["exp_avg"].flatten()[0]) == 7.0 for v in opt.values())


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return search(tiny_cfg(), run_dir=tmp_path_factory.mktemp("s") / "run")


def test_pbt_search_stores_lineage_and_reports_best(straight: Run, tmp_path: Path) -> None:
    run = straight
    trials = run.trials
    assert len(trials) == 12 and all(t.ok for t in trials)
    final = run.final
    assert final is not None and final.test_acc is not None and 0.0 <= final.test_acc <= 1.0
    assert final.val_acc == max(m["fitness"] for m in final.extra["population"])
    series = run.series("pbt")
    info = fitness_info(series)
    assert info.rounds == [0, 1, 2] and sorted(info.fitness) == [0, 1, 2, 3]
    # one child (25 % of 4) after rounds 0 and 1, none after the last round; the child's slot
    # held the worst member of that round
    assert [r for r, _ in info.children] == [0, 1]
    for r, slot in info.children:
        assert info.fitness[slot][r] == min(info.fitness[s][r] for s in info.fitness)
    lin = lineage_info(series)
    assert len(lin.members) == 6 and {e.kind for e in lin.edges} <= {"base", "donor"}
    out = export(run.dir, tmp_path / "exp")
    model = load(out)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    from nasforge.viz import plot_run

    paths = plot_run(run.dir, tmp_path / "h.png")
    assert any(p.name == "h_pbt.png" and p.stat().st_size > 0 for p in paths)


def test_show_says_the_pbt_best_is_not_retrained(
    straight: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasforge.cli.main import main

    assert main(["show", str(straight.dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"validation accuracy {straight.final.val_acc:.4f}" in out
    assert "(as trained, not retrained)" in out and "retrainings" not in out
    # fitness per slot and round, and the lineage of both children (one after rounds 0 and 1)
    assert "PBT-NAS: val_acc (maximize) per slot" in out and out.count("after round") == 2
    series = straight.series("pbt")
    child = next(d for _, _, d in series if d["event"] == "child")
    assert (f"after round 0: slot {child['slot']} #{child['replaced_id']} -> #{child['id']} "
            f"(mix: base #{child['base']}, donor #{child['donor']}") in out
    assert main(["show", str(straight.dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    pbt = summary["pbt"]
    assert summary["top"][0]["val_acc"] == max(t.val_acc for t in straight.trials)
    assert pbt["rounds"] == [0, 1, 2] and len(pbt["fitness"]) == 4 and len(pbt["children"]) == 2
    assert max(v for v in pbt["fitness"][str(child["slot"])] if v is not None) <= 1.0


def test_random_mode_never_exploits(tmp_path: Path) -> None:
    run = search(tiny_cfg(mode="random"), run_dir=tmp_path / "r", budget=8)
    assert not [e for e in run.series("pbt") if e[2]["event"] == "child"]
    ids = {t.result.metrics["member"] for t in run.trials}
    assert ids == {0, 1, 2, 3}


_KILLER = """
import json, os, signal, sys
from nasforge.search import search
from nasforge.strategies.base import Callback

class Kill(Callback):
    def on_step(self, step, total, info, ctx):
        if info.get("phase") == "pbt" and step == 1:
            os.kill(os.getpid(), signal.SIGKILL)

search(json.loads(sys.argv[1]), run_dir=sys.argv[2], callbacks=[Kill()])
"""


def test_resume_after_driver_kill_continues_the_same_population(
    straight: Run, tmp_path: Path
) -> None:
    cfg = tiny_cfg()  # 3 rounds; the driver is killed after round 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _KILLER, json.dumps(cfg), str(tmp_path / "k")],
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len(Run(tmp_path / "k").trials) == 4  # round 0 was committed
    resumed = search(cfg, run_dir=tmp_path / "k", resume=True)
    def key(run: Run) -> list[tuple[Any, ...]]:
        return [(t.number, t.arch.tokens, t.val_acc, t.result.metrics["member"],
                 t.result.metrics["train_loss"]) for t in run.trials]

    assert key(resumed) == key(straight)
    assert population(tmp_path / "k") == population(straight.dir)


def test_rl_pbt_runs_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {
        "name": "rl_tiny", "seed": 1, "budget": 8,
        "space": {"name": "gene_ac", "hidden": 8, "num_layers": 2},
        "strategy": {"name": "pbt_nas", "population_size": 4, "mode": "mutation"},
        "evaluator": {"name": "pbt_rl", "env": "Acrobot-v1", "max_episode_steps": 40,
                      "frames_per_unit": 160, "n_envs": 2, "n_steps": 10, "action_repeat": 2,
                      "epochs": 1, "eval_episodes": 2, "test_episodes": 2},
    }
    run = search(cfg, run_dir=tmp_path / "rl")
    final = run.final
    assert final is not None and final.test_acc is not None and math.isfinite(final.test_acc)
    assert final.objective.name == "return" and final.objective.direction == "maximize"
    assert -40.0 <= final.extra["fitness"] <= 0.0
    assert len(run.trials) == 8
    model = load(export(run.dir, tmp_path / "exp"))
    assert model(torch.zeros(3, 6)).shape == (3, 3)
    assert list(model.predict(np.zeros((3, 6)))) == list(model(torch.zeros(3, 6)).argmax(1))
    from nasforge.cli.main import main

    assert main(["show", str(run.dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"return {final.extra['fitness']:.1f} (maximize)" in out
    assert f"test_return {final.test_acc:.1f}" in out and "accuracy" not in out


def test_bad_configs_are_config_errors(tmp_path: Path) -> None:
    from nasforge.exceptions import ConfigError

    with pytest.raises(ConfigError, match="allowed: pbt_train, pbt_rl"):
        search({**tiny_cfg(), "evaluator": {"name": "train"}}, run_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="population_size"):
        search(tiny_cfg(), run_dir=tmp_path / "b", budget=2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_mutation_children_are_valid_and_fresh_where_mutated() -> None:
    space = GeneCNNSpace(channels=4, num_layers=2, reduce_after=[0])
    trainer = PBTClassifierTrainer(space=space, task=make_task({"name": "digits"}))
    strat = PBTNAS(seed=1, population_size=4, mode="mutation")
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(4)]
    kinds = set()
    for g in range(12):
        members = [Member(i, i, a.tokens, trainer.init_member(a, i), fitness=float(i),
                          founders=(i,) * 4) for i, a in enumerate(archs)]
        state = PBTState(members=members, next_id=4)
        for e in strat.exploit(state, g, trainer, space):
            kinds.add(e["op"])
            child, base = state.members[e["slot"]], members[e["base"]]
            model = trainer.build(Architecture(child.tokens))
            model.load_state_dict(child.ckpt["model"])  # the child's tensors fit its genes
            if e["op"] == "gene":
                pre = space.gene_prefixes(e["gene"])
                fresh = seeded_build(trainer.build, Architecture(child.tokens),
                                     strat._fresh_seed(g, e["slot"], base.slot, base.slot))
                for n, t in child.ckpt["model"].items():
                    ref = fresh.state_dict()[n] if owned_by(n, pre) else base.ckpt["model"][n]
                    assert torch.equal(t, ref), n
            elif e["op"] == "copy":
                assert child.tokens == base.tokens
    assert {"gene", "weights", "copy"} <= kinds


def test_a_step_leaves_its_input_checkpoint_untouched() -> None:
    """Steps run in the driver share checkpoints with children: no tensor may be aliased (Adam
    updates its state, step counter included, in place)."""
    space = GeneCNNSpace(channels=4, num_layers=2, reduce_after=[0])
    trainer = PBTClassifierTrainer(space=space, task=make_task({"name": "digits"}))
    arch = Architecture(("conv3", "relu", "sep3", "tanh"))
    ckpt = trainer.train_step(arch, trainer.init_member(arch, 0), 1, seed=1, eval_seed=0).ckpt
    a = trainer.train_step(arch, ckpt, 1, seed=2, eval_seed=0)
    b = trainer.train_step(arch, ckpt, 1, seed=2, eval_seed=0)
    assert a.metrics["train_loss"] == b.metrics["train_loss"]
    assert all(torch.equal(a.ckpt["model"][k], b.ckpt["model"][k]) for k in a.ckpt["model"])


def test_continuous_actions_pendulum_runs_and_exports(tmp_path: Path) -> None:
    """Box actions: a Gaussian policy in [-1, 1] mapped to the torque bounds; the exported model
    returns greedy torques; the PPO loss uses the Gaussian's log-probability."""
    from nasforge.evaluators.pbt_rl import PBTRLTrainer
    from nasforge.spaces.genes import GeneACSpace

    ev = {"name": "pbt_rl", "env": "Pendulum-v1", "max_episode_steps": 30,
          "frames_per_unit": 240, "n_envs": 2, "n_steps": 20, "action_repeat": 1,
          "epochs": 2, "eval_episodes": 2, "test_episodes": 2, "gamma": 0.9}
    cfg = {"name": "pend_tiny", "seed": 2, "budget": 8,
           "space": {"name": "gene_ac", "hidden": 8, "num_layers": 2},
           "strategy": {"name": "pbt_nas", "population_size": 4}, "evaluator": ev}
    run = search(cfg, run_dir=tmp_path / "p")
    final = run.final
    assert final is not None and final.test_acc is not None and math.isfinite(final.test_acc)
    assert -16.3 * 30 <= final.extra["fitness"] <= 0.0  # 30 steps of reward in [-16.3, 0]
    out = export(run.dir, tmp_path / "exp", torch_export=True)
    model = load(out)
    obs = torch.randn(5, 3) * 4
    torque = model(obs)
    with torch.no_grad():  # the policy as a torch.export program, without nasforge
        assert torch.allclose(torch.export.load(str(out / "model.pt2")).module()(obs), torque,
                              atol=1e-5)
    assert torque.shape == (5, 1) and bool((torque.abs() <= 2.0).all())
    # predict gives the greedy torques themselves (not class indices of a 1-unit output)
    assert np.allclose(model.predict(obs.numpy()), torque.detach().numpy(), atol=1e-6)

    space = GeneACSpace(hidden=8, num_layers=2)
    params = {k: v for k, v in ev.items() if k != "name"}
    trainer = PBTRLTrainer(space=space, **params)
    arch = space.sample(np.random.default_rng(0))
    net = trainer.build(arch)
    assert net.action_scale.tolist() == [2.0] and "log_std" in dict(net.named_parameters())
    mean = torch.randn(4, 1)
    act = torch.randn(4, 1)
    logp, ent = trainer._logp_entropy(net, mean, act)
    std = float(net.log_std.detach().exp())
    ref = -((act - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(logp, ref.squeeze(1))
    h = 0.5 * math.log(2 * math.pi * math.e * std**2)  # per sample: a Gaussian's entropy
    assert ent.shape == (4,) and ent.detach().tolist() == pytest.approx([h] * 4)


def test_pbt_rl_rejects_unsupported_action_spaces() -> None:
    from nasforge.evaluators.pbt_rl import PBTRLTrainer
    from nasforge.exceptions import ConfigError
    from nasforge.spaces.genes import GeneACSpace

    with pytest.raises(ConfigError, match="cannot be made"):
        PBTRLTrainer(space=GeneACSpace(hidden=8, num_layers=1), env="NoSuchEnv-v0")


def test_actor_only_soup_keeps_the_best_members_critic(tmp_path: Path) -> None:
    """seed 004's actor-only soup: members sharing the actor genes are averaged on the policy's
    weights only; the critic stays the best member's."""
    cfg = {
        "name": "soup", "seed": 4, "budget": 12,
        "space": {"name": "gene_ac", "hidden": 8, "num_layers": 1},
        "strategy": {"name": "pbt_nas", "population_size": 4, "soup": True,
                     "soup_part": "actor", "mode": "no_mixing"},
        "evaluator": {"name": "pbt_rl", "env": "Pendulum-v1", "max_episode_steps": 20,
                      "frames_per_unit": 160, "n_envs": 2, "n_steps": 20, "epochs": 1,
                      "eval_episodes": 2, "test_episodes": 2},
    }
    run = search(cfg, run_dir=tmp_path / "s")
    final = run.final
    assert final is not None and final.extra["soup"]["part"] == "actor"
    assert final.extra["soup"]["candidates"] >= 2  # no_mixing clones: the actor genes recur
    best = torch.load(run.dir / "best_model.pt")
    from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore
    from nasforge.strategies.pbt.pbt_nas import decode_state

    with SQLiteRunStore(run.dir / DB_NAME, readonly=True) as store:
        raw = store.get_state("pbt")
    assert raw is not None
    state = decode_state(raw)  # weights-only: the stored population is tensors and plain values
    member = next(m for m in state.members if m.id == final.extra["member"])
    for name, t in member.ckpt["model"].items():
        if name.startswith("critic."):
            assert torch.equal(best[name], t), name
    from nasforge.exceptions import ConfigError

    with pytest.raises(ConfigError, match="soup_part 'actor' needs the gene_ac space"):
        search(tiny_cfg(soup=True, soup_part="actor"), run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # checked before the run directory is written


def test_mutation_pbt_clones_the_fitter_of_two_top_members() -> None:
    """As PBT-NAS picks its base: two distinct members of the top, the fitter one is cloned
    (with 4 members the top is 2, so the base is always the best member)."""
    space = GeneCNNSpace(channels=4, num_layers=2, reduce_after=[0])
    trainer = PBTClassifierTrainer(space=space, task=make_task({"name": "digits"}))
    strat = PBTNAS(seed=3, population_size=4, mode="mutation")
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(4)]
    bases = []
    for g in range(6):
        members = [Member(i, i, a.tokens, trainer.init_member(a, i), fitness=float(i),
                          founders=(i,) * 4) for i, a in enumerate(archs)]
        state = PBTState(members=members, next_id=4)
        bases += [e["base"] for e in strat.exploit(state, g, trainer, space)]
    assert bases and set(bases) == {3}


def test_a_tampered_pbt_population_is_refused_and_never_run(tmp_path: Path) -> None:
    import sqlite3

    from nasforge.exceptions import RunDirError
    from tests.reliability._helpers import malicious_pickle

    cfg = {"name": "t", "seed": 0, "budget": 4, "device": "cpu",
           "task": {"name": "digits", "seed": 0},
           "space": {"name": "gene_cnn", "channels": 4, "num_layers": 2, "reduce_after": [0]},
           "strategy": {"name": "pbt_nas", "population_size": 2},
           "evaluator": {"name": "pbt_train", "batch_size": 256}}
    run = search(cfg, run_dir=tmp_path / "r", progress=False)
    marker = tmp_path / "PWNED"
    con = sqlite3.connect(run.dir / "run.sqlite")
    con.execute("UPDATE state SET blob = ? WHERE key = 'pbt'", (malicious_pickle(marker),))
    con.commit()
    con.close()
    with pytest.raises(RunDirError, match="PBT-NAS population"):
        search(cfg, run_dir=run.dir, resume=True, budget=6, progress=False)
    assert not marker.exists()
