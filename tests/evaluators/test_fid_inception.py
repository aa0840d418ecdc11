"""``features: inception``: with torch-fidelity / torchmetrics absent, or present without their
weights, the GAN fitness stops with one line naming what is missing and how to get it (never a
silent fallback to the classifier); with a package and weights present (simulated), the FID is
measured in its features. Packages are simulated with ``sys.modules`` entries."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch
import yaml

from nasforge.cli.main import main
from nasforge.data.base import make_task
from nasforge.evaluators import pbt_gan
from nasforge.evaluators.fid import INCEPTION_WEIGHTS, inception_features
from nasforge.evaluators.pbt_gan import PBTGANTrainer
from nasforge.exceptions import ConfigError
from nasforge.spaces.gan import GanHardSpace

SMALL = {"resolution": 8, "bottom": 1, "channels": 4, "df_channels": 4, "latent": 6,
         "d_blocks": 2}
FIDELITY = ("torch_fidelity", "torch_fidelity.feature_extractor_inceptionv3")
METRICS = ("torchmetrics", "torchmetrics.image", "torchmetrics.image.fid")


def _absent(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for n in names:  # a None entry makes `import n` raise ImportError
        monkeypatch.setitem(sys.modules, n, None)


class _Offline(torch.nn.Module):
    """Like the real extractors offline: no weights file, and the download fails."""

    def __init__(self, name: str, features_list: list[str],
                 feature_extractor_weights_path: str | None = None) -> None:
        super().__init__()
        raise URLError("[Errno -3] Temporary failure in name resolution")


class _Fake(torch.nn.Module):
    """A stand-in InceptionV3: uint8 RGB in, a tuple of (N, 6) features out (as torch-fidelity)."""

    calls: list[tuple[int, ...]] = []

    def __init__(self, name: str, features_list: list[str],
                 feature_extractor_weights_path: str | None = None) -> None:
        super().__init__()
        assert features_list == ["2048"]
        self.weights = feature_extractor_weights_path

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        _Fake.calls.append(tuple(x.shape))
        f = x.float() / 255.0
        return (torch.cat([f.mean((2, 3)), f.std((2, 3))], 1),)


def _present(monkeypatch: pytest.MonkeyPatch, package: str, cls: type) -> None:
    if package == "torch-fidelity":
        top, sub = types.ModuleType(FIDELITY[0]), types.ModuleType(FIDELITY[1])
        sub.FeatureExtractorInceptionV3 = cls  # type: ignore[attr-defined]
        top.feature_extractor_inceptionv3 = sub  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, FIDELITY[0], top)
        monkeypatch.setitem(sys.modules, FIDELITY[1], sub)
        _absent(monkeypatch, *METRICS)
    else:
        mods = [types.ModuleType(n) for n in METRICS]
        mods[2].NoTrainInceptionV3 = cls  # type: ignore[attr-defined]
        for n, m in zip(METRICS, mods):
            monkeypatch.setitem(sys.modules, n, m)
        _absent(monkeypatch, *FIDELITY)


def _trainer(**kw: Any) -> PBTGANTrainer:
    return PBTGANTrainer(space=GanHardSpace(**SMALL), task=make_task({"name": "digits"}),
                         features="inception", fid_samples=64, **kw)


def _one_line(err: pytest.ExceptionInfo[ConfigError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def test_neither_package_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch, *FIDELITY, *METRICS)
    with pytest.raises(ConfigError) as err:
        _trainer()
    msg = _one_line(err)
    assert "neither torch-fidelity nor torchmetrics[image] is installed" in msg
    assert "pip install torch-fidelity" in msg and INCEPTION_WEIGHTS in msg
    assert "features: classifier" in msg


@pytest.mark.parametrize("package", ["torch-fidelity", "torchmetrics"])
def test_package_without_its_weights(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    _present(monkeypatch, package, _Offline)
    with pytest.raises(ConfigError) as err:
        _trainer()
    msg = _one_line(err)
    assert f"({package}): the InceptionV3 weights could not be loaded" in msg
    assert f"{INCEPTION_WEIGHTS} in torch's hub cache" in msg and "URLError" in msg
    assert "evaluator.inception_weights" in msg


def test_a_named_weights_file_that_is_missing(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    _present(monkeypatch, "torch-fidelity", _Fake)
    with pytest.raises(ConfigError) as err:
        inception_features(str(tmp_path / "nope.pth"))
    assert "evaluator.inception_weights" in _one_line(err) and "is not a file" in str(err.value)


@pytest.mark.parametrize("package", ["torch-fidelity", "torchmetrics"])
def test_present_package_and_weights_measure_in_its_features_never_the_classifier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package: str
) -> None:
    _present(monkeypatch, package, _Fake)

    def no_classifier(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fell back to the classifier")

    monkeypatch.setattr(pbt_gan, "train_feature_net", no_classifier)
    weights = tmp_path / INCEPTION_WEIGHTS
    weights.write_bytes(b"weights")
    _Fake.calls.clear()
    tr = _trainer(inception_weights=str(weights))
    assert _Fake.calls and np.isnan(tr.feature_train_acc)
    assert tr._feat.net.weights == str(weights)  # type: ignore[union-attr]
    assert tr.settings()["inception_weights"] == str(weights)
    arch = tr.space.sample(np.random.default_rng(0))
    model = tr.build(arch)
    n = len(_Fake.calls)
    fit = tr.fitness(model, eval_seed=0)
    assert len(_Fake.calls) > n and np.isfinite(fit) and fit <= 0.0


def test_the_cli_says_it_in_one_line_exits_2_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _absent(monkeypatch, *FIDELITY, *METRICS)
    cfg = {"name": "gan", "seed": 0, "budget": 4, "task": {"name": "digits"},
           "space": {"name": "gan_hard", **SMALL},
           "strategy": {"name": "pbt_nas", "population_size": 2},
           "evaluator": {"name": "pbt_gan", "features": "inception"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "torch-fidelity" in err, err
    assert not (tmp_path / "run").exists()
