"""Search spaces as data, and architectures as frozen values.

An :class:`Architecture` is a frozen tuple of JSON scalars (tokens). Its ``arch_id`` is the sha1
of its canonical JSON, stable across processes. A :class:`SearchSpace` validates architectures,
samples them, builds them into ``torch.nn.Module`` objects and, for RL controllers and random
search, exposes a *sequential decision view*: an architecture is a sequence of decisions, decision
``t`` chooses among ``options(t)`` (one output head per ``head(t)``), some choices are masked
(``allowed``) and the sequence may end early (a stop token).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from torch import nn

from nasforge.config import build_component
from nasforge.exceptions import InvalidArchitecture
from nasforge.registry import Registry

Token = int | float | str | bool
JSONDict = dict[str, Any]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # (built once)


def canonical_json(obj: object) -> str:
    return _CANONICAL.encode(obj)


def sha1_id(obj: object, n: int = 16) -> str:
    return hashlib.sha1(canonical_json(obj).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Architecture:
    """A frozen, hashable architecture: a tuple of tokens whose meaning its space defines."""

    tokens: tuple[Token, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, tuple):
            object.__setattr__(self, "tokens", tuple(self.tokens))

    def to_json(self) -> JSONDict:
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, obj: JSONDict | Sequence[Token]) -> Architecture:
        if isinstance(obj, dict):
            if set(obj) != {"tokens"} or not isinstance(obj["tokens"], list):
                raise InvalidArchitecture(
                    f"architecture JSON must be {{'tokens': [...]}}, got keys {sorted(obj)}"
                )
            obj = obj["tokens"]
        if not isinstance(obj, (list, tuple)):
            raise InvalidArchitecture(f"architecture must be a list of tokens, got {obj!r}")
        for t in obj:
            if not isinstance(t, (int, float, str, bool)):
                raise InvalidArchitecture(f"architecture token {t!r} is not a JSON scalar")
        return cls(tuple(obj))

    @cached_property
    def arch_id(self) -> str:
        """A 16-hex-digit content hash of the tokens (computed once per object)."""
        return sha1_id(self.to_json())

    def __str__(self) -> str:
        return "[" + ", ".join(str(t) for t in self.tokens) + "]"


class SearchSpace(ABC):
    """A declarative search space. Subclasses are registered in :data:`SPACES` by name.

    Sequential decision view (used by random search, REINFORCE and meta-RL):
    decision ``t`` picks an index into ``options(t)``; ``allowed(prefix)`` masks the choices of
    the next decision; ``is_complete(prefix)`` says whether the sequence has ended.
    """

    name: ClassVar[str]

    # ----------------------------------------------------------------- spec
    @abstractmethod
    def spec(self) -> JSONDict:
        """``{"name": ..., **params}``: enough to rebuild the space with :func:`make_space`."""

    @property
    def space_id(self) -> str:
        return sha1_id(self.spec())

    # -------------------------------------------------- sequential decisions
    @abstractmethod
    def max_steps(self) -> int:
        """The largest number of decisions an architecture takes."""

    @abstractmethod
    def options(self, step: int) -> tuple[Token, ...]:
        """The values decision ``step`` chooses among (one softmax head)."""

    def head(self, step: int) -> int:
        """Which head (and embedding table) decision ``step`` uses; heads share by default."""
        return step

    def num_heads(self) -> int:
        return len({self.head(t) for t in range(self.max_steps())})

    def allowed(self, prefix: Sequence[int]) -> np.ndarray:
        """Boolean mask over ``options(len(prefix))``; all allowed by default."""
        return np.ones(len(self.options(len(prefix))), dtype=bool)

    @property
    def masked(self) -> bool:
        """Whether some decision forbids options (the space overrides :meth:`allowed`); an
        unmasked space lets callers skip the mask checks."""
        return getattr(self.allowed, "__func__", None) is not SearchSpace.allowed

    def is_complete(self, prefix: Sequence[int]) -> bool:
        return len(prefix) >= self.max_steps()

    @abstractmethod
    def decode(self, indices: Sequence[int]) -> Architecture:
        """A complete decision sequence -> architecture."""

    @abstractmethod
    def encode(self, arch: Architecture) -> tuple[int, ...]:
        """Architecture -> its decision sequence (inverse of :meth:`decode`)."""

    # ------------------------------------------------------------ validation
    def validate(self, arch: Architecture) -> Architecture:
        """Return ``arch`` if it fits this space, else raise :class:`InvalidArchitecture`."""
        indices = self.encode(arch)  # raises on unknown tokens
        for t in range(len(indices) if self.masked else 0):
            mask = self.allowed(indices[:t])
            if not mask[indices[t]]:
                value = self.options(t)[indices[t]]
                ok = [str(v) for v, m in zip(self.options(t), mask) if m]
                raise InvalidArchitecture(
                    f"{self.name}: token {value!r} not allowed at position {t} of {arch}; "
                    f"allowed there: {', '.join(ok)}"
                )
        if not self.is_complete(indices):
            raise InvalidArchitecture(f"{self.name}: architecture {arch} is incomplete")
        return arch

    def arch_from_json(self, obj: JSONDict | Sequence[Token]) -> Architecture:
        return self.validate(Architecture.from_json(obj))

    # -------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Sample decision by decision, uniformly among the allowed choices."""
        prefix: list[int] = []
        while not self.is_complete(prefix):
            mask = self.allowed(prefix)
            choices = np.flatnonzero(mask)
            prefix.append(int(choices[rng.integers(len(choices))]))
        return self.decode(prefix)

    def size(self) -> int | None:
        """Number of distinct architectures, or None when unknown/infinite."""
        return None

    def enumerate(self) -> Iterator[Architecture]:
        """All architectures in a fixed order (finite spaces only)."""

        def walk(prefix: list[int]) -> Iterator[Architecture]:
            if self.is_complete(prefix):
                yield self.decode(prefix)
                return
            for i in np.flatnonzero(self.allowed(prefix)):
                yield from walk([*prefix, int(i)])

        yield from walk([])

    # ----------------------------------------------------------------- build
    @abstractmethod
    def build(
        self, arch: Architecture, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        """Build a fresh ``nn.Module`` for the task's input shape and class count."""

    def describe(self, arch: Architecture) -> str:
        return str(arch)


SPACES: Registry[type[SearchSpace]] = Registry("space")


def make_space(spec: JSONDict | str) -> SearchSpace:
    """Build a registered space from ``{"name": ..., **params}`` (or just its name)."""

    if isinstance(spec, str):
        spec = {"name": spec}
    return build_component(SPACES, "space", spec)
