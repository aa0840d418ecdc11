from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasforge.data import make_task
from nasforge.exceptions import ConfigError, DataError


def test_moons_is_seed_002_split_exactly() -> None:
    from sklearn.datasets import make_moons

    np.random.seed(0)  # the seed's own recipe, global RNG
    x, y = make_moons(1000, noise=0.2)
    task = make_task("moons")
    assert (len(task.train), len(task.val), len(task.test)) == (700, 100, 200)
    np.testing.assert_allclose(task.train.x.numpy(), x[:700].astype(np.float32))
    np.testing.assert_array_equal(task.val.y.numpy(), y[700:800])
    np.testing.assert_allclose(task.test.x.numpy(), x[800:].astype(np.float32))


def test_digits_split_is_seeded_disjoint_and_stratified() -> None:
    a, b, c = make_task("digits"), make_task("digits"), make_task({"name": "digits", "seed": 1})
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert (a.train.x == b.train.x).all() and not (a.train.x[:50] == c.train.x[:50]).all()
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert np.bincount(a.val.y.numpy()).min() >= 30
    assert float(a.train.x.max()) <= 1.0


def test_mnist_tasks_load_offline() -> None:
    m = make_task("mnist5k")
    assert m.input_shape == (1, 28, 28) and len(m.train) + len(m.val) + len(m.test) == 5000
    d = make_task("mnist1d")
    assert d.input_shape == (40,) and len(d.test) == 1000 and len(d.train) + len(d.val) == 4000


def test_file_task_reads_csv_and_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    np.savetxt(tmp_path / "d.csv", np.column_stack([x, y]), delimiter=",")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    for name in ("d.csv", "d.npz"):
        task = make_task({"name": "file", "path": str(tmp_path / name)})
        assert task.input_shape == (3,) and task.num_classes == 3
        assert len(task.train) + len(task.val) + len(task.test) == 60


def test_bad_data_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        make_task({"name": "file", "path": str(tmp_path / "missing.csv")})
    (tmp_path / "bad.csv").write_text("1,x,0\n3,4,1\n")
    with pytest.raises(DataError, match="is not a number"):
        make_task({"name": "file", "path": str(tmp_path / "bad.csv"), "categorical": False})
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="needs arrays 'x' and 'y'"):
        make_task({"name": "file", "path": str(tmp_path / "bad.npz")})
    (tmp_path / "d.txt").write_text("1")
    with pytest.raises(DataError, match="allowed: .csv, .npz, .npy"):
        make_task({"name": "file", "path": str(tmp_path / "d.txt")})
    with pytest.raises(ConfigError, match="unknown config key 'task.bogus'"):
        make_task({"name": "digits", "bogus": 1})
