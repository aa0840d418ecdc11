"""The FID feature classifier's on-disk cache: stored once per task content and settings, loaded
without training by a later process, and a damaged, refused or foreign file is retrained and
replaced, never executed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from nasforge.data.base import make_task
from nasforge.evaluators import fid
from nasforge.evaluators.fid import CACHE_FORMAT, feature_cache_file, train_feature_net
from nasforge.evaluators.pbt_gan import PBTGANTrainer
from nasforge.exceptions import ConfigError
from nasforge.spaces.gan import GanHardSpace

DIM, EPOCHS = 8, 1


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(96, 1, 8, 8, generator=g) * 2 - 1, torch.randint(0, 3, (96,), generator=g)


def _train(cache: Path | None, key: tuple[Any, ...] = ("task-a", DIM, EPOCHS, 0)) -> Any:
    x, y = _data()
    return train_feature_net(x, y, 3, dim=DIM, epochs=EPOCHS, seed=int(key[-1]), key=key,
                             cache_dir=cache)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: nothing in the in-memory cache."""
    monkeypatch.setattr(fid, "_CACHE", {})


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the classifier was trained instead of loaded")

    monkeypatch.setattr(fid.torch.optim, "Adam", refuse)


def test_stored_once_and_loaded_by_a_later_process_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, acc = _train(tmp_path)
    files = list(tmp_path.glob("fid_classifier-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    blob = torch.load(files[0], weights_only=True)
    assert blob["format"] == CACHE_FORMAT and blob["acc"] == acc
    monkeypatch.setattr(fid, "_CACHE", {})  # a new process
    _no_training(monkeypatch)
    again, acc2 = _train(tmp_path)
    assert acc2 == acc and _same(net, again) and not again.training


def test_the_key_separates_tasks_and_settings(tmp_path: Path) -> None:
    _train(tmp_path)
    _train(tmp_path, ("task-b", DIM, EPOCHS, 0))  # another task content
    _train(tmp_path, ("task-a", DIM, EPOCHS, 1))  # another classifier seed
    assert len(list(tmp_path.glob("fid_classifier-*.pt"))) == 3
    a = feature_cache_file(tmp_path, ("task-a", DIM, EPOCHS, 0, 1, 3))
    assert a.is_file() and a != feature_cache_file(tmp_path, ("task-a", DIM, EPOCHS, 0, 1, 4))


class _RunsCode:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("damage", ["garbage", "code", "foreign", "other_key", "other_shapes"])
def test_a_bad_cache_file_is_retrained_and_replaced_never_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    cache = tmp_path / "cache"
    net, acc = _train(cache)
    (path,) = cache.glob("fid_classifier-*.pt")
    sentinel = tmp_path / "ran"
    good = torch.load(path, weights_only=True)
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "code":
        torch.save({"format": CACHE_FORMAT, "state": _RunsCode(sentinel)}, path)
    elif damage == "foreign":
        torch.save({"weight": torch.zeros(3)}, path)
    elif damage == "other_key":
        torch.save({**good, "key": ["another task"]}, path)
    else:
        torch.save({**good, "state": {k: torch.zeros(1) for k in good["state"]}}, path)
    fid._CACHE.clear()
    with caplog.at_level(logging.WARNING, logger="nasforge"):
        again, acc2 = _train(cache)
    assert not sentinel.exists()  # the pickled call was refused, not executed
    assert any("training the classifier again" in r.getMessage() for r in caplog.records)
    assert acc2 == acc and _same(net, again)  # retrained: the same seeded classifier
    assert torch.load(path, weights_only=True)["key"] == good["key"]  # and the file replaced


def test_a_cache_folder_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="evaluator.feature_cache .* is not a usable folder"
                       ) as err:
        _train(blocker / "sub")
    assert "\n" not in str(err.value)


def test_the_trainer_uses_the_cache_and_its_fingerprint_ignores_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = GanHardSpace(resolution=8, bottom=1, channels=4, df_channels=4, latent=6, d_blocks=2)
    task = make_task({"name": "digits"})
    kw = {"feature_dim": 8, "feature_epochs": 1, "fid_samples": 64}
    first = PBTGANTrainer(space=space, task=task, feature_cache=str(tmp_path), **kw)
    assert len(list(tmp_path.glob("fid_classifier-*.pt"))) == 1
    monkeypatch.setattr(fid, "_CACHE", {})
    _no_training(monkeypatch)
    second = PBTGANTrainer(space=space, task=task, feature_cache=str(tmp_path), **kw)
    assert second.feature_train_acc == first.feature_train_acc
    assert _same(first._feat, second._feat)
    assert second.settings() == PBTGANTrainer.settings(first)
    monkeypatch.undo()
    plain = PBTGANTrainer(space=space, task=task, **kw)
    assert plain.settings() == first.settings() and "feature_cache" not in plain.settings()
