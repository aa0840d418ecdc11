"""Run configuration: YAML <-> a validated pydantic model. Unknown keys and wrong types are errors.

A config names its components as ``{name: ..., **params}``: ``task``, ``space``, ``strategy``,
``evaluator`` and ``executor``. Each registered component declares a pydantic ``Params`` model,
so a component's parameters are checked the same way as the top-level keys.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nasforge.exceptions import ConfigError
from nasforge.registry import Registry

T = TypeVar("T")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class FinalConfig(BaseModel):
    """How the best architecture is reported at the end of a search."""

    model_config = ConfigDict(extra="forbid")
    seeds: int = Field(
        default=3, ge=0, description="retrainings of the best architecture (0: skip)"
    )
    candidates: int = Field(
        default=1,
        ge=1,
        description="top-k by validation re-trained; the best mean validation wins",
    )


class RunConfig(BaseModel):
    """The whole run. Components are ``{"name": ..., **params}`` dicts, checked by registry."""

    model_config = ConfigDict(extra="forbid")
    name: str = "run"
    seed: int = Field(default=0, ge=0)
    device: str = "auto"
    budget: int = Field(default=100, ge=1, description="trials (evaluations) for black-box search")
    task: dict[str, Any] = Field(default_factory=lambda: {"name": "moons"})
    tasks: list[dict[str, Any]] | None = Field(
        default=None,
        description="a task suite (runs over several tasks, e.g. meta-learning); the first is "
        "the primary task; give either task or tasks",
    )
    space: dict[str, Any] = Field(default_factory=lambda: {"name": "mlp"})
    strategy: dict[str, Any] = Field(default_factory=lambda: {"name": "random"})
    evaluator: dict[str, Any] = Field(default_factory=lambda: {"name": "train"})
    executor: dict[str, Any] = Field(default_factory=lambda: {"name": "local"})
    final: FinalConfig = Field(default_factory=FinalConfig)
    objective: str | None = Field(
        default=None,
        description="what to optimise: val_acc (classification default), val_loss, val_rmse "
        "(regression default), val_r2, or 'my_module:function' (fn(arch, ctx) -> float | dict)",
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None, description="direction of a user objective (default: maximize)"
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="modules imported before the run (they register spaces, evaluators, ...)",
    )
    max_params: int | None = Field(
        default=None, ge=1, description="trainable-parameter limit; larger children fail"
    )
    pareto: bool = Field(
        default=False, description="also report the Pareto front of score vs parameters"
    )
    baselines: bool = Field(
        default=True, description="tabular tasks: score sklearn baselines on the same split"
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # the name is the default run directory (runs/<name>): a plain name, never a path
        if not _NAME_RE.fullmatch(v):
            raise ValueError(
                "must be a plain name (letters, digits, '.', '_', '-'; no path separators, "
                "not starting with '.')"
            )
        return v

    @field_validator("task", "space", "strategy", "evaluator", "executor", mode="before")
    @classmethod
    def _component(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"name": v}
        return v

    @field_validator("tasks", mode="before")
    @classmethod
    def _suite(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("tasks needs at least one task")
            return [{"name": t} if isinstance(t, str) else t for t in v]
        return v

    @model_validator(mode="after")
    def _one_task_key(self) -> RunConfig:
        if self.tasks is not None:
            if "task" in self.model_fields_set and self.task != self.tasks[0]:
                raise ValueError("give either task or tasks (a task suite), not both")
            self.task = dict(self.tasks[0])
        return self


def _allowed_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model that ``path`` points into."""
    for part in path:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def format_validation_error(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """One line naming the first problem, e.g. ``bad config value strategy.lr: ...``."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *e["loc"]))
    if e["type"] == "extra_forbidden":
        fields = _allowed_keys(model, tuple(e["loc"][:-1])) if model is not None else []
        allowed = f"; allowed keys: {', '.join(fields)}" if fields else ""
        return f"unknown config key {loc!r}{allowed}"
    if e["type"] == "missing":
        return f"missing config key {loc!r}"
    got = e.get("input")
    got_s = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"bad config value {loc}: {e['msg']}{got_s}"


def validate_params(cls: Any, kind: str, params: dict[str, Any]) -> BaseModel:
    model: type[BaseModel] | None = getattr(cls, "Params", None)
    if model is None:
        raise TypeError(f"{cls!r} has no Params model")
    try:
        return model(**params)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, kind, model)) from None


def split_spec(kind: str, spec: Any, registry: Registry[Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"{kind} needs a 'name'; allowed: {', '.join(registry.names())}")
    rest = {k: v for k, v in spec.items() if k != "name"}
    return str(spec["name"]), rest


def build_component(registry: Registry[Any], kind: str, spec: Any, **extra: Any) -> Any:
    """Instantiate ``registry[spec.name](**validated params, **extra)``."""
    name, rest = split_spec(kind, spec, registry)
    cls = registry.get(name)
    params = validate_params(cls, kind, rest)
    return cls(**params.model_dump(), **extra)


# ------------------------------------------------------------------ YAML I/O
def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        if (p / "run.sqlite").is_file():
            raise ConfigError(
                f"{str(p)!r} is a run directory, not a config; to continue it: nasforge search "
                f"{str(p / 'config.yaml')!r} --run-dir {str(p)!r} --resume (or nasforge show "
                f"{str(p)!r})")
        raise ConfigError(f"{str(p)!r} is a folder; a config is a YAML file")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config {str(p)!r} is not UTF-8 text (bad byte at offset {err.start}); "
            "a config is a YAML file"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read config {str(p)!r}: {err.strerror or err}") from None
    if "\x00" in text:
        raise ConfigError(f"config {str(p)!r} is a binary file (NUL bytes); a config is YAML")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"cannot parse config {str(p)!r}{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"config {str(p)!r} is empty (no keys); start from an example: "
                          "nasforge list examples, nasforge init NAME")
    if not isinstance(data, dict):
        raise ConfigError(
            f"config {str(p)!r} must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def _section_defaults() -> dict[str, Any]:
    """The component sections a run config fills in when left out (``executor: local``...)."""
    out = {}
    for name, field in RunConfig.model_fields.items():
        if field.default_factory is not None and name != "final":
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, dict):
                out[name] = value
    return out


def apply_overrides(
    data: dict[str, Any], overrides: list[str], defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``["strategy.lr=0.01", "budget=10"]`` -> a new dict; values are parsed as YAML scalars.
    A dotted key into a top-level section the config leaves out starts from ``defaults``'
    value for it (a run config's: ``executor.workers=2`` keeps ``name: local``)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if isinstance(child, str):  # "strategy: random" -> {"name": "random"}
                child = {"name": child}
            if child is None:
                child = copy.deepcopy((defaults or {}).get(p, {})) if node is out else {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a mapping")
            node[p] = child
            node = child
        node[parts[-1]] = value
    return out


def parse_config(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig(**data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model=RunConfig)) from None


def load_config(
    source: str | Path | dict[str, Any] | RunConfig, overrides: list[str] | None = None
) -> RunConfig:
    """A RunConfig from a YAML path, a dict or a RunConfig, with ``--set`` style overrides."""
    base: Path | None = None
    if isinstance(source, RunConfig):
        data = source.model_dump()
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        data = read_yaml(source)
        base = Path(source).resolve().parent
    if overrides:
        data = apply_overrides(data, overrides, _section_defaults())
    if base is not None:
        data = resolve_paths(data, base)
    return parse_config(data)


#: task keys that name files: relative paths are relative to the config file
PATH_KEYS = ("path", "labels")


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``task.path`` / ``task.labels`` (and those of a ``tasks`` suite) relative to the config
    file's folder, made absolute."""

    def one(task: Any) -> Any:
        if not isinstance(task, dict):
            return task
        task = dict(task)
        for key in PATH_KEYS:
            v = task.get(key)
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                task[key] = str(base / v)
            elif isinstance(v, str) and v:
                task[key] = str(Path(v).expanduser())
        return task

    out = dict(data)
    if "task" in out:
        out["task"] = one(out["task"])
    if isinstance(out.get("tasks"), list):
        out["tasks"] = [one(t) for t in out["tasks"]]
    if isinstance(out.get("evaluator"), dict):
        out["evaluator"] = resolve_table_path(out["evaluator"], base)
    return out


def resolve_table_path(evaluator: dict[str, Any], base: Path) -> dict[str, Any]:
    """A table evaluator's ``table`` file (``*.npz``) relative to the config file's folder;
    table names (``nb201/cifar10``, ``digits-cnn``) stay as they are."""
    v = evaluator.get("table")
    if not isinstance(v, str) or not v.endswith(".npz") or Path(v).expanduser().is_absolute():
        return evaluator
    return {**evaluator, "table": str(base / v)}


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


ExecutorName = Literal["local", "ray"]
