"""PBT-NAS: population-based training with layer-wise architecture mixing and shrink-perturb.

Paper: Chebykin, Dushatskiy, Alderliesten & Bosman, "Shrink-Perturb Improves Architecture Mixing
during Population Based Training for Neural Architecture Search", ECAI 2023, arXiv:2307.15621
(seed 004, AwesomeLemon/PBT-NAS). Specification: ALGORITHMS.md section 5.

Loop (synchronous): a population of ``population_size`` members (gene vectors of a
:class:`~nasforge.spaces.genes.GeneSpace` with their weights and optimiser state) is built with
the seed's stratified initialisation. Every round, each member trains ``step_units`` units from
its checkpoint (in parallel through the executor) and is scored. Then, unless it is the last round,
members are ranked by fitness; the bottom ``1 - survive_fraction`` (tau = 25 %) are replaced by
children of two distinct parents drawn uniformly from the top ``parent_fraction``: the fitter is
the base, the other the donor; every gene independently takes the donor's value with probability
``replace_prob`` (also when the values are equal), and the layers of a replaced gene take the
donor's weights shrink-perturbed, ``w = shrink * w_donor + perturb * w_fresh`` (0.4, 0.1), where
``w_fresh`` comes from a fresh network of the child's architecture. All other layers, the
optimiser state outside the replaced layers and the trainer's extra state (RL environments) come
from the base. Children are not evaluated before the next round.

Variants (``mode``): ``mix`` (PBT-NAS), ``no_mixing`` (the donor is the base itself: the child
clones a top member and shrink-perturbs the layers of its "replaced" genes with its own weights;
ALGORITHMS.md 5.2 ablation), ``mutation`` (SEARL-like mutation PBT baseline: clone the fitter of
two distinct top members, drawn as PBT-NAS draws its pair, then with probability 1/3 each keep
it, add Gaussian weight noise, or change one random gene whose layers are freshly initialised)
and ``random`` (random-search baseline: the same initial population trained for the same budget
with no exploit/explore). Exact copy = ``shrink: 1,
perturb: 0``; re-initialise = ``shrink: 0, perturb: 1``.

Quirk decisions (ALGORITHMS.md 5.5): P2 exact prefix matching (our spaces have unambiguous
names); P3 ``optimizer_state: by_name`` (default; drop the state of replaced layers) or
``positional`` (reference); P4 ``inherit_extra: base`` (default) or ``donor`` (reference); P5
``fresh_seed: slot`` (default; seed from run seed, round and child slot) or ``reference``
(``seed*1e5 + epoch*1e3 + base*100 + donor``). P1 is the GAN space's ``d_branches``
(``spaces/gan.py``). GANs (``evaluators/pbt_gan.py``): the generator EMA and spectral-norm u/v
of a replaced layer are the donor's, copied without shrink-perturb (``inherit_exactly``); G and D
have their own optimisers (positional P3 loads each by position); a soup never averages u/v.

Deviations: budget = ``population_size x rounds`` member-steps (``budget`` in the config; a
resume may raise it); one trial Record per member per round (number ``round * P + slot``,
``val_acc`` = fitness, which is the mean return in RL). The RL schedule "mix every other interval
in the first half" is ``mix_schedule: alternate_first_half``. Networks are used without
retraining; ``finalize`` reports the best member of the final population (optionally a greedy
soup of the members sharing its architecture) and ``final.seeds`` is not used.

Fault tolerance: a member whose worker dies is re-run from its last checkpoint by the executor
(the executor's ``map_jobs``: the local worker pool or Ray). The driver
checkpoints the whole population after every round in the same transaction as that round's
records and series, so ``--resume`` after a driver kill continues the same population.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nasforge.data.base import Task
from nasforge.engine.final import FinalReport, build_report
from nasforge.evaluators.base import ReportsTestMetrics, Result
from nasforge.evaluators.pbt import Checkpoint, MemberTrainer, StepJob, member_step, seeded_build
from nasforge.exceptions import ConfigError, RunDirError
from nasforge.logging import get_logger
from nasforge.safeload import load_checkpoint
from nasforge.seeding import derive_seed, make_rng
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.gan import GAN_SPACES, is_sn_vector
from nasforge.spaces.genes import GeneACSpace, GeneSpace
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, SearchContext, Strategy
from nasforge.strategies.pbt import operators as ops

_logger = get_logger(__name__)
STATE_KEY = "pbt"
_BUFFERS = ("running_mean", "running_var", "obs_scale")
PLACEHOLDER = -1000.0  # children's fitness before they are trained (as the seed)


class PBTNASParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    population_size: int = Field(default=8, ge=2, description="members (seed: 24 GAN, 12 RL)")
    step_units: int = Field(default=1, ge=1, description="units each member trains per round")
    mode: Literal["mix", "no_mixing", "mutation", "random"] = "mix"
    shrink: float = Field(default=0.4, ge=0, description="lambda: weight of the donor's layer")
    perturb: float = Field(default=0.1, ge=0, description="gamma: weight of a fresh init")
    replace_prob: float = Field(default=0.25, ge=0, le=1, description="P(gene from donor)")
    parent_fraction: float = Field(default=0.25, gt=0, le=1, description="top share of parents")
    survive_fraction: float = Field(default=0.75, gt=0, lt=1, description="top share kept")
    mix_schedule: Literal["always", "alternate_first_half"] = "always"
    init: Literal["stratified", "uniform"] = "stratified"
    optimizer_state: Literal["by_name", "positional"] = "by_name"
    fresh_seed: Literal["slot", "reference"] = "slot"
    inherit_extra: Literal["base", "donor"] = "base"
    mutation_sigma: float = Field(default=0.1, ge=0, description="weight noise (mutation mode)")
    soup: bool = Field(default=False, description="greedy soup of the best architecture's members")
    soup_part: Literal["network", "actor", "generator"] = Field(
        default="network",
        description="network: members sharing the whole architecture, all weights averaged; "
        "actor (gene_ac only, seed 004's actor-only soup): members sharing the actor's genes, "
        "only the policy's weights averaged; generator (GAN spaces only): members sharing the "
        "generator's genes, only the EMA generator averaged",
    )


@dataclass
class Member:
    slot: int
    id: int
    tokens: tuple[Any, ...]
    ckpt: Checkpoint
    fitness: float = PLACEHOLDER
    founders: tuple[int, ...] = ()  # per gene: the initial member its layer descends from
    error: str | None = None


@dataclass
class PBTState:
    round: int = 0  # next round to train
    members: list[Member] = field(default_factory=list)
    next_id: int = 0
    pending_exploit: bool = False  # the last finished round skipped exploit only as the last
    restarts: int = 0


def encode_state(state: PBTState) -> bytes:
    """The population as tensors, numbers, strings and containers (``torch.save``), so that
    :func:`decode_state` loads it with ``weights_only=True``: a run directory runs no code."""
    doc = {
        "round": state.round, "next_id": state.next_id,
        "pending_exploit": state.pending_exploit, "restarts": state.restarts,
        "members": [
            {"slot": m.slot, "id": m.id, "tokens": list(m.tokens), "ckpt": m.ckpt,
             "fitness": m.fitness, "founders": list(m.founders), "error": m.error}
            for m in state.members
        ],
    }
    buf = io.BytesIO()
    torch.save(doc, buf)
    return buf.getvalue()


def decode_state(blob: bytes) -> PBTState:
    """A state written by :func:`encode_state`; anything else is one error line, never run."""
    doc = load_checkpoint(blob, "cpu", "the stored PBT-NAS population")
    try:
        members = [
            Member(int(m["slot"]), int(m["id"]), tuple(m["tokens"]), m["ckpt"],
                   float(m["fitness"]), tuple(m["founders"]), m["error"])
            for m in doc["members"]
        ]
        return PBTState(int(doc["round"]), members, int(doc["next_id"]),
                        bool(doc["pending_exploit"]), int(doc["restarts"]))
    except (KeyError, TypeError, ValueError) as err:
        raise RunDirError(
            f"the stored PBT-NAS population is not a nasforge state ({type(err).__name__})"
        ) from None


@STRATEGIES.register("pbt_nas")
class PBTNAS(Strategy):
    """PBT-NAS; see the module docstring."""

    phase: ClassVar[str] = "pbt"  # its own loop counts rounds (progress, plots)
    name: ClassVar[str] = "pbt_nas"
    Params: ClassVar[type[BaseModel]] = PBTNASParams

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed)
        self.p = PBTNASParams(**params)

    # ------------------------------------------------------------------------------ helpers
    def check(
        self, space: SearchSpace, evaluator: Any, budget: int, tasks: Mapping[str, Task]
    ) -> None:
        self._checked(space, evaluator)
        self._rounds_of(budget)

    def _checked(self, space: SearchSpace, evaluator: Any) -> tuple[MemberTrainer, GeneSpace]:
        if not isinstance(evaluator, MemberTrainer):
            raise ConfigError(
                f"strategy pbt_nas needs a member trainer evaluator; got "
                f"{getattr(evaluator, 'name', type(evaluator).__name__)!r}; "
                "allowed: pbt_train, pbt_rl, pbt_gan"
            )
        if not isinstance(space, GeneSpace):
            raise ConfigError(
                f"strategy pbt_nas needs a gene space; got {space.name!r}; "
                "allowed: gene_cnn, gene_mlp (feature rows), gene_ac, gan_hard, gan"
            )
        if self.p.soup:
            self._soup_part(space)
        return evaluator, space

    def _parts(self, ctx: SearchContext) -> tuple[MemberTrainer, GeneSpace]:
        return self._checked(ctx.space, ctx.evaluator)

    def _rounds_of(self, budget: int) -> int:
        n = self.p.population_size
        rounds = budget // n
        if rounds < 1:
            raise ConfigError(
                f"budget {budget} is below population_size {n}; "
                "pbt_nas needs budget = population_size x rounds"
            )
        if budget % n:
            raise ConfigError(
                f"budget {budget} is not a multiple of population_size {n}; pbt_nas needs "
                f"budget = population_size x rounds (allowed near it: {rounds * n} or "
                f"{(rounds + 1) * n})"
            )
        return rounds

    def _rounds(self, ctx: SearchContext) -> int:
        return self._rounds_of(ctx.budget)

    def _mix_now(self, g: int, rounds: int) -> bool:
        """Exploit after round ``g`` (0-based)? Never after the last round."""
        if self.p.mode == "random" or g >= rounds - 1:
            return False
        if self.p.mix_schedule == "always":
            return True
        return (g + 1) * 2 >= rounds or (g + 1) % 2 == 0

    @staticmethod
    def load_state(ctx: SearchContext) -> PBTState | None:
        raw = ctx.load_state(STATE_KEY)
        return None if raw is None else decode_state(raw)

    # --------------------------------------------------------------------------------- loop
    def run(self, ctx: SearchContext) -> None:
        trainer, space = self._parts(ctx)
        rounds = self._rounds(ctx)
        used = rounds * self.p.population_size
        if used < ctx.budget:
            _logger.warning(
                "budget %d is not a multiple of population_size %d: running %d rounds (%d "
                "member-steps); the last %d of the budget are not used", ctx.budget,
                self.p.population_size, rounds, used, ctx.budget - used,
            )
        state = self.load_state(ctx)
        if state is None:
            state = self._initial(ctx, trainer, space)
        runner = ctx.executor
        while state.round < rounds:
            g = state.round
            events: list[dict[str, Any]] = []
            if state.pending_exploit and self._mix_now(g - 1, rounds):
                events += self.exploit(state, g - 1, trainer, space)
            state.pending_exploit = False
            jobs = [
                StepJob(m.slot, m.id, m.tokens, m.ckpt, self.p.step_units,
                        derive_seed(self.seed, "step", m.id, g), self._eval_seed(g))
                for m in state.members
            ]
            outs: dict[int, Any] = {}
            r0 = runner.restarts
            for i, out in runner.map_jobs(member_step, trainer, jobs,
                                          threads=trainer.threads):
                outs[i] = out
            records = []
            for i, m in enumerate(state.members):
                out = outs[i]
                m.ckpt, m.error = out.ckpt, out.error
                m.fitness = out.fitness if out.error is None else math.nan
                records.append(self._record(g, m, jobs[i].seed, out, trainer))
                events.append({
                    "event": "train", "round": g, "slot": m.slot, "id": m.id,
                    "arch": list(m.tokens), "fitness": m.fitness, "units": m.ckpt["units"],
                    "founders": list(m.founders),
                })
            trained = list(state.members)
            if self._mix_now(g, rounds):
                events += self.exploit(state, g, trainer, space)
            state.pending_exploit = g == rounds - 1 and self.p.mode != "random"
            state.round = g + 1
            state.restarts += runner.restarts - r0
            self._save(ctx, state, records, events)
            fits = [m.fitness for m in trained]
            best = max((f for f in fits if math.isfinite(f)), default=math.nan)
            _logger.info(
                "PBT round %d/%d: best %.4f mean %.4f", g + 1, rounds, best,
                float(np.nanmean(fits)) if any(math.isfinite(f) for f in fits) else math.nan,
            )
            ctx.emit_step(g + 1, rounds, {"phase": self.phase, "best": best})

    def _eval_seed(self, g: int) -> int:
        return derive_seed(self.seed, "eval", g)

    def _initial(self, ctx: SearchContext, trainer: MemberTrainer, space: GeneSpace) -> PBTState:
        P = self.p.population_size
        rng = make_rng(self.seed, "population")
        if self.p.init == "stratified":
            genes = ops.stratified_population([g.options for g in space.genes], P, rng)
        else:
            genes = [space.sample(rng).tokens for _ in range(P)]
        members = []
        for i, toks in enumerate(genes):
            arch = space.validate(Architecture(tuple(toks)))
            ckpt = trainer.init_member(arch, derive_seed(self.seed, "init", i))
            members.append(Member(i, i, arch.tokens, ckpt, founders=(i,) * len(toks)))
        state = PBTState(members=members, next_id=P)
        with ctx.transaction():
            if ctx.task is None and trainer.task_meta() is not None:
                ctx.set_meta("task", trainer.task_meta())
            for m in members:
                ctx.log_series(STATE_KEY, 0, {
                    "event": "init", "round": 0, "slot": m.slot, "id": m.id,
                    "arch": list(m.tokens),
                }, member=str(m.id))
            ctx.save_state(STATE_KEY, encode_state(state))
        return state

    def _record(
        self, g: int, m: Member, seed: int, out: Any, trainer: MemberTrainer
    ) -> Record:
        n_params = sum(
            v.numel() for k, v in m.ckpt["model"].items()
            if v.is_floating_point() and not k.endswith(_BUFFERS)
        )
        meta = {"round": g, "slot": m.slot, "member": m.id, "units": m.ckpt["units"]}
        if m.error is not None:
            result = Result.failed(m.error, metrics=meta, train_seconds=out.seconds)
        else:
            result = Result(
                status="complete", val_acc=float(m.fitness), params=int(n_params),
                train_seconds=float(out.seconds), epochs=int(m.ckpt["units"]),
                metrics={**meta, **out.metrics},
            )
        number = g * self.p.population_size + m.slot
        return Record(number, Architecture(m.tokens), seed, result, finished_at=time.time())

    def _save(
        self, ctx: SearchContext, state: PBTState, records: list[Record],
        events: list[dict[str, Any]],
    ) -> None:
        with ctx.transaction():
            done = {r.number for r in ctx.records(range(records[0].number,
                                                          records[-1].number + 1))}
            for rec in records:
                if rec.number not in done:
                    ctx.record_trial(rec)
            for ev in events:
                ctx.log_series(STATE_KEY, int(ev["round"]), ev, member=str(ev["id"]))
            ctx.save_state(STATE_KEY, encode_state(state))

    # --------------------------------------------------------------------- exploit / explore
    def exploit(
        self, state: PBTState, g: int, trainer: MemberTrainer, space: GeneSpace
    ) -> list[dict[str, Any]]:
        """After round ``g``: replace the bottom members of ``state`` by children of the top ones
        (in place; survivors keep their slots); returns one lineage event per child."""
        old = list(state.members)
        fitness = [m.fitness for m in old]
        parents, replaced = ops.select(fitness, self.p.survive_fraction, self.p.parent_fraction)
        order = ops.rank(fitness)
        rng = make_rng(self.seed, "exploit", g)
        events = []
        for slot in sorted(replaced):
            child, info = self._child(g, slot, old, parents, order, rng, trainer, space)
            child.id, child.slot = state.next_id, slot
            state.next_id += 1
            events.append({
                "event": "child", "round": g, "slot": slot, "id": child.id,
                "replaced_id": old[slot].id, "replaced_fitness": old[slot].fitness,
                "arch": list(child.tokens), **info,
            })
            state.members[slot] = child
        return events

    def _soup_part(
        self, space: SearchSpace
    ) -> tuple[Callable[[tuple[Any, ...]], tuple[Any, ...]], Callable[[str], bool]]:
        """Which members may be souped together (equal key) and which weights are averaged."""
        if self.p.soup_part == "network":
            return (lambda t: t), (lambda n: True)
        if self.p.soup_part == "generator":
            if not isinstance(space, GAN_SPACES):
                raise ConfigError(
                    f"strategy.soup_part 'generator' needs a GAN space, not {space.name!r}; "
                    "allowed: network"
                )
            idx = space.generator_genes()
            return (lambda t: tuple(t[i] for i in idx)), (lambda n: n.startswith("gen_ema."))
        if not isinstance(space, GeneACSpace):
            raise ConfigError(
                f"strategy.soup_part 'actor' needs the gene_ac space, not {space.name!r}; "
                "allowed: network"
            )
        half = 2 * space.num_layers
        return (lambda t: tuple(t[:half])), (lambda n: n.startswith("actor.") or n == "log_std")

    def _fresh_seed(self, g: int, slot: int, base: int, donor: int) -> int:
        if self.p.fresh_seed == "reference":
            epoch = (g + 1) * self.p.step_units
            return int(self.seed * 100_000 + epoch * 1000 + base * 100 + donor)
        return derive_seed(self.seed, "fresh", g, slot)

    def _child(
        self, g: int, slot: int, old: list[Member], parents: list[int], order: list[int],
        rng: np.random.Generator, trainer: MemberTrainer, space: GeneSpace,
    ) -> tuple[Member, dict[str, Any]]:
        p = self.p
        if p.mode == "mutation":
            return self._mutant(g, slot, old, parents, order, rng, trainer, space)
        if p.mode == "no_mixing":
            i = j = int(rng.choice(parents))
        else:
            i, j = (int(x) for x in rng.choice(parents, size=2, replace=False))
        base, donor = (old[i], old[j]) if order.index(i) <= order.index(j) else (old[j], old[i])
        tokens, genes = ops.mix_genes(base.tokens, donor.tokens, p.replace_prob, rng)
        arch = space.validate(Architecture(tokens))
        prefixes = [pre for k in genes for pre in space.gene_prefixes(k)]
        fresh_model = seeded_build(trainer.build, arch, self._fresh_seed(g, slot, base.slot,
                                                                         donor.slot))
        fresh = {k: v.detach().clone() for k, v in fresh_model.state_dict().items()}
        weights = ops.transfer_weights(
            base.ckpt["model"], donor.ckpt["model"], fresh, prefixes, p.shrink, p.perturb,
            exact=trainer.inherit_exactly,
        )
        opt = self._opt_state(base, fresh_model, prefixes, trainer)
        extra = (base if p.inherit_extra == "base" else donor).ckpt.get("extra", {})
        founders = tuple(
            donor.founders[k] if k in set(genes) else base.founders[k] for k in range(len(tokens))
        )
        ckpt = {"model": weights, "opt": opt, "units": base.ckpt["units"], "extra": extra}
        info = {"op": "clone" if p.mode == "no_mixing" else "mix", "base": base.id,
                "donor": donor.id, "base_slot": base.slot, "donor_slot": donor.slot,
                "genes_from_donor": genes}
        return Member(slot, -1, arch.tokens, ckpt, PLACEHOLDER, founders), info

    def _opt_state(
        self, base: Member, child_model: torch.nn.Module, prefixes: list[str],
        trainer: MemberTrainer,
    ) -> dict[str, Any]:
        shapes = {n: tuple(t.shape) for n, t in child_model.named_parameters()}
        if self.p.optimizer_state == "by_name":
            return ops.child_optimizer_state(base.ckpt["opt"], [], [], shapes, prefixes, "by_name")
        # positional (P3 reference): every named optimiser (G and D of a GAN) on its own
        base_groups = trainer.optimizer_groups(trainer.build(Architecture(base.tokens)))
        child_groups = trainer.optimizer_groups(child_model)
        out: dict[str, Any] = {}
        for key, child_names in child_groups.items():
            out.update(ops.child_optimizer_state(
                base.ckpt["opt"], base_groups.get(key, []), child_names, shapes, prefixes,
                "positional",
            ))
        return out

    def _mutant(
        self, g: int, slot: int, old: list[Member], parents: list[int], order: list[int],
        rng: np.random.Generator, trainer: MemberTrainer, space: GeneSpace,
    ) -> tuple[Member, dict[str, Any]]:
        # as PBT-NAS picks its base: two distinct top members, the fitter one is cloned
        i, j = (int(x) for x in rng.choice(parents, size=2, replace=False))
        base = old[i] if order.index(i) <= order.index(j) else old[j]
        kind = int(rng.integers(3))
        tokens = base.tokens
        fseed = self._fresh_seed(g, slot, base.slot, base.slot)
        weights = {k: v.clone() for k, v in base.ckpt["model"].items()}
        opt = {k: ops.copy_state(v) for k, v in base.ckpt["opt"].items()}
        info: dict[str, Any] = {"base": base.id, "donor": base.id, "base_slot": base.slot,
                                "donor_slot": base.slot, "genes_from_donor": []}
        if kind == 1:
            groups = trainer.optimizer_groups(trainer.build(Architecture(tokens)))
            names = [n for g in groups.values() for n in g]
            weights = ops.weight_noise(weights, self.p.mutation_sigma,
                                       torch.Generator().manual_seed(fseed), names)
            info["op"] = "weights"
        elif kind == 2:
            k = int(rng.integers(len(tokens)))
            others = [o for o in space.genes[k].options if o != tokens[k]]
            if others:
                tokens = (*tokens[:k], others[int(rng.integers(len(others)))], *tokens[k + 1:])
            arch = space.validate(Architecture(tokens))
            prefixes = list(space.gene_prefixes(k))
            fresh_model = seeded_build(trainer.build, arch, fseed)
            fresh = {n: v.detach().clone() for n, v in fresh_model.state_dict().items()}
            # the mutated gene's layers are freshly initialised (its op may be new to the base)
            weights = ops.transfer_weights(weights, fresh, fresh, prefixes, 0.0, 1.0,
                                           exact=trainer.inherit_exactly)
            opt = ops.child_optimizer_state(
                opt, [], [], {n: tuple(t.shape) for n, t in fresh_model.named_parameters()},
                prefixes, "by_name",
            )
            info.update(op="gene", gene=k)
        else:
            info["op"] = "copy"
        ckpt = {"model": weights, "opt": opt, "units": base.ckpt["units"],
                "extra": base.ckpt.get("extra", {})}
        return Member(slot, -1, tuple(tokens), ckpt, PLACEHOLDER, base.founders), info

    # ------------------------------------------------------------------------------- report
    def finalize(self, ctx: SearchContext) -> FinalReport:
        """The best member of the final population (no retraining), optionally souped."""
        trainer, space = self._parts(ctx)
        state = self.load_state(ctx)
        if state is None or not state.members:
            return build_report(ctx, error="no population stored")
        members = state.members
        fitness = [m.fitness for m in members]
        best = members[ops.rank(fitness)[0]]
        if not math.isfinite(best.fitness):
            return build_report(ctx, error="no member trained successfully")
        arch = Architecture(best.tokens)
        model = trainer.restore(arch, best.ckpt)
        g_last = state.round - 1
        val = best.fitness
        extra: dict[str, Any] = {
            "member": best.id, "slot": best.slot, "fitness": best.fitness,
            "units": best.ckpt["units"], "restarts": state.restarts,
            "population": [{"slot": m.slot, "member": m.id, "arch": list(m.tokens),
                            "fitness": m.fitness} for m in members],
        }
        if self.p.soup:
            key, part = self._soup_part(space)
            same = [m for m in members if key(m.tokens) == key(best.tokens)
                    and math.isfinite(m.fitness)]
            eval_seed = self._eval_seed(g_last)
            rest = {n: t for n, t in best.ckpt["model"].items() if not part(n)}

            def score(sd: dict[str, torch.Tensor]) -> float:
                model.load_state_dict({**rest, **sd})
                return float(trainer.fitness(model, eval_seed=eval_seed))

            soup, chosen, soup_fit = ops.greedy_soup(
                [{n: t for n, t in m.ckpt["model"].items() if part(n)} for m in same],
                [m.fitness for m in same], score, keep_first=is_sn_vector,
            )
            model.load_state_dict({**rest, **soup})
            extra["soup"] = {"members": [same[i].id for i in chosen], "fitness": soup_fit,
                             "candidates": len(same), "part": self.p.soup_part}
            val = soup_fit
        test = trainer.test_score(model, seed=derive_seed(self.seed, "test"))
        extra.update(test.extra)
        extra.update(trainer.save_artifacts(model, ctx.run_dir,
                                            seed=derive_seed(self.seed, "samples")))
        return build_report(
            ctx, arch=arch, trial=g_last * self.p.population_size + best.slot, val_acc=val,
            params=sum(p.numel() for p in model.parameters()), test_acc=test.score,
            test_std=test.std, model=model, extra=extra,
            test_metrics=trainer.test_metrics(model)
            if isinstance(trainer, ReportsTestMetrics) else None,
        )
