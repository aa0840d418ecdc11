"""GAN image tasks: MNIST-5k padded to 32x32, and CIFAR-10 / STL-10 from files the test writes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.data.base import make_task
from nasforge.exceptions import DataError


def test_mnist5k32_is_padded_digits() -> None:
    task = make_task({"name": "mnist5k32"})
    assert task.input_shape == (1, 32, 32) and task.num_classes == 10
    x = torch.cat([task.train.x, task.val.x, task.test.x])
    assert len(x) == 5000 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x[..., :2, :].abs().max()) == 0.0 and float(x[..., :, -2:].abs().max()) == 0.0


def _cifar(root: Path, n: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    for i, name in enumerate(["data_batch_1", "data_batch_2"]):
        part = data[i * n // 2:(i + 1) * n // 2]
        labels = [int(k % 10) for k in range(i * n // 2, (i + 1) * n // 2)]
        with open(root / name, "wb") as f:
            pickle.dump({b"data": part, b"labels": labels, b"batch_label": b"x"}, f)
    return data


def test_cifar10_pickle_batches(tmp_path: Path) -> None:
    data = _cifar(tmp_path)
    task = make_task({"name": "cifar10", "root": str(tmp_path), "seed": 0})
    assert task.input_shape == (3, 32, 32) and task.num_classes == 10
    x = torch.cat([task.train.x, task.val.x, task.test.x])
    assert len(x) == 30
    # every image is one of the written ones, scaled to [0, 1], channels first
    want = {bytes(r) for r in data}
    got = {bytes((t.numpy() * 255).round().astype(np.uint8).reshape(-1)) for t in x}
    assert got == want


def test_cifar10_refuses_pickled_objects_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data_batch"):
        make_task({"name": "cifar10", "root": str(tmp_path)})
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Path("x"), b"labels": [0]}, f)  # a class reference
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        make_task({"name": "cifar10", "root": str(tmp_path)})


def test_stl10_binary_files_with_downsampling(tmp_path: Path) -> None:
    n = 20
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    img.transpose(0, 1, 3, 2).tofile(tmp_path / "train_X.bin")  # stored column-major
    (np.arange(n) % 10 + 1).astype(np.uint8).tofile(tmp_path / "train_y.bin")
    full = make_task({"name": "stl10", "root": str(tmp_path), "seed": 0})
    assert full.input_shape == (3, 96, 96) and full.num_classes == 10
    x = torch.cat([full.train.x, full.val.x, full.test.x])
    want = {bytes(r.reshape(-1)) for r in img}
    assert {bytes((t.numpy() * 255).round().astype(np.uint8).reshape(-1)) for t in x} == want
    half = make_task({"name": "stl10", "root": str(tmp_path), "downsample": 2})
    assert half.input_shape == (3, 48, 48)
    (tmp_path / "train_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match="not 2 3x96x96"):
        make_task({"name": "stl10", "root": str(tmp_path)})
