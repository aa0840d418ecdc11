"""DARTS supernet: mixed ops, search cells, and architecture weights kept apart from the weights.

* :class:`Alphas` holds the architecture logits (one ``nn.Parameter`` of shape edges x ops per
  cell type), the P-DARTS op masks (buffers; a masked op has weight exactly 0 and is not run) and,
  with PC-DARTS edge normalisation, one logit per edge. It is a separate module: the supernet's
  ``parameters()`` are the network weights only, and ``supernet(x, alphas)`` takes the alphas.
* :class:`MixedOp` computes ``sum_o w_o * o(x)`` over the active ops, for all the edges
  leaving one state at once (``multi.py``: one grouped op per candidate, not one per edge).
  Options: PC-DARTS partial channels (the first ``C/K`` channels go through the ops, the rest
  bypass them, max-pooled at stride 2, then a channel shuffle with K groups), the DARTS-
  auxiliary skip (``+ beta * skip(x)``, ``beta`` set on the supernet per step) and P-DARTS
  dropout after the identity op.
* :class:`SearchCell` / :class:`Supernet` follow DARTS' search network: stem, ``layers`` cells
  reading cells k-2 and k-1, reduction cells at ``reductions``, GAP and a linear head. Each node
  reads every earlier state of its cell (``i + 2`` inputs); the cell output concatenates all
  intermediate nodes. ``weighting="max_w"`` is SharpDARTS' max-w weighting.
* :class:`DartsSupernetSpec` ties a ``darts`` space to supernets, alphas and discretisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.ops.cells import FactorizedReduce, ReLUConvBN, make_op, skip_op
from nasforge.spaces.base import Architecture
from nasforge.spaces.darts.genotype import Genotype, edge_index, num_edges, parse_genotype
from nasforge.spaces.darts.multi import make_multi
from nasforge.spaces.darts.network import stem_and_cells
from nasforge.spaces.darts.space import DartsSpace, image_shape

Weighting = Literal["softmax", "max_w"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet; PC-DARTS)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class Alphas(nn.Module):
    """Architecture parameters of one supernet: logits, P-DARTS masks, optional edge logits.

    Args:
        groups: cell types, e.g. ``("normal", "reduce")`` or ``("cell",)``.
        num_edges: rows of each logit matrix.
        ops: op names (columns).
        node_edges: for each node, the rows of its incoming edges (edge normalisation groups).
        edge_norm: add per-edge logits (PC-DARTS edge normalisation).
        init_std: logits start at ``init_std * N(0, 1)`` (DARTS: 1e-3).
        pairwise: MetaNAS' pairwise input logits, one per unordered pair of a node's inputs
            (``pairs``); node ``n`` is ``sum_{(a,b)} p_ab (o_a + o_b)`` with ``p = softmax``, which
            equals edge ``a`` scaled by ``q_a = sum_b p_ab`` (:meth:`edge_weights`).

    Plain attributes the search sets: ``temperature`` (softmax of ``logits / T``; 1: DARTS) and
    ``prune_threshold`` (ops whose weight is at most it are not run; 0: all run).
    """

    def __init__(
        self,
        groups: Sequence[str],
        num_edges: int,
        ops: Sequence[str],
        node_edges: Sequence[Sequence[int]],
        *,
        edge_norm: bool = False,
        init_std: float = 1e-3,
        generator: torch.Generator | None = None,
        pairwise: bool = False,
    ) -> None:
        super().__init__()
        if pairwise and edge_norm:
            raise ValueError("pairwise input alphas and edge normalisation exclude each other")
        self.temperature = 1.0
        self.prune_threshold = 0.0
        self.pairwise = pairwise
        self.node_pairs = [
            [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]] for rows in node_edges
        ]
        self.groups = tuple(groups)
        self.ops = tuple(ops)
        self.node_edges = [list(r) for r in node_edges]
        self.edge_norm = edge_norm
        self.init_std = init_std
        self.logits = nn.ParameterDict(
            {g: nn.Parameter(torch.zeros(num_edges, len(ops))) for g in self.groups}
        )
        self.edges = nn.ParameterDict(
            {g: nn.Parameter(torch.zeros(num_edges)) for g in self.groups} if edge_norm else {}
        )
        n_pairs = sum(len(p) for p in self.node_pairs)
        self.pairs = nn.ParameterDict(
            {g: nn.Parameter(torch.zeros(n_pairs)) for g in self.groups} if pairwise else {}
        )
        for g in self.groups:
            self.register_buffer(f"mask_{g}", torch.ones(num_edges, len(ops), dtype=torch.bool))
            if pairwise:
                self.register_buffer(f"pair_mask_{g}", torch.ones(n_pairs, dtype=torch.bool))
        self.reset(generator)

    @torch.no_grad()
    def reset(self, generator: torch.Generator | None = None) -> None:
        """Re-draw the logits (masks are kept)."""
        for p in self.logits.values():
            p.copy_(torch.randn(p.shape, generator=generator) * self.init_std)
        for p in self.edges.values():
            p.copy_(torch.randn(p.shape, generator=generator) * self.init_std)
        for p in self.pairs.values():
            p.copy_(torch.randn(p.shape, generator=generator) * self.init_std)

    def mask(self, group: str) -> torch.Tensor:
        m: torch.Tensor = getattr(self, f"mask_{group}")
        return m

    def pair_mask(self, group: str) -> torch.Tensor:
        m: torch.Tensor = getattr(self, f"pair_mask_{group}")
        return m

    def _softmax(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = logits.masked_fill(~mask, float("-inf"))
        if self.temperature != 1.0:
            z = z / self.temperature
        return torch.softmax(z, dim=-1)

    def pair_weights(self, group: str) -> list[torch.Tensor]:
        """Per node, the softmax (at the temperature) over its input pairs."""
        out, start = [], 0
        pl, pm = self.pairs[group], self.pair_mask(group)
        for pairs in self.node_pairs:
            out.append(self._softmax(pl[start:start + len(pairs)], pm[start:start + len(pairs)]))
            start += len(pairs)
        return out

    @torch.no_grad()
    def set_mask(self, group: str, mask: torch.Tensor | np.ndarray) -> None:
        self.mask(group).copy_(torch.as_tensor(np.asarray(mask), dtype=torch.bool))

    def weights(self, group: str, weighting: Weighting = "softmax") -> torch.Tensor:
        """Op weights per edge: softmax over the unmasked ops (masked ops: exactly 0).

        ``max_w`` (SharpDARTS): ``1 - max_j w_j + w_i``, so the strongest op has weight 1.
        """
        logits = self.logits[group]
        mask = self.mask(group)
        w = self._softmax(logits, mask)
        if weighting == "max_w":
            w = (1.0 - w.max(dim=-1, keepdim=True).values + w) * mask
        return w

    def edge_weights(self, group: str) -> torch.Tensor | None:
        """PC-DARTS edge normalisation: softmax of the edge logits over each node's inputs;
        pairwise alphas: ``q_a = sum_b p_ab``, the pair weights summed per input edge."""
        if self.pairwise:
            q = self.logits[group].new_zeros(self.logits[group].shape[0])
            for pairs, p in zip(self.node_pairs, self.pair_weights(group)):
                a = torch.tensor([x for x, _ in pairs], device=q.device, dtype=torch.long)
                b = torch.tensor([y for _, y in pairs], device=q.device, dtype=torch.long)
                q = q.index_add(0, a, p).index_add(0, b, p)
            return q
        if not self.edge_norm:
            return None
        e = self.edges[group]
        out = torch.empty_like(e)
        for rows in self.node_edges:
            idx = torch.tensor(rows, device=e.device)
            out = out.index_copy(0, idx, torch.softmax(e[idx], dim=0))
        return out

    def numpy_weights(self, group: str) -> np.ndarray:
        return self.weights(group).detach().cpu().double().numpy()

    def numpy_edge_weights(self, group: str) -> np.ndarray | None:
        e = self.edge_weights(group)
        return None if e is None else e.detach().cpu().double().numpy()

    def active(self, group: str) -> list[list[int]]:
        """Per edge, the ops to run: unmasked and not ``none`` (whose output is 0 anyway); with
        a ``prune_threshold``, only ops whose weight exceeds it (MetaNAS' forward pruning)."""
        m = self.mask(group)
        if self.prune_threshold > 0:
            m = m & (self.weights(group).detach() > self.prune_threshold)
        mask = m.tolist()
        return [[k for k, on in enumerate(row) if on and self.ops[k] != "none"] for row in mask]


@dataclass
class ForwardState:
    """Per-step knobs of the regularizers, set by the search loop on the supernet."""

    weighting: Weighting = "softmax"
    aux_beta: float = 0.0
    skip_dropout: float = 0.0
    drop_path: float = 0.0  # MetaNAS: DropPath after every non-identity op, training only


OpBuilder = Callable[[str, int, int], nn.Module]  # (name, channels, stride) -> module


class MixedOp(nn.Module):
    """The mixed ops of the ``n_edges`` edges leaving one state, computed together.

    Edge ``e`` computes ``sum_o w[e, o] * o_e(x)`` with its own op weights (``o_e``: copy ``e``
    of op ``o``, see ``multi.py``). Returns ``(B, n_edges, C, H', W')``.
    """

    def __init__(
        self,
        ops: Sequence[str],
        build: OpBuilder,
        channels: int,
        stride: int,
        *,
        n_edges: int = 1,
        pc_k: int = 1,
        aux_skip: bool = False,
        pool_bn: bool = False,
    ) -> None:
        super().__init__()
        if channels % pc_k != 0:
            raise ValueError(f"partial channels: {channels} channels not divisible by K={pc_k}")
        self.names = tuple(ops)
        self.n = n_edges
        self.stride = stride
        self.pc_k = pc_k
        self.c_part = channels // pc_k

        def one(name: str) -> nn.Module:
            op = build(name, self.c_part, stride)
            if pool_bn and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(self.c_part, affine=False))
            return op

        self.ops = nn.ModuleDict(
            {name: make_multi(lambda name=name: one(name), n_edges)
             for name in ops if name != "none"}
        )
        self.skip_index = self.names.index("skip_connect") if "skip_connect" in self.names else -1
        self.aux: nn.Module | None = (
            make_multi(lambda: skip_op(channels, channels, stride, False), n_edges)
            if aux_skip else None
        )
        self.bypass_pool: nn.Module = (
            nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
        )

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        edge_w: torch.Tensor | None,
        active: Sequence[int],
        state: ForwardState,
    ) -> torch.Tensor:
        n = self.n
        xs = x[:, : self.c_part] if self.pc_k > 1 else x
        out: torch.Tensor | None = None
        for k in active:
            h = self.ops[self.names[k]](xs)
            # P-DARTS drops only the identity skip, not the stride-2 skip of reduction cells
            if (k == self.skip_index and self.stride == 1 and state.skip_dropout > 0
                    and self.training):
                h = F.dropout(h.expand(h.shape[0], n, *h.shape[2:]), p=state.skip_dropout)
            if state.drop_path > 0 and self.training and k != self.skip_index:
                keep = 1.0 - state.drop_path
                h = h.expand(h.shape[0], n, *h.shape[2:])
                h = h * torch.bernoulli(h.new_full((h.shape[0], n, 1, 1, 1), keep)) / keep
            term = w[:, k].view(1, n, 1, 1, 1) * h
            out = term if out is None else out + term
        if out is None:  # every op masked or `none`: zeros of the output shape
            sub = xs[:, :, :: self.stride, :: self.stride]
            out = sub.new_zeros(sub.shape[0], n, *sub.shape[1:])
        if out.shape[1] != n:
            out = out.expand(out.shape[0], n, *out.shape[2:])
        if self.pc_k > 1:
            rest = self.bypass_pool(x[:, self.c_part :])
            rest = rest.unsqueeze(1).expand(rest.shape[0], n, *rest.shape[1:])
            b, _, _, h_, w_ = out.shape
            full = torch.cat([out, rest], dim=2)
            c = full.shape[2]
            out = full.view(b, n, self.pc_k, c // self.pc_k, h_, w_).transpose(2, 3).reshape(
                b, n, c, h_, w_)
        if self.aux is not None and state.aux_beta != 0.0:
            out = out + state.aux_beta * self.aux(x)
        if edge_w is not None:
            out = out * edge_w.view(1, n, 1, 1, 1)
        return out


def darts_op_builder(affine: bool = False) -> OpBuilder:
    return lambda name, c, stride: make_op(name, c, c, stride, affine)


class Fan(nn.Module):
    """The out-edges of one state of a cell: alpha rows and target nodes (index buffers)."""

    def __init__(
        self, rows: Sequence[int], targets: Sequence[int], block: MixedOp, source: int
    ) -> None:
        super().__init__()
        self.source = source
        self.rows_list = list(rows)
        self.targets = list(targets)
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.long), persistent=False)
        self.block = block

    def rows_index(self) -> torch.Tensor:
        rows = self.rows
        assert isinstance(rows, torch.Tensor)
        return rows

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        edge_w: torch.Tensor | None,
        active: list[list[int]],
        state: ForwardState,
    ) -> torch.Tensor:
        rows = self.rows_index()
        union = sorted({k for r in self.rows_list for k in active[r]})
        e = None if edge_w is None else edge_w.index_select(0, rows)
        out: torch.Tensor = self.block(x, w.index_select(0, rows), e, union, state)
        return out


def run_fans(
    fans: Sequence[Fan],
    inputs: list[torch.Tensor],
    num_nodes: int,
    w: torch.Tensor,
    edge_w: torch.Tensor | None,
    active: list[list[int]],
    state: ForwardState,
) -> list[torch.Tensor]:
    """Evaluate a cell DAG fan by fan (fans sorted by source state: inputs, then nodes) and add
    their edges to their target nodes. Returns ``inputs + nodes``."""
    states = list(inputs)
    acc: list[torch.Tensor | None] = [None] * num_nodes
    for fan in fans:
        s = fan.source
        while len(states) <= s:
            node = acc[len(states) - len(inputs)]
            assert node is not None
            states.append(node)
        out = fan(states[s], w, edge_w, active, state)
        for k, i in enumerate(fan.targets):
            t = out[:, k]
            prev = acc[i]
            acc[i] = t if prev is None else prev + t
    while len(states) < len(inputs) + num_nodes:
        node = acc[len(states) - len(inputs)]
        assert node is not None
        states.append(node)
    return states


class SearchCell(nn.Module):
    """A DARTS search cell: ``nodes`` intermediate nodes, each reading every earlier state."""

    def __init__(
        self,
        ops: Sequence[str],
        nodes: int,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        *,
        pc_k: int = 1,
        aux_skip: bool = False,
        batch_edges: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.pre0: nn.Module = (
            FactorizedReduce(c_pp, c, False)
            if reduction_prev
            else ReLUConvBN(c_pp, c, 1, 1, False)
        )
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, False)
        build = darts_op_builder(False)
        fans = []
        for s in range(nodes + 1):  # states 0, 1 (inputs) and nodes 0..N-2 have out-edges
            all_targets = list(range(max(0, s - 1), nodes))
            groups = [all_targets] if batch_edges else [[t] for t in all_targets]
            for targets in groups:
                block = MixedOp(ops, build, c, 2 if reduction and s < 2 else 1,
                                n_edges=len(targets), pc_k=pc_k, aux_skip=aux_skip, pool_bn=True)
                fans.append(Fan([edge_index(i, s) for i in targets], targets, block, s))
        self.fans = nn.ModuleList(fans)

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        w: torch.Tensor,
        edge_w: torch.Tensor | None,
        active: list[list[int]],
        state: ForwardState,
    ) -> torch.Tensor:
        states = run_fans(
            list(self.fans), [self.pre0(s0), self.pre1(s1)], self.nodes, w, edge_w, active, state  # type: ignore[arg-type]
        )
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """DARTS search network; ``forward(x, alphas)``. See the module docstring."""

    def __init__(
        self,
        ops: Sequence[str],
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        reductions: Sequence[int] | None = None,
        stem_multiplier: int = 3,
        channel_growth: int = 2,
        pc_k: int = 1,
        aux_skip: bool = False,
        batch_edges: bool = True,
        stem_stride: int = 1,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.state = ForwardState()
        self.image_shape = image_shape
        self.stem, self.cells, c_p = stem_and_cells(
            in_channels, channels, layers, reductions, stem_multiplier, channel_growth,
            stem_stride,
            lambda c_pp, c_p, c, reduction, reduction_prev: (
                SearchCell(
                    ops, nodes, c_pp, c_p, c, reduction, reduction_prev, pc_k=pc_k,
                    aux_skip=aux_skip, batch_edges=batch_edges,
                ),
                nodes * c,
            ),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, alphas: Alphas) -> torch.Tensor:
        cache: dict[str, tuple[torch.Tensor, torch.Tensor | None, list[list[int]]]] = {}
        for g in ("normal", "reduce"):
            cache[g] = (
                alphas.weights(g, self.state.weighting), alphas.edge_weights(g), alphas.active(g)
            )
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            assert isinstance(cell, SearchCell)
            w, e, act = cache["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, w, e, act, self.state)
        out: torch.Tensor = self.classifier(self.pool(s1).flatten(1))
        return out


@dataclass
class SupernetOptions:
    """Supernet settings owned by the search strategy (not by the space)."""

    channels: int = 16
    layers: int = 8
    reductions: list[int] | None = None
    stem_multiplier: int = 3
    pc_k: int = 1
    aux_skip: bool = False
    edge_norm: bool = False
    batch_edges: bool = True
    pairwise: bool = False


class SupernetSpecBase:
    """What the one-shot views of a space share: the alphas over ``groups`` (one
    ``num_edges`` x ``ops`` logit matrix each; ``node_edges`` groups the edges by node)."""

    groups: tuple[str, ...]
    skip_group: str
    opts: SupernetOptions
    ops: tuple[str, ...]
    num_edges: int
    node_edges: list[list[int]]

    def new_alphas(self, generator: torch.Generator | None = None) -> Alphas:
        return Alphas(
            self.groups, self.num_edges, self.ops, self.node_edges,
            edge_norm=self.opts.edge_norm, generator=generator, pairwise=self.opts.pairwise,
        )


class DartsSupernetSpec(SupernetSpecBase):
    """One-shot view of a ``darts`` space: supernets, alphas and discretisation."""

    groups = ("normal", "reduce")
    skip_group = "normal"

    def __init__(self, space: object, opts: SupernetOptions) -> None:

        assert isinstance(space, DartsSpace)
        self.space = space
        self.opts = opts
        self.ops = space.ops
        self.nodes = space.nodes
        self.num_edges = num_edges(self.nodes)
        self.node_edges = [[edge_index(i, j) for j in range(i + 2)] for i in range(self.nodes)]

    def new_supernet(
        self, input_shape: tuple[int, ...], num_classes: int, *, layers: int | None = None
    ) -> Supernet:

        o = self.opts
        n_layers = o.layers if layers is None else layers
        reds = o.reductions if layers is None or o.reductions is None else None
        shape = image_shape(input_shape)
        return Supernet(
            self.ops, in_channels=shape[0], num_classes=num_classes,
            image_shape=None if len(input_shape) == 3 else shape,
            channels=o.channels, layers=n_layers, nodes=self.nodes, reductions=reds,
            stem_multiplier=o.stem_multiplier, channel_growth=self.space.channel_growth,
            pc_k=o.pc_k, aux_skip=o.aux_skip, batch_edges=o.batch_edges,
            stem_stride=self.space.stem_stride,
        )

    def discretize_weights(
        self, weights: dict[str, np.ndarray], edges: dict[str, np.ndarray | None]
    ) -> Architecture:
        g = parse_genotype(
            weights["normal"], weights["reduce"], self.ops, self.nodes,
            edge_normal=edges["normal"], edge_reduce=edges["reduce"],
        )
        return Architecture(g.to_tokens())

    def chosen_edges(self, arch: Architecture, group: str) -> list[tuple[int, str]]:
        """``(alpha row, op)`` of each edge the architecture keeps in ``group``."""
        g = Genotype.from_tokens(arch.tokens)
        pairs = g.normal if group == "normal" else g.reduce
        return [(edge_index(k // 2, j), op) for k, (op, j) in enumerate(pairs)]

    def skip_count(self, arch: Architecture) -> int:
        return Genotype.from_tokens(arch.tokens).count("skip_connect", "normal")
