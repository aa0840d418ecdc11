"""``nasforge tabulate``: train every architecture of a finite space, with repeats over seeds.

The config is an ordinary run config (task, space, evaluator, executor, seed) plus an optional
``tabulate:`` block (:class:`TabulateParams`). Seed column ``k`` trains every architecture with
the same seed ``derive_seed(config.seed, "table", k)`` (as NAS-Bench-201 does with 777/888/999).

Resumable after SIGKILL without losing or repeating an architecture: the driver alone appends one
JSON line per finished (architecture, seed) job to ``OUT.parts/results.jsonl`` and flushes it
(fsync every ``sync_every`` lines); a resumed run drops a torn last line, skips every job already
in the log and evaluates only the others. Jobs that were in flight when the process died are
simply evaluated again (they were never written). ``OUT.parts/meta.json`` fingerprints the
config so that a different config cannot resume into the same log. When every job is done the
compact table (:class:`nasforge.evaluators.table.Table`, ``.npz``) is written atomically to
``OUT``. Its ``meta`` records the wall time of every session and the CPU settings.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nasforge.config import format_validation_error, load_config, read_yaml
from nasforge.engine.middleware import evaluate_all
from nasforge.evaluators.table import Table
from nasforge.exceptions import ConfigError
from nasforge.logging import get_logger
from nasforge.search import build_parts
from nasforge.seeding import derive_seed
from nasforge.storage.joblog import append_jsonl, check_fingerprint, read_jsonl

_logger = get_logger(__name__)

Progress = Callable[[int, int], None]


class TabulateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seeds: int = Field(default=2, ge=1, le=16, description="training seeds per architecture")
    batch: int = Field(default=64, ge=1, description="jobs handed to the executor at a time")
    sync_every: int = Field(default=16, ge=1, description="fsync the log every N results")
    limit: int = Field(default=0, ge=0, description="stop after N new jobs (0: all); for tests")
    dedup: bool = Field(
        default=False,
        description="train one representative per equivalence class (space.canonical) and copy "
        "its results to every member",
    )


def _split_config(
    config: str | Path | dict[str, Any], overrides: list[str] | None
) -> tuple[Any, TabulateParams]:
    data = dict(read_yaml(config)) if not isinstance(config, dict) else dict(config)
    raw = data.pop("tabulate", None) or {}
    tab_over = [o[len("tabulate."):] for o in overrides or [] if o.startswith("tabulate.")]
    rest = [o for o in overrides or [] if not o.startswith("tabulate.")]
    for item in tab_over:
        key, _, value = item.partition("=")
        raw[key] = yaml.safe_load(value)
    try:
        params = TabulateParams(**raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "tabulate", TabulateParams)) from None
    return load_config(data, rest), params


def _read_log(path: Path) -> tuple[dict[tuple[int, int], dict[str, Any]], list[dict[str, Any]]]:
    """Finished jobs and session lines; a torn last line (killed mid-write) is cut off."""
    done: dict[tuple[int, int], dict[str, Any]] = {}
    sessions: list[dict[str, Any]] = []
    for obj in read_jsonl(path):
        if "session" in obj:
            sessions.append(obj)
        else:
            done[(int(obj["i"]), int(obj["k"]))] = obj
            if sessions:
                sessions[-1]["last"] = obj["t"]
    return done, sessions


MAX_ROWS = 1_000_000
"""The largest space ``tabulate`` enumerates (each architecture is trained)."""


def tabulate(
    config: str | Path | dict[str, Any],
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
) -> Path | None:
    """Build (or resume) the table of ``config`` into ``out``; returns ``out`` when complete.

    Returns None when ``tabulate.limit`` stopped it early (the log keeps what was done).
    """

    cfg, tp = _split_config(config, overrides)
    task, space, evaluator, executor, _, _ = build_parts(cfg)
    size = space.size()
    if size is None:
        raise ConfigError(f"tabulate needs a finite space; space {space.name!r} has no size")
    if size > MAX_ROWS:
        raise ConfigError(
            f"space {space.name!r} has {size:.3g} architectures; tabulate trains every one, "
            f"so it takes spaces of at most {MAX_ROWS:,} (use fewer ops, nodes, layers or "
            "choices)"
        )
    out = Path(out)
    side = out.with_name(out.name + ".parts")
    side.mkdir(parents=True, exist_ok=True)
    seeds = [derive_seed(cfg.seed, "table", k) for k in range(tp.seeds)]
    fingerprint = {
        "space": space.spec(),
        "task": task.spec if task is not None else cfg.task,
        "evaluator": evaluator.settings(),
        "seeds": seeds,
    }
    check_fingerprint(side / "meta.json", fingerprint, side, "a tabulation")
    archs = list(space.enumerate())
    if len(archs) != size:
        raise ConfigError(f"space enumerated {len(archs)} architectures, expected {size}")
    rep = _representatives(space, archs) if tp.dedup else list(range(size))
    unique = sorted(set(rep))
    log_path = side / "results.jsonl"
    done, sessions = _read_log(log_path)
    jobs = [(i, k) for k in range(tp.seeds) for i in unique if (i, k) not in done]
    if tp.limit:
        jobs = jobs[: tp.limit]
    total = len(unique) * tp.seeds
    _logger.info("tabulate: %d of %d jobs done, %d to run", len(done), total, len(jobs))
    threads = getattr(executor, "threads", torch.get_num_threads())
    settings = {
        "workers": getattr(executor, "workers", 1),
        "threads_per_worker": threads,
        "executor": cfg.executor,
        "nice": os.nice(0),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    start = time.time()
    n_done = len(done)
    with log_path.open("a") as log:
        if jobs:
            append_jsonl(log, {"session": len(sessions), "start": start, **settings})
        since_sync = 0
        try:
            for b in range(0, len(jobs), tp.batch):
                chunk = jobs[b : b + tp.batch]
                batch_archs = [archs[i] for i, _ in chunk]
                batch_seeds = [seeds[k] for _, k in chunk]
                for j, res in evaluate_all(executor, evaluator, batch_archs, batch_seeds):
                    i, k = chunk[j]
                    line: dict[str, Any] = {
                        "i": i, "k": k, "status": res.status,
                        "val": res.val_acc if math.isfinite(res.val_acc) else None,
                        "secs": res.train_seconds, "params": res.params,
                        "epochs": res.epochs, "t": time.time(),
                    }
                    if not res.ok:
                        line["error"] = res.error
                    since_sync += 1
                    sync = since_sync >= tp.sync_every
                    append_jsonl(log, line, sync=sync)
                    since_sync = 0 if sync else since_sync
                    done[(i, k)] = line
                    n_done += 1
                    if progress is not None:
                        progress(n_done, total)
            os.fsync(log.fileno())
        finally:
            executor.close()
    if len(done) < total:
        _logger.info("tabulate: stopped with %d of %d jobs done", len(done), total)
        return None
    done, sessions = _read_log(log_path)
    table = _assemble(archs, space, done, tp.seeds, rep)
    if tp.dedup:
        shape = task.input_shape if task is not None else ()
        ncls = task.num_classes if task is not None else 2
        table.params = np.array(
            [_count(space.build(a, shape, ncls)) for a in archs], dtype=np.int64
        )
    wall = [float(s.get("last", s["start"])) - float(s["start"]) for s in sessions]
    table.meta = {
        **fingerprint,
        "seed_columns": list(range(tp.seeds)),
        "size": size,
        "dedup": tp.dedup,
        "trained_architectures": len(unique),
        "metric": "val_acc",
        "units": "fraction",
        "failed_jobs": int(sum(1 for v in done.values() if v["status"] != "complete")),
        "wall_seconds": round(sum(wall), 1),
        "sessions": [
            {k: v for k, v in s.items() if k not in ("session",)} | {"wall_seconds": round(w, 1)}
            for s, w in zip(sessions, wall)
        ],
        "child_seconds_total": round(sum(float(v["secs"]) for v in done.values()), 1),
    }
    table.save(out)
    _logger.info("tabulate: wrote %s (%d rows x %d seeds)", out, size, tp.seeds)
    return out


def _representatives(space: Any, archs: list[Any]) -> list[int]:
    """For each architecture, the index of the first one of its class (``space.canonical``)."""
    canonical = getattr(space, "canonical", None)
    if canonical is None:
        raise ConfigError(
            f"tabulate.dedup needs a space with canonical(arch); space {space.name!r} has none"
        )
    first: dict[Any, int] = {}
    return [first.setdefault(canonical(a), i) for i, a in enumerate(archs)]


def _count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def _assemble(
    archs: list[Any],
    space: Any,
    done: dict[tuple[int, int], dict[str, Any]],
    n_seeds: int,
    rep: list[int],
) -> Table:
    n = len(archs)
    encoded = [space.encode(a) for a in archs]
    width = max(len(e) for e in encoded)
    indices = np.full((n, width), -1, dtype=np.int64)  # -1 pads variable-length architectures
    for i, e in enumerate(encoded):
        indices[i, : len(e)] = e
    val = np.full((n, n_seeds), np.nan)
    secs = np.zeros((n, n_seeds))
    params = np.zeros(n, dtype=np.int64)
    for i in range(n):
        for k in range(n_seeds):
            v = done[(rep[i], k)]
            if v["status"] == "complete" and v["val"] is not None:
                val[i, k] = float(v["val"])
            secs[i, k] = float(v["secs"])
            params[i] = max(int(params[i]), int(v["params"]))
    return Table(indices, val, secs, params)
