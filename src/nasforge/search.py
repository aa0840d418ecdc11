"""``search(config)``: from a config to a finished, stored run. The CLI calls exactly this.

Data flow: config -> (task, space, evaluator, executor, strategy) -> SearchContext ->
``strategy.run(ctx)`` writes trials to the run store -> ``strategy.finalize(ctx)`` retrains and
tests the best architecture -> ``meta.final`` in the store. Everything that can be wrong with the
input is checked before the run directory is created, so bad input writes nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from nasforge.baselines import baselines
from nasforge.cli.progress import ProgressCallback
from nasforge.config import RunConfig, build_component, dump_config, load_config, read_yaml
from nasforge.data.base import TASKS, Task
from nasforge.devices import resolve_device
from nasforge.evaluators.base import EVALUATORS, Evaluator
from nasforge.evaluators.function import FunctionEvaluator, import_function, import_plugin
from nasforge.evaluators.limits import ParamLimit
from nasforge.exceptions import ConfigError, RunDirError
from nasforge.executors.base import EXECUTORS, Executor
from nasforge.logging import get_logger
from nasforge.objectives import Objective
from nasforge.report import print_summary
from nasforge.run import CONFIG_NAME, Run
from nasforge.spaces.base import SPACES, SearchSpace
from nasforge.storage.sqlite import DB_NAME, SQLiteRunStore
from nasforge.strategies.base import STRATEGIES, Callback, SearchContext, Strategy

_logger = get_logger(__name__)


ENTRY_POINT_GROUP = "nasforge.plugins"
_loaded_entry_points: set[str] = set()


def _registries() -> None:
    """Import the modules that fill the registries (explicit, cheap), then the installed
    plugins: every entry point of the group ``nasforge.plugins`` (a package's own request)."""
    import nasforge.data
    import nasforge.evaluators
    import nasforge.executors
    import nasforge.spaces
    import nasforge.strategies  # noqa: F401

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in _loaded_entry_points:
            _loaded_entry_points.add(ep.value)
            try:
                ep.load()
            except Exception as err:  # a broken plugin must not break every command
                _logger.warning("nasforge plugin %s (%s) failed to load: %s", ep.name, ep.value,
                                err)


def load_plugins(modules: Sequence[str], base: Path | None = None) -> None:
    """Import the user's modules named by ``plugins:`` (from ``base``, the config's folder,
    first); they register their spaces, evaluators, strategies or tasks."""
    for name in modules:
        import_plugin(name, base)


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
    _registries()
    load_plugins(cfg.plugins, base)
    device = resolve_device(cfg.device)
    if space is None:
        space = build_component(SPACES, "space", cfg.space)
    objective, fn = resolve_objective(cfg, objective_fn, direction, base)
    strategy: Strategy = build_component(STRATEGIES, "strategy", cfg.strategy, seed=cfg.seed)
    executor: Executor = build_component(EXECUTORS, "executor", cfg.executor)
    needs_task = getattr(EVALUATORS.get(str(cfg.evaluator.get("name"))), "needs_task", True)
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
    # bad names, params and data fail here, before anything is written
    parts = build_parts(cfg, space=space, objective_fn=objective, base=base)
    task, space, evaluator, executor, strategy, device = parts
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
            store.set_meta("objective", evaluator.objective.to_json())
            if task is not None:
                store.set_meta("task", task.meta())
                if cfg.baselines and store.get_meta("baselines") is None:
                    store.set_meta("baselines", baselines(task))
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
            callbacks=list(callbacks or [])
            + ([ProgressCallback()] if progress and not callbacks else []),
            reevaluate=bool(getattr(strategy, "reevaluate", False)),
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
    run = Run(rdir)
    if progress and not callbacks:
        print_summary(run.summary(top=5))
    return run
