"""Pure PBT-NAS operators (ALGORITHMS.md 5.2): initial population, truncation selection, layer-wise
mixing with shrink-perturb, the optimiser-state rules, mutation, and greedy soups.

Everything here works on plain values (gene tuples, state dicts, numpy generators) so that it is
tested without training anything. ``pbt_nas.py`` owns the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from nasforge.spaces.genes import owned_by

State = dict[str, torch.Tensor]


def stratified_population(
    options: Sequence[Sequence[Any]], n: int, rng: np.random.Generator
) -> list[tuple[Any, ...]]:
    """Seed 004's initial population: per gene, a pool holding each option ``n // |A_g|``
    times, filled up to ``n`` with random options, shuffled independently; member ``i`` takes
    ``pool[i]``."""
    columns = []
    for opts in options:
        pool = [o for o in opts for _ in range(n // len(opts))]
        pool += [opts[int(k)] for k in rng.integers(len(opts), size=n - len(pool))]
        columns.append([pool[int(k)] for k in rng.permutation(n)])
    return [tuple(col[i] for col in columns) for i in range(n)]


def rank(fitness: Sequence[float]) -> list[int]:
    """Member indices, best first; NaN counts as worst; ties keep the lower index first."""
    key = [(-f if math.isfinite(f) else math.inf) for f in fitness]
    return sorted(range(len(fitness)), key=lambda i: (key[i], i))


def select(
    fitness: Sequence[float], survive_fraction: float = 0.75, parent_fraction: float = 0.25
) -> tuple[list[int], list[int]]:
    """Truncation selection: ``(parents, replaced)``. The top ``int(survive_fraction * N)`` members
    survive, the rest (the bottom tau) are replaced; parents are the top
    ``max(2, int(parent_fraction * N))`` members by fitness."""
    n = len(fitness)
    order = rank(fitness)
    n_survive = min(n - 1, max(1, int(survive_fraction * n)))
    n_parents = min(n, max(2, int(parent_fraction * n)))
    return order[:n_parents], order[n_survive:]


def mix_genes(
    base: Sequence[Any], donor: Sequence[Any], replace_prob: float, rng: np.random.Generator
) -> tuple[tuple[Any, ...], list[int]]:
    """Each gene independently comes from the donor with probability ``replace_prob`` (also when
    the two values are equal: the layer's weights still come from the donor)."""
    mask = rng.random(len(base)) < replace_prob
    child = tuple(d if m else b for b, d, m in zip(base, donor, mask))
    return child, [int(i) for i in np.flatnonzero(mask)]


def shrink_perturb(
    donor: torch.Tensor, fresh: torch.Tensor, lam: float, gamma: float
) -> torch.Tensor:
    """``lam * donor + gamma * fresh`` for floating tensors; integer buffers are copied as is."""
    if not donor.is_floating_point():
        return donor.clone()
    return lam * donor + gamma * fresh


def transfer_weights(
    base: State, donor: State, fresh: State, prefixes: Sequence[str], lam: float, gamma: float,
    exact: Callable[[str], bool] | None = None,
) -> State:
    """The child's state dict: entries owned by ``prefixes`` (the replaced genes' layers) are
    shrink-perturbed from the donor, every other entry is the base's. ``fresh`` is a freshly
    initialised network of the child's architecture and fixes the child's key set. Owned entries
    for which ``exact(name)`` holds (a GAN's generator EMA, spectral-norm vectors) are the
    donor's, copied without shrink-perturb. An entry the parent it should come from lacks (a
    layer that exists only through another gene's value) is the other parent's, else fresh."""
    out: State = {}
    for name, f in fresh.items():
        if owned_by(name, prefixes):
            src = _same(donor, name, f)
            if src is not None:
                exactly = exact is not None and exact(name)
                out[name] = src.clone() if exactly else shrink_perturb(src, f, lam, gamma)
                continue
            other = _same(base, name, f)
        else:
            other = _same(base, name, f)
            if other is None:
                other = _same(donor, name, f)
        # a layer whose existence another gene decides (a GAN block's downsampling layers exist
        # only with its down flag on): the parent that has it, else the fresh initialisation
        out[name] = (other if other is not None else f).clone()
    return out


def _same(state: State, name: str, like: torch.Tensor) -> torch.Tensor | None:
    """``state[name]`` if it exists with ``like``'s shape, else None."""
    src = state.get(name)
    return src if src is not None and src.shape == like.shape else None


def child_optimizer_state(
    base_opt: dict[str, Any], base_names: Sequence[str], child_names: Sequence[str],
    child_shapes: dict[str, tuple[int, ...]], prefixes: Sequence[str], mode: str,
) -> dict[str, Any]:
    """Quirk P3. ``by_name`` (default): keep the base's state of every parameter that is not in a
    replaced layer. ``positional`` (reference): load the base's state by position; if the
    parameter count differs, start fresh; drop entries whose shapes do not match (so a replaced
    layer can keep the base's moments, and a same-shaped layer can take another's)."""
    if mode == "by_name":
        return {
            k: copy_state(v) for k, v in base_opt.items()
            if k in child_shapes and not owned_by(k, prefixes)
            and _state_shapes(v) <= {child_shapes[k]}
        }
    if len(base_names) != len(child_names):
        return {}
    out: dict[str, Any] = {}
    for bn, cn in zip(base_names, child_names):
        st = base_opt.get(bn)
        if st is None:
            continue
        shapes = _state_shapes(st)
        if shapes and shapes != {child_shapes[cn]}:
            continue
        out[cn] = copy_state(st)
    return out


def _state_shapes(st: dict[str, Any]) -> set[tuple[int, ...]]:
    """Shapes of one parameter's optimiser state tensors (scalar step counters left out)."""
    return {tuple(v.shape) for v in st.values() if torch.is_tensor(v) and v.dim() > 0}


def copy_state(st: dict[str, Any]) -> dict[str, Any]:
    """A copy of one parameter's optimiser state whose tensors share nothing with ``st``."""
    return {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in st.items()}


def weight_noise(state: State, sigma: float, g: torch.Generator, names: Sequence[str]) -> State:
    """SEARL-style weight mutation (simplified): Gaussian noise of ``sigma`` times each parameter
    tensor's standard deviation, added to the parameters named in ``names``."""
    out = {k: v.clone() for k, v in state.items()}
    for k in names:
        v = out[k]
        if v.is_floating_point() and v.numel() > 1:
            out[k] = v + sigma * float(v.std()) * torch.randn(v.shape, generator=g)
    return out


def average_states(
    states: Sequence[State], keep_first: Callable[[str], bool] | None = None
) -> State:
    """Uniform weight average; integer buffers, and the entries for which ``keep_first(name)``
    holds (spectral-norm u/v vectors), come from the first state."""
    out: State = {}
    for k, v in states[0].items():
        if v.is_floating_point() and not (keep_first is not None and keep_first(k)):
            out[k] = torch.stack([s[k] for s in states]).mean(0)
        else:
            out[k] = v.clone()
    return out


def greedy_soup(
    states: Sequence[State], fitness: Sequence[float], score: Callable[[State], float],
    keep_first: Callable[[str], bool] | None = None,
) -> tuple[State, list[int], float]:
    """Greedy soup (Wortsman et al. 2022) of same-architecture members: sort by fitness, start
    from the best, add a member only if the averaged network scores strictly better.
    ``keep_first``: entries taken from the best member instead of averaged."""
    order = rank(fitness)
    chosen = [order[0]]
    best = float(fitness[order[0]])
    for i in order[1:]:
        trial = average_states([states[j] for j in [*chosen, i]], keep_first)
        s = float(score(trial))
        if s > best:
            chosen.append(i)
            best = s
    return average_states([states[j] for j in chosen], keep_first), chosen, best
