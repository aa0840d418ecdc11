"""The NAS environment's dynamics without gymnasium (ALGORITHMS.md §2.2), so that strategies use
it with no optional import; :mod:`nasforge.envs.nas_env` wraps it as a ``gymnasium.Env``.

One step: apply the action (append a row, move a pointer, or terminate); hash the sorted rows;
look the reward up in the cache or compute it (train the current, possibly partial, network);
reward = accuracy, ``sigma * accuracy`` for a pointer move, 0 for an out-of-bounds pointer or a
network that cannot be built or trained. The episode ends at the terminal action, at
``max_layers`` layers, after ``max_steps`` actions, at an invalid network or a pointer out of
bounds.

Presets (quirks L1-L5, docs/algorithms.md):

* ``reference``: valid padding, no action mask (every action allowed), reward on the test split,
  ``max_steps`` 100 (the chain config's ``MaxSteps``);
* ``default``: same padding, ``info["action_mask"]`` masks pooling that would shrink the map
  below 1 px and pointer moves out of bounds (an agent that ignores the mask and takes such an
  action gets reward 0 and the episode ends, as in ``reference``), reward on val, ``max_steps``
  10 (chain) or 20 (multi-branch).

``revisit_reward`` (off in both presets; the seed rewards every step with the network's
accuracy): when set, a step whose network was already rewarded since this environment was made
(one trial, over all its episodes) gets this reward instead. With the seed's reward, repeating
the best network found is what pays most, so an RL^2 policy learns to rebuild one network; with
``revisit_reward: 0`` only networks new to the trial pay, which is what a search wants. The
unshaped reward is in ``info["base_reward"]`` either way, and ``info["revisit"]`` says whether
the rule applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nasforge.data.base import Task, make_task
from nasforge.envs.nsc import (
    ADD,
    CONCAT,
    MAX_LAYERS,
    Action,
    Padding,
    Row,
    SpaceKind,
    actions_of,
    layer_rows,
    nsc_hash,
    observation,
    shapes,
)
from nasforge.envs.rewards import RewardCache, RewardFn, TrainReward
from nasforge.exceptions import ConfigError, InvalidArchitecture
from nasforge.logging import get_logger
from nasforge.spaces.base import JSONDict

_logger = get_logger(__name__)

Preset = Literal["reference", "default"]
PRESETS = ("reference", "default")
SPACES = ("chain", "multibranch")


@dataclass(frozen=True)
class EnvSettings:
    space: SpaceKind = "chain"
    preset: Preset = "default"
    padding: Padding = "same"
    mask: bool = True
    max_steps: int = 10
    max_layers: int = MAX_LAYERS
    sigma: float = 0.5
    reward_split: Literal["val", "test"] = "val"
    revisit_reward: float | None = None

    @classmethod
    def of(cls, space: str, preset: str, **over: Any) -> EnvSettings:
        if space not in SPACES:
            raise ConfigError(f"unknown NAS env space {space!r}; allowed: {', '.join(SPACES)}")
        if preset not in PRESETS:
            raise ConfigError(f"unknown NAS env preset {preset!r}; allowed: {', '.join(PRESETS)}")
        if preset == "reference":
            base = cls(space, "reference", "valid", False, 100, MAX_LAYERS, 0.5, "test")  # type: ignore[arg-type]
        else:
            base = cls(space, "default", "same", True, 10 if space == "chain" else 20,  # type: ignore[arg-type]
                       MAX_LAYERS, 0.5, "val")
        over = {k: v for k, v in over.items() if v is not None}
        return cls(**{**base.__dict__, **over})


@dataclass
class StepOutcome:
    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class NasEnvCore:
    """The environment's state and step; ``reward_fn`` is pluggable (tests inject synthetic
    ones), ``cache`` a :class:`RewardCache` (in memory when not given)."""

    def __init__(
        self,
        task: Task | JSONDict | str,
        settings: EnvSettings,
        reward_fn: RewardFn | Callable[[tuple[Row, ...], Task, int], float] | None = None,
        cache: RewardCache | str | None = None,
        seed: int = 0,
    ) -> None:
        self.task = task if isinstance(task, Task) else make_task(task)
        self.s = settings
        self.actions: tuple[Action, ...] = actions_of(settings.space)
        if len(self.task.input_shape) != 3:
            raise ConfigError(
                f"the NAS environment needs an image task (C, H, W); task {self.task.name!r} "
                f"has input shape {list(self.task.input_shape)}")
        self.reward_fn = reward_fn if reward_fn is not None else TrainReward(
            padding=settings.padding, split=settings.reward_split)
        self.protocol = str(getattr(self.reward_fn, "protocol", repr(self.reward_fn)))
        self.protocol += f"|padding={settings.padding}"
        self.cache = cache if isinstance(cache, RewardCache) else RewardCache(cache)
        self.seed = seed
        self.rows: list[Row] = []
        self.p1 = 0
        self.p2 = 0
        self.steps = 0
        self.done = False
        self.last_cached = False
        self._fresh: set[str] = set()  # rewards put_reward stored, not yet stepped on
        self.seen: set[str] = set()  # networks rewarded in this trial (for revisit_reward)

    # ------------------------------------------------------------------ state
    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def obs_shape(self) -> tuple[int, int]:
        return observation((), self.s.space, self.s.max_layers).shape

    def reset(self) -> np.ndarray:
        self.rows, self.p1, self.p2, self.steps, self.done = [], 0, 0, 0, False
        return self.observe()

    def observe(self) -> np.ndarray:
        return observation(self.rows, self.s.space, self.s.max_layers)

    def state_dict(self) -> JSONDict:
        st: JSONDict = {"rows": [list(r) for r in self.rows], "p1": self.p1, "p2": self.p2,
                        "steps": self.steps, "done": self.done}
        if self.s.revisit_reward is not None:
            st["seen"] = sorted(self.seen)
        return st

    def load_state_dict(self, st: JSONDict) -> None:
        self.rows = [tuple(int(v) for v in r) for r in st["rows"]]  # type: ignore[misc]
        self.p1, self.p2 = int(st["p1"]), int(st["p2"])
        self.steps, self.done = int(st["steps"]), bool(st["done"])
        seen = st.get("seen", [])
        self.seen = {str(k) for k in seen} if isinstance(seen, list) else set()

    @property
    def current(self) -> int:
        return self.rows[-1][0] if self.rows else 0

    # ------------------------------------------------------------------- mask
    def _would_be_valid(self, a: Action) -> bool:
        if a.kind == "terminal":
            return True
        if a.kind == "pointer":
            p = (self.p1 if a.pointer == 1 else self.p2) + a.delta
            return 0 <= p <= self.current
        row = self._new_row(a)
        try:
            shapes([*self.rows, row], self.task.input_shape, self.s.padding)
        except InvalidArchitecture:
            return False
        return True

    def action_mask(self) -> np.ndarray:
        """Allowed actions (1 = allowed); all ones when the preset does not mask."""
        if not self.s.mask:
            return np.ones(self.n_actions, dtype=np.int8)
        m = np.array([self._would_be_valid(a) for a in self.actions], dtype=np.int8)
        if not m.any():  # never happens (terminal is always valid), but keep the contract
            m[:] = 1
        return m

    def _new_row(self, a: Action) -> Row:
        idx = self.current + 1
        if self.s.space == "chain":
            p1, p2 = self.current, 0
        else:
            p1, p2 = self.current - self.p1, self.current - self.p2
        if a.type not in (ADD, CONCAT):
            p2 = 0
        return (idx, a.type, a.kernel, p1, p2)

    # --------------------------------------------------- rewards computed elsewhere
    def network_after(self, action: int) -> list[Row] | None:
        """The network whose reward ``step(action)`` would look up or compute; None when that
        step needs no reward (a masked layer, a pointer out of bounds, a finished episode)."""
        if self.done or not 0 <= int(action) < self.n_actions:
            return None
        a = self.actions[int(action)]
        if a.kind == "pointer":
            p = (self.p1 if a.pointer == 1 else self.p2) + a.delta
            return list(self.rows) if 0 <= p <= self.current else None
        if a.kind == "terminal":
            return list(self.rows)
        if not self.action_mask()[int(action)]:
            return None
        return [*self.rows, self._new_row(a)]

    def reward_job(self, rows: list[Row]) -> tuple[str, tuple[Row, ...], int] | None:
        """``(key, layer rows, seed)`` of a reward that must be computed (neither cached nor
        unbuildable), for a caller that trains children elsewhere (an executor) and hands the
        result back with :meth:`put_reward` before :meth:`step`; None otherwise."""
        key = nsc_hash(layer_rows(rows))
        if self.cache.get(self.task.content_hash, key, self.protocol) is not None:
            return None
        try:
            shapes(rows, self.task.input_shape, self.s.padding)
        except InvalidArchitecture:
            return None
        return key, tuple(layer_rows(rows)), self.reward_seed(key)

    def put_reward(self, key: str, acc: float, ok: bool) -> None:
        """Store a reward computed elsewhere (the next step reports it as not cached)."""
        self.cache.put(self.task.content_hash, key, self.protocol, acc, ok)
        self._fresh.add(key)

    def reward_seed(self, key: str) -> int:
        return (int(key[:8], 16) ^ self.seed) & 0x7FFFFFFF

    # ------------------------------------------------------------------- step
    def reward_of(self, rows: list[Row]) -> tuple[float, bool, bool]:
        """``(accuracy, ok, cached)`` of the network ``rows`` describe."""
        key = nsc_hash(layer_rows(rows))
        hit = self.cache.get(self.task.content_hash, key, self.protocol)
        if hit is not None:
            fresh = key in self._fresh
            self._fresh.discard(key)
            return hit[0], hit[1], not fresh
        seed = self.reward_seed(key)
        try:
            shapes(rows, self.task.input_shape, self.s.padding)
            acc, ok = float(self.reward_fn(tuple(layer_rows(rows)), self.task, seed)), True
        except (InvalidArchitecture, FloatingPointError, RuntimeError) as e:
            _logger.info("NSC %s cannot be built or trained: %s", rows, e)
            acc, ok = 0.0, False
        self.cache.put(self.task.content_hash, key, self.protocol, acc, ok)
        return acc, ok, False

    def step(self, action: int) -> StepOutcome:
        if self.done:
            raise RuntimeError("step() after the episode ended; call reset()")
        if not 0 <= int(action) < self.n_actions:
            raise ValueError(f"action {action} outside 0..{self.n_actions - 1}")
        a = self.actions[int(action)]
        allowed = bool(self.action_mask()[int(action)])
        self.steps += 1
        terminated = False
        ok, cached = True, False
        if a.kind == "pointer":
            p = (self.p1 if a.pointer == 1 else self.p2) + a.delta
            if not 0 <= p <= self.current:
                reward, terminated, ok = 0.0, True, False
            else:
                if a.pointer == 1:
                    self.p1 = p
                else:
                    self.p2 = p
                acc, ok, cached = self.reward_of(self.rows)
                reward = self.s.sigma * acc
                terminated = not ok
        elif a.kind == "terminal":
            reward, ok, cached = self.reward_of(self.rows)
            terminated = True
        else:
            self.rows.append(self._new_row(a))
            if not allowed:
                reward, ok, terminated = 0.0, False, True
            else:
                reward, ok, cached = self.reward_of(self.rows)
                terminated = (not ok) or len(self.rows) >= self.s.max_layers
        truncated = not terminated and self.steps >= self.s.max_steps
        self.done = terminated or truncated
        key = nsc_hash(layer_rows(self.rows))
        base, revisit = float(reward), False
        if self.s.revisit_reward is not None and ok:
            revisit = key in self.seen
            self.seen.add(key)
            if revisit:
                reward = self.s.revisit_reward
        info = {
            "action_mask": self.action_mask() if not self.done else np.ones(self.n_actions,
                                                                            dtype=np.int8),
            "nsc": [list(r) for r in self.rows],
            "nsc_hash": key,
            "action": a.label,
            "valid": ok,
            "base_reward": base,
            "revisit": revisit,
        }
        self.last_cached = cached  # not in info: a replayed step must give the same info
        return StepOutcome(self.observe(), float(reward), terminated, truncated, info)
