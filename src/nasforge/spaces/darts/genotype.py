"""DARTS genotypes: a frozen value, its flat token form, and discretisation of alphas.

A genotype lists, per cell type (normal, reduce), two ``(op, input)`` pairs per intermediate node
(inputs: 0 and 1 are the outputs of cells k-2 and k-1, ``j + 2`` is intermediate node ``j``) and
the nodes concatenated into the cell output. Tokens (the :class:`Architecture` of space
``darts``) are flat::

    normal:  op, input, op, input, ...   (2 pairs per node, node by node)
    reduce:  op, input, op, input, ...
    normal_concat (N ints), reduce_concat (N ints)

Within a node the two pairs are sorted by input index, so a cell has exactly one token form
(a stable ``arch_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasforge.exceptions import InvalidArchitecture
from nasforge.spaces.base import Token

Pair = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    """A discrete DARTS cell pair (normal and reduction)."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    @property
    def nodes(self) -> int:
        return len(self.normal) // 2

    def to_tokens(self) -> tuple[Token, ...]:
        out: list[Token] = []
        for cell in (self.normal, self.reduce):
            for op, j in cell:
                out += [op, int(j)]
        out += [int(c) for c in self.normal_concat]
        out += [int(c) for c in self.reduce_concat]
        return tuple(out)

    @classmethod
    def from_tokens(cls, tokens: Sequence[Token]) -> Genotype:
        """Inverse of :meth:`to_tokens` (shape only; the space checks ops and inputs)."""
        if len(tokens) % 10 != 0 or not tokens:
            raise InvalidArchitecture(
                f"darts: a genotype has 10 tokens per node (4 op/input pairs + 2 concat), "
                f"got {len(tokens)}"
            )
        n = len(tokens) // 10

        def pairs(start: int) -> tuple[Pair, ...]:
            out = []
            for k in range(2 * n):
                op, j = tokens[start + 2 * k], tokens[start + 2 * k + 1]
                if not isinstance(op, str) or isinstance(j, bool) or not isinstance(j, int):
                    raise InvalidArchitecture(
                        f"darts: expected (op name, input index) at positions "
                        f"{start + 2 * k}-{start + 2 * k + 1}, got ({op!r}, {j!r})"
                    )
                out.append((op, j))
            return tuple(out)

        concat = tokens[8 * n :]
        if any(isinstance(c, bool) or not isinstance(c, int) for c in concat):
            raise InvalidArchitecture(f"darts: concat tokens must be node indices, got {concat}")
        return cls(
            pairs(0), tuple(int(c) for c in concat[:n]),
            pairs(4 * n), tuple(int(c) for c in concat[n:]),
        )

    def count(self, op: str, cell: str = "normal") -> int:
        return sum(1 for o, _ in (self.normal if cell == "normal" else self.reduce) if o == op)

    def __str__(self) -> str:
        def fmt(cell: tuple[Pair, ...]) -> str:
            return " ".join(
                f"n{i + 2}=({cell[2 * i][0]}<-{cell[2 * i][1]}, {cell[2 * i + 1][0]}<-"
                f"{cell[2 * i + 1][1]})"
                for i in range(len(cell) // 2)
            )

        return f"normal: {fmt(self.normal)} | reduce: {fmt(self.reduce)}"


def num_edges(nodes: int) -> int:
    """Edges of a DARTS search cell with ``nodes`` intermediate nodes (node i has i + 2 inputs)."""
    return sum(i + 2 for i in range(nodes))


def edge_index(node: int, inp: int) -> int:
    """Row of edge ``inp -> node`` in the alpha matrix."""
    return sum(i + 2 for i in range(node)) + inp


def parse_cell(
    weights: np.ndarray,
    ops: Sequence[str],
    nodes: int,
    *,
    edge_weights: np.ndarray | None = None,
    exclude: Sequence[str] = ("none",),
    inputs_per_node: int = 2,
) -> tuple[Pair, ...]:
    """DARTS discretisation of one cell.

    For each node, the ``inputs_per_node`` incoming edges with the strongest best op (ops in
    ``exclude`` do not count; an edge's strength is multiplied by its ``edge_weights`` entry when
    given, as in PC-DARTS' edge normalisation) are kept, each with its strongest non-excluded op.
    Ops with weight exactly 0 (masked by P-DARTS) are never chosen. Pairs are sorted by input.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (num_edges(nodes), len(ops)):
        raise ValueError(f"weights shape {w.shape} != ({num_edges(nodes)}, {len(ops)})")
    allowed = np.array([o not in exclude for o in ops])
    if not allowed.any():
        raise ValueError(f"every op is excluded: {list(ops)}")
    masked = np.where(allowed[None, :] & (w > 0), w, -np.inf)
    out: list[Pair] = []
    for i in range(nodes):
        rows = [edge_index(i, j) for j in range(i + 2)]
        strength = []
        for j, r in enumerate(rows):
            s = masked[r].max()
            if edge_weights is not None:
                s = s * float(edge_weights[r]) if np.isfinite(s) else s
            strength.append((s, -j))
        best = sorted(range(len(rows)), key=lambda j: strength[j], reverse=True)[:inputs_per_node]
        for j in sorted(best):
            r = rows[j]
            k = int(np.argmax(masked[r])) if np.isfinite(masked[r]).any() else int(np.argmax(w[r]))
            out.append((str(ops[k]), j))
    return tuple(out)


def parse_genotype(
    normal: np.ndarray,
    reduce: np.ndarray,
    ops: Sequence[str],
    nodes: int,
    *,
    edge_normal: np.ndarray | None = None,
    edge_reduce: np.ndarray | None = None,
    exclude: Sequence[str] = ("none",),
) -> Genotype:
    """Both cells of a DARTS supernet -> :class:`Genotype` (concat: all intermediate nodes)."""
    concat = tuple(range(2, nodes + 2))
    return Genotype(
        parse_cell(normal, ops, nodes, edge_weights=edge_normal, exclude=exclude),
        concat,
        parse_cell(reduce, ops, nodes, edge_weights=edge_reduce, exclude=exclude),
        concat,
    )
