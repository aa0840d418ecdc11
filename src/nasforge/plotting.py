"""The two matplotlib helpers every figure uses (matplotlib imported lazily, Agg backend).

Kept below every other layer, so spaces (the DARTS cell diagram) and ``viz`` share them without
``spaces`` importing ``viz``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any


def pyplot() -> ModuleType:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from err
    return plt


def save_figure(fig: Any, plt: ModuleType, out: str | Path, *, layout: bool = True) -> Path:
    """Save ``fig`` to ``out`` (parents created; format by suffix), close it, return the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def integer_ticks(*axes: Any) -> None:
    """Whole-number ticks on each matplotlib axis (``ax.xaxis``...): epochs, rounds, slots."""
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))
