"""DARTS-, PC-DARTS, P-DARTS, SharpDARTS and TSE mechanics, checked on tiny modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasforge.spaces.base import Architecture
from nasforge.spaces.darts.supernet import ForwardState, MixedOp, darts_op_builder
from nasforge.strategies.oneshot.darts import architect
from nasforge.strategies.oneshot.darts import regularizers as reg
from tests.strategies.oneshot.darts._darts_helpers import OPS3, batch, tiny_spec


def test_darts_minus_beta_schedule_changes_beta() -> None:
    lin = reg.DartsMinusParams()
    betas = [reg.aux_beta(lin, s, 11) for s in range(11)]
    assert betas[0] == 1.0 and betas[-1] == 0.0
    assert all(a > b for a, b in zip(betas, betas[1:]))
    assert betas[5] == pytest.approx(0.5)
    fixed = reg.DartsMinusParams(schedule="fixed", beta=0.7)
    assert {reg.aux_beta(fixed, s, 11) for s in range(11)} == {0.7}


def test_aux_skip_adds_beta_times_skip() -> None:
    torch.manual_seed(0)
    op = MixedOp(OPS3, darts_op_builder(), 4, 1, n_edges=2, aux_skip=True)
    x = torch.randn(2, 4, 5, 5)
    w = torch.softmax(torch.randn(2, len(OPS3)), -1)
    active = [1, 2, 3]
    base = op(x, w, None, active, ForwardState(aux_beta=0.0))
    half = op(x, w, None, active, ForwardState(aux_beta=0.5))
    torch.testing.assert_close(half - base, 0.5 * x.unsqueeze(1).expand_as(base))


def test_pc_darts_sends_c_over_k_channels_through_the_ops() -> None:
    torch.manual_seed(0)
    for stride in (1, 2):
        op = MixedOp(OPS3, darts_op_builder(), 8, stride, n_edges=2, pc_k=4)
        seen: list[int] = []
        def record(m: torch.nn.Module, i: tuple[torch.Tensor], o: torch.Tensor,
                   seen: list[int] = seen) -> None:
            seen.append(i[0].shape[1])

        hooks = [m.register_forward_hook(record) for m in op.ops.values()]
        x = torch.randn(2, 8, 6, 6)
        w = torch.softmax(torch.randn(2, len(OPS3)), -1)
        out = op(x, w, None, [1, 2, 3], ForwardState())
        for h in hooks:
            h.remove()
        assert seen == [2, 2, 2]  # every op sees exactly C/K = 2 channels
        side = 6 // stride
        assert out.shape == (2, 2, 8, side, side)
        if stride == 1:  # the bypassed 6 channels come back unchanged, shuffled into place
            # shuffle with K=4 groups of 2: channel c of group g goes to position c * 4 + g
            bypass = x[:, 2:]
            for g in range(1, 4):
                for c in range(2):
                    torch.testing.assert_close(out[:, 0, c * 4 + g], bypass[:, (g - 1) * 2 + c])


def test_edge_normalisation_weights_each_edge() -> None:
    spec = tiny_spec(edge_norm=True)
    alphas = spec.new_alphas(torch.Generator().manual_seed(0))
    e = alphas.edge_weights("normal")
    assert e is not None
    for rows in spec.node_edges:
        assert float(e[rows].sum().detach()) == pytest.approx(1.0)


def test_pdarts_topk_mask_keeps_the_strongest_ops() -> None:
    ops = ["none", "a", "b", "c"]
    w = np.array([[0.4, 0.1, 0.3, 0.2], [0.1, 0.5, 0.1, 0.3]])
    mask = np.ones((2, 4), dtype=bool)
    mask[1, 1] = False  # already masked: never revived
    new = reg.topk_mask(w, mask, ops, 2)
    assert new.tolist() == [[True, False, True, True], [True, False, True, True]]
    assert reg.topk_mask(w, new, ops, 1).tolist() == [[True, False, True, False],
                                                       [True, False, False, True]]


def test_masked_ops_have_zero_weight_and_do_not_run() -> None:
    spec = tiny_spec()
    alphas = spec.new_alphas(torch.Generator().manual_seed(0))
    mask = np.ones((spec.num_edges, len(spec.ops)), dtype=bool)
    mask[:, spec.ops.index("sep_conv_3x3")] = False
    alphas.set_mask("normal", mask)
    w = alphas.weights("normal")
    assert (w[:, spec.ops.index("sep_conv_3x3")] == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(spec.num_edges))
    net = spec.new_supernet((1, 6, 6), 3)
    calls: list[str] = []
    for name, m in net.named_modules():
        if name.endswith("ops.sep_conv_3x3"):
            m.register_forward_hook(lambda m, i, o: calls.append("sep"))
    net(batch()[0], alphas).sum().backward()
    assert calls == []
    assert alphas.logits["normal"].grad[:, spec.ops.index("sep_conv_3x3")].abs().sum() == 0


def test_skip_limit_removes_the_weakest_skips() -> None:
    spec = tiny_spec(ops=["none", "skip_connect", "sep_conv_3x3"])
    n = spec.num_edges
    normal = np.tile([0.1, 0.6, 0.3], (n, 1))
    normal[:, 1] += np.arange(n) * 0.01       # edge r's skip weight grows with r
    reduce = np.tile([0.1, 0.2, 0.7], (n, 1))
    weights = {"normal": normal, "reduce": reduce}
    edges: dict[str, np.ndarray | None] = {"normal": None, "reduce": None}
    plain = spec.discretize_weights(weights, edges)
    assert spec.skip_count(plain) == 4
    arch, removed = reg.limit_skips(spec, weights, edges, 2)
    assert spec.skip_count(arch) == 2 and removed == 2
    kept = [r for r, op in spec.chosen_edges(arch, "normal") if op == "skip_connect"]
    assert kept == [3, 4]  # the two strongest skip edges (of node 1) stay
    assert isinstance(arch, Architecture)


def test_skip_dropout_and_stage_schedules() -> None:
    assert reg.skip_dropout_rate(0.6, 0, 0.2) == 0.6
    assert reg.skip_dropout_rate(0.6, 5, 0.2) == pytest.approx(0.6 * math.exp(-1))
    assert reg.stage_bounds(10, 3) == [(0, 3), (3, 3), (6, 4)]
    assert reg.default_keep(8, 3) == [5, 3]


def test_sharp_max_w_and_cosine_power() -> None:
    spec = tiny_spec()
    alphas = spec.new_alphas(torch.Generator().manual_seed(0))
    w = alphas.weights("normal", "max_w")
    assert torch.allclose(w.max(-1).values, torch.ones(spec.num_edges))
    soft = alphas.weights("normal")
    torch.testing.assert_close(w, 1 - soft.max(-1, keepdim=True).values + soft)
    assert reg.cosine_power_lr(0.1, 0.001, 0, 10) == pytest.approx(0.1)
    assert reg.cosine_power_lr(0.1, 0.001, 10, 10) == pytest.approx(0.001)
    mid_power = reg.cosine_power_lr(1.0, 0.0, 5, 10)
    assert mid_power == pytest.approx((2**1.5 - 2) / 2)
    assert mid_power < reg.cosine_lr(1.0, 0, 5, 10)


def test_tse_sums_train_gradients_and_restores_weights() -> None:
    torch.manual_seed(0)
    spec = tiny_spec()
    alphas = spec.new_alphas(torch.Generator().manual_seed(0))
    net = spec.new_supernet((1, 6, 6), 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = [batch(8, s) for s in range(3)]
    architect.tse_accumulate(net, alphas, batches, opt)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert opt.state_dict()["state"] == {}
    g = alphas.logits["normal"].grad
    assert g is not None and g.abs().sum() > 0
    # one unrolled step equals the plain train-loss gradient
    alphas.zero_grad()
    architect.tse_accumulate(net, alphas, batches[:1], opt)
    ref = architect.first_order_grad(net, alphas, batches[0])
    torch.testing.assert_close(alphas.logits["normal"].grad, ref[0])


def test_pdarts_skip_dropout_drops_only_the_identity_skip() -> None:
    """P-DARTS wraps only the identity skip in dropout; the stride-2 skip of a reduction cell
    (a factorized reduce) is left alone."""
    idx = OPS3.index("skip_connect")
    w = torch.zeros(1, len(OPS3))
    w[0, idx] = 1.0
    for stride, dropped in ((1, True), (2, False)):
        torch.manual_seed(0)
        op = MixedOp(OPS3, darts_op_builder(), 4, stride, n_edges=1).train()
        x = torch.randn(2, 4, 6, 6)
        keep = op(x, w, None, [idx], ForwardState(skip_dropout=0.0))
        drop = op(x, w, None, [idx], ForwardState(skip_dropout=0.9))
        zeros = (drop == 0).float().mean().item()
        if dropped:
            assert zeros > 0.5
        else:
            torch.testing.assert_close(drop, keep)
