"""MetaNAS with meta-RL pre-optimisation (§1.4): tiny runs with the PPO and the random policy,
the policy stored in the run, exact resume after an interruption, and bad settings."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch

import nasforge
from nasforge.cli.main import main
from nasforge.storage.base import Record
from nasforge.strategies.base import Callback, SearchContext
from nasforge.strategies.oneshot.base import decode_checkpoint
from nasforge.strategies.oneshot.metanas import MetaNAS
from nasforge.strategies.oneshot.metanas.search import PREOPT_STATE
from tests.strategies.oneshot.metanas.test_metanas import config

# a small agent and short episodes: the run is about the wiring, not the learning
SMALL = {"agent": {"hidden": 16, "encoder": 16, "updates": 1, "episodes_per_update": 2,
                   "test_episodes": 1, "seq_len": 8}, "max_estimations": 3, "max_steps": 24}
FAST = dict(meta_epochs=2, warm_up_epochs=0, eval_freq=1, eval_tasks=2, test_meta_batch_size=1,
            task_train_steps=1, test_task_train_steps=2)


def _cfg(policy: str, epochs: int = 2, **kw: Any) -> dict[str, Any]:
    return config(f"p_{policy}", preopt=policy, preopt_settings={**SMALL, **kw},
                  **{**FAST, "meta_epochs": epochs})


def _state(run_dir: Path, key: str) -> dict[str, Any]:
    con = sqlite3.connect(run_dir / "run.sqlite")
    (blob,) = con.execute("SELECT blob FROM state WHERE key = ?", (key,)).fetchone()
    con.close()
    st: dict[str, Any] = decode_checkpoint(blob)
    return st


def test_random_policy_run_completes(tmp_path: Path) -> None:
    run = nasforge.search(_cfg("random", epochs=1, preset="reference"), run_dir=tmp_path / "r",
                          progress=False)
    final = run.final
    assert final is not None and final.test_acc is not None
    pre = final.extra["preopt"]
    assert pre["policy"] == "random" and pre["agent_trials"] == 0
    assert pre["final_best"] >= pre["final_start"]  # the best includes the start estimate
    m = run.trials[0].result.metrics
    assert m["preopt_best"] >= m["preopt_start"] and m["preopt_estimations"] >= 1
    assert "preopt_test_best" in m
    assert _state(tmp_path / "r", PREOPT_STATE)["agent"] is None


def _untimed(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if not k.endswith("_seconds")}


class _StopAfter(Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_trial(self, record: Record, ctx: SearchContext) -> None:
        if record.number + 1 >= self.n:
            raise KeyboardInterrupt


def test_meta_rl_run_stores_the_policy_and_resumes_exactly(tmp_path: Path) -> None:
    """Interrupted after the first meta-test record, resumed: the same records (PPO metrics
    included), final accuracy and stored policy (weights and Adam state) as without a break."""
    cfg = _cfg("meta_rl", agent={**SMALL["agent"], "erl2": True})
    full = nasforge.search(cfg, run_dir=tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        nasforge.search(cfg, run_dir=tmp_path / "cut", callbacks=[_StopAfter(1)],
                        progress=False)
    assert len(nasforge.Run(tmp_path / "cut").trials) == 1
    resumed = nasforge.search(cfg, run_dir=tmp_path / "cut", resume=True, progress=False)
    a, b = full.trials, resumed.trials
    assert [r.number for r in b] == [0, 1]
    assert [_untimed(r.result.metrics) for r in a] == [_untimed(r.result.metrics) for r in b]
    assert [r.arch for r in a] == [r.arch for r in b]
    assert full.final is not None and resumed.final is not None
    assert full.final.test_acc == resumed.final.test_acc
    pre = full.final.extra["preopt"]
    # 2 meta-epochs x 2 tasks x 2 cells train the agent, 1 update each
    assert pre["agent_trials"] > 8 and pre["agent_updates"] == 2 * 2 * 2
    sa, sb = (_state(d, PREOPT_STATE)["agent"] for d in (tmp_path / "full", tmp_path / "cut"))
    assert sa["trials"] == sb["trials"] and sa["updates"] == sb["updates"]
    assert all(torch.equal(sa["policy"][k], sb["policy"][k]) for k in sa["policy"])
    opt_a, opt_b = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys() and all(
        torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])


def test_without_preopt_no_preopt_fields() -> None:
    s = MetaNAS(seed=0)
    assert s.p.preopt == "none"


@pytest.mark.parametrize(("strategy", "message"), [
    ({"preopt": "ppo"}, "strategy.preopt"),
    ({"preopt": "meta_rl", "preopt_settings": {"estimation_bonus": -1}},
     "preopt_settings.estimation_bonus"),
    ({"preopt": "meta_rl", "preopt_settings": {"bonus": 0.2}}, "preopt_settings.bonus"),
    ({"preopt": "random", "model": "conv4"}, "model conv4 has none"),
    ({"preopt_settings": {"preset": "reference"}}, "preopt_settings given but preopt is none"),
])
def test_bad_preopt_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          strategy: dict[str, Any], message: str) -> None:
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config(**strategy)))
    run_dir = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not run_dir.exists()


def test_pre_optimize_keeps_optimisers_and_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    """One task's pre-optimisation: the inner optimiser states and the global torch RNG are as
    before, and the model holds the state of the last trial's best estimate."""
    from nasforge.data.base import TASKS
    from nasforge.spaces import SPACES
    from nasforge.strategies.oneshot.metanas import search as ms
    from tests.strategies.oneshot.metanas.test_metanas import SPACE, TINY, _Ctx

    task = TASKS.get("digits_rot")().load()
    space = SPACES.get("darts")(**{k: v for k, v in SPACE.items() if k != "name"})
    s = MetaNAS(seed=0, **{**TINY, "preopt": "random", "preopt_settings": SMALL})
    s.setup(_Ctx(task, space))  # type: ignore[arg-type]
    s.fresh()
    s.run_task("train", 0, steps=1, arch_steps=1, batch_size=4, train=True)  # Adam has state
    opt0 = [copy.deepcopy(o.state_dict()) for o in (s.w_opt, s.a_opt) if o is not None]
    rng0 = torch.get_rng_state()
    seen: list[Any] = []
    orig = ms._Estimator.__init__

    def spy(self: Any, *a: Any, **kw: Any) -> None:
        orig(self, *a, **kw)
        seen.append(self)

    monkeypatch.setattr(ms._Estimator, "__init__", spy)
    ep = s.samplers["train"].episode(1)
    s.pre_optimize("train", 1, ep.support_x, ep.support_y, 4, True)
    assert torch.equal(torch.get_rng_state(), rng0)
    for o, st in zip([o for o in (s.w_opt, s.a_opt) if o is not None], opt0):
        now = o.state_dict()["state"]
        assert all(torch.equal(now[i][k], st["state"][i][k]) for i in st["state"]
                   for k in st["state"][i])
    assert len(seen) == 2 and all(e.calls >= 2 for e in seen)  # normal, then reduce
    best = seen[-1].best
    assert all(torch.equal(v, best[k]) for k, v in s._snapshot().items())
    assert seen[1].start is not seen[0].start
