"""Device resolution: called once per run; code then uses ``.to(device)``."""

from __future__ import annotations

import torch

from nasforge.exceptions import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` are explicit."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} asked for, but CUDA is not available; use auto or cpu"
            )
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N")
