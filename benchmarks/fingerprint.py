"""Fingerprints of one small seeded run per search family, to show a refactor changed nothing.

For each family the script runs a tiny seeded search (on one torch thread, CPU), then hashes

* the trials: number, architecture id, seed, status, epochs, parameters, cached_from and every
  stored metric (timings excluded: they are the only values that legitimately vary);
* the final report (timings and paths excluded);
* the exported model: its architecture document and every tensor of its weights.

Usage::

    python benchmarks/fingerprint.py --out benchmarks/results/fingerprint.json   # record
    python benchmarks/fingerprint.py --check benchmarks/results/fingerprint.json # compare

``--check`` prints, per family, ``same`` or which part differs, and exits 1 on any difference.
Where a change is intended (a fidelity fix, a new default), re-record and say so in the commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import nasforge

_TIMING_KEYS = {"seconds", "finished_at", "started_at"}  # and every key ending in _seconds
_PATH_KEYS = {"run_dir", "diagram"}


def _kept(key: str) -> bool:
    return key not in _TIMING_KEYS and key not in _PATH_KEYS and not key.endswith("_seconds")

FAMILIES: dict[str, dict[str, Any]] = {
    "random": {
        "name": "fp_random",
        "seed": 0,
        "budget": 8,
        "device": "cpu",
        "task": {"name": "moons"},
        "space": {"name": "mlp", "max_len": 4},
        "strategy": {"name": "random", "batch_size": 3},
        "evaluator": {"name": "train", "max_epochs": 4, "patience": 2, "batch_size": 64},
        "final": {"seeds": 1},
    },
    "reinforce_reference_002": {
        "name": "fp_reinforce",
        "seed": 0,
        "budget": 12,
        "device": "cpu",
        "task": {"name": "moons"},
        "space": {"name": "mlp", "max_len": 4},
        "strategy": {"name": "reinforce", "preset": "reference_002"},
        "evaluator": {"name": "train", "max_epochs": 4, "patience": 2, "batch_size": 64},
        "final": {"seeds": 1},
    },
    "evolution_table": {
        "name": "fp_evolution",
        "seed": 0,
        "budget": 40,
        "space": {"name": "cnn", "kernels": [1, 3], "filters": [8, 16, 32], "num_layers": 4},
        "evaluator": {"name": "table", "table": "digits-cnn", "seed_mode": "sample"},
        "strategy": {"name": "evolution", "population_size": 10, "sample_size": 3},
        "final": {"seeds": 0},
    },
    "tpe_table": {
        "name": "fp_tpe",
        "seed": 0,
        "budget": 25,
        "space": {"name": "cnn", "kernels": [1, 3], "filters": [8, 16, 32], "num_layers": 4},
        "evaluator": {"name": "table", "table": "digits-cnn", "seed_mode": "sample"},
        "strategy": {"name": "tpe"},
        "final": {"seeds": 0},
    },
    "bo_evolution_table": {
        "name": "fp_bo",
        "seed": 0,
        "budget": 25,
        "space": {"name": "cnn", "kernels": [1, 3], "filters": [8, 16, 32], "num_layers": 4},
        "evaluator": {"name": "table", "table": "digits-cnn", "seed_mode": "sample"},
        "strategy": {"name": "bo_evolution"},
        "final": {"seeds": 0},
    },
    "darts": {
        "name": "fp_darts",
        "seed": 0,
        "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "darts", "ops": "darts", "nodes": 2, "channels": 4, "layers": 3,
                  "reductions": [1]},
        "strategy": {"name": "darts", "epochs": 2, "batch_size": 128, "order": 1,
                     "channels": 4, "layers": 2, "retrain": {"epochs": 1, "batch_size": 128}},
        "final": {"seeds": 1},
    },
    "darts_2nd_order": {
        "name": "fp_darts2",
        "seed": 1,
        "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "darts", "ops": "darts", "nodes": 2, "channels": 4, "layers": 3,
                  "reductions": [1]},
        "strategy": {"name": "darts", "epochs": 2, "batch_size": 128, "order": 2,
                     "channels": 4, "layers": 2, "retrain": {"epochs": 1, "batch_size": 128}},
        "final": {"seeds": 1},
    },
    "darts_regularized": {
        "name": "fp_darts_regs",
        "seed": 2,
        "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "darts", "ops": "darts", "nodes": 2, "channels": 8, "layers": 3,
                  "reductions": [1]},
        "strategy": {"name": "darts", "epochs": 4, "batch_size": 128, "order": 1,
                     "channels": 8, "layers": 2, "warmup_epochs": 1,
                     "darts_minus": {"beta": 1.0}, "pc": {"k": 2},
                     "pdarts": {"stages": 2, "keep": [4], "skip_dropout": [0.0, 0.5],
                                "skip_limit": 1},
                     "sharp": {}, "retrain": {"epochs": 1, "batch_size": 128}},
        "final": {"seeds": 1},
    },
    "darts_tse_nb201": {
        "name": "fp_darts_tse",
        "seed": 3,
        "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
        "strategy": {"name": "darts", "epochs": 2, "batch_size": 128, "order": 1,
                     "tse": {"steps": 2}, "retrain": {"epochs": 1, "batch_size": 128}},
        "final": {"seeds": 1},
    },
    "pbt_nas": {
        "name": "fp_pbt",
        "seed": 0,
        "budget": 12,
        "device": "cpu",
        "task": {"name": "digits", "seed": 0},
        "space": {"name": "gene_cnn", "channels": 4, "num_layers": 2, "reduce_after": [0]},
        "strategy": {"name": "pbt_nas", "population_size": 4, "step_units": 1, "mode": "mix"},
        "evaluator": {"name": "pbt_train", "lr": 0.001, "batch_size": 128},
        "executor": {"name": "local", "workers": 1},
    },
    "pbt_rl": {
        "name": "fp_pbt_rl",
        "seed": 0,
        "budget": 6,
        "device": "cpu",
        "space": {"name": "gene_ac", "hidden": 16, "num_layers": 2},
        "strategy": {"name": "pbt_nas", "population_size": 3, "step_units": 1, "mode": "mix"},
        "evaluator": {"name": "pbt_rl", "env": "CartPole-v1", "frames_per_unit": 256,
                      "n_envs": 2, "n_steps": 32, "epochs": 2, "minibatch": 32,
                      "eval_episodes": 2, "test_episodes": 2},
        "executor": {"name": "local", "workers": 1},
    },
}


def _clean(value: Any) -> Any:
    """Drop timings and paths; make floats exact and NaN comparable."""
    if isinstance(value, dict):
        return {
            k: _clean(v)
            for k, v in sorted(value.items())
            if _kept(k)
        }
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return "nan" if math.isnan(value) else float.hex(value)
    return value


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(_clean(value), sort_keys=True).encode()).hexdigest()[:16]


def _weights_digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        h.update(key.encode())
        if isinstance(t, torch.Tensor):
            h.update(str(t.dtype).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(t).encode())
    return h.hexdigest()[:16]


def fingerprint(name: str, cfg: dict[str, Any], root: Path) -> dict[str, Any]:
    run_dir = root / name
    t0 = time.perf_counter()
    run = nasforge.search(cfg, run_dir=run_dir, progress=False)
    seconds = time.perf_counter() - t0
    trials = [
        {
            "number": r.number,
            "arch_id": r.arch_id,
            "seed": r.seed,
            "status": r.result.status,
            "val_acc": r.val_acc,
            "params": r.result.params,
            "epochs": r.result.epochs,
            "cached_from": r.cached_from,
            "metrics": r.result.metrics,
        }
        for r in run.trials
    ]
    out: dict[str, Any] = {
        "trials": _digest(trials),
        "n_trials": len(trials),
        "final": _digest(run.meta("final") or {}),  # the stored report, as written
        "best_val": run.final.val_acc if run.final else None,
    }
    if (run_dir / "best_model.pt").is_file():
        exp = nasforge.export(run_dir, root / f"{name}_export")
        doc = json.loads((exp / "architecture.json").read_text())
        out["export_doc"] = _digest(doc)
        out["export_weights"] = _weights_digest(exp / "model.pt")
    out["seconds"] = round(seconds, 1)
    return out


def machine() -> dict[str, str]:
    """What float results depend on: the CPU model and torch's build. Fingerprints recorded on
    another CPU (its vector kernels round differently) are expected to differ."""
    cpu = platform.processor() or platform.machine()
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "flags") and key not in info:
                info[key] = value.strip()
    except OSError:
        pass
    cpu = info.get("model name", cpu)
    if "cpu family" in info:  # the model name alone ("AMD EPYC") covers several generations
        cpu += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    out = {"cpu": cpu, "torch": torch.__version__}
    if "flags" in info:  # the vector instruction sets pick the float kernels
        out["cpu_flags_sha1"] = hashlib.sha1(info["flags"].encode()).hexdigest()[:12]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the fingerprints here (JSON)")
    ap.add_argument("--check", type=Path, help="compare with fingerprints recorded earlier")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    got: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nasforge-fp-") as tmp:
        for name in args.families:
            got[name] = fingerprint(name, FAMILIES[name], Path(tmp))
            print(f"{name:26s} {got[name]['n_trials']:3d} trials  {got[name]['seconds']:6.1f} s")
    here = machine()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"_machine": here, **got}, indent=2) + "\n")
    if args.check:
        want = json.loads(args.check.read_text())
        there = want.get("_machine")
        if there != here:
            print(f"note: recorded on {there or 'an unrecorded machine'}, checked on {here}: "
                  "float kernels differ between CPUs, so record a baseline on this machine "
                  "(--out, before the change) to compare a refactor")
        bad = 0
        for name, fp in got.items():
            ref = want.get(name)
            if ref is None:
                print(f"{name}: not in {args.check}")
                bad += 1
                continue
            diff = [k for k in fp if k != "seconds" and fp.get(k) != ref.get(k)]
            print(f"{name}: {'same' if not diff else 'differs in ' + ', '.join(diff)}")
            bad += bool(diff)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
