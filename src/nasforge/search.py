"""``search(config)``: from a config to a finished, stored run. The CLI calls exactly this.

Data flow: config -> (task, space, evaluator, executor, strategy) -> SearchContext ->
``strategy.run(ctx)`` writes trials to the run store -> ``strategy.finalize(ctx)`` retrains and
tests the best architecture -> ``meta.final`` in the store. Everything that can be wrong with the
input is checked before the run directory is created, so bad input writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from nasforge.baselines import baselines
from nasforge.components import load_plugins, load_registries
from nasforge.config import RunConfig, build_component, dump_config, load_config, read_yaml
from nasforge.data.base import TASKS, Task, suite_ids
from nasforge.devices import resolve_device
from nasforge.engine.context import Callback, SearchContext
from nasforge.evaluators.base import EVALUATORS, Evaluator
from nasforge.evaluators.function import FunctionEvaluator, import_function
from nasforge.evaluators.limits import ParamLimit
from nasforge.exceptions import ConfigError, Interrupted, RunDirError
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.logging import get_logger
from nasforge.objectives import Objective
from nasforge.progress import ProgressCallback
from nasforge.report import print_summary
from nasforge.run import CONFIG_NAME, Run
from nasforge.spaces.base import SPACES, SearchSpace
from nasforge.storage.joblog import write_atomic
from nasforge.storage.lock import LOCK_NAME, RunLock, check_unlocked
from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore
from nasforge.strategies.base import STRATEGIES, Strategy

_logger = get_logger(__name__)


def resolve_objective(
    cfg: RunConfig,
    fn: Any = None,
    direction: str | None = None,
    base: Path | None = None,
) -> tuple[Objective | None, Any]:
    """``(objective or None for the evaluator's default, user function or None)``."""
    direction = direction or cfg.direction
    ref = cfg.objective
    if fn is None and ref is not None and ":" in ref:
        fn = import_function(ref, base)
    if fn is not None:
        if not callable(fn):
            raise ConfigError(f"objective must be a function fn(arch, ctx), got {fn!r}")
        name = ref if ref is not None and ":" not in ref else "score"
        return Objective(name, direction or "maximize"), fn  # type: ignore[arg-type]
    if ref is None:
        if direction is not None:
            raise ConfigError("direction is for a user objective; the built-in ones have theirs")
        return None, None
    obj = Objective.builtin(ref)
    if direction is not None and direction != obj.direction:
        raise ConfigError(f"objective {ref} is {obj.direction}d; direction {direction} conflicts")
    return obj, None


def build_parts(
    cfg: RunConfig,
    *,
    space: SearchSpace | None = None,
    objective_fn: Any = None,
    direction: str | None = None,
    base: Path | None = None,
) -> tuple[Task | None, SearchSpace, Evaluator, Executor, Strategy, torch.device]:
    """Instantiate every component of ``cfg`` (validating names and params); ``space`` is a
    space object to use instead of ``cfg.space``, ``objective_fn`` a user objective."""
    load_registries()
    load_plugins(cfg.plugins, base)
    device = resolve_device(cfg.device)
    if space is None:
        space = build_component(SPACES, "space", cfg.space)
    objective, fn = resolve_objective(cfg, objective_fn, direction, base)
    strategy: Strategy = build_component(STRATEGIES, "strategy", cfg.strategy, seed=cfg.seed)
    executor: Executor = build_component(EXECUTORS, "executor", cfg.executor)
    needs_task = EVALUATORS.get(str(cfg.evaluator.get("name"))).needs_task
    task: Task | None = None
    if needs_task:
        task = build_component(TASKS, "task", cfg.task).load()
    evaluator: Evaluator
    if fn is not None:
        assert objective is not None
        evaluator = FunctionEvaluator(fn, objective, space=space, task=task, device=device)
    else:
        evaluator = build_component(
            EVALUATORS, "evaluator", cfg.evaluator, space=space, task=task, device=device
        )
        if objective is not None:
            evaluator.set_objective(objective)
    if cfg.max_params is not None:
        evaluator = ParamLimit(evaluator, cfg.max_params)
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


def resume_command(run_dir: str | Path) -> str:
    """The exact command that continues the run in ``run_dir`` (its stored config)."""
    rdir = Path(run_dir)
    return (
        f"nasforge search {shlex.quote(str(rdir / CONFIG_NAME))} "
        f"--run-dir {shlex.quote(str(rdir))} --resume"
    )


def _check_run_dir_path(rdir: Path) -> None:
    for p in (rdir, *rdir.parents):
        if p.exists():
            if not p.is_dir():
                what = "run directory" if p == rdir else "parent of the run directory"
                raise RunDirError(f"{what} {str(p)!r} is a file, not a directory")
            if not os.access(p, os.W_OK | os.X_OK):
                raise RunDirError(f"cannot create the run directory {str(rdir)!r}: "
                                  f"{str(p)!r} is not writable")
            return


def _check_fresh(rdir: Path) -> None:
    if rdir.is_dir() and any(p.name != LOCK_NAME for p in rdir.iterdir()):
        raise RunDirError(
            f"run directory {str(rdir)!r} already exists; use --resume to continue it or "
            "--run-dir to start a new run elsewhere"
        )


def _check_resumable(rdir: Path, cfg: RunConfig) -> RunConfig | None:
    """The run's stored config, checked against ``cfg`` (None: a store killed before its first
    write, which holds nothing to protect). The store's copy is the authority: the run's
    ``config.yaml`` is a file a user can edit (or empty), so it is read only where the store
    has no copy."""
    db = rdir / DB_NAME
    if not db.is_file():
        raise RunDirError(f"--resume: {str(rdir)!r} is not a nasforge run (no {DB_NAME})")
    with SQLiteRunStore(db, readonly=True) as store:  # schema and integrity, read-only
        meta = store.get_meta("config")
    if meta is not None:
        stored: RunConfig | None = load_config(meta)
    elif (rdir / CONFIG_NAME).is_file():
        stored = load_config(read_yaml(rdir / CONFIG_NAME))
    else:
        stored = None
    if stored is not None:
        _check_resume_config(stored, cfg)
    return stored


def _make_dir(rdir: Path, executor: Executor) -> bool:
    """Create ``rdir``; True if this call created it (then a failure may remove it)."""
    try:
        rdir.mkdir(parents=True)
        return True
    except FileExistsError:
        return False
    except OSError as err:
        executor.close()
        raise RunDirError(
            f"cannot create the run directory {str(rdir)!r}: {err.strerror or err}"
        ) from None


def _mark_interrupted(store: SQLiteRunStore, rdir: Path) -> None:
    with contextlib.suppress(Exception):
        with store.transaction():
            store.set_meta("status", "interrupted")
            store.set_meta("resume_command", resume_command(rdir))


@dataclass
class _Snapshot:
    """What a resume rewrites before it runs: restored if it fails before any progress."""

    config_text: str | None
    meta: dict[str, Any]
    trials: int
    state: dict[str, bytes | None]

    KEYS: ClassVar[tuple[str, ...]] = ("config", "space", "task", "status", "resume_command")

    @classmethod
    def take(cls, rdir: Path, store: SQLiteRunStore) -> _Snapshot:
        cfg = rdir / CONFIG_NAME
        return cls(
            cfg.read_text() if cfg.is_file() else None,
            {k: store.get_meta(k, _MISSING) for k in cls.KEYS},
            store.count_trials(),
            store.states(),
        )

    def unchanged(self, store: SQLiteRunStore) -> bool:
        try:
            return store.count_trials() == self.trials and store.states() == self.state
        except Exception:
            return False

    def restore(self, rdir: Path, store: SQLiteRunStore) -> None:
        with contextlib.suppress(Exception):
            with store.transaction():
                for k, v in self.meta.items():
                    if v is _MISSING:
                        store.delete_meta(k)
                    else:
                        store.set_meta(k, v)
            if self.config_text is not None:
                write_atomic(rdir / CONFIG_NAME, self.config_text)


_MISSING: Any = object()


def search(
    config: str | Path | dict[str, Any] | RunConfig,
    *,
    budget: int | None = None,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overrides: list[str] | None = None,
    callbacks: Sequence[Callback] | None = None,
    objective: Any = None,
    direction: str | None = None,
    space: SearchSpace | None = None,
    progress: bool = True,
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
        objective: your own objective ``fn(arch, ctx) -> float | dict`` (see
            :mod:`nasforge.evaluators.function`), or a built-in name (``val_rmse``, ...).
        direction: ``"maximize"`` (default) or ``"minimize"`` for a user objective.
        space: a :class:`SearchSpace` object to search instead of the config's ``space``.
        progress: show a progress bar and print the summary at the end.
    """
    extra = list(overrides or [])
    if isinstance(objective, str):
        extra.append(f"objective={objective}")
        objective = None
    if direction is not None:
        extra.append(f"direction={direction}")
    if space is not None and not isinstance(space, SearchSpace):
        raise ConfigError(f"space must be a SearchSpace object, got {type(space).__name__}")
    base = Path(config).resolve().parent if isinstance(config, (str, Path)) else None
    if budget is not None:
        extra.append(f"budget={int(budget)}")
    if seed is not None:
        extra.append(f"seed={int(seed)}")
    cfg = load_config(config, extra)
    if space is not None:
        cfg = cfg.model_copy(update={"space": space.spec()})
    rdir = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    db = rdir / DB_NAME
    # every check that can fail runs before anything is written (nothing is left behind)
    _check_run_dir_path(rdir)
    check_unlocked(rdir)  # a live run: one line naming its PID, before any other message
    if resume:
        stored = _check_resumable(rdir, cfg)
        if stored is not None and stored.budget != cfg.budget and not any(
                o.split("=", 1)[0].strip() == "budget" for o in extra):
            # only an explicit --budget (or override) changes the budget of a resumed run
            _logger.warning("--resume: the run's budget %d is kept (the config says %d; pass "
                     "--budget to change it)", stored.budget, cfg.budget)
            cfg = cfg.model_copy(update={"budget": stored.budget})
    else:
        _check_fresh(rdir)
    # bad names, params and data fail here, before anything is written
    parts = build_parts(cfg, space=space, objective_fn=objective, base=base)
    task, space, evaluator, executor, strategy, device = parts
    try:
        tasks = load_suite(cfg, task)
    except BaseException:
        executor.close()
        raise
    try:
        strategy.check(space, evaluator, cfg.budget, tasks)  # e.g. it needs other parts
        executor.check()  # e.g. ray installed, its cluster reachable (short timeout)
    except BaseException:
        executor.close()
        raise
    created = _make_dir(rdir, executor)
    try:
        lock = RunLock(rdir)  # one writer per run directory, held until the search returns
    except BaseException:
        executor.close()  # (the directory is the holder's now: left alone)
        raise
    try:
        # re-checked under the lock: another process may have won the race
        if resume:
            _check_resumable(rdir, cfg)
        else:
            _check_fresh(rdir)
        store = SQLiteRunStore(db, create=True)
    except BaseException:
        executor.close()
        if created and all(p.name == LOCK_NAME for p in rdir.iterdir()):
            shutil.rmtree(rdir, ignore_errors=True)  # nobody wrote anything into it
        lock.release()
        raise
    # the evaluator may ask for a torch thread count in the driver (tiny children train faster
    # on one thread); it is restored when the search returns
    threads = evaluator.driver_threads
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    before = _Snapshot.take(rdir, store)
    discard = False
    try:
        write_atomic(rdir / CONFIG_NAME, dump_config(cfg))
        with store.transaction():
            store.set_meta("config", cfg.model_dump(mode="json"))
            store.set_meta("space", space.spec())
            store.set_meta("objective", evaluator.objective.to_json())
            if task is not None:
                store.set_meta("task", task.meta())
                if cfg.baselines and store.get_meta("baselines") is None:
                    fitted = baselines(task, objective=evaluator.objective.name)
                    store.set_meta("baselines", fitted)
            if cfg.tasks is not None:
                store.set_meta("tasks", [{"id": k, **t.meta()} for k, t in tasks.items()])
            store.set_meta("status", "running")
            store.set_meta("resume_command", resume_command(rdir))
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
            callbacks=list(callbacks or [])
            + ([ProgressCallback()] if progress and not callbacks else []),
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
                store.set_meta("final", final.to_json())
                store.set_meta("final_trials", store.count_trials())
        with store.transaction():
            store.set_meta("status", "finished")
        for cb in ctx.callbacks:
            cb.on_end(ctx)
    except KeyboardInterrupt:
        _mark_interrupted(store, rdir)
        raise Interrupted(resume_command(rdir)) from None
    except BaseException:
        if resume and before.unchanged(store):
            before.restore(rdir, store)  # a resume that failed before any progress: as it was
        elif not resume and created and before.unchanged(store):
            discard = True  # a new run that failed before any progress leaves nothing
        else:
            _mark_interrupted(store, rdir)
        raise
    finally:
        executor.close()
        store.close()
        if discard:  # still under the lock: nobody else can be writing here
            shutil.rmtree(rdir, ignore_errors=True)
        lock.release()
        torch.set_num_threads(prev_threads)
    run = Run(rdir)
    if progress and not callbacks:
        print_summary(run.summary(top=5))
    return run
