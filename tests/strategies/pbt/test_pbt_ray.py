"""PBT-NAS on Ray: same population as the local executor, and a killed worker loses no member."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from nasforge.evaluators.base import EVALUATORS, evaluate_safely
from nasforge.evaluators.pbt import Checkpoint, PBTClassifierTrainer, PBTTrainParams, StepOut
from nasforge.run import Run
from nasforge.search import search
from nasforge.spaces.base import Architecture

pytestmark = pytest.mark.ray


class KillParams(PBTTrainParams):
    marker: str = ""


class KillOnceTrainer(PBTClassifierTrainer):
    """Trains normally, except that the first step to claim the marker file SIGKILLs its worker
    after training (mid-step: the result never reaches the driver)."""

    name: ClassVar[str] = "pbt_kill_test"
    Params: ClassVar[type[BaseModel]] = KillParams

    def __init__(self, *, marker: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.marker = marker

    def train_step(
        self, arch: Architecture, ckpt: Checkpoint, units: int, *, seed: int, eval_seed: int
    ) -> StepOut:
        out = super().train_step(arch, ckpt, units, seed=seed, eval_seed=eval_seed)
        try:
            os.unlink(self.marker)  # atomic: exactly one step wins
        except (FileNotFoundError, IsADirectoryError):
            return out
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


if "pbt_kill_test" not in EVALUATORS:
    EVALUATORS.add("pbt_kill_test", KillOnceTrainer)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    old = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old


def cfg(executor: dict[str, Any], evaluator: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "pbt_ray", "seed": 7, "budget": 8,
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "gene_cnn", "channels": 4, "num_layers": 2, "reduce_after": [0]},
        "strategy": {"name": "pbt_nas", "population_size": 4},
        "evaluator": evaluator or {"name": "pbt_train", "lr": 0.01, "batch_size": 128},
        "executor": executor,
    }


def fitness_table(run: Run) -> list[tuple[int, tuple[Any, ...], float, float]]:
    """Per trial: number, architecture, fitness and the last training loss (a float that any
    difference in the training of a member would change)."""
    return [(t.number, t.arch.tokens, t.val_acc, t.result.metrics["train_loss"])
            for t in run.trials]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return search(cfg({"name": "local", "workers": 1}), run_dir=tmp_path_factory.mktemp("l") / "r")


def test_ray_gives_the_same_population_as_local(
    ray_session: Any, local_run: Run, tmp_path: Path
) -> None:
    run = search(cfg({"name": "ray", "num_cpus": 2}), run_dir=tmp_path / "ray")
    assert fitness_table(run) == fitness_table(local_run)
    assert run.final is not None and local_run.final is not None
    assert run.final.extra["population"] == local_run.final.extra["population"]


def test_killed_ray_worker_loses_no_member(
    ray_session: Any, local_run: Run, tmp_path: Path
) -> None:
    marker = tmp_path / "kill-once"
    marker.write_text("x")
    ev = {"name": "pbt_kill_test", "lr": 0.01, "batch_size": 128, "marker": str(marker)}
    run = search(cfg({"name": "ray", "num_cpus": 2}, ev), run_dir=tmp_path / "killed")
    assert not marker.exists()  # a worker did die mid-step
    final = run.final
    assert final is not None and final.extra["restarts"] >= 1
    assert len(run.trials) == 8 and all(t.ok for t in run.trials)
    # the lost step was re-run from the member's last checkpoint: nothing differs
    assert fitness_table(run) == fitness_table(local_run)


def test_ray_executor_map_for_black_box_searches(ray_session: Any) -> None:
    from nasforge.data.base import make_task
    from nasforge.executors.ray import RayExecutor
    from nasforge.spaces.genes import GeneCNNSpace

    space = GeneCNNSpace(channels=4, num_layers=2, reduce_after=[0])
    ev = PBTClassifierTrainer(space=space, task=make_task({"name": "digits"}), full_units=1)
    archs = [Architecture(("conv3", "relu", "skip", "tanh")), Architecture(("sep3", "id") * 2)]
    with RayExecutor(num_cpus=2) as ex:
        got = dict(ex.map(ev, archs, [1, 2]))
    for i, (a, s) in enumerate(zip(archs, [1, 2])):
        assert got[i].val_acc == evaluate_safely(ev, a, seed=s).val_acc


def gan_cfg(executor: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "pbt_gan_ray", "seed": 2, "budget": 8,
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "gan_hard", "resolution": 8, "bottom": 1, "channels": 4,
                  "df_channels": 4, "latent": 6, "d_blocks": 2},
        "strategy": {"name": "pbt_nas", "population_size": 4},
        "evaluator": {"name": "pbt_gan", "batch_size": 16, "batches_per_unit": 10,
                      "fid_samples": 64, "final_fid_samples": 64, "feature_dim": 8,
                      "feature_epochs": 1},
        "executor": executor,
    }


def test_gan_ray_gives_the_same_population_as_local(ray_session: Any, tmp_path: Path) -> None:
    local = search(gan_cfg({"name": "local", "workers": 1}), run_dir=tmp_path / "l",
                   progress=False)
    ray = search(gan_cfg({"name": "ray", "num_cpus": 2}), run_dir=tmp_path / "r",
                 progress=False)

    def table(run: Run) -> list[tuple[Any, ...]]:
        return [(t.number, t.arch.tokens, t.val_acc, t.result.metrics["d_loss"])
                for t in run.trials]

    assert table(ray) == table(local) and len(table(local)) == 8
    assert ray.final is not None and local.final is not None
    assert ray.final.extra["population"] == local.final.extra["population"]
    assert (ray.dir / "samples.png").is_file()
