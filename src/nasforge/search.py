"""``search(config)``: from a config to a finished, stored run. The CLI calls exactly this.

Data flow: config -> (task, space, evaluator, executor, strategy) -> SearchContext ->
``strategy.run(ctx)`` writes trials to the run store -> ``strategy.finalize(ctx)`` retrains and
tests the best architecture -> ``meta.final`` in the store. Everything that can be wrong with the
input is checked before the run directory is created, so bad input writes nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nasforge import components  # noqa: F401  (fills the registries)
from nasforge.config import RunConfig, build_component, dump_config, load_config, read_yaml
from nasforge.data.base import TASKS, Task, suite_ids
from nasforge.devices import resolve_device
from nasforge.evaluators.base import EVALUATORS, Evaluator
from nasforge.exceptions import ConfigError, RunDirError
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.logging import get_logger
from nasforge.run import CONFIG_NAME, Run
from nasforge.spaces.base import SPACES, SearchSpace
from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore
from nasforge.strategies.base import STRATEGIES, Callback, SearchContext, Strategy

_logger = get_logger(__name__)


def build_parts(
    cfg: RunConfig,
) -> tuple[Task | None, SearchSpace, Evaluator, Executor, Strategy, torch.device]:
    """Instantiate every component of ``cfg`` (validating names and params)."""
    device = resolve_device(cfg.device)
    space: SearchSpace = build_component(SPACES, "space", cfg.space)
    strategy: Strategy = build_component(STRATEGIES, "strategy", cfg.strategy, seed=cfg.seed)
    executor: Executor = build_component(EXECUTORS, "executor", cfg.executor)
    needs_task = getattr(EVALUATORS.get(str(cfg.evaluator.get("name"))), "needs_task", True)
    task: Task | None = None
    if needs_task:
        task = build_component(TASKS, "task", cfg.task).load()
    evaluator: Evaluator = build_component(
        EVALUATORS, "evaluator", cfg.evaluator, space=space, task=task, device=device
    )
    return task, space, evaluator, executor, strategy, device


def load_suite(cfg: RunConfig, primary: Task | None) -> dict[str, Task]:
    """The run's tasks by id: the ``tasks`` suite (its first entry is the already loaded
    ``primary``), or the one ``task``."""
    if cfg.tasks is None:
        return {} if primary is None else {suite_ids([cfg.task])[0]: primary}
    first = primary if primary is not None else build_component(TASKS, "task", cfg.tasks[0]).load()
    rest = [build_component(TASKS, "task", t).load() for t in cfg.tasks[1:]]
    return dict(zip(suite_ids(cfg.tasks), [first, *rest]))


def _check_resume_config(stored: RunConfig, given: RunConfig) -> None:
    a = stored.model_dump(mode="json")
    b = given.model_dump(mode="json")
    a.pop("budget")
    b.pop("budget")
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise ConfigError(
            f"--resume: config differs from the run's stored config at {', '.join(diff)}; "
            "resume with the same config (only --budget may change)"
        )


def search(
    config: str | Path | dict[str, Any] | RunConfig,
    *,
    budget: int | None = None,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overrides: list[str] | None = None,
    callbacks: Sequence[Callback] | None = None,
) -> Run:
    """Run (or resume) a search and return the stored :class:`Run`.

    Args:
        config: a YAML path, a dict or a :class:`RunConfig`.
        budget: trials to reach (overrides ``budget``); on resume it may be raised.
        seed: run seed (overrides ``seed``).
        run_dir: where the run is stored; default ``runs/<name>``. Must not exist unless
            ``resume`` is set.
        resume: continue the run stored in ``run_dir`` up to its budget.
        overrides: ``["strategy.lr=0.01", ...]`` applied to the config.
        callbacks: progress and logging hooks.
    """
    extra = list(overrides or [])
    if budget is not None:
        extra.append(f"budget={int(budget)}")
    if seed is not None:
        extra.append(f"seed={int(seed)}")
    cfg = load_config(config, extra)
    rdir = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    db = rdir / DB_NAME
    if resume:
        if not db.is_file():
            raise RunDirError(f"--resume: {str(rdir)!r} is not a nasforge run (no {DB_NAME})")
        stored = load_config(read_yaml(rdir / CONFIG_NAME))
        _check_resume_config(stored, cfg)
    elif rdir.exists() and any(rdir.iterdir()):
        raise RunDirError(
            f"run directory {str(rdir)!r} already exists; use --resume to continue it or "
            "--run-dir to start a new run elsewhere"
        )
    parts = build_parts(cfg)  # bad names, params and data fail here, before anything is written
    task, space, evaluator, executor, strategy, device = parts
    try:
        tasks = load_suite(cfg, task)
    except BaseException:
        executor.close()
        raise
    try:
        strategy.check(space, evaluator, cfg.budget)  # e.g. a strategy that needs other parts
    except BaseException:
        executor.close()
        raise
    # the evaluator may ask for a torch thread count in the driver (tiny children train faster
    # on one thread); it is restored when the search returns
    threads = int(getattr(getattr(evaluator, "p", None), "threads", 0) or 0)
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    created = not rdir.exists()
    rdir.mkdir(parents=True, exist_ok=True)
    try:
        store = SQLiteRunStore(db, create=True)
    except BaseException:
        if created:
            shutil.rmtree(rdir, ignore_errors=True)
        raise
    try:
        (rdir / CONFIG_NAME).write_text(dump_config(cfg))
        with store.transaction():
            store.set_meta("config", cfg.model_dump(mode="json"))
            store.set_meta("space", space.spec())
            if task is not None:
                store.set_meta(
                    "task",
                    {
                        "spec": task.spec,
                        "input_shape": list(task.input_shape),
                        "num_classes": task.num_classes,
                    },
                )
            if cfg.tasks is not None:
                store.set_meta("tasks", [
                    {"id": k, "spec": t.spec, "input_shape": list(t.input_shape),
                     "num_classes": t.num_classes} for k, t in tasks.items()
                ])
            store.set_meta("status", "running")
        ctx = SearchContext(
            config=cfg,
            space=space,
            task=task,
            evaluator=evaluator,
            executor=executor,
            store=store,
            budget=cfg.budget,
            seed=cfg.seed,
            device=device,
            run_dir=rdir,
            callbacks=list(callbacks or []),
            reevaluate=bool(getattr(strategy, "reevaluate", False)),
            tasks=tasks,
        )
        for cb in ctx.callbacks:
            cb.on_start(ctx)
        strategy.run(ctx)
        # a resumed run that was already reported for these trials is not retrained again
        reported = store.get_meta("final_trials")
        if store.get_meta("final") is None or reported != store.count_trials():
            final = strategy.finalize(ctx)
            with store.transaction():
                store.set_meta("final", final)
                store.set_meta("final_trials", store.count_trials())
        with store.transaction():
            store.set_meta("status", "finished")
        for cb in ctx.callbacks:
            cb.on_end(ctx)
    finally:
        executor.close()
        store.close()
        torch.set_num_threads(prev_threads)
    return Run(rdir)
