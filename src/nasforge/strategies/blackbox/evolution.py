"""Regularized (aging) evolution: Real, Aggarwal, Huang & Le, "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019 (arXiv:1802.01548), Algorithm 1.

The population is a queue of ``population_size`` evaluated architectures, first filled with random
ones. Each cycle samples ``sample_size`` members uniformly *without* replacement, takes the best of
that tournament as parent, evaluates a single mutation of it (one decision changed), appends the
child and removes the *oldest* member (ageing), whatever its accuracy.

Decisions and deviations:
    - Works on any space through its sequential decision view (``spaces/operations.py``);
      mutations that break a mask or a stop token are repaired left to right.
    - ``unique_children`` (default true): a child already evaluated in this search is mutated
      again (up to 20 tries), because under nasforge's reward cache a repeated architecture costs
      a query but brings nothing. ``false`` gives the paper's plain algorithm.
    - The initial population is drawn without repeats where possible.
    - A failed child does not enter the population (it has no fitness); the population then
      does not age in that cycle. With no member yet, ask() samples random architectures.
    - With ``batch_size`` B > 1, B children are asked at once from the same population
      (asynchronous evolution as in the paper's workers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.operations import mutate
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, AskTellParams, AskTellStrategy


def sample_unseen(
    space: SearchSpace, rng: np.random.Generator, seen: Container[str], tries: int = 20
) -> Architecture:
    """A uniform random architecture, redrawn (up to ``tries`` times) while its id is in
    ``seen``; the last draw is returned even if seen (small or spent spaces)."""
    arch = space.sample(rng)
    for _ in range(tries):
        if arch.arch_id not in seen:
            break
        arch = space.sample(rng)
    return arch


class EvolutionParams(AskTellParams):
    population_size: int = Field(default=20, ge=2, description="P: population (queue) size")
    sample_size: int = Field(default=5, ge=1, description="S: tournament size")
    unique_children: bool = Field(
        default=True, description="re-mutate children that were already evaluated"
    )


@STRATEGIES.register("evolution")
class RegularizedEvolution(AskTellStrategy):
    """Aging evolution with tournament selection and single mutations."""

    name: ClassVar[str] = "evolution"
    Params: ClassVar[type[BaseModel]] = EvolutionParams
    history: ClassVar[tuple[str, ...]] = ("seen",)

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        p = self.p
        self.population_size: int = p.population_size
        self.sample_size: int = min(p.sample_size, p.population_size)
        self.unique_children: bool = p.unique_children
        self.population: deque[tuple[Architecture, float]] = deque()
        self.seen: set[str] = set()
        self.asked = 0

    def _random(self) -> Architecture:
        assert self.space is not None
        return sample_unseen(self.space, self.rng, self.seen)

    def _child(self) -> Architecture:
        assert self.space is not None
        pop = list(self.population)
        k = min(self.sample_size, len(pop))
        picks = self.rng.choice(len(pop), size=k, replace=False)
        parent = max((pop[int(i)] for i in picks), key=lambda m: m[1])[0]
        child = mutate(self.space, parent, self.rng)
        if self.unique_children:
            for _ in range(20):
                if child.arch_id not in self.seen:
                    break
                child = mutate(self.space, parent, self.rng)
        return child

    def ask(self, n: int) -> list[Architecture]:
        out = []
        for _ in range(n):
            if self.asked < self.population_size or not self.population:
                arch = self._random()
            else:
                arch = self._child()
            self.seen.add(arch.arch_id)
            self.asked += 1
            out.append(arch)
        return out

    def tell(self, records: list[Record]) -> None:
        for r in records:
            if not r.ok:
                continue
            self.population.append((r.arch, float(r.val_acc)))
            if len(self.population) > self.population_size:
                self.population.popleft()

    def rebuild(self, told: list[Record], pending: list[Architecture]) -> None:
        self.seen = {r.arch_id for r in told} | {a.arch_id for a in pending}
