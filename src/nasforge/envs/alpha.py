"""The alpha-editing environment's dynamics without gymnasium (ALGORITHMS.md §1.4, seed 000);
:mod:`nasforge.envs.alpha_env` wraps it as a ``gymnasium.Env``.

An agent walks the graph of one DARTS cell and edits the cell's op logits before MetaNAS
adapts them with DARTS. The graph has ``nodes + 2`` vertices (two inputs, then the
intermediate nodes); every pair is an edge except input-to-input, so there are
``num_edges(nodes)`` undirected edges, the rows of the supernet's alpha matrix (row
``edge_index(i, j)`` is edge ``j -> i + 2``, :mod:`nasforge.spaces.darts.genotype`). The agent sits
on a *directed* edge ``(from, to)`` and observes::

    [from, to, top2, A[to] (nodes + 2), softmax(logits[edge]) (ops)]

with ``top2`` = 1 when the edge is among the two strongest inputs (by best op weight) of its
intermediate node, and ``A`` the adjacency matrix. Actions (``K = nodes + 2`` vertices, ``O`` ops):

* ``0 .. K-1``: move to vertex ``k``, onto edge ``(to, k)``; masked where ``A[to, k] = 0``. An
  unmasked-but-illegal move (an agent that ignores the mask) does nothing.
* ``K .. K+O-1``: increase op ``o`` on the current edge: ``p_o += alpha_prob`` (a value that
  would pass 1 becomes 0.99), then ``p += 0.01`` on every op of the edge (no zero weights), and
  the logits are written back as ``T * log p + log 10`` (so ``softmax(logits / T)`` is
  ``p`` renormalised; the released code has ``T = 1`` here).
* ``K+O .. K+2O-1``, only when ``increase_only`` is off: decrease op ``o`` (``p_o -= alpha_prob``,
  floored at 0.01), written back the same way.

With ``alpha_action_masking`` an alpha action, once used, is masked until the next move.

**Estimation and reward.** Moving onto an edge whose (undirected) pair has not been estimated
yet, while alpha edits are pending, runs one *estimation*: the injected ``estimator(logits)``
returns the accuracy (MetaNAS: one weight step, and an alpha step, of the meta-model on the
support batch, then support accuracy), optionally with the logits it left (the alpha step). The
reward is ``0`` if ``acc <= b``, else ``0.2 + (acc - b) * (max_reward - 0.2) / (1 - b)``, plus
``estimation_bonus * n`` where ``n`` counts this episode's estimations so far (quirk Q8: 0.2 in
``reference``, 0 in ``default``). ``b`` is estimated once at reset, then follows the latest
accuracy. Moving onto an already-estimated edge with pending edits gives 0 and drops the pending
flag (no estimation), as released.

**Episode.** It starts on a random directed edge (``random_start``) from the logits given at
construction (or :meth:`AlphaEnvCore.set_alphas`); the estimator's optional ``reset()`` is called
first (MetaNAS restores the meta-model weights). It ends (terminated) when the estimations,
counting the baseline one at reset, reach ``max_estimations`` (5: the released
``darts_estimation_steps``, i.e. the baseline and four rewarded ones), or is truncated after
``max_steps`` (200) steps. The best logits seen (baseline included) are kept in ``best``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nasforge.exceptions import ConfigError
from nasforge.logging import get_logger
from nasforge.spaces.darts.genotype import edge_index, num_edges

_logger = get_logger(__name__)

AlphaPreset = Literal["reference", "default"]
ALPHA_PRESETS = ("reference", "default")

Estimate = float | tuple[float, np.ndarray]
Estimator = Callable[[np.ndarray], Estimate]
"""``estimator(logits (edges, ops)) -> accuracy in [0, 1]`` or ``(accuracy, new logits)``; an
optional ``reset()`` method is called at every episode start."""


@dataclass(frozen=True)
class AlphaEnvSettings:
    """Settings of the alpha-editing environment (one field per released switch)."""

    preset: AlphaPreset = "default"
    nodes: int = 3
    """Intermediate nodes of the cell (the graph has ``nodes + 2`` vertices)."""
    max_steps: int = 200
    """Steps per episode (``env_max_ep_len``)."""
    max_estimations: int = 5
    """Estimations per episode, the baseline one at reset included (``darts_estimation_steps``)."""
    increase_only: bool = True
    """Only increase actions (``env_increase_actions``, on in the released script)."""
    alpha_action_masking: bool = True
    """Mask an alpha action once used, until the next move (``env_alpha_action_masking``)."""
    alpha_prob: float = 0.10
    """Probability added to (or taken from) an op per alpha action (``env_alpha_probability``)."""
    estimation_bonus: float = 0.0
    """Reward added per estimation so far (quirk Q8: 0.2 in ``reference``, 0 in ``default``)."""
    max_reward: float = 1.0
    """Reward of a perfect accuracy gain (``env_max_rew``); a gain starts at 0.2."""
    random_start: bool = True
    """Start each episode on a random directed edge (``use_env_random_start``); else edge 0."""
    temperature: float = 1.0
    """Softmax temperature of the observed weights and of the write-back."""

    @classmethod
    def of(cls, preset: str = "default", **over: Any) -> AlphaEnvSettings:
        """The preset's settings with ``over`` (``None`` values ignored) on top."""
        if preset not in ALPHA_PRESETS:
            raise ConfigError(
                f"unknown alpha env preset {preset!r}; allowed: {', '.join(ALPHA_PRESETS)}")
        bonus = 0.2 if preset == "reference" else 0.0
        over = {k: v for k, v in over.items() if v is not None}
        names = set(cls.__dataclass_fields__) - {"preset"}
        bad = sorted(set(over) - names)
        if bad:
            raise ConfigError(
                f"unknown alpha env setting {bad[0]!r}; allowed: {', '.join(sorted(names))}")
        s = cls(preset=preset, estimation_bonus=bonus)  # type: ignore[arg-type]
        s = cls(**{**s.__dict__, **over})
        s.check()
        return s

    def check(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"alpha env nodes must be >= 1, got {self.nodes}")
        if self.max_steps < 1 or self.max_estimations < 2:
            raise ConfigError("alpha env max_steps must be >= 1 and max_estimations >= 2 "
                              f"(got {self.max_steps}, {self.max_estimations})")
        if not 0.0 < self.alpha_prob < 1.0:
            raise ConfigError(f"alpha env alpha_prob must be in (0, 1), got {self.alpha_prob}")
        if self.temperature <= 0.0:
            raise ConfigError(f"alpha env temperature must be > 0, got {self.temperature}")


def adjacency(nodes: int) -> np.ndarray:
    """``(nodes + 2)^2`` 0/1 matrix: every pair but self-loops and input-to-input."""
    k = nodes + 2
    a = np.ones((k, k), dtype=np.int8) - np.eye(k, dtype=np.int8)
    a[0, 1] = a[1, 0] = 0
    return a


def edge_row(u: int, v: int) -> int:
    """Alpha row of the undirected edge ``{u, v}`` (one of them an intermediate node)."""
    lo, hi = min(u, v), max(u, v)
    if hi < 2:
        raise ValueError(f"{u}-{v} joins the two inputs: not an edge")
    return edge_index(hi - 2, lo)


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(-1, keepdims=True)
    return out


def edit_probs(p: np.ndarray, op: int, delta: float) -> np.ndarray:
    """The probability edit of one alpha action (``delta`` > 0: increase, < 0: decrease)."""
    q = np.array(p, dtype=np.float64)
    if delta > 0:
        q[op] = q[op] + delta if q[op] + delta < 1.0 else 0.99
    else:
        q[op] = q[op] + delta if q[op] + delta > 0.0 else 0.01
    return q + 0.01


def logits_of(p: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Write-back of edited probabilities: ``T * log p + log 10``."""
    out: np.ndarray = temperature * np.log(p) + math.log(10.0)
    return out


@dataclass
class AlphaStep:
    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


@dataclass
class Best:
    accuracy: float = -math.inf
    logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


class AlphaEnvCore:
    """State and step of the alpha-editing environment of one cell.

    Args:
        logits: the cell's op logits, ``(num_edges(nodes), ops)`` (a supernet's
            ``alphas.logits[group]``, as numpy); each episode starts from them.
        estimator: ``logits -> accuracy`` or ``(accuracy, logits)``; see :data:`Estimator`.
        settings: :class:`AlphaEnvSettings` (``AlphaEnvSettings.of(preset, ...)``).
        seed: seeds the start edges; :meth:`reset` with a seed re-seeds.
    """

    def __init__(self, logits: np.ndarray, estimator: Estimator,
                 settings: AlphaEnvSettings | None = None, seed: int = 0) -> None:
        self.s = settings or AlphaEnvSettings()
        self.s.check()
        self.A = adjacency(self.s.nodes)
        self.K = self.s.nodes + 2
        self.estimator = estimator
        self.logits0: np.ndarray = np.zeros((0, 0))
        self.set_alphas(logits)
        self.n_ops = self.logits0.shape[1]
        self.rng = np.random.default_rng(seed)
        # the directed edges, in alpha-row order: (j -> i+2), then (i+2 -> j)
        self.directed: list[tuple[int, int]] = []
        for i in range(self.s.nodes):
            for j in range(i + 2):
                self.directed += [(j, i + 2), (i + 2, j)]
        self.logits = self.logits0.copy()
        self.edge = self.directed[0]
        self.steps = self.estimations = 0
        self.baseline = 0.0
        self.pending = False
        self.estimated: set[int] = set()
        self.used = np.zeros(self.n_actions, dtype=bool)
        self.done = True
        self.best = Best()

    # ------------------------------------------------------------------ shape
    @property
    def n_actions(self) -> int:
        return self.K + self.n_ops * (1 if self.s.increase_only else 2)

    @property
    def obs_dim(self) -> int:
        return 3 + self.K + self.n_ops

    def set_alphas(self, logits: np.ndarray) -> None:
        """New start logits (a new task, or the other cell); takes effect at the next reset."""
        arr = np.array(logits, dtype=np.float64)
        want = num_edges(self.s.nodes)
        if arr.ndim != 2 or arr.shape[0] != want or arr.shape[1] < 1:
            raise ConfigError(f"alpha env logits must have shape ({want}, ops) for "
                              f"{self.s.nodes} nodes, got {list(arr.shape)}")
        if self.logits0.size and arr.shape[1] != self.logits0.shape[1]:
            raise ConfigError(f"alpha env logits must keep {self.logits0.shape[1]} ops, "
                              f"got {arr.shape[1]}")
        self.logits0 = arr

    # ------------------------------------------------------------- estimation
    def _estimate(self) -> float:
        out = self.estimator(self.logits.copy())
        if isinstance(out, tuple):
            acc, new = out
            new = np.asarray(new, dtype=np.float64)
            if new.shape != self.logits.shape:
                raise ValueError(f"estimator returned logits of shape {list(new.shape)}, "
                                 f"expected {list(self.logits.shape)}")
            self.logits = new.copy()
        else:
            acc = out
        acc = float(acc)
        if not math.isfinite(acc):
            raise FloatingPointError("estimator returned a non-finite accuracy")
        if acc > self.best.accuracy:
            self.best = Best(acc, self.logits.copy())
        return acc

    def scale(self, acc: float) -> float:
        """Reward of an accuracy relative to the baseline (before the estimation bonus)."""
        b = self.baseline
        if acc <= b:
            return 0.0
        return 0.2 + (acc - b) * (self.s.max_reward - 0.2) / (1.0 - b)

    # ------------------------------------------------------------------ state
    def weights(self) -> np.ndarray:
        return softmax(self.logits, self.s.temperature)

    def observe(self) -> np.ndarray:
        u, v = self.edge
        row = edge_row(u, v)
        w = self.weights()
        node = max(u, v) - 2
        rows = [edge_index(node, j) for j in range(node + 2)]
        best = w[rows].max(-1)
        top = np.argsort(-best, kind="stable")[:2]
        flag = float(row - rows[0] in top)
        return np.concatenate([[u, v, flag], self.A[v], w[row]]).astype(np.float32)

    def action_mask(self) -> np.ndarray:
        """1 = allowed: moves along an edge, alpha actions not yet used since the last move."""
        m = np.ones(self.n_actions, dtype=np.int8)
        m[: self.K] = self.A[self.edge[1]]
        if self.s.alpha_action_masking:
            m[self.used] = 0
        return m

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        reset = getattr(self.estimator, "reset", None)
        if callable(reset):
            reset()
        self.logits = self.logits0.copy()
        self.steps = self.estimations = 0
        self.pending, self.done = False, False
        self.estimated = set()
        self.used = np.zeros(self.n_actions, dtype=bool)
        i = int(self.rng.integers(len(self.directed))) if self.s.random_start else 0
        self.edge = self.directed[i]
        self.baseline = self._estimate()
        self.estimations = 1
        return self.observe()

    def state_dict(self) -> dict[str, Any]:
        return {"logits": self.logits.tolist(), "edge": list(self.edge), "steps": self.steps,
                "estimations": self.estimations, "baseline": self.baseline,
                "pending": self.pending, "estimated": sorted(self.estimated),
                "used": self.used.tolist(), "done": self.done}

    # ------------------------------------------------------------------- step
    def step(self, action: int) -> AlphaStep:
        if self.done:
            raise RuntimeError("step() after the episode ended; call reset()")
        a = int(action)
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action {a} outside 0..{self.n_actions - 1}")
        self.steps += 1
        reward, acc, kind = 0.0, None, "illegal_move"
        u, v = self.edge
        if a < self.K:
            if self.A[v, a]:
                kind = "move"
                self.edge = (v, a)
                self.used[:] = False
                if self.pending:
                    self.pending = False
                    row = edge_row(v, a)
                    if row not in self.estimated:
                        self.estimated.add(row)
                        acc = self._estimate()
                        reward = self.scale(acc) + self.s.estimation_bonus * self.estimations
                        self.estimations += 1
                        if acc > 0.0:
                            self.baseline = acc
                        kind = "estimate"
                    else:
                        kind = "revisit"
        else:
            o = (a - self.K) % self.n_ops
            inc = a < self.K + self.n_ops
            kind = "increase" if inc else "decrease"
            row = edge_row(u, v)
            p = softmax(self.logits[row], self.s.temperature)
            q = edit_probs(p, o, self.s.alpha_prob if inc else -self.s.alpha_prob)
            self.logits[row] = logits_of(q, self.s.temperature)
            self.pending = True
            self.used[a] = True
        terminated = self.estimations >= self.s.max_estimations
        truncated = not terminated and self.steps >= self.s.max_steps
        self.done = terminated or truncated
        info: dict[str, Any] = {
            "action_mask": self.action_mask(),
            "kind": kind,
            "accuracy": acc,
            "estimations": self.estimations,
            "edge": self.edge,
        }
        return AlphaStep(self.observe(), float(reward), terminated, truncated, info)


@dataclass
class SyntheticAccuracy:
    """A synthetic estimator for tests and benchmarks: the mean softmax weight of a target op per
    edge, ``acc = mean_e w[e, target[e]]`` (1 only when every edge is sure of its target);
    counts its calls and resets."""

    target: Sequence[int]
    temperature: float = 1.0
    calls: int = 0
    resets: int = 0

    def __call__(self, logits: np.ndarray) -> float:
        self.calls += 1
        w = softmax(logits, self.temperature)
        return float(w[np.arange(len(self.target)), np.asarray(self.target)].mean())

    def reset(self) -> None:
        self.resets += 1


__all__ = ["ALPHA_PRESETS", "AlphaEnvCore", "AlphaEnvSettings", "AlphaStep", "Estimator",
           "SyntheticAccuracy", "adjacency", "edge_row", "edit_probs", "logits_of", "softmax"]
