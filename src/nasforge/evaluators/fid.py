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
inception`` uses torch-fidelity's (or torchmetrics') InceptionV3 where the user has the package and
its weights (``inception_weights``: a local file; else torch's hub cache); when either is missing
it stops with one line naming what is missing and how to get it, never falling back silently.

With ``feature_cache`` (a folder), the trained classifier is stored there, keyed by the task's
content hash and the extractor's settings, and later runs and worker processes load it
(``torch.load(weights_only=True)``) instead of training it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.data.base import Split
from nasforge.evaluators.fit import train_epoch
from nasforge.exceptions import ConfigError, DataError, RunDirError
from nasforge.logging import get_logger
from nasforge.safeload import load_checkpoint, state_dict_of

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
CACHE_FORMAT = "nasforge-fid-classifier/1"
"""Stored in every cache file; bump it when :class:`FeatureNet` or its training changes."""


def feature_cache_file(cache_dir: str | Path, key: tuple[Any, ...]) -> Path:
    """The file of the classifier for ``key`` in ``cache_dir`` (a digest of the key)."""
    text = json.dumps([CACHE_FORMAT, *(str(k) for k in key)])
    return Path(cache_dir) / f"fid_classifier-{hashlib.sha256(text.encode()).hexdigest()[:24]}.pt"


def _key_strings(key: tuple[Any, ...]) -> list[str]:
    return [str(k) for k in key]


def _load_cached(path: Path, key: tuple[Any, ...], net: FeatureNet) -> float | None:
    """The cached classifier's training accuracy, its weights loaded into ``net``; None (and one
    warning) when the file is damaged, refused, foreign or for another key: it is retrained.
    Read with ``torch.load(weights_only=True)``: a tampered file cannot run code."""
    if not path.is_file():
        return None
    try:
        blob = load_checkpoint(path, what=f"FID classifier cache {str(path)!r}")
        if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT:
            raise RunDirError(f"FID classifier cache {str(path)!r} is not a {CACHE_FORMAT} file")
        if blob.get("key") != _key_strings(key):
            raise RunDirError(f"FID classifier cache {str(path)!r} is for another task or "
                              "settings")
        state = state_dict_of(blob.get("state"), f"FID classifier cache {str(path)!r}")
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise RunDirError(f"FID classifier cache {str(path)!r} does not fit the classifier "
                              "(other shapes)") from None
        acc = blob.get("acc")
        if not isinstance(acc, float):
            raise RunDirError(f"FID classifier cache {str(path)!r} has no training accuracy")
    except RunDirError as err:
        _logger.warning("%s; training the classifier again and replacing the file", err)
        return None
    return acc


def _store_cached(path: Path, key: tuple[Any, ...], state: dict[str, torch.Tensor],
                  acc: float) -> None:
    """Tensors and plain values only, written to a private temporary file then renamed (two
    processes storing the same key at once both leave a whole file)."""
    blob = {"format": CACHE_FORMAT, "key": _key_strings(key), "state": state, "acc": acc}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"evaluator.feature_cache: cannot write {str(path)!r} "
                          f"({err.strerror or type(err).__name__})") from None


def _cache_folder(cache_dir: str | Path) -> Path:
    folder = Path(cache_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"evaluator.feature_cache {str(cache_dir)!r} is not a usable folder "
                          f"({err.strerror or type(err).__name__})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"evaluator.feature_cache {str(cache_dir)!r} is not writable")
    return folder


def train_feature_net(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, dim: int, epochs: int, seed: int,
    key: tuple[Any, ...], cache_dir: str | Path | None = None,
) -> tuple[FeatureNet, float]:
    """The classifier trained once per ``key`` (the task's content and these settings):
    ``(network in eval mode, its training accuracy)``. ``x`` in [-1, 1].

    It is kept for the process and, with ``cache_dir``, in a file there
    (:func:`feature_cache_file`) that later runs and other processes load instead of training;
    a damaged, refused or foreign file is retrained and replaced, never executed."""
    net = FeatureNet(int(x.shape[1]), num_classes, dim)
    key = (*key, int(x.shape[1]), int(num_classes))
    if key in _CACHE:
        state, acc = _CACHE[key]
        net.load_state_dict(state)
        return net.eval(), acc
    if len(x) < 2 * dim:
        raise DataError(
            f"FID needs at least {2 * dim} training images for {dim} classifier features, got "
            f"{len(x)}; use a larger task or a smaller evaluator.feature_dim"
        )
    path = None if cache_dir is None else feature_cache_file(_cache_folder(cache_dir), key)
    cached = None if path is None else _load_cached(path, key, net)
    if cached is not None:
        _CACHE[key] = ({k: v.detach().clone() for k, v in net.state_dict().items()}, cached)
        _logger.info("FID feature classifier loaded from %s (train accuracy %.3f); %s", path,
                     cached, NOT_INCEPTION)
        return net.eval(), cached
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = FeatureNet(int(x.shape[1]), num_classes, dim)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(int(seed))
        for epoch in range(1, epochs + 1):
            train_epoch(net, opt, Split(x, y), batch_size=128, generator=g,
                        loss_fn=nn.functional.cross_entropy, epoch=epoch)
    net.eval()
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    _CACHE[key] = (state, acc)
    if path is not None:
        _store_cached(path, key, state, acc)
    _logger.info("FID feature classifier trained (train accuracy %.3f); %s", acc, NOT_INCEPTION)
    return net, acc


@torch.no_grad()
def features_of(net: nn.Module, images: torch.Tensor, batch: int = 500) -> np.ndarray:
    net.eval()
    out = [net.features(images[i:i + batch]).double().cpu()  # type: ignore[operator]
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
"""torch-fidelity's InceptionV3 weights file (its v0.2.0 release; torchmetrics uses the same)."""
_GET_INCEPTION = (
    f"pip install torch-fidelity (or 'torchmetrics[image]') and put {INCEPTION_WEIGHTS} (from "
    "torch-fidelity's v0.2.0 release) in torch's hub checkpoints folder or set "
    "evaluator.inception_weights to it, or use features: classifier"
)


def _inception_class() -> tuple[Any, str]:
    """torch-fidelity's InceptionV3 feature extractor, else torchmetrics' wrapper of it."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        pass
    else:
        return FeatureExtractorInceptionV3, "torch-fidelity"
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise ConfigError(
            "evaluator.features 'inception': neither torch-fidelity nor torchmetrics[image] is "
            f"installed; {_GET_INCEPTION}"
        ) from None
    return NoTrainInceptionV3, "torchmetrics"


def inception_features(weights: str | None = None) -> nn.Module:
    """InceptionV3 pool features (2048) from torch-fidelity or torchmetrics, with the weights at
    ``weights`` or in torch's hub cache; when the package or the weights are missing, one-line
    :class:`ConfigError` naming what is missing and how to get it (never a silent fallback)."""
    cls, package = _inception_class()
    if weights is not None and not Path(weights).expanduser().is_file():
        raise ConfigError(f"evaluator.inception_weights {weights!r} is not a file; "
                          f"{_GET_INCEPTION}")
    path = None if weights is None else str(Path(weights).expanduser())
    try:
        net = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    except Exception as err:  # offline, no cached file: the download fails; or a bad file
        where = repr(path) if path else f"{INCEPTION_WEIGHTS} in torch's hub cache"
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        raise ConfigError(
            f"evaluator.features 'inception' ({package}): the InceptionV3 weights could not be "
            f"loaded from {where} ({type(err).__name__}{': ' + first if first else ''}); "
            f"{_GET_INCEPTION}"
        ) from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"evaluator.features 'inception': {package} gave no torch module")
    return net
