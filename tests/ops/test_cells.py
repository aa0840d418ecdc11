"""Every registered op keeps shapes and passes gradients; the grouped (multi-edge) version of
every op equals independent copies."""

from __future__ import annotations

import pytest
import torch

from nasforge.ops.cells import OP_SETS, OPS, make_op
from nasforge.spaces.darts.multi import make_multi


@pytest.mark.parametrize("name", OPS.names())
def test_op_shapes_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    for c_in, c_out, stride in ((4, 4, 1), (4, 4, 2), (4, 6, 1), (4, 6, 2)):
        op = make_op(name, c_in, c_out, stride, True)
        x = torch.randn(2, c_in, 5, 5, requires_grad=True)
        y = op(x)
        side = 5 if stride == 1 else 3  # ceil(5 / 2)
        assert y.shape == (2, c_out, side, side), (name, c_in, c_out, stride)
        if name == "none":
            assert not y.any()
            continue
        (y * torch.randn_like(y)).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for p in op.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_op_sets_are_registered() -> None:
    for ops in OP_SETS.values():
        assert all(o in OPS for o in ops)


@pytest.mark.parametrize("name", [n for n in OPS.names() if n != "none"])
def test_multi_edge_op_equals_independent_copies(name: str) -> None:
    torch.manual_seed(0)
    for stride in (1, 2):
        multi = make_multi(lambda s=stride: make_op(name, 4, 4, s, False), 3)
        x = torch.randn(3, 4, 5, 5)
        y = multi(x)
        assert y.shape[1] in (1, 3)
        for e in range(3):
            ref = multi.single(e)(x)
            torch.testing.assert_close(y[:, min(e, y.shape[1] - 1)], ref)
