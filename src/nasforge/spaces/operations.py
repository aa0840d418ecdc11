"""Mutations in any space's sequential decision view (shared by evolution-style strategies).

A *single mutation* changes one decision to another allowed value. In spaces with masks or a
stop token the rest of the sequence may no longer fit; it is then repaired left to right: each
later decision keeps its old value where still allowed and is otherwise drawn uniformly among
the allowed values, and sampling continues until the sequence is complete.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasforge.spaces.base import Architecture, SearchSpace


def _complete(
    space: SearchSpace, prefix: list[int], old: Sequence[int], rng: np.random.Generator
) -> list[int]:
    t = len(prefix)
    while not space.is_complete(prefix):
        mask = space.allowed(prefix)
        if t < len(old) and old[t] < len(mask) and mask[old[t]]:
            prefix.append(int(old[t]))
        else:
            choices = np.flatnonzero(mask)
            prefix.append(int(choices[rng.integers(len(choices))]))
        t += 1
    return prefix


def mutate(space: SearchSpace, arch: Architecture, rng: np.random.Generator) -> Architecture:
    """One decision changed to a different allowed value (the rest repaired if needed).

    Returns ``arch`` itself only when no decision has an alternative.
    """
    old = space.encode(arch)
    positions = rng.permutation(len(old))
    for t in positions:
        mask = space.allowed(old[:t]).copy()
        mask[old[t]] = False
        choices = np.flatnonzero(mask)
        if len(choices) == 0:
            continue
        prefix = [*old[:t], int(choices[rng.integers(len(choices))])]
        return space.decode(_complete(space, prefix, old, rng))
    return arch


def neighbours(
    space: SearchSpace, arch: Architecture, rng: np.random.Generator
) -> list[Architecture]:
    """Every single mutation of ``arch`` (repairs drawn with ``rng`` where needed)."""
    old = space.encode(arch)
    out: list[Architecture] = []
    for t in range(len(old)):
        mask = space.allowed(old[:t])
        for v in np.flatnonzero(mask):
            if int(v) == old[t]:
                continue
            prefix = [*old[:t], int(v)]
            out.append(space.decode(_complete(space, prefix, old, rng)))
    return out
