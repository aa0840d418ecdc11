"""The meta-learned network: a supernet (or Conv-4) with its alphas, and the task inner loop.

:class:`MetaModel` is what a MetaNAS run produces and what ``nasforge.load`` returns for one:
``model(x)`` gives logits, ``model.adapt(support_x, support_y, steps=50)`` returns a copy
adapted to a new task (the meta weights stay as they are). :meth:`MetaModel.inner_loop` is the
first-order DARTS inner loop of §1.2 step 3, used for meta-training tasks, meta-test tasks and
``adapt`` alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.spaces.darts.supernet import Alphas, ForwardState
from nasforge.strategies.oneshot.darts import architect as arch_grad
from nasforge.strategies.oneshot.darts import regularizers as reg
from nasforge.strategies.oneshot.metanas.meta import temperature

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class InnerSettings:
    """What the inner loop needs besides the data (saved with an exported model)."""

    w_lr: float = 0.005
    alpha_lr: float = 0.005
    w_betas: tuple[float, float] = (0.0, 0.999)
    alpha_betas: tuple[float, float] = (0.0, 0.999)
    alpha_weight_decay: float = 1e-3
    w_weight_decay: float = 0.0
    t_max: float = 1.0
    t_min: float = 0.05
    alpha_prune_threshold: float = 0.01
    grad_clip: float = 0.0
    mode: str = "first"  # architect mode: first or tse
    tse_steps: int = 1

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["w_betas"], d["alpha_betas"] = list(self.w_betas), list(self.alpha_betas)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> InnerSettings:
        d = dict(d)
        d["w_betas"], d["alpha_betas"] = tuple(d["w_betas"]), tuple(d["alpha_betas"])
        return cls(**d)


class MetaModel(nn.Module):
    """``net(x, alphas)`` with its alphas (None for Conv-4) and inner-loop settings."""

    def __init__(self, net: nn.Module, alphas: Alphas | None, settings: InnerSettings) -> None:
        super().__init__()
        self.net = net
        self.alphas = alphas
        self.settings = settings
        if alphas is not None:
            alphas.prune_threshold = settings.alpha_prune_threshold

    @property
    def fstate(self) -> ForwardState:
        st = getattr(self.net, "state", None)
        return st if isinstance(st, ForwardState) else ForwardState()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x, self.alphas)
        return out

    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
        """The two inner Adam optimisers (β1 = 0: no momentum leaks across tasks)."""
        s = self.settings
        w_opt = torch.optim.Adam(self.net.parameters(), lr=s.w_lr, betas=s.w_betas,
                                 weight_decay=s.w_weight_decay)
        a_opt = None if self.alphas is None else torch.optim.Adam(
            self.alphas.parameters(), lr=s.alpha_lr, betas=s.alpha_betas,
            weight_decay=s.alpha_weight_decay)
        return w_opt, a_opt

    def inner_loop(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        steps: int,
        arch_steps: int,
        batch_size: int,
        w_opt: torch.optim.Optimizer,
        a_opt: torch.optim.Optimizer | None,
        gen: torch.Generator,
        hooks: Sequence[reg.RegularizerHook] = (),
        grad_on: tuple[nn.Module, Alphas] | None = None,
    ) -> tuple[set[str], list[float]]:
        """``steps`` inner steps on the support set ``(x, y)``: per step an architecture step
        (the first ``arch_steps`` steps; on a second draw of the support set, or TSE's train
        trajectory) then a weight step; batches of ``batch_size`` drawn with replacement by
        ``gen``. The temperature follows the architecture steps done (§1.1). Returns the names
        of the weights that got a gradient and the train losses."""
        s, net, alphas = self.settings, self.net, self.alphas
        st = self.fstate
        touched: set[str] = set()
        losses: list[float] = []
        n = len(y)
        architect = None
        if alphas is not None and a_opt is not None and arch_steps > 0:
            clip = (lambda: nn.utils.clip_grad_norm_(net.parameters(), s.grad_clip)) \
                if s.grad_clip > 0 else None
            architect = arch_grad.Architect(net, alphas, a_opt, w_opt, mode=s.mode,
                                            tse_steps=s.tse_steps, clip=clip, grad_on=grad_on)
        names = [name for name, _ in net.named_parameters()]
        params = list(net.parameters())
        net.train()
        for step in range(steps):
            arch_on = architect is not None and step < arch_steps
            if alphas is not None:
                alphas.temperature = temperature(min(step, arch_steps - 1) if arch_steps else 0,
                                                 max(1, arch_steps), s.t_max, s.t_min)
                if grad_on is not None:
                    grad_on[1].temperature = alphas.temperature
            for h in hooks:
                h.on_batch(st, step, steps)
                if grad_on is not None and isinstance(grad_on[0].state, ForwardState):
                    grad_on[0].state.aux_beta = st.aux_beta
            train = self._draw(x, y, n, batch_size, gen)
            if arch_on:
                assert architect is not None
                val = self._draw(x, y, n, batch_size, gen)
                architect.step(0, [train], _const(val), s.w_lr)
            w_opt.zero_grad(set_to_none=True)
            a_params = [] if alphas is None else list(alphas.parameters())
            for a in a_params:
                a.requires_grad_(False)
            loss = F.cross_entropy(net(train[0], alphas), train[1])
            loss.backward()
            for a in a_params:
                a.requires_grad_(True)
            touched.update(nm for nm, p in zip(names, params) if p.grad is not None)
            if s.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, s.grad_clip)
            w_opt.step()
            losses.append(float(loss.detach()))
        return touched, losses

    @staticmethod
    def _draw(x: torch.Tensor, y: torch.Tensor, n: int, bs: int, gen: torch.Generator) -> Batch:
        idx = torch.randint(n, (bs,), generator=gen).to(x.device)
        return x[idx], y[idx]

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Query top-1 accuracy, BatchNorm on the query batch's statistics (transductive, as
        the running statistics of a supernet adapted in a few steps are meaningless); no
        DropPath, no skip dropout."""
        self.net.train()
        st = self.fstate
        drop, skip = st.drop_path, st.skip_dropout
        st.drop_path = st.skip_dropout = 0.0
        try:
            return float((self(x).argmax(1) == y).float().mean())
        finally:
            st.drop_path, st.skip_dropout = drop, skip

    def adapt(
        self, support_x: torch.Tensor, support_y: torch.Tensor, *, steps: int = 50,
        batch_size: int = 10, arch_steps: int | None = None, seed: int = 0,
    ) -> MetaModel:
        """A copy adapted to the task of ``(support_x, support_y)`` (labels ``0..N-1``): fresh
        inner optimisers, ``steps`` steps, the architecture adapted on ``arch_steps`` of them
        (default: all). The meta-learned weights of ``self`` are not changed."""
        ys = torch.as_tensor(support_y, dtype=torch.long)
        head = getattr(self.net, "classifier", None)
        n_out = int(head.out_features) if isinstance(head, nn.Linear) else None
        if n_out is not None and len(ys) and not 0 <= int(ys.min()) <= int(ys.max()) < n_out:
            raise ValueError(f"support labels must be 0..{n_out - 1} (the model is {n_out}-way), "
                             f"got {int(ys.min())}..{int(ys.max())}")
        model = copy.deepcopy(self)
        w_opt, a_opt = model.optimizers()
        dev = next(model.net.parameters()).device
        model.inner_loop(
            torch.as_tensor(support_x, dtype=torch.float32).to(dev),
            torch.as_tensor(support_y, dtype=torch.long).to(dev), steps=steps,
            arch_steps=steps if arch_steps is None else arch_steps, batch_size=batch_size,
            w_opt=w_opt, a_opt=a_opt, gen=torch.Generator().manual_seed(seed))
        return model

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices (batch statistics, as in :meth:`accuracy`)."""
        self.net.train()
        return self(torch.as_tensor(x, dtype=torch.float32)).argmax(1)


def _const(batch: Batch) -> Callable[[], Batch]:
    return lambda: batch


__all__ = ["InnerSettings", "MetaModel"]
