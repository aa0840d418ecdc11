"""The REINFORCE controller's learning curve, from its stored ``controller`` series.

:func:`controller_info` is pure (tested without pixels); :func:`plot_controller` renders it
(matplotlib imported lazily) and is registered as ``RUN_PLOTS["controller"]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from nasforge.plotting import pyplot, save_figure
from nasforge.run import Run


class ControllerInfo(NamedTuple):
    rollouts: list[int]  # trial number of each rollout
    rewards: list[float]  # controller reward (child score + shaping)
    moving_mean: list[float]  # trailing mean of ``window`` rewards
    update_rollouts: list[int]  # last trial number of each update
    baseline: list[float]  # baseline before each update (NaN: none)
    entropy: list[float]  # mean policy entropy per decision, per update
    epsilon: list[float]


def controller_info(series: list[tuple[int, str | None, Any]], window: int = 50) -> ControllerInfo:
    rollouts: list[int] = []
    rewards: list[float] = []
    upd, base, ent, eps = [], [], [], []
    for _, _, data in sorted(series, key=lambda s: s[0]):
        rollouts += data["trials"]
        rewards += data["rewards"]
        upd.append(data["trials"][-1])
        b = data.get("baseline")
        base.append(math.nan if b is None else float(b))
        ent.append(float(data["entropy"]))
        eps.append(float(data["epsilon"]))
    moving = []
    total = 0.0
    for i, r in enumerate(rewards):
        total += r
        if i >= window:
            total -= rewards[i - window]
        moving.append(total / min(i + 1, window))
    return ControllerInfo(rollouts, rewards, moving, upd, base, ent, eps)


def plot_controller(run: Run, out: Path) -> Path:
    """Reward per rollout with its moving mean and the baseline; policy entropy below."""

    info = controller_info(run.series("controller"))
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.scatter(info.rollouts, info.rewards, s=6, alpha=0.35, label="reward")
    ax.plot(info.rollouts, info.moving_mean, color="C3", lw=2, label="moving mean (50)")
    if any(not math.isnan(b) for b in info.baseline):
        ax.plot(info.update_rollouts, info.baseline, color="C2", lw=1, label="baseline")
    ax.set_ylabel("controller reward")
    ax.set_title(f"{run.config.name}: controller")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax2.plot(info.update_rollouts, info.entropy, color="C4")
    ax2.set_ylabel("entropy / decision")
    ax2.set_xlabel("rollout (trial)")
    ax2.grid(alpha=0.3)
    return save_figure(fig, plt, out)
