"""The one-shot view of a space for the ``darts`` strategy, and tabulated look-ups.

* :func:`make_spec`: the supernet spec of a ``darts`` space (DARTS cells) or an ``nb201`` space
  (NB201 single-cell skeleton), with the strategy's supernet sizes and regularizer switches.
* :func:`table_rank`: the true (tabulated) accuracy of a found architecture and its rank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.evaluators.table import resolve_table
from nasforge.exceptions import ConfigError
from nasforge.logging import get_logger
from nasforge.spaces.base import Architecture, SearchSpace
from nasforge.spaces.cell import CellSpace
from nasforge.spaces.darts.nb201 import NB201SupernetSpec
from nasforge.spaces.darts.space import DartsSpace
from nasforge.spaces.darts.supernet import DartsSupernetSpec, SupernetOptions

if TYPE_CHECKING:
    from nasforge.strategies.oneshot.darts.search import DartsParams

_logger = get_logger(__name__)


def make_spec(space: SearchSpace, p: DartsParams) -> Any:
    """The one-shot spec of ``space`` (``darts`` or ``nb201``) with the strategy's sizes."""

    k = p.pc.k if p.pc is not None else 1
    if isinstance(space, DartsSpace):
        opts = SupernetOptions(
            channels=p.channels or space.channels, layers=p.layers or space.layers,
            reductions=p.reductions if p.reductions is not None else (
                space.reductions if p.layers is None else None),
            stem_multiplier=space.stem_multiplier, pc_k=k,
            aux_skip=p.darts_minus is not None, edge_norm=bool(p.pc and p.pc.edge_norm),
        )
        spec: Any = DartsSupernetSpec(space, opts)
    elif isinstance(space, CellSpace):
        opts = SupernetOptions(
            channels=p.channels or space.channels, layers=p.layers or space.cells_per_stage,
            pc_k=k, aux_skip=p.darts_minus is not None, edge_norm=bool(p.pc and p.pc.edge_norm),
        )
        spec = NB201SupernetSpec(space, opts, allow_none=p.allow_none)
    else:
        raise ConfigError(f"strategy darts needs space darts or nb201, got {space.name!r}")
    check_options(opts, k)
    if "skip_connect" not in spec.ops and (p.darts_minus or (p.pdarts and p.pdarts.skip_limit)):
        _logger.info("no skip_connect op: skip limit / skip dropout have nothing to act on")
    return spec


def check_options(opts: SupernetOptions, k: int) -> None:
    """The strategy's supernet sizes fit: reduction cells among the cells, PC-DARTS' K a
    divisor of the channels (one line each; the DARTS and MetaNAS strategies)."""
    bad = [r for r in opts.reductions or () if not 0 <= r < opts.layers]
    if bad:
        raise ConfigError(f"strategy.reductions {opts.reductions} must lie in "
                          f"0..{opts.layers - 1} (the supernet has {opts.layers} cells)")
    if opts.channels % k or opts.channels // k < 2:
        raise ConfigError(
            f"strategy.pc.k={k} must divide the supernet channels ({opts.channels}) and leave "
            ">= 2 channels per op"
        )


def check_table(space: SearchSpace, table: str) -> Any:
    """Load ``table`` and check that it was built for ``space``."""

    data = resolve_table(table)
    want = data.meta.get("space")
    if want is not None and want != space.spec():
        raise ConfigError(f"table {table!r} was built for space {want}, not {space.spec()}")
    return data


def table_rank(space: SearchSpace, arch: Architecture, table: str) -> dict[str, Any]:
    """True (tabulated) mean validation accuracy of ``arch`` and its rank (1 = best) in
    ``table``; ``table_quantile`` is the fraction of rows at least as good (lower is better)."""
    data = check_table(space, table)
    means = data.mean_val()
    acc = float(means[data.row_of(space.encode(arch))])
    ok = means[np.isfinite(means)]
    rank = int((ok > acc).sum()) + 1
    return {
        "table": table, "table_val_acc": acc, "table_rank": rank, "table_rows": int(len(ok)),
        "table_quantile": rank / len(ok), "table_optimum": float(ok.max()),
    }
