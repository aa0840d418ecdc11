"""nasforge: neural architecture search on PyTorch.

Python API (equal to the CLI)::

    import nasforge
    run = nasforge.search("configs/moons_random.yaml", budget=100)   # nasforge search
    run.summary()                                                     # nasforge show --json
    nasforge.plot(run.dir)                                            # nasforge plot
    nasforge.export(run.dir, "best/")                                 # nasforge export
    model = nasforge.load("best/")                                    # a plain nn.Module
"""

from __future__ import annotations

from pathlib import Path

from nasforge.config import RunConfig, load_config
from nasforge.exceptions import (
    ConfigError,
    DataError,
    InvalidArchitecture,
    NasforgeError,
    RunDirError,
    UnknownName,
)
from nasforge.objectives import Objective
from nasforge.run import LoadedModel, Run, export, load, load_run
from nasforge.search import search
from nasforge.spaces import (
    Architecture,
    CNNSpace,
    SearchSpace,
    SequenceSpace,
    StateSpace,
    TabularSpace,
)
from nasforge.strategies.reinforce.controller import Controller, NetworkManager
from nasforge.viz import plot_run

__version__ = "0.1.0"


def plot(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write a run's plots (``nasforge plot``); returns the image paths."""

    return plot_run(run_dir, out)


__all__ = [
    "Architecture",
    "CNNSpace",
    "ConfigError",
    "Controller",
    "DataError",
    "InvalidArchitecture",
    "LoadedModel",
    "NasforgeError",
    "NetworkManager",
    "Objective",
    "Run",
    "RunConfig",
    "RunDirError",
    "SearchSpace",
    "SequenceSpace",
    "StateSpace",
    "TabularSpace",
    "UnknownName",
    "export",
    "load",
    "load_config",
    "load_run",
    "plot",
    "search",
]
