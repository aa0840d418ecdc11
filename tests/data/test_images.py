"""Image tasks for the NAS environments and the class-per-folder loader (bad input included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tests.conftest import tiny_config

import nasforge
from nasforge.cli.main import main
from nasforge.data import make_task
from nasforge.data.base import PIXEL_SCALE
from nasforge.data.images import META_SUITE
from nasforge.exceptions import DataError

Image = pytest.importorskip("PIL.Image")


def _img(path: Path, size: tuple[int, int] = (10, 12), mode: str = "RGB", value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), value, np.uint8)
    Image.fromarray(arr, mode=mode).save(path)


def _tree(root: Path, n: int = 4) -> Path:
    for c, v in (("cat", 30), ("dog", 200)):
        for i in range(n):
            _img(root / c / f"{i}.png", value=v + i)
    return root


def test_suite_has_three_train_two_held_out_tasks_that_differ() -> None:
    assert len(META_SUITE["train"]) == 3 and len(META_SUITE["test"]) == 2
    names = [s["name"] for s in META_SUITE["train"] + META_SUITE["test"]]
    assert len(set(names)) == 5


def test_textures_task_shapes_and_determinism() -> None:
    a = make_task({"name": "textures", "per_class": 20})
    b = make_task({"name": "textures", "per_class": 20})
    assert a.input_shape == (1, 16, 16) and a.num_classes == 6
    assert a.content_hash == b.content_hash
    assert len(a.train) + len(a.val) + len(a.test) == 120
    c = make_task({"name": "textures", "per_class": 20, "data_seed": 1})
    assert c.content_hash != a.content_hash


def test_image_folder_loads_and_resizes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "imgs")
    t = make_task({"name": "image_folder", "path": str(root), "size": 8})
    assert t.input_shape == (3, 8, 8) and t.num_classes == 2
    x = np.concatenate([t.train.x.numpy(), t.val.x.numpy(), t.test.x.numpy()])
    y = np.concatenate([t.train.y.numpy(), t.val.y.numpy(), t.test.y.numpy()])
    assert x.shape[0] == 8
    assert np.allclose(x[y == 0].max(), 33 / 255) and np.allclose(x[y == 1].min(), 200 / 255)
    native = make_task({"name": "image_folder", "path": str(root), "mode": "L"})
    assert native.input_shape == (1, 12, 10)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: _img(r / "loose.png"), "class-per-folder layout"),
        (lambda r: (r / "cat" / "empty").mkdir(parents=True), "found sub-folders"),
        (lambda r: (r / "bird").mkdir(), "is empty"),
        (lambda r: _img(r / "cat" / "big.png", size=(20, 20)), "mixed image sizes"),
        (lambda r: _img(r / "cat" / "grey.png", mode="L"), "mixed image modes"),
        (lambda r: (r / "dog" / "notes.txt").write_text("x"), "not image files"),
    ],
)
def test_image_folder_bad_input(tmp_path: Path, make: object, message: str) -> None:
    root = _tree(tmp_path / "imgs", n=2)
    make(root)  # type: ignore[operator]
    with pytest.raises(DataError, match=message):
        make_task({"name": "image_folder", "path": str(root)})


def test_image_folder_bad_input_exits_2_through_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path / "imgs", n=2)
    (root / "bird").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(task={"name": "image_folder", "path": str(root)})))
    run_dir = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is empty" in err, err
    assert not run_dir.exists()


def test_an_image_export_takes_raw_pixels_as_image_files_load(tmp_path: Path) -> None:
    """Training divides 8-bit pixels by 255; the export does too, so ``predict`` takes an
    image as PIL loads it (H, W, C uint8, channels last), one or a batch, and gives the same
    labels as the trained network on the task's scaled tensors."""
    root = _tree(tmp_path / "imgs", n=6)
    cfg = tiny_config(task={"name": "file", "path": str(root)}, budget=2, final={"seeds": 1})
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    nasforge.export(run.dir, tmp_path / "exp")
    model = nasforge.load(tmp_path / "exp")
    assert model.pixel_scale == PIXEL_SCALE
    files = sorted(root.glob("*/*.png"))
    raw = np.stack([np.asarray(Image.open(f)) for f in files])  # (N, H, W, 3) uint8
    labels = model.predict(raw)
    scaled = raw.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    with torch.no_grad():
        direct = model.net(torch.as_tensor(scaled)).argmax(1).numpy()
    assert list(labels) == [["cat", "dog"][i] for i in direct]
    assert model.predict(raw[0]) == labels[0]  # one image, channels last
    assert model.predict(raw[0].transpose(2, 0, 1)) == labels[0]  # one image, channels first
    with pytest.raises(ValueError, match=r"does not fit this model; allowed: \[3, 12, 10\]"):
        model.predict(raw[:, :5])


def test_a_digits_export_takes_load_digits_rows_as_they_are(tmp_path: Path) -> None:
    """The digits task divides sklearn's 0-16 values by 16; its export does the same."""
    from sklearn.datasets import load_digits

    cfg = tiny_config(task={"name": "digits"}, budget=2, final={"seeds": 1})
    run = nasforge.search(cfg, run_dir=tmp_path / "run", progress=False)
    nasforge.export(run.dir, tmp_path / "exp")
    model = nasforge.load(tmp_path / "exp")
    assert model.pixel_scale == 16.0
    raw = load_digits().data[:50]  # (50, 64) in 0..16, float64
    with torch.no_grad():
        direct = model.net(torch.as_tensor(raw / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8))
    assert list(model.predict(raw)) == list(direct.argmax(1).numpy())
