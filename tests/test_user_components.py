"""A user's own objective (Python and YAML), plugins from the CLI and in a fresh process (by
name and by entry point), re-registration, space objects, max_params and the Pareto front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import nasforge
from nasforge.cli.main import main
from nasforge.exceptions import RunDirError
from nasforge.registry import Registry
from nasforge.spaces import SequenceSpace
from nasforge.spaces.base import Architecture

SRC = str(Path(nasforge.__file__).resolve().parents[1])


def widths_objective(arch: Architecture, ctx: object) -> dict[str, float]:
    """Analytic: the sum of the widths (a cost to minimise), params = number of tokens."""
    widths = [t for t in arch.tokens if isinstance(t, int)]
    return {"score": float(sum(widths)), "params": len(arch.tokens), "n_widths": len(widths)}


def _cfg(**extra: object) -> dict:
    return {
        "name": "u", "seed": 0, "budget": 12, "device": "cpu",
        "space": {"name": "mlp", "max_len": 4}, "final": {"seeds": 0}, **extra,
    }


def test_user_objective_from_python_minimised(tmp_path: Path) -> None:
    run = nasforge.search(
        _cfg(), objective=widths_objective, direction="minimize", run_dir=tmp_path / "r",
        progress=False,
    )
    s = run.summary()
    assert s["objective"]["name"] == "score" and s["objective"]["direction"] == "minimize"
    scores = [t["score"] for t in s["top"]]
    assert scores == sorted(scores) and s["best"]["score"] == min(scores)
    assert run.best is not None and run.best.number == s["best"]["trial"]
    assert s["top"][0]["params"] == len(s["top"][0]["arch"]["tokens"])
    assert s["best"]["why"].startswith("lowest validation score")
    # a user objective trains no network: export says so instead of "let the search finish"
    with pytest.raises(RunDirError, match="no trained weights to export"):
        nasforge.export(run.dir, tmp_path / "exp")


def boom_objective(arch: Architecture, ctx: object) -> float:
    if len(arch.tokens) % 2:
        raise RuntimeError("boom: odd length")
    return float(len(arch.tokens))


def test_failed_trials_show_their_errors(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = nasforge.search(_cfg(), objective=boom_objective, run_dir=tmp_path / "r",
                          progress=False)
    s = run.summary()
    assert s["failed"] > 0
    assert s["errors"][0]["error"] == "RuntimeError: boom: odd length"
    assert s["errors"][0]["trials"] == s["failed"]
    assert main(["show", str(run.dir)]) == 0
    out = capsys.readouterr().out
    assert f"failed: {s['failed']} trial(s), first {s['errors'][0]['first']}: RuntimeError: boom" \
        in " ".join(out.split())


def test_user_objective_from_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my_objective.py").write_text(textwrap.dedent("""
        def depth(arch, ctx):
            model = ctx.build(arch)  # the task's shapes
            return float(len(list(model.modules())))
    """))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(objective="my_objective:depth", task={"name": "moons"})))
    assert main(["search", str(cfg), "--run-dir", str(tmp_path / "r"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["show", str(tmp_path / "r"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["objective"]["direction"] == "maximize" and s["best"]["score"] >= 4
    cfg.write_text(yaml.safe_dump(_cfg(objective="my_objective:nope")))
    assert main(["search", str(cfg), "--run-dir", str(tmp_path / "r2")]) == 2
    assert "has no function 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


PLUGIN = """
from nasforge.spaces.base import SPACES
from nasforge.spaces.tabular import TabularSpace


@SPACES.register("wide_tabular")
class WideTabular(TabularSpace):
    name = "wide_tabular"

    def spec(self):
        return {**super().spec(), "name": self.name}
"""


def test_plugin_from_the_cli_and_load_in_a_fresh_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    cfg = {**_cfg(), "plugins": ["my_plugin"], "budget": 3, "task": {"name": "moons"},
           "space": {"name": "wide_tabular", "max_layers": 1, "widths": [8],
                     "batch_norm": [False], "dropouts": [0.0]},
           "evaluator": {"name": "train", "max_epochs": 5}, "final": {"seeds": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run_dir, exp = tmp_path / "r", tmp_path / "exp"
    assert main(["search", str(tmp_path / "c.yaml"), "--run-dir", str(run_dir),
                 "--no-progress"]) == 0
    assert main(["export", str(run_dir), "--out", str(exp)]) == 0
    code = (
        "import sys, nasforge, numpy as np\n"
        "try:\n    nasforge.load(sys.argv[1])\nexcept nasforge.RunDirError as e:\n"
        "    print('ERR', e)\n"
        "m = nasforge.load(sys.argv[1], plugins=['my_plugin'])\n"
        "print('PRED', m.predict(np.zeros(2)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(tmp_path)])}
    out = subprocess.run([sys.executable, "-c", code, str(exp)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "space 'wide_tabular' of this model is not registered" in out.stdout
    assert "the run used plugins: my_plugin" in out.stdout and "PRED" in out.stdout
    # an installed plugin (entry point group nasforge.plugins) is found without naming it
    dist = tmp_path / "site" / "my_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nasforge.plugins]\nwide = my_plugin\n")
    env["PYTHONPATH"] = os.pathsep.join([SRC, str(tmp_path), str(tmp_path / "site")])
    code = "import sys, nasforge; print(type(nasforge.load(sys.argv[1]).net).__name__)"
    out = subprocess.run([sys.executable, "-c", code, str(exp)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "Sequential" in out.stdout, out.stderr


def test_registering_the_same_object_again_is_allowed() -> None:
    reg: Registry[type] = Registry("thing")

    class A:
        pass

    reg.register("a")(A)
    reg.register("a")(A)  # a notebook cell run twice

    class A:  # type: ignore[no-redef]  # the same definition, re-run
        pass

    reg.register("a")(A)
    assert reg.get("a") is A

    class B:
        pass

    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(B)


def test_search_accepts_a_space_object(tmp_path: Path) -> None:
    space = SequenceSpace(widths=[3, 5], activations=["ReLU"], max_len=2)
    run = nasforge.search(_cfg(budget=4), space=space, objective=widths_objective,
                          run_dir=tmp_path / "r", progress=False)
    assert run.meta("space") == space.spec()
    assert all(w in (3, 5) for t in run.trials for w in t.arch.tokens if isinstance(w, int))


def test_max_params_and_pareto_front_on_a_toy_space(tmp_path: Path) -> None:
    cfg = _cfg(budget=40, pareto=True, task={"name": "moons"})
    run = nasforge.search(cfg, objective=lambda a, c: float(sum(
        t for t in a.tokens if isinstance(t, int))) + 0.0 * c.build(a).training,
        run_dir=tmp_path / "r", progress=False)
    trials = [t for t in run.trials if t.ok]
    front = run.summary()["pareto"]
    assert len(front) >= 2 and all(p["params"] > 0 for p in front)
    # every front point is non-dominated, and every completed trial is dominated by one of them
    for p in front:
        assert not any(t.result.params <= p["params"] and t.val_acc > p["score"] for t in trials)
    assert [p["params"] for p in front] == sorted(p["params"] for p in front)
    limited = nasforge.search(
        {**_cfg(budget=10), "task": {"name": "moons"}, "max_params": 30,
         "evaluator": {"name": "train", "max_epochs": 2}},
        run_dir=tmp_path / "m", progress=False,
    )
    for t in limited.trials:
        if t.result.params > 30:
            assert not t.ok and "max_params 30" in str(t.result.error)
    paths = nasforge.plot(run.dir)
    assert any(p.name == "history_pareto.png" and p.stat().st_size > 1000 for p in paths)


def test_python_api_prints_progress_and_summary_and_old_runs_read_as_val_acc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasforge.storage.sqlite import SQLiteRunStore

    run = nasforge.search(_cfg(budget=3), objective=widths_objective, run_dir=tmp_path / "r")
    out = capsys.readouterr().out
    assert "best architecture" in out and "picked:" in out and "score (max)" in out
    with SQLiteRunStore(tmp_path / "r" / "run.sqlite") as store, store.transaction():
        store.set_meta("objective", None)  # a run stored before objectives existed
    assert run.objective == nasforge.objectives.DEFAULT
    assert run.summary()["objective"]["name"] == "val_acc"
    nasforge.search(_cfg(budget=2), objective=widths_objective, run_dir=tmp_path / "q",
                    progress=False)
    assert capsys.readouterr().out == ""
