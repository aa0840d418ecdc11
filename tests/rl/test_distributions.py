"""Masked categorical: masked actions are never drawn and carry no probability or entropy."""

from __future__ import annotations

import math

import pytest
import torch

from nasforge.rl import MaskedCategorical, sequence_chunks


def test_masked_actions_are_never_sampled_and_entropy_ignores_them() -> None:
    logits = torch.zeros(1000, 4)
    mask = torch.tensor([True, False, True, False]).expand(1000, 4)
    dist = MaskedCategorical(logits, mask)
    a = dist.sample(torch.Generator().manual_seed(0))
    assert set(a.tolist()) == {0, 2}
    assert dist.entropy()[0].item() == pytest.approx(math.log(2))
    assert dist.log_prob(torch.zeros(1000, dtype=torch.long))[0].item() == pytest.approx(
        math.log(0.5)
    )


def test_unmasked_is_the_plain_categorical() -> None:
    logits = torch.randn(3, 5)
    dist = MaskedCategorical(logits)
    torch.testing.assert_close(dist.logp_all, torch.log_softmax(logits, -1))
    ref = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(dist.entropy(), ref.entropy())


def test_a_row_with_no_allowed_action_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one action"):
        MaskedCategorical(torch.zeros(2, 3), torch.tensor([[True, False, False], [False] * 3]))


def test_sequence_chunks_keep_each_environment_stream_in_order() -> None:
    x = torch.arange(10).reshape(5, 2)  # x[t, n] = 2t + n
    seq = sequence_chunks(x, 2)  # env 0: (0,2) (4,6) (8,pad); env 1: (1,3) (5,7) (9,pad)
    assert seq.tolist() == [[0, 2], [4, 6], [8, 0], [1, 3], [5, 7], [9, 0]]
    valid = sequence_chunks(torch.ones(5, 2), 2)
    assert valid[:, 1].tolist() == [1, 1, 0, 1, 1, 0]
