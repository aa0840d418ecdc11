"""What ``show``, ``export`` and ``plot`` read off a ``meta_a2c`` run: per-environment (per task)
progress and best networks, reward per step, and the policy's action distribution over time.

Pure functions of the stored trials (every environment step is a trial with its task id, the
flattened NSC rows as tokens and ``metrics`` reward/action/episode) and the final report's
``extra.tasks`` (the retrained top networks); no plotting library is imported here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from nasforge.envs.nsc import Row, actions_of
from nasforge.storage.base import Record

STRATEGY = "meta_a2c"


def nsc_rows(tokens: Sequence[Any]) -> list[list[int]]:
    """The NSC rows a trial's flattened tokens hold (5 integers a row)."""
    t = [int(v) for v in tokens]
    return [t[i : i + 5] for i in range(0, len(t), 5)]


def _by_task(trials: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for r in sorted(trials, key=lambda r: r.number):
        out.setdefault(str(r.task), []).append(r)
    return out


def metarl_summary(trials: list[Record], final_extra: Mapping[str, Any] | None,
                   top: int = 3) -> dict[str, Any]:
    """Per task, in the order the agent visited them: steps, episodes, mean reward (all steps
    and the last 50), the best ``top`` distinct networks found (reward, trial, NSC rows), the
    action counts and, when the run finished, the retrained networks (``final``)."""
    final_tasks = (final_extra or {}).get("tasks") or {}
    tasks: dict[str, Any] = {}
    for tid, rs in _by_task(trials).items():
        rewards = [float(r.result.metrics.get("reward", 0.0)) for r in rs]
        best: dict[str, Record] = {}
        for r in rs:
            if not r.ok:
                continue
            key = str(r.result.metrics.get("nsc_hash"))
            if key not in best or r.val_acc > best[key].val_acc:
                best[key] = r
        ranked = sorted(best.values(), key=lambda r: (-r.val_acc, r.number))[:top]
        tail = rewards[-50:]
        tasks[tid] = {
            "steps": len(rs),
            "episodes": len({r.result.metrics.get("episode") for r in rs}),
            "mean_reward": sum(rewards) / len(rewards),
            "mean_reward_last50": sum(tail) / len(tail),
            "distinct_networks": len(best),
            "best": [{"trial": r.number, "reward": r.val_acc, "nsc": nsc_rows(r.arch.tokens)}
                     for r in ranked],
            "actions": dict(Counter(str(r.result.metrics.get("action")) for r in rs)),
            "final": final_tasks.get(tid),
        }
    return {"tasks": tasks}


class RewardInfo(NamedTuple):
    """Reward per global step, split by task (x: the run's step number)."""

    steps: dict[str, list[int]]
    rewards: dict[str, list[float]]


def reward_info(trials: list[Record]) -> RewardInfo:
    steps: dict[str, list[int]] = {}
    rewards: dict[str, list[float]] = {}
    for tid, rs in _by_task(trials).items():
        steps[tid] = [r.number for r in rs]
        rewards[tid] = [float(r.result.metrics.get("reward", 0.0)) for r in rs]
    return RewardInfo(steps, rewards)


class ActionInfo(NamedTuple):
    """Share of each action in consecutive windows of ``window`` steps (x: window start)."""

    labels: list[str]
    starts: list[int]
    shares: list[list[float]]  # one list per label, one value per window
    task_starts: dict[str, int]  # first step of each task (trial boundary)


def action_info(trials: list[Record], space: str = "chain", window: int = 0) -> ActionInfo:
    """``window`` 0: about 20 windows over the run (at least 5 steps each)."""
    space_kind: Literal["chain", "multibranch"] = (
        "multibranch" if space == "multibranch" else "chain")
    labels = [a.label for a in actions_of(space_kind)]
    rs = sorted(trials, key=lambda r: r.number)
    w = window or max(5, len(rs) // 20)
    starts: list[int] = []
    shares: list[list[float]] = [[] for _ in labels]
    for i in range(0, len(rs), w):
        chunk = Counter(str(r.result.metrics.get("action")) for r in rs[i : i + w])
        n = sum(chunk.values())
        starts.append(rs[i].number)
        for j, lab in enumerate(labels):
            shares[j].append(chunk.get(lab, 0) / n)
    task_starts: dict[str, int] = {}
    for r in rs:
        task_starts.setdefault(str(r.task), r.number)
    return ActionInfo(labels, starts, shares, task_starts)


def best_networks(trials: list[Record], final_extra: Mapping[str, Any] | None
                  ) -> dict[str, dict[str, Any]]:
    """The best network per task: the first retrained one when the run finished (it carries the
    test accuracy), else the best found during the search."""
    out: dict[str, dict[str, Any]] = {}
    summary = metarl_summary(trials, final_extra, top=1)["tasks"]
    for tid, t in summary.items():
        fin = t.get("final") or []
        if fin:
            f = fin[0]
            out[tid] = {"trial": f["trial"], "nsc": f["nsc"], "search_reward": f["search_reward"],
                        "test_acc": f["test_acc"]}
        elif t["best"]:
            b = t["best"][0]
            out[tid] = {"trial": b["trial"], "nsc": b["nsc"], "search_reward": b["reward"],
                        "test_acc": None}
    return out


def as_rows(nsc: list[list[int]]) -> tuple[Row, ...]:
    return tuple((int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in nsc)
