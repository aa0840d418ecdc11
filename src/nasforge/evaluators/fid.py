"""Fréchet distance (FID) between image sets in the features of a small classifier (offline).

FID (Heusel et al. 2017) fits a Gaussian to the features of each image set and measures
``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of the matrix square root is computed
from the eigenvalues of ``S1^(1/2) S2 S1^(1/2)`` (symmetric, positive semi-definite: stable), which
equals ``tr(sqrtm(S1 S2))``; :func:`trace_sqrt_product_scipy` is scipy's ``sqrtm`` route, the
reference the tests check it against.

**These FIDs are not Inception FIDs.** Inception weights cannot be downloaded offline, so the
default features (``features: classifier``) come from a small CNN trained once, with a fixed
seed, on the task's own labelled training images; its penultimate layer (``feature_dim`` values)
is the feature space. The numbers rank generators of one task against each other and are not
comparable with published FIDs (seed 004 uses clean-fid's Inception features). ``features:
inception`` uses torchmetrics' or torch-fidelity's InceptionV3 where the user has the package and
its weights; when either is missing it stops with one line, never falling back silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.exceptions import ConfigError, DataError
from nasforge.logging import get_logger

_logger = get_logger(__name__)
NOT_INCEPTION = (
    "FID in the features of a small classifier trained on this task's images: not comparable "
    "with published (Inception) FIDs"
)


# ---------------------------------------------------------------------------------- the maths
def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for covariance matrices, via ``eig(S1^(1/2) S2 S1^(1/2))``."""
    r = _sym_sqrt(np.asarray(s1, dtype=np.float64))
    m = r @ np.asarray(s2, dtype=np.float64) @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def trace_sqrt_product_scipy(s1: np.ndarray, s2: np.ndarray) -> float:
    """The same trace through ``scipy.linalg.sqrtm(S1 @ S2)`` (the usual FID code's route)."""
    from scipy import linalg

    root = linalg.sqrtm(np.asarray(s1, dtype=np.float64) @ np.asarray(s2, dtype=np.float64))
    return float(np.real(np.trace(root)))


def frechet_distance(
    mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, S1) and N(mu2, S2)."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    val = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(val, 0.0)


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(feats, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


# --------------------------------------------------------------------- the feature extractor
class FeatureNet(nn.Module):
    """A small CNN classifier; ``features`` is its penultimate layer."""

    def __init__(self, in_ch: int, num_classes: int, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(32 * 16, dim), nn.ReLU(),
        )
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


_CACHE: dict[tuple[Any, ...], tuple[dict[str, torch.Tensor], float]] = {}


def train_feature_net(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, dim: int, epochs: int, seed: int,
    key: tuple[Any, ...],
) -> tuple[FeatureNet, float]:
    """The classifier trained once per ``key`` (the task's content and these settings) and kept
    for the process: ``(network in eval mode, its training accuracy)``. ``x`` in [-1, 1]."""
    net = FeatureNet(int(x.shape[1]), num_classes, dim)
    if key in _CACHE:
        state, acc = _CACHE[key]
        net.load_state_dict(state)
        return net.eval(), acc
    if len(x) < 2 * dim:
        raise DataError(
            f"FID needs at least {2 * dim} training images for {dim} classifier features, got "
            f"{len(x)}; use a larger task or a smaller evaluator.feature_dim"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = FeatureNet(int(x.shape[1]), num_classes, dim)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(int(seed))
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), 128):
                idx = perm[i:i + 128]
                loss = loss_fn(net(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
    _CACHE[key] = ({k: v.detach().clone() for k, v in net.state_dict().items()}, acc)
    _logger.info("FID feature classifier trained (train accuracy %.3f); %s", acc, NOT_INCEPTION)
    return net, acc


@torch.no_grad()
def features_of(net: nn.Module, images: torch.Tensor, batch: int = 500) -> np.ndarray:
    net.eval()
    out = [net.features(images[i:i + batch]).double().cpu()  # type: ignore[operator]
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def inception_features() -> Any:
    """InceptionV3 pool features from torchmetrics or torch-fidelity, if installed with weights;
    one-line :class:`ConfigError` otherwise (never a silent fallback)."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        NoTrainInceptionV3 = None
    if NoTrainInceptionV3 is None:
        try:
            import torch_fidelity  # noqa: F401
        except ImportError:
            raise ConfigError(
                "evaluator.features 'inception' needs torchmetrics[image] or torch-fidelity and "
                "their Inception weights; neither package is installed (allowed: classifier, or "
                "install one)"
            ) from None
        raise ConfigError(
            "evaluator.features 'inception' through torch-fidelity is not wired in; install "
            "torchmetrics[image] with its weights, or use features: classifier"
        )
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    except Exception as err:  # offline: the weights cannot be fetched
        raise ConfigError(
            f"evaluator.features 'inception': the Inception weights are not available "
            f"({type(err).__name__}); use features: classifier"
        ) from None
