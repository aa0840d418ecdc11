"""Shared fixtures: CPU, few threads, tiny configs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# matplotlib writes a font cache under $HOME unless told otherwise: keep the home folder clean
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="nasforge-mpl-"))
torch.set_num_threads(1)


def tiny_config(**over: Any) -> dict[str, Any]:
    """A moons random search that trains each child for a few epochs (about 0.05 s each)."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "budget": 8,
        "device": "cpu",
        "task": {"name": "moons"},
        "space": {"name": "mlp", "max_len": 4},
        "strategy": {"name": "random", "batch_size": 3},
        "evaluator": {"name": "train", "max_epochs": 4, "patience": 2, "batch_size": 64},
        "final": {"seeds": 1},
    }
    cfg.update(over)
    return cfg


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    import yaml

    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(tiny_config()))
    return p
