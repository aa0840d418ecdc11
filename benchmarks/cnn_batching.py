"""Does batching pay for CNN children? One-by-one vs ``torch.func.vmap`` vs grouped convolution.

The best case for batching: ``--k`` children of one identical CNN architecture (seed 003's
4-layer space as configs/digits_random.yaml sizes it for 8x8 digits), each with its own seed and
its own minibatches of ``--batch`` images; Adam lr 3e-3. Three ways to run one training step of
all K children:

  single   K separate models, autograd + ``torch.optim.Adam`` each (what TrainEvaluator does);
  vmap     one functional model, ``vmap(grad(loss))`` over stacked parameters, one fused Adam;
  grouped  one wide model: every conv has ``groups=K`` (member k owns channel block k), the
           classifier is a batched einsum; autograd + one fused Adam.

Prints seconds per step per child for each and the speed-up over ``single``; the last line is
one JSON object. nasforge keeps CNN children one by one unless a way pays clearly (see
docs/fast_eval.md for the measured figures).

    nice -n 10 .venv/bin/python benchmarks/cnn_batching.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from nasforge.data.base import make_task
from nasforge.spaces.base import Architecture
from nasforge.spaces.state_space import CNNSpace


def _seq(model: nn.Module) -> nn.Sequential:
    assert isinstance(model, nn.Sequential)
    return model


def _timeit(step: Callable[[], None], steps: int) -> tuple[float, float]:
    for _ in range(3):
        step()
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - w) / steps, (time.process_time() - c) / steps


class Grouped(nn.Module):
    """K copies of one Sequential CNN (Conv2d / activation / AdaptiveAvgPool2d / Flatten /
    Linear) as grouped convolutions; weights copied from the K given models."""

    def __init__(self, models: list[nn.Sequential]) -> None:
        super().__init__()
        k = len(models)
        self.k = k
        layers: list[nn.Module] = []
        for i, mod in enumerate(models[0]):
            if isinstance(mod, nn.Conv2d):
                convs: list[Any] = [m[i] for m in models]
                g = nn.Conv2d(mod.in_channels * k, mod.out_channels * k, mod.kernel_size[0],
                              mod.stride[0], mod.padding[0], groups=k)
                with torch.no_grad():
                    g.weight.copy_(torch.cat([c.weight for c in convs]))
                    g.bias.copy_(torch.cat([c.bias for c in convs]))  # type: ignore[union-attr]
                layers.append(g)
            elif isinstance(mod, nn.Linear):
                lins: list[Any] = [m[i] for m in models]
                self.w = nn.Parameter(torch.stack([lin.weight.detach() for lin in lins]))
                self.b = nn.Parameter(torch.stack([lin.bias.detach() for lin in lins]))
            else:
                layers.append(mod)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, K*C, H, W)
        h = self.body(x).view(x.shape[0], self.k, -1)  # (B, K, F)
        out: torch.Tensor = torch.einsum("bkf,kcf->bkc", h, self.w) + self.b
        return out  # (B, K, classes)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=16, help="children trained together")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per method")
    ap.add_argument("--arch", default="3,16,3,16,3,32,1,32", help="kernel,filters x 4 layers")
    ap.add_argument(
        "--mixed", action="store_true",
        help="realistic batch: single trains K random architectures of the space; vmap and "
        "grouped train K copies of the union shape (every layer 3x3, 32 filters) that a padded "
        "population of those children would need",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = make_task({"name": "digits"})
    space = CNNSpace(kernels=[1, 3], filters=[8, 16, 32], num_layers=4)
    arch = Architecture(tuple(int(t) for t in args.arch.split(",")))
    k, bs = args.k, args.batch
    models: list[nn.Sequential] = []
    singles: list[nn.Sequential] = []
    rng = np.random.default_rng(0)
    for seed in range(k):
        torch.manual_seed(seed)
        if args.mixed:
            arch = Architecture((3, 32) * 4)
            child = space.sample(rng)
            singles.append(_seq(space.build(child, task.input_shape, task.num_classes)))
        models.append(_seq(space.build(arch, task.input_shape, task.num_classes)))
    singles = singles or models
    x, y = task.train.x, task.train.y
    n = len(y)
    gen = torch.Generator().manual_seed(0)

    def batches() -> tuple[torch.Tensor, torch.Tensor]:  # (K, B, ...) own minibatch per child
        idx = torch.randint(0, n, (k, bs), generator=gen)
        return x[idx], y[idx]

    # single: K models, autograd + torch.optim.Adam each
    opts = [torch.optim.Adam(m.parameters(), lr=3e-3) for m in singles]

    def single() -> None:
        xb, yb = batches()
        for i, (m, o) in enumerate(zip(singles, opts)):
            o.zero_grad(set_to_none=True)
            F.cross_entropy(m(xb[i]), yb[i]).backward()
            o.step()

    # vmap: stacked parameters, vmap(grad), one Adam over the stacks
    base = models[0]
    stacked = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
               for name, _ in base.named_parameters()}
    vparams = [p.requires_grad_(False) for p in stacked.values()]
    vopt = torch.optim.Adam(vparams, lr=3e-3)

    def loss_fn(params: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> Any:
        return F.cross_entropy(functional_call(base, params, (xb,)), yb)

    vgrad = vmap(grad(loss_fn))

    def vmapped() -> None:
        xb, yb = batches()
        grads = vgrad(stacked, xb, yb)
        for p, g in zip(vparams, grads.values()):
            p.grad = g
        vopt.step()

    # grouped convolution
    gmodel = Grouped(models)
    gopt = torch.optim.Adam(gmodel.parameters(), lr=3e-3)

    def grouped() -> None:
        xb, yb = batches()  # (K, B, C, H, W) -> (B, K*C, H, W)
        xg = xb.transpose(0, 1).reshape(bs, -1, *xb.shape[3:])
        logits = gmodel(xg)  # (B, K, classes)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.t().reshape(-1))
        gopt.zero_grad(set_to_none=True)
        (loss * k).backward()  # sum over members of each member's mean loss
        gopt.step()

    out: dict[str, Any] = {"k": k, "batch": bs, "mixed": args.mixed, "arch": list(arch.tokens),
                           "params_per_child": sum(p.numel() for p in base.parameters()),
                           "load_before": round(os.getloadavg()[0], 2)}
    for name, fn in [("single", single), ("vmap", vmapped), ("grouped", grouped)]:
        wall, cpu = _timeit(fn, args.steps)
        out[name] = {"ms_per_child_step": round(1e3 * wall / k, 3),
                     "cpu_ms_per_child_step": round(1e3 * cpu / k, 3)}
        print(name, json.dumps(out[name]), flush=True)
    for name in ("vmap", "grouped"):
        out[name]["speedup"] = round(
            out["single"]["cpu_ms_per_child_step"] / out[name]["cpu_ms_per_child_step"], 2
        )
    out["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
