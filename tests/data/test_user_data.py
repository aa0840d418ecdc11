"""A user's own data: every format, paths relative to the config, train-only standardisation,
regression end to end, and one clear line (exit 2, nothing written) for each malformed file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import nasforge
from nasforge.cli.main import main
from nasforge.config import load_config
from nasforge.data import make_task
from nasforge.exceptions import DataError, RunDirError


def _csv(path: Path, rows: list[list[object]], header: list[str] | None = None) -> Path:
    lines = [",".join(header)] if header else []
    lines += [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _blobs(n: int = 60, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, d)) * 5 + 10 + y[:, None] * 3
    return x, y


def test_csv_with_header_label_by_name_and_string_labels(tmp_path: Path) -> None:
    x, y = _blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    rows = [[*map(float, r), lab] for r, lab in zip(x, names)]
    p = _csv(tmp_path / "d.csv", rows, ["a", "b", "c", "animal"])
    task = make_task({"name": "file", "path": str(p), "header": True, "label_column": "animal"})
    assert task.input_shape == (3,) and task.num_classes == 3 and task.kind == "classification"
    assert task.preprocess["classes"] == ["cat", "dog", "emu"]
    # label column by name anywhere, not only last
    rows2 = [[lab, *map(float, r)] for r, lab in zip(x, names)]
    p2 = _csv(tmp_path / "d2.csv", rows2, ["animal", "a", "b", "c"])
    t2 = make_task({"name": "file", "path": str(p2), "header": True, "label_column": "animal"})
    assert torch.equal(t2.train.x, task.train.x) and torch.equal(t2.train.y, task.train.y)


def test_csv_without_header_label_by_index(tmp_path: Path) -> None:
    x, y = _blobs()
    p = _csv(tmp_path / "d.csv", [[int(lab), *map(float, r)] for r, lab in zip(x, y)])
    task = make_task({"name": "file", "path": str(p), "label_column": 0})
    assert task.input_shape == (3,) and task.num_classes == 3
    assert len(task.train) + len(task.val) + len(task.test) == 60


def test_standardisation_is_fitted_on_train_only(tmp_path: Path) -> None:
    x, y = _blobs(200)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = {"name": "file", "path": str(tmp_path / "d.npz")}
    task, raw = make_task(spec), make_task({**spec, "standardize": False})
    tr = raw.train.x.double()
    np.testing.assert_allclose(task.preprocess["mean"], tr.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(task.preprocess["std"], tr.std(0, unbiased=False), rtol=1e-6)
    assert torch.allclose(task.train.x.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(task.train.x.std(0, unbiased=False), torch.ones(3), atol=1e-4)
    # validation and test use the training statistics, not their own
    mean, std = torch.tensor(task.preprocess["mean"]), torch.tensor(task.preprocess["std"])
    expect = ((raw.val.x.double() - mean) / std).float()
    assert torch.allclose(task.val.x, expect, atol=1e-5)
    assert not torch.allclose(task.val.x.mean(0), torch.zeros(3), atol=1e-3)


def test_npy_npz_image_shapes_and_folders(tmp_path: Path) -> None:
    x, y = _blobs()
    np.save(tmp_path / "xy.npy", np.column_stack([x, y]))
    t = make_task({"name": "file", "path": str(tmp_path / "xy.npy")})
    assert t.input_shape == (3,) and t.num_classes == 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    t = make_task(
        {"name": "file", "path": str(tmp_path / "x.npy"), "labels": str(tmp_path / "y.npy")}
    )
    assert t.input_shape == (3,)
    imgs = np.random.default_rng(0).random((40, 8, 8))
    np.savez(tmp_path / "img.npz", x=imgs, y=np.arange(40) % 2)
    t = make_task({"name": "file", "path": str(tmp_path / "img.npz")})
    assert t.input_shape == (1, 8, 8)
    assert t.preprocess.get("mean") is None  # images are not standardised by default
    from PIL import Image

    for c in ("ant", "bee"):
        (tmp_path / "pics" / c).mkdir(parents=True)
        for i in range(6):
            arr = (np.random.default_rng(i).random((5, 7, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "pics" / c / f"{i}.png")
    t = make_task({"name": "file", "path": str(tmp_path / "pics")})
    assert t.input_shape == (3, 5, 7) and t.num_classes == 2
    assert t.preprocess["classes"] == ["ant", "bee"]
    # one reader with image_folder: grey and colour files mix as RGB, the size hint names
    # this task's key, and a stray file in a class folder is refused
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "pics" / "ant" / "grey.png")
    t = make_task({"name": "file", "path": str(tmp_path / "pics")})
    assert t.input_shape == (3, 5, 7) and len(t.train.y) + len(t.val.y) + len(t.test.y) == 13
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "pics" / "bee" / "big.png")
    with pytest.raises(DataError, match=r"mixed image sizes .*set task.image_size"):
        make_task({"name": "file", "path": str(tmp_path / "pics")})
    t = make_task({"name": "file", "path": str(tmp_path / "pics"), "image_size": [4, 6]})
    assert t.input_shape == (3, 4, 6)
    (tmp_path / "pics" / "bee" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not image files"):
        make_task({"name": "file", "path": str(tmp_path / "pics")})


def test_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _blobs()
    (tmp_path / "proj").mkdir()
    np.savez(tmp_path / "proj" / "d.npz", x=x, y=y)
    cfg = tmp_path / "proj" / "c.yaml"
    cfg.write_text(yaml.safe_dump({"task": {"name": "file", "path": "d.npz"}}))
    monkeypatch.chdir(tmp_path)
    c = load_config(cfg)
    assert Path(c.task["path"]) == tmp_path / "proj" / "d.npz"
    make_task(c.task)


def _tiny(tmp_path: Path, task: dict, **extra: object) -> Path:
    cfg = {
        "name": "t", "seed": 0, "budget": 3, "device": "cpu", "task": task,
        "space": {"name": "tabular", "max_layers": 1, "widths": [8], "batch_norm": [False],
                  "dropouts": [0.0]},
        "strategy": {"name": "random"},
        "evaluator": {"name": "train", "max_epochs": 15, "patience": 5, "lr": 0.01},
        "final": {"seeds": 1}, **extra,
    }
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _bad_files(d: Path) -> dict[str, tuple[dict, str]]:
    x, y = _blobs(30)
    out: dict[str, tuple[dict, str]] = {}
    _csv(d / "hdr.csv", [[*map(float, r), int(v)] for r, v in zip(x, y)], ["a", "b", "c", "y"])
    out["header without the option"] = ({"path": "hdr.csv"}, "looks like a header")
    out["label column out of range"] = ({"path": "hdr.csv", "header": True, "label_column": 7},
                                        "label_column 7 is out of range")
    xn = x.copy()
    xn[4, 1] = np.nan
    np.savez(d / "nan.npz", x=xn, y=y)
    out["NaN features with missing: error"] = ({"path": "nan.npz", "missing": "error"},
                                               "NaN or inf")
    xi = x.copy()
    xi[2, 0] = np.inf
    np.savez(d / "inf.npz", x=xi, y=y)
    out["inf features"] = ({"path": "inf.npz"}, "contain inf")
    rows = [[*map(float, r), int(v)] for r, v in zip(x, y)]
    rows[3][1] = "abc"
    _csv(d / "text.csv", rows)
    out["non-numeric features, categorical: false"] = (
        {"path": "text.csv", "categorical": False}, "is not a number")
    rows = [[*map(float, r), int(v)] for r, v in zip(x, y)]
    rows[6][0] = ""
    _csv(d / "gap.csv", rows)
    out["an empty cell with missing: error"] = ({"path": "gap.csv", "missing": "error"},
                                                "row 7, column 0 is missing")
    rows = [[*map(float, r), int(v)] for r, v in zip(x, y)]
    rows[8][3] = "NA"
    _csv(d / "nolabel.csv", rows)
    out["a row without a label"] = ({"path": "nolabel.csv"}, "row 9 has no label")
    _csv(d / "nofeat.csv", [[int(v)] for v in y])
    out["zero feature columns"] = ({"path": "nofeat.csv"}, "no feature columns")
    np.savez(d / "zero.npz", x=np.zeros((30, 0)), y=y)
    out["zero feature columns (npz)"] = ({"path": "zero.npz"}, "zero feature columns")
    np.savez(d / "one.npz", x=x, y=np.zeros(30, dtype=int))
    out["one class"] = ({"path": "one.npz"}, "only one class")
    np.savez(d / "y2d.npz", x=x, y=np.zeros((30, 2)))
    out["2-D labels"] = ({"path": "y2d.npz"}, "labels must be 1-D")
    np.savez(d / "ok.npz", x=x, y=y)
    out["split fractions over 1"] = ({"path": "ok.npz", "train": 0.7, "val": 0.5},
                                     "must sum to less than 1")
    np.savez(d / "few.npz", x=x[:3], y=np.array([0, 1, 0]))
    out["fewer rows than the splits need"] = ({"path": "few.npz"}, "too few for the splits")
    yb = y.copy()
    yb[5] = 10**9
    np.savez(d / "big.npz", x=x, y=yb)
    out["a label of 10^9"] = ({"path": "big.npz"}, "label 1000000000 in row 6 is not a class")
    (d / "trunc.npz").write_bytes((d / "ok.npz").read_bytes()[:200])
    out["a truncated .npz"] = ({"path": "trunc.npz"}, "cannot read data file")
    np.savez(d / "rows.npz", x=x, y=np.zeros(20, dtype=int))
    out["rows and labels of different lengths"] = ({"path": "rows.npz"},
                                                   "30 feature rows but 20 labels")
    (d / "semi.csv").write_text("".join(f"{r[0]};{r[1]};{v}\n" for r, v in zip(x, y)))
    out["a ';'-separated CSV"] = ({"path": "semi.csv"}, "set task.delimiter: ';'")
    return out


def test_every_malformed_file_is_one_line_exit_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for what, (task, msg) in _bad_files(tmp_path).items():
        cfg = _tiny(tmp_path, {"name": "file", **task})
        run_dir = tmp_path / "run"
        assert main(["search", str(cfg), "--run-dir", str(run_dir), "--no-progress"]) == 2, what
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, (what, err)
        assert err.startswith("nasforge: error:"), what
        assert not run_dir.exists(), what


def test_a_huge_label_never_sizes_a_layer(tmp_path: Path) -> None:
    x, y = _blobs(30)
    y[0] = 10**9
    np.savez(tmp_path / "big.npz", x=x, y=y)
    with pytest.raises(DataError, match="task.kind: regression"):
        make_task({"name": "file", "path": str(tmp_path / "big.npz")})
    t = make_task({"name": "file", "path": str(tmp_path / "big.npz"), "kind": "regression"})
    assert t.num_classes == 1 and t.kind == "regression"


def test_auto_kind_takes_many_distinct_integers_for_a_numeric_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    y = np.round(300 + 40 * x[:, 0]).astype(np.float64)  # integer-valued, like diabetes
    np.savez(tmp_path / "num.npz", x=x, y=y)
    assert len(np.unique(y)) > 20
    t = make_task({"name": "file", "path": str(tmp_path / "num.npz")})
    assert t.kind == "regression"
    t = make_task({"name": "file", "path": str(tmp_path / "num.npz"), "kind": "classification"})
    assert t.kind == "classification"
    x5, y5 = _blobs(60)  # few integer classes stay classes
    np.savez(tmp_path / "cls.npz", x=x5, y=y5)
    assert make_task({"name": "file", "path": str(tmp_path / "cls.npz")}).kind == "classification"


def test_regression_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4)) * 3 + 7
    y = 50 + 10 * x[:, 0] - 4 * x[:, 1] + rng.normal(size=150)
    _csv(tmp_path / "r.csv", [[*map(float, r), float(v)] for r, v in zip(x, y)],
         ["a", "b", "c", "d", "target"])
    cfg = _tiny(tmp_path, {"name": "file", "path": "r.csv", "header": True,
                           "label_column": "target"})
    run_dir = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run_dir), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["show", str(run_dir), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["objective"] == {"name": "val_rmse", "direction": "minimize", "unit": "target units"}
    best = s["best"]
    assert best["score"] > 0 and best["score"] == -best["utility"] and "val_acc" not in best
    assert 0 < best["test_score"] < float(np.std(y))  # better than predicting the mean
    assert set(s["baselines"]) == {"ridge", "gradient_boosting"}
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "val_rmse (min)" in out and "ridge" in out
    # the export carries its preprocessing: raw float64 rows in, target units out
    assert main(["export", str(run_dir), "--out", str(tmp_path / "exp")]) == 0
    model = nasforge.load(tmp_path / "exp")
    pred = model.predict(x[:20])
    assert pred.shape == (20,) and np.sqrt(np.mean((pred - y[:20]) ** 2)) < 3 * best["test_score"]
    one = model.predict(x[0])
    assert np.ndim(one) == 0 and abs(float(one) - pred[0]) < 1e-4
    # R^2 instead, maximised
    assert main(["search", str(cfg), "--run-dir", str(tmp_path / "r2"), "--no-progress",
                 "--set", "objective=val_r2"]) == 0
    assert nasforge.load_run(tmp_path / "r2").objective.direction == "maximize"


def test_classifier_export_predicts_original_labels(tmp_path: Path) -> None:
    x, y = _blobs(90)
    x = x + y[:, None] * 20.0  # well separated
    names = np.array(["cat", "dog", "emu"])[y]
    _csv(tmp_path / "d.csv", [[*map(float, r), lab] for r, lab in zip(x, names)])
    cfg = _tiny(tmp_path, {"name": "file", "path": "d.csv"})
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    nasforge.export(run.dir, tmp_path / "exp")
    model = nasforge.load(tmp_path / "exp")
    pred = model.predict(x)
    assert pred.dtype == object and set(pred) <= {"cat", "dog", "emu"}
    assert np.mean(pred == names) > 0.9
    assert model.predict(x[3].astype(np.float64)) in ("cat", "dog", "emu")
    n_feat = x.shape[1]
    for bad in (np.zeros((8, n_feat - 1)), np.zeros((n_feat, 2)), np.zeros(2 * n_feat)):
        with pytest.raises(ValueError, match=rf"does not fit this model; allowed: .*\[{n_feat}\]"):
            model.predict(bad)
    # a tampered architecture.json is a RunDirError naming the file, not a raw RuntimeError
    doc = json.loads((tmp_path / "exp" / "architecture.json").read_text())
    for key, value in (("input_shape", [n_feat + 3]), ("preprocess", {"mean": [0, 0]})):
        (tmp_path / "bad").mkdir(exist_ok=True)
        for f in (tmp_path / "exp").iterdir():
            (tmp_path / "bad" / f.name).write_bytes(f.read_bytes())
        (tmp_path / "bad" / "architecture.json").write_text(json.dumps({**doc, key: value}))
        with pytest.raises(RunDirError, match="architecture.json"):
            nasforge.load(tmp_path / "bad")
    assert "Run(" in repr(run) and "trials" in repr(run)


def test_text_columns_and_missing_cells_end_to_end(tmp_path: Path) -> None:
    """A CSV as users have them: a text feature column is one-hot encoded, empty / NA cells
    get the training split's mean (fitted on train rows only), a header row is still caught
    beside a text column, and the export takes raw rows with text and empty cells."""
    rng = np.random.default_rng(0)
    rows: list[list[object]] = []
    for i in range(120):
        colour = ["red", "green", "blue"][i % 3]
        size = float(rng.normal())
        label = "yes" if (colour == "red") != (size > 0.3) else "no"
        age = "" if i % 10 == 4 else f"{40 + rng.normal() * 10:.1f}"
        rows.append([age, "NA" if i % 17 == 5 else colour, f"{size:.3f}", label])
    p = _csv(tmp_path / "d.csv", rows, ["age", "colour", "size", "label"])
    spec = {"name": "file", "path": str(p), "header": True, "label_column": "label"}
    task = make_task({**spec, "standardize": False})
    cols = task.preprocess["columns"]
    assert [c["kind"] for c in cols] == ["number", "category", "number"]
    assert cols[1]["values"] == ["blue", "green", "red"] and task.input_shape == (5,)
    # the fill is the training rows' mean (filling them leaves it their mean), used everywhere
    fill = task.preprocess["fill"]
    assert len(fill) == 5 and 30 < fill[0] < 50
    assert float(task.train.x[:, 0].double().mean()) == pytest.approx(fill[0], rel=1e-5)
    ages = [float(r[0]) for r in rows if r[0] != ""]
    assert fill[0] != pytest.approx(float(np.mean(ages)), rel=1e-6)  # not all rows' mean
    x = torch.cat([task.train.x, task.val.x, task.test.x])
    assert not torch.isnan(x).any()
    onehot = x[:, 1:4]
    assert ((onehot.sum(1) - 1).abs() < 1e-6).float().mean() > 0.9  # NA rows hold the means
    with pytest.raises(DataError, match="looks like a header"):
        make_task({"name": "file", "path": str(p), "label_column": -1})
    cfg = {"name": "cat", "seed": 0, "budget": 2, "device": "cpu", "task": spec,
           "space": {"name": "tabular", "max_layers": 1},
           "strategy": {"name": "random"}, "baselines": False,
           "evaluator": {"name": "train", "max_epochs": 20, "patience": 20, "threads": 1},
           "final": {"seeds": 1, "candidates": 1}}
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    model = nasforge.load(nasforge.export(run.dir, tmp_path / "exp"))
    raw = [["", "red", "1.5"], ["33", "blue", "-1"], [40.0, "purple", 0.0], ["50", "NA", "2"]]
    pred = model.predict(raw)
    assert pred.shape == (4,) and set(pred) <= {"yes", "no"}
    assert model.predict(np.array(raw[1], dtype=object)) == pred[1]
    # the same rows encoded by hand (unseen 'purple': all zero; missing: the fill)
    enc = torch.tensor([[np.nan, 0, 0, 1, 1.5], [33, 1, 0, 0, -1], [40, 0, 0, 0, 0],
                        [50, np.nan, np.nan, np.nan, 2]], dtype=torch.float32)
    with torch.no_grad():
        idx = model(enc).argmax(1).numpy()
    assert list(pred) == [model.classes[i] for i in idx]
    with pytest.raises(ValueError, match=r"raw rows of its 3 columns.*age, colour, size"):
        model.predict([[1.0, 2.0]])
    with pytest.raises(ValueError, match="'x' is not a number"):
        model.predict([["x", "red", "1"]])


def test_predict_refuses_nan_where_training_had_no_missing_values(tmp_path: Path) -> None:
    x, y = _blobs(60)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cfg = {"name": "nan", "seed": 0, "budget": 1, "device": "cpu", "baselines": False,
           "task": {"name": "file", "path": str(tmp_path / "d.npz")},
           "space": {"name": "tabular", "max_layers": 1}, "strategy": {"name": "random"},
           "evaluator": {"name": "train", "max_epochs": 2, "threads": 1},
           "final": {"seeds": 1, "candidates": 1}}
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    model = nasforge.load(nasforge.export(run.dir, tmp_path / "exp"))
    assert model.predict(x[:2]).shape == (2,)
    with pytest.raises(ValueError, match="trained without any"):
        model.predict([x[0, 0], np.nan, x[0, 2]])


def test_balanced_accuracy_and_macro_f1_objectives(tmp_path: Path) -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from nasforge.objectives import class_metric

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 50), rng.integers(0, 5, 50)
    within = np.minimum(pred, 3)  # sklearn warns about predicted classes absent from y
    assert class_metric("balanced_acc", y, within) == pytest.approx(
        balanced_accuracy_score(y, within))
    assert class_metric("f1", y, pred) == pytest.approx(f1_score(y, pred, average="macro"))
    # an imbalanced task (9:1) searched for balanced accuracy, baselines scored the same way
    x = rng.normal(size=(200, 2))
    lab = (x[:, 0] + 0.3 * rng.normal(size=200) > 1.2).astype(int)
    np.savez(tmp_path / "d.npz", x=x, y=lab)
    cfg = {"name": "imb", "seed": 0, "budget": 2, "device": "cpu",
           "objective": "val_balanced_acc",
           "task": {"name": "file", "path": str(tmp_path / "d.npz")},
           "space": {"name": "tabular", "max_layers": 1}, "strategy": {"name": "random"},
           "evaluator": {"name": "train", "max_epochs": 5, "threads": 1},
           "final": {"seeds": 1, "candidates": 1}}
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    s = run.summary()
    assert s["objective"]["name"] == "val_balanced_acc" and "val_acc" not in s["best"]
    assert all("val_balanced_acc" in t.result.metrics for t in run.trials)
    assert {"test_balanced_acc", "test_f1", "test_acc"} <= set(s["best"]["test_metrics"])
    assert set(s["baselines"]["logistic_regression"]) == {
        "val_acc", "test_acc", "val_balanced_acc", "test_balanced_acc"}


def test_csv_cells_as_users_write_them(tmp_path: Path) -> None:
    """'none' is a class and a category, not a missing value (pandas' tokens, case-sensitive);
    an all-text header row is caught; categories come from the training rows; numbers match
    text categories; an all-numeric CSV's export takes raw rows with empty and '?' cells."""
    rows: list[list[object]] = []
    for i in range(60):
        food = ["none", "egg", "1"][i % 3] if i != 59 else "rare"
        rows.append([food, ["red", "blue"][i % 2], ["none", "mild", "severe"][i % 3]])
    p = _csv(tmp_path / "a.csv", rows)
    task = make_task({"name": "file", "path": str(p)})
    assert task.preprocess["classes"] == ["mild", "none", "severe"]
    food = task.preprocess["columns"][0]
    assert "none" in food["values"] and "1" in food["values"]
    # 'rare' (row 60) is in one split only: listed only if that split is the training one
    assert ("rare" in food["values"]) == (len(food["values"]) == 4)
    with pytest.raises(DataError, match="looks like a header"):
        make_task({"name": "file", "path": str(_csv(tmp_path / "h.csv", rows,
                                                      ["food", "colour", "allergy"]))})
    p2 = _csv(tmp_path / "b.csv", [[r[0], r[1], ["a", "b", "c"][i % 3]]
                                   for i, r in enumerate(rows)])
    t2 = make_task({"name": "file", "path": str(p2), "missing_values": ["", "none"]})
    assert "none" not in t2.preprocess["columns"][0]["values"]
    assert "fill" in t2.preprocess  # 'none' cells are now missing, filled
    # numbers in a text column match as numbers
    from nasforge.data.base import encode_columns

    cols = [{"name": "c", "kind": "category", "values": ["1", "2", "x"]}]
    enc = encode_columns([[1], [np.float64(1.0)], ["1"], ["2.0"], ["x"], ["y"], [None]], cols)
    assert enc[:4].argmax(1).tolist() == [0, 0, 0, 1] and enc[4].tolist() == [0, 0, 1]
    assert enc[5].tolist() == [0, 0, 0] and np.isnan(enc[6]).all()
    # an all-numeric CSV with gaps: raw rows with '' and '?' predict
    x, y = _blobs(60)
    num = [[f"{v:.3f}" for v in r] + [int(c)] for r, c in zip(x, y)]
    num[3][1] = ""
    num[7][0] = "?"
    q = _csv(tmp_path / "n.csv", num)
    cfg = {"name": "n", "seed": 0, "budget": 1, "device": "cpu", "baselines": False,
           "task": {"name": "file", "path": str(q)},
           "space": {"name": "tabular", "max_layers": 1}, "strategy": {"name": "random"},
           "evaluator": {"name": "train", "max_epochs": 2, "threads": 1},
           "final": {"seeds": 1, "candidates": 1}}
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    model = nasforge.load(nasforge.export(run.dir, tmp_path / "exp"))
    out = model.predict([["1.0", "", "3"], ["?", "2", "2"], [1.0, 2.0, 3.0]])
    assert out.shape == (3,)
    assert model.predict(torch.tensor([1.0, 2.0, 3.0])) == out[2]
