"""``meta_a2c`` plots: reward per step per environment (task), and the policy's action
distribution over the run. The values come from :mod:`nasforge.strategies.metarl.report`
(pure, tested without pixels); :func:`plot_metarl` renders them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nasforge.plotting import pyplot, save_figure
from nasforge.run import Run
from nasforge.strategies.metarl.report import action_info, reward_info


def _moving(x: list[float], w: int) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if len(a) < w or w <= 1:
        return a
    c = np.cumsum(np.insert(a, 0, 0.0))
    head = c[1:w] / np.arange(1, w)
    return np.concatenate([head, (c[w:] - c[:-w]) / w])


def plot_metarl(run: Run, out: str | Path) -> Path:
    """Two panels: reward per step coloured by environment (dots) with a trailing mean, and the
    share of each action in windows of steps (stacked), trial boundaries marked."""
    trials = run.trials
    rew = reward_info(trials)
    act = action_info(trials, str(run.config.strategy.get("space", "chain")))
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    for i, (tid, xs) in enumerate(rew.steps.items()):
        ys = rew.rewards[tid]
        ax1.scatter(xs, ys, s=4, color=f"C{i}", alpha=0.3)
        ax1.plot(xs, _moving(ys, max(5, len(ys) // 20)), color=f"C{i}", lw=2, label=tid)
    ax1.set_xlabel("environment step")
    ax1.set_ylabel("reward (accuracy of the current network)")
    ax1.set_title("reward per step per environment")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    if act.starts:
        ax2.stackplot(act.starts, act.shares, labels=act.labels, step="post")
        for tid, s in act.task_starts.items():
            ax2.axvline(s, color="k", lw=0.8, ls="--")
            ax2.annotate(tid, (s, 1.0), fontsize=7, xytext=(2, -10), textcoords="offset points")
    ax2.set_xlabel("environment step (window start)")
    ax2.set_ylabel("share of actions")
    ax2.set_ylim(0, 1)
    ax2.set_title("policy's action distribution over training")
    ax2.legend(fontsize=6, loc="lower right", ncol=2)
    fig.suptitle(run.config.name)
    return save_figure(fig, plt, out)
