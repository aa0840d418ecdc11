"""Image files on disk: one reader for every task that takes a folder of images (the ``file``
task's class-per-folder format, ``image_folder``, the few-shot loaders).

Pixels are divided by :data:`~nasforge.data.base.PIXEL_SCALE` (8-bit images to [0, 1]); arrays
are channels-first. Every problem is a one-line :class:`~nasforge.exceptions.DataError`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.data.base import PIXEL_SCALE
from nasforge.exceptions import DataError
from nasforge.logging import get_logger

_logger = get_logger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
JUNK_FILES = frozenset({"thumbs.db", "desktop.ini"})
"""Files an OS leaves in image folders; skipped like hidden files."""
GREY_MODES = ("1", "L", "I", "F")
"""PIL modes read as one grey channel when ``mode="auto"`` decides."""


def _hw(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
    if len(hw) != 2 or min(hw) < 1:
        raise DataError("image_size must be [height, width] of positive integers")
    return hw[0], hw[1]


def _skipped(f: Path) -> bool:
    return f.name.startswith(".") or f.name.lower() in JUNK_FILES


def read_image(f: Path, size: int | Sequence[int] | None, mode: str | None,
               resample: str = "bilinear") -> np.ndarray:
    """One image as a ``(C, H, W)`` float32 array in [0, 1]: converted to ``mode`` ("L",
    "RGB"; None keeps it) and resized to ``size`` (N or [height, width]) with ``resample``
    (bilinear, or bicubic: PIL's default)."""
    from PIL import Image, UnidentifiedImageError

    hw = _hw(size)
    method = (Image.Resampling.BICUBIC if resample == "bicubic"
              else Image.Resampling.BILINEAR)
    try:
        with Image.open(f) as opened:
            im: Any = opened.convert(mode) if mode is not None else opened
            if hw is not None:
                im = im.resize((hw[1], hw[0]), method)
            arr = np.asarray(im, dtype=np.float32) / PIXEL_SCALE
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{f}: not a readable image ({e})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def image_files(folder: Path) -> list[Path]:
    """The images of a class folder (hidden files skipped); sub-folders, other files or none
    at all are refused."""
    layout = "expected a class-per-folder layout <root>/<class>/<image>"
    files = sorted(f for f in folder.iterdir() if not _skipped(f))
    nested = [f.name for f in files if f.is_dir()]
    if nested:
        raise DataError(f"{folder}: {layout}; found sub-folders {nested[:3]}")
    others = [f.name for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise DataError(f"{folder}: not image files {others[:3]}; allowed suffixes: "
                        f"{', '.join(IMAGE_SUFFIXES)}")
    if not files:
        raise DataError(f"class folder {str(folder)!r} is empty")
    return files


def read_image_folder(
    root: Path, size: int | Sequence[int] | None = None, mode: str | None = None,
    *, size_key: str = "size: N", resample: str = "bilinear",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(x (N, C, H, W) in [0, 1], y, class names)`` of a class-per-folder tree
    ``root/<class>/<image>`` (classes: the folder names, sorted), or a one-line DataError.

    ``size``: N (N x N) or [height, width], bilinear; None keeps the files' size, which must
    then be one. ``mode``: "L" or "RGB" converts; "auto" reads grey images as one channel and
    any other mix as RGB; None keeps the files' mode, which must then be one of L, RGB.
    ``size_key`` names the config key in the mixed-sizes message. Everything is checked (from
    the file headers) before a pixel is decoded. Hidden and OS files (``Thumbs.db``) are
    skipped; other files beside the class folders (a README, a labels.csv) are skipped with a
    warning, images there are refused (a layout mistake)."""
    from PIL import Image, UnidentifiedImageError

    hw = _hw(size)
    layout = "expected a class-per-folder layout <root>/<class>/<image>"
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} not found")
    entries = sorted(e for e in root.iterdir() if not _skipped(e))
    loose = [e.name for e in entries if e.is_file()]
    stray = [n for n in loose if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    classes = [e for e in entries if e.is_dir()]
    if stray or not classes:
        what = f"images {stray[:3]} at the top level" if stray else "no class folders"
        raise DataError(f"{root}: {layout}; found {what}")
    if loose:
        _logger.warning("%s: skipping %d file(s) beside the class folders: %s", root,
                        len(loose), ", ".join(loose[:3]))
    if len(classes) < 2:
        raise DataError(f"{root}: needs at least 2 class folders, found {len(classes)}")
    files = [(f, label) for label, folder in enumerate(classes) for f in image_files(folder)]
    modes: dict[str, Path] = {}
    sizes: set[tuple[int, int]] = set()
    for f, _ in files:  # headers only: PIL decodes pixels lazily
        try:
            with Image.open(f) as im:
                modes.setdefault(im.mode, f)
                sizes.add(im.size)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{f}: not a readable image ({e})") from None
    if mode == "auto":
        mode = "L" if set(modes) <= set(GREY_MODES) else "RGB"
    elif mode is None:
        if len(modes) > 1:
            raise DataError(f"{root}: mixed image modes {sorted(modes)}; set mode: RGB or "
                            "mode: L")
        bad = sorted(set(modes) - {"L", "RGB"})
        if bad:
            raise DataError(f"{modes[bad[0]]}: image mode {bad[0]!r}; allowed without a "
                            "'mode:' key: L, RGB")
    if hw is None and len(sizes) > 1:
        shown = sorted(f"{w}x{h}" for w, h in sizes)[:4]
        raise DataError(f"{root}: mixed image sizes {shown}; set {size_key} to resize them")
    x = np.stack([read_image(f, hw, mode, resample) for f, _ in files])
    y = np.array([label for _, label in files], dtype=np.int64)
    return np.ascontiguousarray(x), y, [c.name for c in classes]


__all__ = ["GREY_MODES", "IMAGE_SUFFIXES", "image_files", "read_image", "read_image_folder"]
