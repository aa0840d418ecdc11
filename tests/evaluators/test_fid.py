"""FID maths against closed forms and scipy; the hinge loss and the n_critic schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.evaluators.fid import (
    frechet_distance,
    gaussian_stats,
    trace_sqrt_product,
    trace_sqrt_product_scipy,
    train_feature_net,
)
from nasforge.evaluators.pbt_gan import g_step_due, hinge_d_loss, hinge_g_loss
from nasforge.exceptions import DataError


def test_two_gaussians_closed_form() -> None:
    # diagonal covariances: FID = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-10)
    # a rotation of both Gaussians changes nothing
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    got = frechet_distance(q @ mu1, q @ np.diag(v1) @ q.T, q @ mu2, q @ np.diag(v2) @ q.T)
    assert got == pytest.approx(want, rel=1e-9)
    assert frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0.0, abs=1e-9)


def test_trace_of_the_matrix_square_root_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    for d in (2, 5, 16):
        a, b = rng.normal(size=(d, 3 * d)), rng.normal(size=(d, 3 * d))
        s1, s2 = a @ a.T / d, b @ b.T / d + 0.1 * np.eye(d)
        assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product_scipy(s1, s2),
                                                           rel=1e-7)


def test_sample_statistics_recover_a_known_distance() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, size=(20000, 2))
    y = rng.normal([3.0, 0.0], [2.0, 1.0], size=(20000, 2))
    got = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert got == pytest.approx(9.0 + 1.0, rel=0.05)


def test_hinge_losses() -> None:
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = [0, 0.5, 2] -> 5/6; relu(1 + fake) = [0, 1, 2] -> 1
    assert float(hinge_d_loss(real, fake)) == pytest.approx(5 / 6 + 1.0)
    assert float(hinge_g_loss(fake)) == pytest.approx(1 / 3 * -(-2.0 + 0.0 + 1.0))


def test_n_critic_schedule() -> None:
    due = [b for b in range(20) if g_step_due(b, 5)]
    assert due == [4, 9, 14, 19]
    assert all(g_step_due(b, 1) for b in range(5))


def test_feature_classifier_needs_enough_images() -> None:
    x, y = torch.zeros(10, 1, 8, 8), torch.zeros(10, dtype=torch.long)
    with pytest.raises(DataError, match="at least 64 training images"):
        train_feature_net(x, y, 10, dim=32, epochs=1, seed=0, key=("too-small",))
