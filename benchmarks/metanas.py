"""MetaNAS on the TripleMNIST-style set at CPU scale: variants x seeds, resumable.

Usage::

    python benchmarks/metanas.py --time-step                 # one inner step, seed vs CPU size
    python benchmarks/metanas.py --time-parallel [--reps 2]  # one meta-epoch, 1 vs 2 workers
    python benchmarks/metanas.py --out benchmarks/results/metanas.jsonl \
        [--variants metanas conv4 tse sharp ...] [--seeds 1 2] [--ways 5] [--scale cpu|tiny]

Each finished (variant, way, seed) run appends one JSON line to ``--out`` (meta-test accuracy
over ``eval_tasks`` test tasks with its 95 % interval, sparse parameters, meta-training wall and
CPU seconds, the load average); a rerun skips the lines already there, and each run directory
is resumed, so a killed benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nasforge.data.base import TASKS  # noqa: E402
from nasforge.executors.local import LocalExecutor  # noqa: E402
from nasforge.search import search  # noqa: E402
from nasforge.spaces.darts import DartsSpace  # noqa: E402
from nasforge.strategies.oneshot.metanas import MetaNAS  # noqa: E402

SPACE = {"name": "darts", "ops": "fewshot", "nodes": 3, "channels": 8, "layers": 2,
         "reductions": [1], "channel_growth": 1}
SCALES: dict[str, dict[str, Any]] = {
    # the CPU preset (configs/metanas_triple_mnist_cpu.yaml)
    "cpu": dict(meta_epochs=60, warm_up_epochs=20, eval_freq=20, meta_batch_size=4,
                test_meta_batch_size=10, eval_tasks=200, task_train_steps=5,
                test_task_train_steps=10, train_shots=5, q_query=1, batch_size=20,
                batch_size_test=10, channels=8, layers=2, reductions=[1], w_lr=0.005,
                alpha_lr=0.005, threads=1),
    "tiny": dict(meta_epochs=30, warm_up_epochs=10, eval_freq=10, meta_batch_size=2,
                 test_meta_batch_size=5, eval_tasks=200, task_train_steps=3,
                 test_task_train_steps=10, train_shots=3, q_query=1, batch_size=10,
                 batch_size_test=5, channels=4, layers=2, reductions=[1], w_lr=0.01,
                 alpha_lr=0.01, threads=1),
}
VARIANTS: dict[str, dict[str, Any]] = {
    "metanas": {}, "metanas_reference": {"preset": "reference"},
    "conv4": {"model": "conv4", "conv4_channels": 16},
    "darts_minus": {"darts_minus": True}, "darts_minus_fixed07": {
        "darts_minus": True, "aux_skip_beta": "fixed:0.7"},
    "pc_darts_minus": {"darts_minus": True, "pc": {"k": 2}},
    "sharp": {"sharp": {}}, "tse": {"tse": {}}, "tse_sharp": {"tse": {}, "sharp": {}},
    "tse_reference": {"tse": {}, "preset": "reference"},
    # P-DARTS in the meta setting: 3 stages over the meta-epochs, keep 5 then 3 ops per edge,
    # skip dropout 0 / 0.3 / 0.6, at most 2 skips in the normal cell
    "pdarts": {"pdarts": {}},
    # the seed's best combination on TripleMNIST (max_w + power-cosine + skip dropout + skip
    # limit, 0.978 / 0.974 in its results): SharpDARTS' weighting and lr annealing with one
    # P-DARTS stage (no op dropping) for the skip dropout and the skip limit
    "seed_best": {"sharp": {}, "pdarts": {"stages": 1, "skip_dropout": [0.3]}},
}


class _Size(TypedDict):
    """One network size timed by ``--time-step``."""

    channels: int
    layers: int
    reductions: list[int]
    n_way: int
    nodes: int


def _tree_cpu() -> float:
    """CPU seconds of this process and its live child processes (the executor's workers)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


class _Ctx:
    def __init__(self, task: Any, space: Any, executor: LocalExecutor) -> None:
        self.task, self.space, self.executor = task, space, executor
        self.device = torch.device("cpu")

    def records(self) -> list[Any]:
        return []


def time_parallel(reps: int) -> None:
    """Meta-epochs of the CPU preset (5-way, arch steps on) with ``parallel_tasks`` through the
    local executor, 1 vs 2 workers (1 torch thread each): the first epoch (worker start-up
    included) and the mean of the next ``reps`` (wall, CPU of driver + workers, load)."""
    task = TASKS.get("triple_mnist")(per_class=10, size=14, seed=0).load()
    space = DartsSpace(ops="fewshot", nodes=3, channels=8, layers=2, reductions=[1],
                       channel_growth=1)  # SPACE
    params = {**SCALES["cpu"], "n_way": 5, "k_shot": 1, "warm_up_epochs": 0,
              "eval_freq": 10**6, "parallel_tasks": True}
    for workers in (1, 2):
        ex = LocalExecutor(workers=workers, threads_per_worker=1)
        ctx = _Ctx(task, space, ex)
        s = MetaNAS(seed=1, **params)
        s.setup(ctx)  # type: ignore[arg-type]
        s.fresh()
        t0, c0 = time.perf_counter(), _tree_cpu()
        s.train_epoch(ctx, 0)  # type: ignore[arg-type]
        first = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), _tree_cpu()
        for e in range(1, reps + 1):
            s.train_epoch(ctx, e)  # type: ignore[arg-type]
        wall, cpu = (time.perf_counter() - t1) / reps, (_tree_cpu() - c1) / reps
        print(f"workers {workers}: first meta-epoch {first:.2f} s wall (start-up included, "
              f"{_tree_cpu() - c0 - cpu * reps:.2f} s CPU); then {wall:.2f} s wall, {cpu:.2f} s "
              f"CPU per meta-epoch ({params['meta_batch_size']} tasks x "
              f"{params['task_train_steps']} steps); load {os.getloadavg()}")
        ex.close()


def time_step(reps: int) -> None:
    task = TASKS.get("triple_mnist")(per_class=2).load()
    x = torch.rand(20, 1, 28, 28)
    for label, size in (("seed (C=28, 4 cells, 28x28, batch 20, 20-way)",
                         _Size(channels=28, layers=4, reductions=[1, 3], n_way=20, nodes=3)),
                        ("cpu preset (C=8, 2 cells, 28x28, batch 20, 5-way)",
                         _Size(channels=8, layers=2, reductions=[1], n_way=5, nodes=3))):
        space = DartsSpace(ops="fewshot", nodes=size["nodes"], channel_growth=1,
                           channels=size["channels"], layers=size["layers"],
                           reductions=size["reductions"])
        s = MetaNAS(seed=0, n_way=size["n_way"], channels=size["channels"],
                    layers=size["layers"], reductions=size["reductions"], k_shot=1,
                    train_shots=1, q_query=1)

        class Ctx:
            device = torch.device("cpu")

        ctx = Ctx()
        ctx.task, ctx.space = task, space  # type: ignore[attr-defined]
        s.setup(ctx)  # type: ignore[arg-type]
        s.fresh()
        y = torch.randint(size["n_way"], (20,))
        s.model.fstate.drop_path = 0.2
        inner_step = functools.partial(
            s.model.inner_loop, x, y, steps=1, arch_steps=1, batch_size=20, w_opt=s.w_opt,
            a_opt=s.a_opt, gen=torch.Generator().manual_seed(0))
        inner_step()  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(reps):
            inner_step()
        wall, cpu = (time.perf_counter() - t0) / reps, (time.process_time() - c0) / reps
        print(f"{label}: one inner step (alpha + weight) {wall * 1000:.0f} ms wall, "
              f"{cpu * 1000:.0f} ms CPU, torch threads {torch.get_num_threads()}")


def run_one(variant: str, way: int, seed: int, scale: str, work: Path) -> dict[str, Any]:
    strategy = {"name": "metanas", **SCALES[scale], "n_way": way, "k_shot": 1,
                **VARIANTS[variant]}
    cfg: dict[str, Any] = {
        "name": f"{variant}_{way}w_s{seed}", "seed": seed,
        "task": {"name": "triple_mnist", "per_class": 10, "size": 14, "seed": 0},
        "space": SPACE, "strategy": strategy}
    rdir = work / cfg["name"]
    t0, c0 = time.perf_counter(), time.process_time()
    search(cfg, run_dir=rdir, resume=(rdir / "run.sqlite").exists(), progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    from nasforge.run import Run

    final = Run(rdir).meta("final") or {}  # the stored report's layout
    return {"variant": variant, "way": way, "seed": seed, "scale": scale,
            "test_acc": final.get("test_acc"), "ci95": final.get("test_ci95"),
            "tasks": final.get("final_eval_tasks"), "sparse_params": final.get("sparse_params"),
            "meta_test_accs": final.get("meta_test_accs"), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "load": os.getloadavg(), "genotype": final.get("genotype")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-step", action="store_true")
    ap.add_argument("--time-parallel", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/metanas.jsonl")
    ap.add_argument("--work", type=Path, default=Path("/tmp/nasforge_metanas_bench"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--ways", nargs="*", type=int, default=[5, 20])
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--scale", choices=list(SCALES), default="cpu")
    a = ap.parse_args()
    if a.time_step:
        time_step(a.reps)
        return
    if a.time_parallel:
        time_parallel(a.reps)
        return
    done = set()
    if a.out.is_file():
        for line in a.out.read_text().splitlines():
            d = json.loads(line)
            done.add((d["variant"], d["way"], d["seed"], d["scale"]))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for way in a.ways:
        for variant in a.variants:
            for seed in a.seeds:
                if (variant, way, seed, a.scale) in done:
                    continue
                row = run_one(variant, way, seed, a.scale, a.work)
                with a.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps({k: row[k] for k in ("variant", "way", "seed", "test_acc",
                                                      "ci95", "wall_s", "cpu_s")}), flush=True)


if __name__ == "__main__":
    main()
