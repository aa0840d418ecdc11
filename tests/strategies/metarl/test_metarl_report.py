"""show / export / plot of a meta_a2c run: per-environment progress and best networks, the
best network per environment, reward per step per environment and the action distribution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.cli.main import main
from nasforge.config import build_component
from nasforge.data import TASKS as TASKS_REG
from nasforge.envs.nsc import NSCNet
from nasforge.evaluators.fit import accuracy
from nasforge.exceptions import RunDirError
from nasforge.run import Run, load
from nasforge.search import search
from nasforge.strategies.metarl.report import action_info, metarl_summary, reward_info

TASKS = [{"name": "textures", "per_class": 10}, {"name": "textures", "per_class": 10,
                                                 "data_seed": 1}]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("metarl") / "r"
    cfg = {"name": "meta", "seed": 0, "budget": 40, "device": "cpu", "tasks": TASKS,
           "strategy": {"name": "meta_a2c", "hidden": 16, "final": {"top": 1, "epochs": 1},
                        "reward": {"kind": "toy", "target": ["conv3"]}},
           "final": {"seeds": 1}}
    search(cfg, run_dir=d, progress=False)
    return d


def test_summary_per_environment(run_dir: Path) -> None:
    run = Run(run_dir)
    doc = run.summary()["metarl"]
    tids = list(doc["tasks"])
    assert len(tids) == 2
    for t in doc["tasks"].values():
        assert t["steps"] == 20 and sum(t["actions"].values()) == 20
        assert t["best"] and t["best"][0]["reward"] >= t["mean_reward"]
        assert t["final"] and "test_acc" in t["final"][0]
    # the generic table ranks each task's networks apart: a network found on both tasks is
    # listed once per task, and the top row is the best over all tasks
    s = run.summary(top=1000)
    tasks_of = {r.number: r.task for r in run.trials}
    pairs = [(json.dumps(t["arch"]), tasks_of[t["trial"]]) for t in s["top"]]
    assert len(pairs) == len(set(pairs))
    assert len({tasks_of[t["trial"]] for t in s["top"]}) == 2
    assert s["top"][0]["val_acc"] == max(r.val_acc for r in run.trials if r.ok)
    assert "each task's own best networks" in s["best"]["why"]
    # the pick is the best network over all tasks, retrained on the task it was found on
    assert s["best"]["utility"] == s["top"][0]["utility"]
    lead = s["final"]["lead_task"]
    assert tasks_of[s["best"]["trial"]] == lead
    assert s["best"]["test_acc"] == s["final"]["tasks"][lead][0]["test_acc"]
    # the same numbers straight from the trials
    assert metarl_summary(run.trials, None)["tasks"][tids[0]]["steps"] == 20
    rew = reward_info(run.trials)
    assert [len(v) for v in rew.rewards.values()] == [20, 20]
    act = action_info(run.trials, "chain", window=10)
    assert len(act.starts) == 4 and len(act.labels) == 8
    assert all(abs(sum(col) - 1) < 1e-9 for col in zip(*act.shares, strict=True))
    assert list(act.task_starts.values()) == [0, 20]


def test_show_export_plot(run_dir: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "progress per environment" in out and "retrained trial" in out
    assert "(retrained on its task)" in out and "not retrained" not in out
    assert main(["show", str(run_dir), "--json"]) == 0
    assert "metarl" in json.loads(capsys.readouterr().out)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "exp")]) == 0
    exp = sorted((tmp_path / "exp").glob("*/architecture.json"))
    docs = [json.loads(p.read_text()) for p in exp]
    assert len(docs) == 2 and (tmp_path / "exp" / "policy.pt").is_file()
    with pytest.raises(RunDirError, match="one exported network per task: load one of its"):
        load(tmp_path / "exp")
    run = Run(run_dir)
    for p, d in zip(exp, docs, strict=True):
        assert d["format"] == "nasforge-nsc/1" and d["test_acc"] is not None
        assert d["weights"] == "model.pt" and d["build"]["padding"] == d["padding"]
        # the exported weights are the final retraining's: load gives that trained network,
        # which scores the recorded test accuracy on the task's test split again
        model = load(p.parent)
        assert isinstance(model.net, NSCNet) and not model.training
        task = build_component(TASKS_REG, "task", d["task"]).load()
        assert accuracy(model.net, task.test, 512) == pytest.approx(d["test_acc"], abs=1e-6)
        assert tuple(model.net.rows) == tuple(tuple(r) for r in d["nsc"])
    assert run.final is not None and set(run.final.extra["task_models"]) == set(
        run.summary()["metarl"]["tasks"])
    # --torch-export: a program per trained task network
    assert main(["export", str(run_dir), "--out", str(tmp_path / "exp_tx"),
                 "--torch-export"]) == 0
    programs = sorted((tmp_path / "exp_tx").glob("*/model.pt2"))
    assert programs and len(programs) == len(list((tmp_path / "exp_tx").glob("*/model.pt")))
    assert main(["export", str(run_dir), "--out", str(tmp_path / "exp")]) == 2  # not empty
    capsys.readouterr()
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "p.png")]) == 0
    paths = capsys.readouterr().out.split()
    assert any(p.endswith("p_meta_a2c.png") for p in paths)
    assert (tmp_path / "p_meta_a2c.png").stat().st_size > 1000
