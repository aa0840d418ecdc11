"""Seed derivation: the user gives one seed, every component and trial derives its own.

Trial seeds are keyed by trial number, so completion order and resumes cannot change them.
Nothing here seeds global state except :func:`seed_torch`, which only evaluators call.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(root: int, *keys: int | str) -> int:
    """A 31-bit seed derived from ``root`` and a path of keys (ints or short strings)."""
    key: list[int] = []
    for k in keys:
        if isinstance(k, str):
            key.append(int.from_bytes(k.encode()[:8].ljust(8, b"\0"), "little"))
        else:
            key.append(int(k))
    ss = np.random.SeedSequence(int(root), spawn_key=tuple(key))
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def make_rng(root: int, *keys: int | str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(root, *keys))


def make_torch_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def seed_torch(seed: int, *, deterministic: bool = True) -> None:
    """Seed torch, numpy's legacy RNG and ``random`` for one child training run."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)
    if deterministic and torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
