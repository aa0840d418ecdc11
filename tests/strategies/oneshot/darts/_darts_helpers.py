"""Tiny DARTS fixtures shared by the DARTS tests (strategies/oneshot/darts, spaces/darts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.spaces.darts.space import DartsSpace
from nasforge.spaces.darts.supernet import DartsSupernetSpec, SupernetOptions

OPS3 = ["none", "skip_connect", "avg_pool_3x3", "sep_conv_3x3"]


def tiny_spec(**opts: Any) -> DartsSupernetSpec:
    space = DartsSpace(ops=opts.pop("ops", OPS3), nodes=opts.pop("nodes", 2), channels=4,
                       layers=2)
    base: dict[str, Any] = {"channels": 4, "layers": 1, "reductions": []}
    base.update(opts)
    return DartsSupernetSpec(space, SupernetOptions(**base))


def tiny_npz(tmp_path: Path, n: int = 96, seed: int = 0) -> Path:
    """A learnable 3-class task of 1x6x6 images: the class is the brightest third."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, 6, 6)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 * c : 2 * c + 2, :] += 1.5
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=y)
    return path


def tiny_config(tmp_path: Path, **strategy: Any) -> dict[str, Any]:
    strat: dict[str, Any] = {
        "name": "darts", "epochs": 2, "batch_size": 16, "channels": 4, "layers": 1,
        "reductions": [], "w_lr": 0.05, "alpha_lr": 0.01, "retrain": {"epochs": 1},
    }
    strat.update(strategy)
    return {
        "name": "tiny_darts", "seed": 0, "device": "cpu",
        "task": {"name": "file", "path": str(tiny_npz(tmp_path))},
        "space": {"name": "darts", "ops": OPS3, "nodes": 2, "channels": 4, "layers": 2},
        "strategy": strat,
        "final": {"seeds": 0},
    }


def batch(n: int = 8, seed: int = 0, dtype: torch.dtype = torch.float32,
          classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, 6, 6, generator=g, dtype=dtype),
            torch.randint(0, classes, (n,), generator=g))
