"""Meta-RL pre-optimisation (seed 000, §1.4) on synthetic accuracies only: PPO agent vs the
random policy with the same mask. The full MetaNAS benchmark (few-shot accuracy and sparse
parameter count) needs MetaNAS and is not this script.

A *task* is a hidden target op per edge of the 9-edge cell; its estimator is
``acc = mean_e softmax(logits)[e, target_e]`` (:class:`nasforge.envs.alpha.SyntheticAccuracy`),
so the best alphas are known. Start logits are DARTS' ``1e-3 N(0, 1)``, so the start accuracy
is about 1/7. The agent meta-trains on ``--train-tasks`` tasks (one trial each: 3 x (4 episodes,
PPO update)), then both policies meta-test on ``--test-tasks`` held-out tasks (4 episodes, no
update). Reported per method and preset: the mean best estimate per test trial, its gain over
the start estimate, and the mean episode return.

    nice -n 10 python benchmarks/preopt.py --train-tasks 40 --test-tasks 20 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from typing import Any

import numpy as np
import torch

from nasforge.envs.alpha import SyntheticAccuracy
from nasforge.rl.preopt import PreOptimizer, PreoptSettings
from nasforge.seeding import derive_seed, make_rng


def task(seed: int, i: int, split: str) -> tuple[np.ndarray, SyntheticAccuracy]:
    rng = make_rng(seed, split, i)
    return 1e-3 * rng.normal(size=(9, 7)), SyntheticAccuracy(rng.integers(0, 7, 9).tolist())


def evaluate(pre: PreOptimizer, seed: int, n: int) -> dict[str, float]:
    best, gain, ret = [], [], []
    for i in range(n):
        start, est = task(seed, i, "test")
        base = est(start)
        out = pre.run({"normal": start}, {"normal": est}, seed=derive_seed(seed, "test", i),
                      train=False)
        best.append(out.accuracy["normal"])
        gain.append(out.accuracy["normal"] - base)
        ret.append(float(np.mean(out.trials["normal"].returns)))
    return {"best_acc": float(np.mean(best)), "gain": float(np.mean(gain)),
            "episode_return": float(np.mean(ret))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-tasks", type=int, default=40)
    ap.add_argument("--test-tasks", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--presets", nargs="+", default=["default", "reference"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    rows: list[dict[str, Any]] = []
    for preset in args.presets:
        for seed in args.seeds:
            ppo = PreOptimizer(PreoptSettings(policy="meta_rl", preset=preset), n_ops=7,
                               seed=seed, device="auto")
            before = evaluate(ppo, seed, args.test_tasks)
            for i in range(args.train_tasks):
                start, est = task(seed, i, "train")
                ppo.run({"normal": start}, {"normal": est}, seed=derive_seed(seed, "train", i),
                        train=True)
            rand = PreOptimizer(PreoptSettings(policy="random", preset=preset), n_ops=7,
                                seed=seed)
            for name, res in (("ppo_untrained", before), ("ppo", evaluate(ppo, seed,
                              args.test_tasks)), ("random", evaluate(rand, seed,
                                                                     args.test_tasks))):
                rows.append({"preset": preset, "seed": seed, "method": name, **res})
                print(json.dumps(rows[-1]), flush=True)
    print("\npreset     method          seeds  best_acc        gain            episode_return")
    for preset in args.presets:
        for m in ("ppo_untrained", "ppo", "random"):
            sel = [r for r in rows if r["preset"] == preset and r["method"] == m]
            cols = [np.array([r[k] for r in sel]) for k in ("best_acc", "gain", "episode_return")]
            print(f"{preset:<10} {m:<15} {len(sel):<6} " + "  ".join(
                f"{c.mean():.3f} ± {c.std():.3f}" for c in cols))
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0
    print(f"\nwall {time.time() - t0:.1f} s, CPU {cpu:.1f} s, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
