"""Batched population training of MLP children: stacked weights, ``torch.bmm``, hand-written
backward pass, one fused elementwise optimiser over all stacked parameters.

Why (ALGORITHMS.md 7.4): one tiny MLP step costs ~0.8 ms of Python and autograd overhead while
its arithmetic is a few microseconds, so training children one by one wastes the CPU. Here a
*population* of M children is one set of stacked tensors; every op processes all of them.

Semantics kept per member (each equals :meth:`TrainEvaluator.fit_single` run alone, up to float
rounding; the tests check gradients against autograd, optimisers against ``torch.optim`` and
results against the one-by-one trainer):

* **Initial weights**: each member's ``nn.Sequential`` is built after ``seed_torch(seed)``,
  exactly as the one-by-one trainer does, and copied into the stack.
* **Minibatches**: each member has its own ``torch.Generator(seed)`` and draws its own
  ``randperm`` per epoch (the one-by-one trainer's stream), so it sees the same batches.
* **Optimiser**: Adam, AdamW, SGD (momentum) and RMSprop are elementwise, so running them on the
  stacked buffer is exactly per member (Adam/AdamW: torch's fused kernel; SGD/RMSprop: torch's
  single-tensor formulas). All live members share one step count because a member that stops
  is *removed* from the stack (compaction): its parameters and optimiser state stop changing.
* **Early stopping, best-epoch restore, ``reward: last``, ``val_metric: batch_mean``** (seed
  002's shuffled unweighted batch mean, drawn from each member's own ``Generator(seed + 1)``),
  gradient clipping (per-member norm).
* **Failure isolation**: a member whose loss becomes non-finite is marked ``failed`` and removed;
  members never share a reduction, so its NaNs cannot reach the others.

Grouping (``bucket``): ``shape`` stacks members whose layer shapes are identical (activation
kinds may differ per member; they are applied with per-member coefficients). ``merge`` stacks
*all* MLP members into one padded population: a common template of slots is built (shortest
common supersequence of the members' Linear/activation strings by majority merge), each member
uses a subsequence of it (unused Linear slots are frozen identities, unused activation slots are
identities) and narrower layers are zero-padded; padded weights get a zero gradient, so they
stay exactly zero and the member's function is unchanged. ``auto`` merges the members whose
hidden layers are at most 64 units wide (tiny layers: the cost is per-op overhead, so padding is
nearly free while one population instead of many saves whole training loops) and buckets the
others by shape (padding a wide population costs as much as its widest member).

Deviations:
    - ``train_seconds`` of a member is its share (by epochs) of its population's wall time.
    - A slot where members use different activations computes
      ``p*sigmoid(q*x) + r + beta*x + gamma*relu(x)`` with per-member coefficients (tanh as
      ``2*sigmoid(2x) - 1``, LeakyReLU as ``s*x + (1-s)*relu(x)``): equal up to rounding, but a
      pre-activation that overflows to +-inf gives NaN (0 * inf) where the one-by-one trainer's
      saturating activation stays finite, so such a member fails instead of limping on.
    - The one-by-one trainer's ``torch.optim`` step imports ``torch._dynamo`` on first use (~3 s
      per process); this trainer never does.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.evaluators.base import Result
from nasforge.logging import get_logger
from nasforge.seeding import seed_torch
from nasforge.spaces.base import Architecture

if TYPE_CHECKING:
    from nasforge.evaluators.train import TrainEvaluator, TrainParams

_logger = get_logger(__name__)
_aten = torch.ops.aten

ActKey = tuple[Any, ...]
IDENTITY: ActKey = ("identity",)
#: activations expressible as p*sigmoid(q*x) + r + beta*x + gamma*relu(x)
_AFFINE = {"sigmoid", "tanh", "relu", "leaky", "identity"}
MAX_POPULATION = 1024
PAD_WIDTH = 64


# --------------------------------------------------------------------------- model parsing
@dataclass(frozen=True)
class LinearOp:
    fan_in: int
    fan_out: int
    index: int  # position of the nn.Linear inside the member's Sequential


Op = LinearOp | ActKey


def act_key(module: nn.Module) -> ActKey | None:
    """A hashable description of a supported elementwise activation module, else None."""
    if isinstance(module, nn.Sigmoid):
        return ("sigmoid",)
    if isinstance(module, nn.Tanh):
        return ("tanh",)
    if isinstance(module, nn.ReLU):
        return ("relu",)
    if isinstance(module, nn.LeakyReLU):
        return ("leaky", float(module.negative_slope))
    if isinstance(module, nn.ELU):
        return ("elu", float(module.alpha))
    if isinstance(module, nn.GELU):
        return ("gelu", str(module.approximate))
    if isinstance(module, nn.SiLU):
        return ("silu",)
    if isinstance(module, nn.Identity):
        return IDENTITY
    return None


def mlp_ops(model: nn.Module, input_shape: Sequence[int]) -> list[Op] | None:
    """The Linear/activation program of ``model``, or None when it is not a batchable MLP.

    Batchable: an ``nn.Sequential`` of an optional leading ``Flatten`` (required for inputs with
    more than one dimension), ``nn.Linear`` layers with bias and supported activations, ending
    with a Linear.
    """
    if not isinstance(model, nn.Sequential) or len(model) == 0:
        return None
    mods = list(model)
    start = 1 if isinstance(mods[0], nn.Flatten) else 0
    if start == 0 and len(input_shape) != 1:
        return None
    ops: list[Op] = []
    for i, m in enumerate(mods[start:], start=start):
        if isinstance(m, nn.Linear):
            if m.bias is None:
                return None
            ops.append(LinearOp(m.in_features, m.out_features, i))
        else:
            key = act_key(m)
            if key is None:
                return None
            ops.append(key)
    if not ops or not isinstance(ops[-1], LinearOp):
        return None
    return ops


def _kind(op: Op) -> str:
    return "L" if isinstance(op, LinearOp) else "A"


def signature(ops: Sequence[Op]) -> tuple[Any, ...]:
    """Shape signature: Linear shapes and activation positions (activation kinds excluded)."""
    return tuple((o.fan_in, o.fan_out) if isinstance(o, LinearOp) else "A" for o in ops)


def _embed(template: Sequence[str], body: Sequence[str]) -> list[int] | None:
    """Leftmost embedding of ``body`` as a subsequence of ``template`` (slot per op)."""
    out, t = [], 0
    for kind in body:
        while t < len(template) and template[t] != kind:
            t += 1
        if t == len(template):
            return None
        out.append(t)
        t += 1
    return out


def _majority_merge(bodies: Sequence[Sequence[str]], first: str) -> list[str]:
    pos = [0] * len(bodies)
    template: list[str] = []
    order = (first, "A" if first == "L" else "L")
    while True:
        heads = [b[p] for b, p in zip(bodies, pos) if p < len(b)]
        if not heads:
            return template
        counts = Counter(heads)
        kind = max(order, key=lambda k: counts.get(k, 0))
        template.append(kind)
        for m, b in enumerate(bodies):
            if pos[m] < len(b) and b[pos[m]] == kind:
                pos[m] += 1


def _alternating(bodies: Sequence[Sequence[str]], first: str) -> list[str]:
    longest = max((len(b) for b in bodies), default=0)
    other = "A" if first == "L" else "L"
    alt = [first if i % 2 == 0 else other for i in range(2 * longest + 1)]
    need = 0
    for b in bodies:
        slots = _embed(alt, b)
        assert slots is not None
        need = max(need, slots[-1] + 1 if slots else 0)
    return alt[:need]


def make_template(programs: Sequence[Sequence[Op]]) -> tuple[list[str], list[list[int]]]:
    """A slot template every program embeds into, and each program's slot per op.

    The final Linear of every program maps to the template's last slot. The bodies (all ops
    but the final Linear) share a common supersequence: the cheapest (Linear slots weigh 3,
    activation slots 2: their op counts) of majority merge (the shortest-common-supersequence
    heuristic) and the two alternating strings.
    """
    bodies = [[_kind(o) for o in ops[:-1]] for ops in programs]
    cands = [_majority_merge(bodies, f) for f in ("L", "A")]
    cands += [_alternating(bodies, f) for f in ("A", "L")]
    best = min(cands, key=lambda t: (3 * t.count("L") + 2 * t.count("A"), t))
    template = [*best, "L"]
    maps = []
    for b in bodies:
        slots = _embed(best, b)
        assert slots is not None
        maps.append([*slots, len(best)])
    return template, maps


# --------------------------------------------------------------------------- activations
def _act_fwd(key: ActKey, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply activation ``key``; returns (output, the tensor its backward needs)."""
    name = key[0]
    if name == "sigmoid":
        y = torch.sigmoid(x)
        return y, y
    if name == "tanh":
        y = torch.tanh(x)
        return y, y
    if name == "relu":
        y = torch.relu(x)
        return y, y
    if name == "leaky":
        return F.leaky_relu(x, key[1]), x
    if name == "elu":
        return F.elu(x, key[1]), x
    if name == "gelu":
        return F.gelu(x, approximate=key[1]), x
    if name == "silu":
        return F.silu(x), x
    return x, x


def _act_bwd(key: ActKey, g: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    name = key[0]
    if name == "sigmoid":
        return _aten.sigmoid_backward(g, saved)
    if name == "tanh":
        return _aten.tanh_backward(g, saved)
    if name == "relu":
        return _aten.threshold_backward(g, saved, 0)
    if name == "leaky":
        return _aten.leaky_relu_backward(g, saved, key[1], False)
    if name == "elu":
        return _aten.elu_backward(g, key[1], 1, 1, False, saved)
    if name == "gelu":
        return _aten.gelu_backward(g, saved, approximate=key[1])
    if name == "silu":
        return _aten.silu_backward(g, saved)
    return g


class _ActSlot:
    """One activation position of the template; members may use different activations."""

    def __init__(self, keys: list[ActKey], device: torch.device) -> None:
        distinct = sorted(set(keys), key=repr)
        self.mode = "one" if len(distinct) == 1 else (
            "affine" if all(k[0] in _AFFINE for k in distinct) else "mix"
        )
        self.distinct = distinct
        self.coef: dict[str, torch.Tensor] = {}

        def col(vals: list[float]) -> torch.Tensor:
            return torch.tensor(vals, dtype=torch.float32, device=device).view(-1, 1, 1)

        if self.mode == "affine":
            q: list[float] = []
            p: list[float] = []
            r: list[float] = []
            beta: list[float] = []
            gamma: list[float] = []
            for k in keys:
                qv, pv, rv, bv, gv = {
                    "sigmoid": (1.0, 1.0, 0.0, 0.0, 0.0),
                    "tanh": (2.0, 2.0, -1.0, 0.0, 0.0),  # tanh(x) = 2 sigmoid(2x) - 1
                    "relu": (1.0, 0.0, 0.0, 0.0, 1.0),
                    "identity": (1.0, 0.0, 0.0, 1.0, 0.0),
                }.get(k[0], (1.0, 0.0, 0.0, 0.0, 0.0))
                if k[0] == "leaky":  # leaky(x) = s x + (1 - s) relu(x)
                    bv, gv = k[1], 1.0 - k[1]
                for lst, val in zip((q, p, r, beta, gamma), (qv, pv, rv, bv, gv)):
                    lst.append(val)
            self.has_sig = any(v != 0 for v in p)
            self.has_lin = any(v != 0 for v in beta)
            self.has_relu = any(v != 0 for v in gamma)
            self.coef = {"q": col(q), "p": col(p), "r": col(r), "beta": col(beta),
                         "gamma": col(gamma), "pq": col([a * b for a, b in zip(p, q)])}
        elif self.mode == "mix":
            for j, d in enumerate(distinct):
                self.coef[f"m{j}"] = col([1.0 if k == d else 0.0 for k in keys])

    def keep(self, idx: torch.Tensor) -> None:
        self.coef = {k: v.index_select(0, idx) for k, v in self.coef.items()}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if self.mode == "one":
            return _act_fwd(self.distinct[0], x)
        c = self.coef
        if self.mode == "affine":
            y: torch.Tensor | None = None
            s = rl = None
            if self.has_sig:
                s = torch.sigmoid(x * c["q"])
                y = torch.addcmul(c["r"], c["p"], s)
            if self.has_lin:
                y = x * c["beta"] if y is None else y.addcmul_(c["beta"], x)
            if self.has_relu:
                rl = torch.relu(x)
                y = rl * c["gamma"] if y is None else y.addcmul_(c["gamma"], rl)
            assert y is not None
            return y, (s, rl)
        outs = []
        y = None
        for j, d in enumerate(self.distinct):
            yj, sj = _act_fwd(d, x)
            outs.append(sj)
            y = yj * c[f"m{j}"] if y is None else y.addcmul_(c[f"m{j}"], yj)
        assert y is not None
        return y, outs

    def backward(self, g: torch.Tensor, saved: Any) -> torch.Tensor:
        if self.mode == "one":
            return _act_bwd(self.distinct[0], g, saved)
        c = self.coef
        out: torch.Tensor | None = None
        if self.mode == "affine":
            s, rl = saved
            if self.has_sig:
                out = _aten.sigmoid_backward(g, s).mul_(c["pq"])
            if self.has_lin:
                out = g * c["beta"] if out is None else out.addcmul_(g, c["beta"])
            if self.has_relu:
                t = _aten.threshold_backward(g, rl, 0)
                out = t.mul_(c["gamma"]) if out is None else out.addcmul_(t, c["gamma"])
            assert out is not None
            return out
        for j, d in enumerate(self.distinct):
            t = _act_bwd(d, g, saved[j])
            out = t.mul_(c[f"m{j}"]) if out is None else out.addcmul_(t, c[f"m{j}"])
        assert out is not None
        return out


# --------------------------------------------------------------------------- optimiser
class StackedOptimizer:
    """``torch.optim`` Adam / AdamW / SGD / RMSprop semantics on stacked ``(M, ...)`` tensors.

    Adam and AdamW call torch's fused multi-tensor kernel (``torch._fused_adam_``: one memory
    pass over all tensors; elementwise, so exact per member; the public ``torch.optim`` wrapper
    is avoided because its first step imports ``torch._dynamo``, ~3 s), falling back to torch's
    single-tensor formulas where the kernel is missing. SGD and RMSprop follow torch's
    single-tensor code. One step count is shared: members that stop are removed
    (:meth:`keep`), never masked.
    """

    def __init__(
        self, p: TrainParams, params: list[torch.Tensor],
        masks: list[torch.Tensor | None] | None = None,
    ) -> None:
        self.kind, self.lr, self.wd, self.mom = p.optimizer, p.lr, p.weight_decay, p.momentum
        self.step_count = 0
        self.fused = True
        self.state: dict[str, list[torch.Tensor]] = {}
        # Padded entries (mask 0) always have a zero gradient, so their first moment stays 0
        # and their update is exactly 0 whatever the second moment; it starts at 1 there
        # because sqrt of zeros is ~10x slower than of normal numbers on CPU.
        masks = masks or [None] * len(params)
        sq = [torch.zeros_like(t) if m is None else 1.0 - m for t, m in zip(params, masks)]
        if self.kind in ("adam", "adamw"):
            self.state = {"m": [torch.zeros_like(t) for t in params], "v": sq}
        elif self.kind == "rmsprop":
            self.state = {"sq": sq}
            if self.mom > 0:
                self.state["buf"] = [torch.zeros_like(t) for t in params]

    def keep(self, idx: torch.Tensor) -> None:
        self.state = {k: [t.index_select(0, idx) for t in v] for k, v in self.state.items()}

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        self.step_count += 1
        if self.kind in ("adam", "adamw"):
            self._adam(params, grads)
            return
        for i, (param, grad) in enumerate(zip(params, grads)):
            if self.wd:
                grad = grad.add(param, alpha=self.wd)
            if self.kind == "sgd":
                if self.mom:
                    bufs = self.state.setdefault("buf", [])
                    if len(bufs) <= i:
                        bufs.append(grad.clone())
                    else:
                        bufs[i].mul_(self.mom).add_(grad)
                    grad = bufs[i]
                param.add_(grad, alpha=-self.lr)
                continue
            sq = self.state["sq"][i]  # rmsprop: alpha 0.99, eps 1e-8 (torch's defaults)
            sq.mul_(0.99).addcmul_(grad, grad, value=1 - 0.99)
            avg = sq.sqrt().add_(1e-8)
            if self.mom > 0:
                buf = self.state["buf"][i]
                buf.mul_(self.mom).addcdiv_(grad, avg)
                param.add_(buf, alpha=-self.lr)
            else:
                param.addcdiv_(grad, avg, value=-self.lr)

    def _adam(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        b1, b2, eps, lr, wd = 0.9, 0.999, 1e-8, self.lr, self.wd
        ms, vs = self.state["m"], self.state["v"]
        if self.fused:
            fn = getattr(torch, "_fused_adamw_" if self.kind == "adamw" else "_fused_adam_", None)
            step = torch.tensor(float(self.step_count), device=params[0].device)
            try:
                assert fn is not None
                fn(params, grads, ms, vs, [], [step] * len(params), lr=lr, beta1=b1,
                   beta2=b2, weight_decay=wd, eps=eps, amsgrad=False, maximize=False)
                return
            except (AssertionError, RuntimeError, TypeError, NotImplementedError):
                self.fused = False
        bc1 = 1 - b1**self.step_count
        bc2 = 1 - b2**self.step_count
        for param, grad, m, v in zip(params, grads, ms, vs):
            if wd:
                if self.kind == "adamw":
                    param.mul_(1 - lr * wd)
                else:
                    grad = grad.add(param, alpha=wd)
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
            param.addcdiv_(m, denom, value=-lr / bc1)


# --------------------------------------------------------------------------- population
@dataclass
class Member:
    """One child in a population: its position in the caller's batch and its program."""

    pos: int
    arch: Architecture
    seed: int
    model: nn.Sequential
    ops: list[Op]
    params: int
    slots: list[int] = field(default_factory=list)


@dataclass
class _LinSlot:
    index: int  # parameters: params[2 * index] weight (M, fout, fin), params[2 * index + 1] bias
    fin: int
    fout: int
    eye: torch.Tensor | None  # identities added for members that skip this slot


class Population:
    """M stacked MLPs trained together; see the module docstring for the semantics.

    Parameters live in ``params``: per Linear slot a weight ``(M, fout, fin)`` and a bias
    ``(M, 1, fout)``; ``masks`` (same shapes, or None) zero the gradient of padded entries and of
    the frozen identities of members that skip the slot. The identities are stored in the
    weights themselves (a zero gradient keeps them exact) unless weight decay would shrink
    them; then they are added in the forward pass.
    """

    def __init__(
        self,
        members: list[Member],
        template: list[str],
        p: TrainParams,
        device: torch.device,
        in_dim: int,
    ) -> None:
        self.members = members
        self.p = p
        self.device = device
        M = len(members)
        # real width of every member before each slot, and what each slot does for it
        widths_in = [[0] * len(template) for _ in members]
        widths_out = [[0] * len(template) for _ in members]
        uses: list[dict[int, Op]] = []
        for m, mem in enumerate(members):
            use = {s: op for s, op in zip(mem.slots, mem.ops)}
            uses.append(use)
            w = in_dim
            for s in range(len(template)):
                widths_in[m][s] = w
                op = use.get(s)
                if isinstance(op, LinearOp):
                    if op.fan_in != w:
                        raise ValueError(f"member {m}: Linear fan_in {op.fan_in} != width {w}")
                    w = op.fan_out
                widths_out[m][s] = w
        bake_identity = p.weight_decay == 0
        self.slots: list[_LinSlot | _ActSlot] = []
        self.params: list[torch.Tensor] = []
        self.masks: list[torch.Tensor | None] = []
        for s, kind in enumerate(template):
            if kind == "A":
                keys: list[ActKey] = []
                for m in range(M):
                    op = uses[m].get(s)
                    keys.append(op if isinstance(op, tuple) else IDENTITY)
                self.slots.append(_ActSlot(keys, device))
                continue
            fin = max(widths_in[m][s] for m in range(M))
            fout = max(widths_out[m][s] for m in range(M))
            weight, bias = torch.zeros(M, fout, fin), torch.zeros(M, 1, fout)
            wmask, bmask = torch.zeros(M, fout, fin), torch.zeros(M, 1, fout)
            eye: torch.Tensor | None = None
            for m, mem in enumerate(members):
                op = uses[m].get(s)
                if isinstance(op, LinearOp):
                    lin = mem.model[op.index]
                    assert isinstance(lin, nn.Linear)
                    weight[m, : op.fan_out, : op.fan_in] = lin.weight.detach()
                    bias[m, 0, : op.fan_out] = lin.bias.detach()
                    wmask[m, : op.fan_out, : op.fan_in] = 1.0
                    bmask[m, 0, : op.fan_out] = 1.0
                else:  # a frozen identity on the member's current width
                    w = widths_in[m][s]
                    if bake_identity:
                        weight[m, :w, :w] = torch.eye(w)
                    else:
                        if eye is None:
                            eye = torch.zeros(M, fout, fin)
                        eye[m, :w, :w] = torch.eye(w)
            self.slots.append(_LinSlot(len(self.params) // 2, fin, fout,
                                       None if eye is None else eye.to(device)))
            self.params += [weight.to(device), bias.to(device)]
            self.masks += [None if bool(wmask.all()) else wmask.to(device),
                           None if bool(bmask.all()) else bmask.to(device)]
        self.opt = StackedOptimizer(p, self.params, self.masks)
        self.alive = list(range(M))  # member indices of the stack rows

    # ------------------------------------------------------------ stack maintenance
    def keep(self, rows: list[int]) -> None:
        """Keep only stack rows ``rows`` (compaction after stops and failures)."""
        idx = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.params = [t.index_select(0, idx) for t in self.params]
        self.masks = [None if t is None else t.index_select(0, idx) for t in self.masks]
        self.opt.keep(idx)
        for slot in self.slots:
            if isinstance(slot, _ActSlot):
                slot.keep(idx)
            elif slot.eye is not None:
                slot.eye = slot.eye.index_select(0, idx)
        self.alive = [self.alive[r] for r in rows]

    # ------------------------------------------------------------ forward / backward
    def forward(self, x: torch.Tensor, *, train: bool) -> tuple[torch.Tensor, list[Any]]:
        """Logits ``(M, B, C)`` of input ``(M, B, in)``; ``saved`` for :meth:`backward`."""
        saved: list[Any] = []
        h = x
        for slot in self.slots:
            if isinstance(slot, _LinSlot):
                w, b = self.params[2 * slot.index], self.params[2 * slot.index + 1]
                if slot.eye is not None:
                    w = w + slot.eye
                z = torch.bmm(h, w.transpose(1, 2)).add_(b)
                if train:
                    saved.append((h, w))
                h = z
            else:
                h, ctx = slot.forward(h)
                if train:
                    saved.append(ctx)
        return h, saved

    def backward(self, g: torch.Tensor, saved: list[Any]) -> list[torch.Tensor]:
        """Gradients (like ``params``) from the logits' gradient ``g``."""
        grads: list[torch.Tensor] = [g] * len(self.params)
        for k in range(len(self.slots) - 1, -1, -1):
            slot = self.slots[k]
            if isinstance(slot, _LinSlot):
                h, w = saved[k]
                i = 2 * slot.index
                grads[i] = torch.bmm(g.transpose(1, 2), h)
                grads[i + 1] = g.sum(1, keepdim=True)
                if k > 0:
                    g = torch.bmm(g, w)
            else:
                g = slot.backward(g, saved[k])
        for grad, mask in zip(grads, self.masks):
            if mask is not None:
                grad.mul_(mask)
        return grads

    @torch.no_grad()
    def loss_and_grad(
        self, xb: torch.Tensor, yb: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-member mean cross-entropy ``(M,)`` and its gradients (like ``params``)."""
        logits, saved = self.forward(xb, train=True)
        logp = torch.log_softmax(logits, 2)
        idx = yb.unsqueeze(2)
        loss = -logp.gather(2, idx).squeeze(2).mean(1)
        g = logp.exp_()  # softmax - one-hot, over the batch size: d(mean CE) / d logits
        g.scatter_add_(2, idx, torch.full(idx.shape, -1.0, device=g.device))
        g.mul_(1.0 / yb.shape[1])
        return loss, self.backward(g, saved)

    @torch.no_grad()
    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One optimiser step of every live member; returns the per-member losses ``(M,)``."""
        loss, grads = self.loss_and_grad(xb, yb)
        if self.p.grad_clip > 0:  # torch's clip_grad_norm_, per member
            sq = sum(g.pow(2).sum((1, 2)) for g in grads)
            assert isinstance(sq, torch.Tensor)
            coef = (self.p.grad_clip / (sq.sqrt() + 1e-6)).clamp_(max=1.0).view(-1, 1, 1)
            for g in grads:
                g.mul_(coef)
        self.opt.step(self.params, grads)
        return loss

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class predictions ``(M, N)`` of shared inputs ``x`` ``(N, in)``, in chunks."""
        M = self.params[0].shape[0]
        widest = max([x.shape[1]] + [s.fout for s in self.slots if isinstance(s, _LinSlot)])
        chunk = max(1, (1 << 22) // max(1, M * widest))
        out = []
        for i in range(0, x.shape[0], chunk):
            xc = x[i : i + chunk]
            logits, _ = self.forward(xc.unsqueeze(0).expand(M, *xc.shape), train=False)
            out.append(logits.argmax(2))
        return torch.cat(out, 1)

    def member_linears(
        self, row: int, tensors: list[torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) views of stack row ``row`` for each of its member's Linear layers,
        cut from ``tensors`` (shaped like ``params``: the parameters, gradients, a copy)."""
        mem = self.members[self.alive[row]]
        out = []
        for s, op in zip(mem.slots, mem.ops):
            if isinstance(op, LinearOp):
                slot = self.slots[s]
                assert isinstance(slot, _LinSlot)
                w, b = tensors[2 * slot.index], tensors[2 * slot.index + 1]
                out.append((w[row, : op.fan_out, : op.fan_in], b[row, 0, : op.fan_out]))
        return out

    def member_state(self, row: int, tensors: list[torch.Tensor]) -> nn.Sequential:
        """Copy stack row ``row`` of ``tensors`` into its member's own ``nn.Sequential``."""
        mem = self.members[self.alive[row]]
        lins = [m for m in mem.model if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, (w, b) in zip(lins, self.member_linears(row, tensors)):
                lin.weight.copy_(w)
                lin.bias.copy_(b)
        return mem.model


def _batch_mean(correct: torch.Tensor, perms: torch.Tensor, batch: int) -> torch.Tensor:
    """Seed 002's metric per row: unweighted mean of per-batch accuracies over shuffled
    batches (``perms`` holds each row's shuffle)."""
    c = correct.gather(1, perms)
    accs = [c[:, i : i + batch].mean(1) for i in range(0, c.shape[1], batch)]
    return torch.stack(accs, 1).mean(1)


def train_population(
    pop: Population, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
    val_y: torch.Tensor, *, keep_models: bool,
) -> list[tuple[nn.Module | None, Result]]:
    """Train every member of ``pop``; results in member order (models only if asked)."""
    p = pop.p
    M0 = len(pop.members)
    dev = pop.device
    start = time.perf_counter()
    n, nv = len(train_y), len(val_y)
    bs = n if p.batch_size == 0 else p.batch_size
    gens = [torch.Generator().manual_seed(m.seed) for m in pop.members]
    gvals = [torch.Generator().manual_seed(m.seed + 1) for m in pop.members]
    best = torch.full((M0,), -math.inf, device=dev)
    best_epoch = torch.zeros(M0, dtype=torch.long, device=dev)
    bad = torch.zeros(M0, dtype=torch.long, device=dev)
    last_loss = torch.full((M0,), math.nan, device=dev)
    best_state = [t.clone() for t in pop.params] if keep_models and p.reward == "best" else None
    out: list[tuple[nn.Module | None, Result] | None] = [None] * M0
    models: dict[int, nn.Module] = {}
    epochs_run = [0] * M0
    finished: list[tuple[int, str, float, float]] = []  # member, status, score/nan, error-epoch
    errors: dict[int, str] = {}
    per_epoch_gather = M0 * n * train_x.shape[1] <= (1 << 22)
    epoch = 0
    for epoch in range(1, p.max_epochs + 1):
        alive = pop.alive
        perms = torch.stack([torch.randperm(n, generator=gens[m]) for m in alive]).to(dev)
        xe = train_x[perms] if per_epoch_gather else None
        ye = train_y[perms]
        for i in range(0, n, bs):
            sl = slice(i, i + bs)
            xb = xe[:, sl] if xe is not None else train_x[perms[:, sl]]
            loss = pop.train_step(xb, ye[:, sl])
            if not math.isfinite(float(loss.sum())):
                finite = torch.isfinite(loss)
                rows = pop.alive
                keep = [r for r in range(len(rows)) if bool(finite[r])]
                for r in range(len(rows)):
                    if not bool(finite[r]):
                        m = rows[r]
                        errors[m] = f"diverged: non-finite training loss at epoch {epoch}"
                        epochs_run[m] = epoch
                        finished.append((m, "failed", math.nan, epoch))
                if not keep:
                    pop.alive = []
                    break
                kidx = torch.tensor(keep, device=dev)
                pop.keep(keep)
                perms, ye = perms[kidx], ye[kidx]
                if xe is not None:
                    xe = xe[kidx]
                if best_state is not None:
                    best_state = [t[kidx] for t in best_state]
                loss = loss[kidx]
        if not pop.alive:
            break
        alive_t = torch.tensor(pop.alive, device=dev)
        last_loss[alive_t] = loss
        correct = (pop.predict(val_x) == val_y.unsqueeze(0)).float()
        if p.val_metric == "batch_mean":
            vperms = torch.stack(
                [torch.randperm(nv, generator=gvals[m]) for m in pop.alive]
            ).to(dev)
            acc = _batch_mean(correct, vperms, p.val_batch_size)
        else:
            acc = correct.mean(1)
        prev_best = best[alive_t]
        improved = acc > prev_best
        best[alive_t] = torch.where(improved, acc, prev_best)
        best_epoch[alive_t] = torch.where(improved, epoch, best_epoch[alive_t])
        bad[alive_t] = torch.where(improved, 0, bad[alive_t] + 1)
        if best_state is not None and bool(improved.any()):
            for saved_t, live_t in zip(best_state, pop.params):
                saved_t[improved] = live_t[improved]
        stop = (bad[alive_t] >= p.patience) if p.patience else torch.zeros_like(improved)
        if epoch == p.max_epochs:
            stop = torch.ones_like(improved)
        if bool(stop.any()):
            rows = pop.alive
            keep = []
            for r, m in enumerate(rows):
                if bool(stop[r]):
                    epochs_run[m] = epoch
                    score = float(best[m]) if p.reward == "best" else float(acc[r])
                    finished.append((m, "complete", score, epoch))
                    if keep_models:
                        state = best_state if best_state is not None else pop.params
                        models[m] = pop.member_state(r, state)
                else:
                    keep.append(r)
            if keep:
                kidx = torch.tensor(keep, device=dev)
                pop.keep(keep)
                if best_state is not None:
                    best_state = [t[kidx] for t in best_state]
            else:
                pop.alive = []
                break
    seconds = time.perf_counter() - start
    total_epochs = max(1, sum(epochs_run))
    for m, status, score, _ in finished:
        mem = pop.members[m]
        share = seconds * epochs_run[m] / total_epochs
        if status == "failed":
            out[m] = (None, Result.failed(
                errors[m], params=mem.params, epochs=epochs_run[m], train_seconds=share,
                metrics={"population": M0},
            ))
            continue
        out[m] = (models.get(m), Result(
            status="complete",
            val_acc=score,
            params=mem.params,
            train_seconds=share,
            epochs=epochs_run[m],
            metrics={
                "best_epoch": int(best_epoch[m]),
                "best_val_acc": float(best[m]),
                "train_loss": float(last_loss[m]),
                "population": M0,
            },
        ))
    for m, o in enumerate(out):  # cannot happen unless max_epochs < 1
        if o is None:
            out[m] = (None, Result.failed("population ended without a result"))
    return [o for o in out if o is not None]


# --------------------------------------------------------------------------- driver
def _fit_one(
    ev: TrainEvaluator, arch: Architecture, seed: int, keep_model: bool
) -> tuple[nn.Module | None, Result]:
    """The one-by-one trainer for a child that cannot join a population; never raises."""
    try:
        trained, res = ev.fit_single(arch, seed=seed)
    except Exception as err:  # a child's failure must not stop the others
        return None, Result.failed(f"{type(err).__name__}: {err}")
    if res.ok and not math.isfinite(res.val_acc):
        return None, Result.failed("non-finite objective", metrics=res.metrics)
    return (trained if keep_model else None), res


# Per-step cost model of a population (microseconds, one CPU thread; fitted to profiles of
# seed-002 populations): a fixed cost per step and per template slot, plus per member and slot
# a cost that grows with the padded width W (Linear: bmm ~ W^2; mixed activations ~ W).
_STEP_US, _SLOT_US = 200.0, 50.0


def _member_slot_us(width: int) -> float:
    return 0.5 * (0.3 + 0.0035 * width * width) + 0.5 * 0.25 * width


def _need(mem: Member) -> int:
    """Template slots ``mem`` needs: its body embedded in the shorter alternating string, + 1
    for the classifier."""
    body = [_kind(o) for o in mem.ops[:-1]]
    best = 0
    if body:
        lengths = []
        for first, other in (("A", "L"), ("L", "A")):
            alt = [first if i % 2 == 0 else other for i in range(2 * len(body))]
            slots = _embed(alt, body)
            assert slots is not None
            lengths.append(slots[-1] + 1)
        best = min(lengths)
    return best + 1


def _width(mem: Member) -> int:
    return max([o.fan_out for o in mem.ops[:-1] if isinstance(o, LinearOp)], default=1)


def _split_by_width(members: list[Member]) -> list[list[Member]]:
    """Partition ``members`` into width classes (contiguous in sorted max hidden width) that
    minimise the modelled per-step cost: padding a narrow member to a wide population costs
    arithmetic, every extra population costs per-step overhead."""
    widths = sorted({_width(m) for m in members})
    by_w: dict[int, list[Member]] = {w: [] for w in widths}
    for m in members:
        by_w[_width(m)].append(m)
    needs = {w: max(_need(m) for m in by_w[w]) for w in widths}

    def cost(i: int, j: int) -> float:  # one population of width classes i..j-1
        n = sum(len(by_w[w]) for w in widths[i:j])
        slots = max(needs[w] for w in widths[i:j])
        return _STEP_US + slots * (_SLOT_US + n * _member_slot_us(widths[j - 1]))

    k = len(widths)
    best = [0.0] + [math.inf] * k
    cut = [0] * (k + 1)
    for j in range(1, k + 1):
        for i in range(j):
            c = best[i] + cost(i, j)
            if c < best[j]:
                best[j], cut[j] = c, i
    groups: list[list[Member]] = []
    j = k
    while j > 0:
        i = cut[j]
        groups.append([m for w in widths[i:j] for m in by_w[w]])
        j = i
    return groups[::-1]


def _groups(members: list[Member], bucket: str, pad_width: int) -> list[list[Member]]:
    """Split members into populations per ``bucket`` (see the module docstring)."""
    groups: list[list[Member]] = []
    by_shape: dict[tuple[Any, ...], list[Member]] = {}
    merged: list[Member] = []
    for mem in members:
        # input and class counts are shared by all members: only hidden widths can pad
        if bucket == "merge" or (bucket == "auto" and _width(mem) <= pad_width):
            merged.append(mem)
        else:
            by_shape.setdefault(signature(mem.ops), []).append(mem)
    if merged:
        groups.extend([merged] if bucket == "merge" else _split_by_width(merged))
    groups.extend(by_shape.values())
    out = []
    for g in groups:
        for i in range(0, len(g), MAX_POPULATION):
            out.append(g[i : i + MAX_POPULATION])
    return out


def make_member(ev: TrainEvaluator, pos: int, arch: Architecture, seed: int) -> Member | None:
    """Build ``arch`` after ``seed_torch(seed)`` (the one-by-one trainer's initial weights);
    None if it is not a batchable MLP. Raises if it cannot be built."""
    seed_torch(seed)
    model = ev.build(arch)
    ops = mlp_ops(model, ev.task.input_shape)
    if ops is None:
        return None
    assert isinstance(model, nn.Sequential)
    params = sum(q.numel() for q in model.parameters() if q.requires_grad)
    return Member(pos, arch, seed, model, ops, params)


def make_population(ev: TrainEvaluator, members: list[Member]) -> Population:
    """Stack ``members`` on a common template (every member must be a batchable MLP)."""
    template, maps = make_template([m.ops for m in members])
    for m, slots in zip(members, maps):
        m.slots = slots
    in_dim = math.prod(ev.task.input_shape)
    return Population(members, template, ev.p, ev.device, in_dim)


def fit_batch(
    ev: TrainEvaluator,
    archs: Sequence[Architecture],
    seeds: Sequence[int],
    *,
    keep_models: bool = False,
    bucket: str | None = None,
) -> list[tuple[nn.Module | None, Result]]:
    """Train ``archs[i]`` with ``seeds[i]``: batchable MLPs as populations, the rest one by one.

    Returns ``(model or None, Result)`` per architecture, in order; models only with
    ``keep_models`` (best-epoch weights for ``reward: best``).
    """
    p = ev.p
    task = ev.task
    out: list[tuple[nn.Module | None, Result] | None] = [None] * len(archs)
    members: list[Member] = []
    singles: list[int] = []
    for i, (arch, seed) in enumerate(zip(archs, seeds)):
        try:
            mem = make_member(ev, i, arch, seed)
        except Exception as err:
            out[i] = (None, Result.failed(f"cannot build: {type(err).__name__}: {err}"))
            continue
        if mem is None:
            singles.append(i)
        else:
            members.append(mem)
    if members:
        dev = ev.device
        train, val = task.train.to(dev), task.val.to(dev)
        tx, vx = train.x.reshape(len(train), -1), val.x.reshape(len(val), -1)
        for group in _groups(members, bucket or p.bucket, PAD_WIDTH):
            try:
                pop = make_population(ev, group)
                results = train_population(pop, tx, train.y, vx, val.y, keep_models=keep_models)
            except Exception as err:  # a bug must not cost the search
                _logger.warning(
                    "batched training of %d members failed (%s: %s); training one by one",
                    len(group), type(err).__name__, err,
                )
                singles.extend(m.pos for m in group)
                continue
            for m, r in zip(group, results):
                out[m.pos] = r
    for i in sorted(singles):
        out[i] = _fit_one(ev, archs[i], seeds[i], keep_models)
    return [o if o is not None else (None, Result.failed("not evaluated")) for o in out]
