"""Soak test: SIGKILL searches at random moments, resume them, and count what went wrong.

For every strategy (random, reinforce, evolution, tpe, bo_evolution, darts, pbt_nas) and both
executors (``local`` with 2 worker processes, ``ray`` with 2 CPUs; DARTS, which trains in the
driver and uses no executor, runs once) this script

1. runs the search once without interruption (the reference),
2. runs it again as ``nasforge search`` subprocesses: up to ``--kills`` drivers in a row are
   SIGKILLed after a random delay (uniform over the first half of the reference's wall time;
   each resumed driver starts where the last was killed, so the kills spread over the search),
   then one resume runs to the end (a driver that finishes before its kill is not a kill),
3. compares the stored trials with the reference: trials lost (in the reference, not in the
   killed run), duplicated or extra (numbers beyond the reference or another architecture/seed
   under a number), differing values (same trial, another score), series rows (DARTS alphas,
   PBT events) that differ in number,
4. counts orphans: every process that descended from a killed driver (polled while it ran)
   and is still alive ``--grace`` seconds after the kill (they are then killed by pid).

Then it tampers with files (malicious pickles whose payload creates a marker file) and counts
the payloads that ran: ``best_model.pt`` before ``nasforge export``, ``model.pt`` of an export
before ``nasforge.load``, the DARTS checkpoint in ``run.sqlite`` before ``--resume``, and the
strategy states of an ask/tell run and of PBT-NAS before ``--resume`` (those two are stored by
the strategy-state codec of issue 18; this script reports what the checked-out code does).

Usage (about 20 minutes on 2 cores shared with other jobs, load 7)::

    nice -n 10 python benchmarks/soak.py --out docs/soak.json
    python benchmarks/soak.py --quick            # 2 scenarios, a minute
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nasforge.executors._reaper import descendants  # noqa: E402

STRATEGIES = ["random", "reinforce", "evolution", "tpe", "bo_evolution", "darts", "pbt_nas"]


# --------------------------------------------------------------------------- configs
def _npz(folder: Path) -> Path:
    """The tiny 3-class image task of the DARTS tests (the class is the brightest third)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = rng.normal(0, 0.3, (96, 1, 6, 6)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 * c: 2 * c + 2, :] += 1.5
    path = folder / "tiny.npz"
    np.savez(path, x=x, y=y)
    return path


def config(strategy: str, executor: dict[str, Any], folder: Path) -> dict[str, Any]:
    base: dict[str, Any] = {"name": f"soak_{strategy}", "seed": 3, "device": "cpu",
                            "executor": executor, "final": {"seeds": 0}}
    if strategy == "darts":
        return {**base, "budget": 1, "task": {"name": "file", "path": str(_npz(folder))},
                "space": {"name": "darts", "ops": ["none", "skip_connect", "avg_pool_3x3",
                                                   "sep_conv_3x3"],
                          "nodes": 2, "channels": 4, "layers": 2},
                "strategy": {"name": "darts", "epochs": 8, "batch_size": 16, "channels": 4,
                             "layers": 1, "reductions": [], "w_lr": 0.05, "alpha_lr": 0.01,
                             "retrain": {"epochs": 1}}}
    if strategy == "pbt_nas":
        return {**base, "budget": 12, "task": {"name": "digits", "seed": 0},
                "space": {"name": "gene_cnn", "channels": 4, "num_layers": 2,
                          "reduce_after": [0]},
                "strategy": {"name": "pbt_nas", "population_size": 4},
                "evaluator": {"name": "pbt_train", "lr": 0.01, "batch_size": 128}}
    return {**base, "budget": 16, "task": {"name": "moons"},
            "space": {"name": "mlp", "max_len": 4},
            "strategy": {"name": strategy, "batch_size": 4},
            "evaluator": {"name": "train", "max_epochs": 8, "patience": 8, "batch_size": 64}}


def executor(kind: str, ray_dir: str) -> dict[str, Any]:
    if kind == "local":
        return {"name": "local", "workers": 2}
    return {"name": "ray", "num_cpus": 2, "temp_dir": ray_dir}


# --------------------------------------------------------------------------- running
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
       "RAY_AUTH_MODE": "disabled"}


def _argv(cfg: Path, run: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "nasforge.cli.main", "search", str(cfg), "--run-dir",
            str(run), "--no-progress", *(["--resume"] if resume else [])]


def _alive(procs: dict[int, int]) -> list[int]:
    out = []
    for pid, start in procs.items():
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        if rest[0] != "Z" and int(rest[19]) == start:
            out.append(pid)
    return out


def drive(cfg: Path, run: Path, kill_after: float | None, grace: float,
          timeout: float = 600) -> dict[str, Any]:
    """One driver process; SIGKILLed after ``kill_after`` seconds unless it ends first."""
    resume = (run / "run.sqlite").exists()
    t0 = time.monotonic()
    proc = subprocess.Popen(_argv(cfg, run, resume), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    seen: dict[int, int] = {}
    killed = False
    while proc.poll() is None:
        seen.update(descendants(proc.pid))
        now = time.monotonic() - t0
        if kill_after is not None and now >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        if now > timeout:
            os.kill(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"driver ran past {timeout}s")
        time.sleep(0.1)
    _, err = proc.communicate()
    wall = time.monotonic() - t0
    orphans: list[int] = []
    if killed:
        end = time.monotonic() + grace
        while time.monotonic() < end and _alive(seen):
            time.sleep(0.25)
        orphans = _alive(seen)
        for pid in orphans:  # clean up, by pid: they are counted already
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return {"killed": killed, "rc": proc.returncode, "wall": wall, "orphans": orphans,
            "children": len(seen), "stderr": err.decode(errors="replace")[-400:],
            "resume": resume}


def rows(run: Path) -> tuple[dict[int, tuple[Any, ...]], dict[str, int]]:
    con = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    try:
        trials = {r[0]: tuple(r[1:]) for r in con.execute(
            "SELECT number, arch_id, seed, status, val_acc FROM trials ORDER BY number")}
        series = dict(con.execute("SELECT kind, COUNT(*) FROM series GROUP BY kind"))
    finally:
        con.close()
    return trials, series


def compare(ref: Path, got: Path) -> dict[str, int]:
    (rt, rs), (gt, gs) = rows(ref), rows(got)
    lost = sum(1 for n in rt if n not in gt)
    extra = sum(1 for n in gt if n not in rt)
    other = sum(1 for n in rt if n in gt and gt[n][:2] != rt[n][:2])
    differ = sum(1 for n in rt if n in gt and gt[n][:2] == rt[n][:2] and gt[n][2:] != rt[n][2:])
    return {"lost": lost, "duplicated": extra + other, "differing": differ,
            "series_mismatch": sum(abs(rs.get(k, 0) - gs.get(k, 0)) for k in set(rs) | set(gs))}


def scenario(strategy: str, kind: str, folder: Path, kills: int, grace: float,
             rng: random.Random) -> dict[str, Any]:
    ray_dir = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    try:
        cfg = folder / "c.yaml"
        cfg.write_text(yaml.safe_dump(config(strategy, executor(kind, ray_dir), folder)))
        ref = drive(cfg, folder / "ref", None, grace)
        if ref["rc"] != 0:
            raise RuntimeError(f"{strategy}/{kind} reference failed: {ref['stderr']}")
        out: dict[str, Any] = {"strategy": strategy, "executor": kind, "kills": 0,
                               "orphans": 0, "lost": 0, "duplicated": 0, "differing": 0,
                               "series_mismatch": 0, "drivers": 0,
                               "failed_drivers": 0, "ref_wall": round(ref["wall"], 1)}
        run = folder / "run"
        for attempt in range(kills + 100):  # kill up to `kills` drivers, then let one finish
            # within the first half of the reference's wall time: each resumed driver starts
            # where the last one was killed, so the kills spread over the whole search
            delay = rng.uniform(0.5, 0.5 * ref["wall"]) if attempt < kills else None
            res = drive(cfg, run, delay, grace)
            out["drivers"] += 1
            if res["killed"]:
                out["kills"] += 1
                out["orphans"] += len(res["orphans"])
                continue
            if res["rc"] != 0:
                out["failed_drivers"] += 1
                out.setdefault("errors", []).append(res["stderr"].strip().splitlines()[-1:])
                if out["failed_drivers"] > 3:
                    break
                continue
            break
        for k, v in compare(folder / "ref", run).items():
            out[k] += v
        return out
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


# --------------------------------------------------------------------------- tampering
TAMPER_CODE = """
import os, pickle, sys
class Boom:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
if sys.argv[3] == "raw":  # a plain pickle (what pickle.loads reads)
    open(sys.argv[1], "wb").write(pickle.dumps({"weight": Boom()}))
else:  # a torch.save zip (what torch.load reads)
    import torch
    torch.save({"weight": Boom()}, sys.argv[1])
"""


def _malicious(path: Path, marker: Path, raw: bool = False) -> None:
    subprocess.run([sys.executable, "-c", TAMPER_CODE, str(path), str(marker),
                    "raw" if raw else "torch"], env=ENV, check=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nasforge.cli.main", *args], env=ENV,
                          capture_output=True, text=True, timeout=600)


def tampering(folder: Path) -> list[dict[str, Any]]:
    out = []

    def case(name: str, marker: Path, proc: subprocess.CompletedProcess[str]) -> None:
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        out.append({"case": name, "code_ran": marker.exists(), "rc": proc.returncode,
                    "one_line": len(lines) == 1, "message": lines[-1][:200] if lines else ""})

    # a finished black-box run with a trained best model
    bb = folder / "bb"
    bb.mkdir(parents=True)
    cfg = config("random", executor("local", ""), bb)
    cfg.update(executor={"name": "local", "workers": 1}, budget=4, final={"seeds": 1})
    (bb / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert _cli("search", str(bb / "c.yaml"), "--run-dir", str(bb / "run"),
                "--no-progress").returncode == 0
    assert _cli("export", str(bb / "run"), "--out", str(bb / "exp")).returncode == 0

    m = folder / "m_best"
    shutil.copytree(bb / "run", bb / "run_t")
    _malicious(bb / "run_t" / "best_model.pt", m)
    case("best_model.pt -> nasforge export", m,
         _cli("export", str(bb / "run_t"), "--out", str(bb / "exp_t")))

    m = folder / "m_export"
    shutil.copytree(bb / "exp", bb / "exp_m")
    _malicious(bb / "exp_m" / "model.pt", m)
    load = ("import sys, nasforge\ntry:\n    nasforge.load(sys.argv[1])\nexcept "
            "nasforge.NasforgeError as e:\n    print('nasforge: error:', e, file=sys.stderr)\n"
            "    sys.exit(2)\n")
    case("export model.pt -> nasforge.load", m, subprocess.run(
        [sys.executable, "-c", load, str(bb / "exp_m")], env=ENV, capture_output=True,
        text=True))

    def state_case(name: str, run_src: Path, cfg_path: Path, key: str) -> None:
        marker = folder / f"m_{key}"
        run_t = run_src.with_name(f"{run_src.name}_{key}")
        shutil.copytree(run_src, run_t)
        blob_file = folder / f"{key}.pt"
        _malicious(blob_file, marker, raw=key != "darts")
        con = sqlite3.connect(run_t / "run.sqlite")
        con.execute("INSERT OR REPLACE INTO state (key, blob) VALUES (?, ?)",
                    (key, blob_file.read_bytes()))
        con.commit()
        con.close()
        case(name, marker, _cli("search", str(cfg_path), "--run-dir", str(run_t), "--resume",
                                "--no-progress"))

    state_case("ask/tell strategy state -> --resume (issue 18's codec)", bb / "run",
               bb / "c.yaml", "strategy")
    for strategy, key in (("darts", "darts"), ("pbt_nas", "pbt")):
        d = folder / strategy
        d.mkdir()
        cfg = config(strategy, {"name": "local", "workers": 1}, d)
        if strategy == "darts":
            cfg["strategy"]["epochs"] = 2
        else:
            cfg["budget"] = 8
        (d / "c.yaml").write_text(yaml.safe_dump(cfg))
        assert _cli("search", str(d / "c.yaml"), "--run-dir", str(d / "run"),
                    "--no-progress").returncode == 0
        what = "DARTS checkpoint" if strategy == "darts" else "PBT-NAS state (issue 18's codec)"
        state_case(f"{what} -> --resume", d / "run", d / "c.yaml", key)
    return out


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=4, help="kills per local scenario")
    ap.add_argument("--ray-kills", type=int, default=4, help="kills per ray scenario")
    ap.add_argument("--grace", type=float, default=8.0, help="seconds for workers to end")
    ap.add_argument("--ray-grace", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="random on both executors only")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--tamper-only", action="store_true", help="only the tampering stage")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--time-limit", type=float, default=1800,
                    help="start no new scenario after this many seconds (listed as skipped)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t0, load0 = time.monotonic(), os.getloadavg()
    kinds = ["local"] if args.no_ray else ["local", "ray"]
    strategies = [] if args.tamper_only else ["random"] if args.quick else STRATEGIES
    results = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nasforge-soak-") as tmp:
        plan = [(s, k) for s in strategies for k in kinds if not (k == "ray" and s == "darts")]
        # (DARTS trains in the driver and uses no executor: the local row covers it)
        for s, kind in plan:
            if time.monotonic() - t0 > args.time_limit:
                skipped.append(f"{s}/{kind}")
                continue
            folder = Path(tmp) / f"{s}_{kind}"
            folder.mkdir()
            kills = args.kills if kind == "local" else args.ray_kills
            grace = args.grace if kind == "local" else args.ray_grace
            r = scenario(s, kind, folder, kills, grace, rng)
            results.append(r)
            print(json.dumps(r), flush=True)
            shutil.rmtree(folder, ignore_errors=True)
        tamper = [] if args.quick else tampering(Path(tmp) / "tamper_root")
        for t in tamper:
            print(json.dumps(t), flush=True)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = {k: sum(r[k] for r in results) for k in
             ("kills", "orphans", "lost", "duplicated", "differing", "series_mismatch",
              "drivers", "failed_drivers")}
    summary = {
        "command": " ".join(sys.argv), "wall_s": round(time.monotonic() - t0, 1),
        "children_cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
        "loadavg_start": load0, "loadavg_end": os.getloadavg(), "cores": os.cpu_count(),
        "totals": total, "skipped": skipped, "scenarios": results, "tampering": tamper,
        "code_executed": sum(1 for t in tamper if t["code_ran"]),
    }
    print(json.dumps({k: v for k, v in summary.items() if k not in ("scenarios", "tampering")}))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
