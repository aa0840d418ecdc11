"""``max_params``: a child larger than the limit fails before it trains (constraint, not score).

:class:`ParamLimit` wraps the run's evaluator: each architecture is built once (cheap: no
training) to count its trainable parameters, and one over the limit gets a ``failed`` Result
naming both numbers; the others go to the wrapped evaluator unchanged. Every other attribute
(``fit``, ``test_accuracy``, settings, ...) is the wrapped evaluator's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

from nasforge.evaluators.base import Evaluator, Result
from nasforge.spaces.base import Architecture


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class ParamLimit(Evaluator):
    """Fails architectures with more than ``limit`` trainable parameters."""

    name: ClassVar[str] = "param_limit"

    def __init__(self, inner: Evaluator, limit: int) -> None:
        self.inner = inner
        self.limit = int(limit)
        self.objective = inner.objective

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "limit", "__setstate__", "__getstate__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()

    # the base class's declared capabilities are the wrapped evaluator's
    @property
    def noisy(self) -> bool:
        return self.inner.noisy

    @property
    def prefers_batches(self) -> bool:
        return self.inner.prefers_batches

    @property
    def driver_threads(self) -> int:
        return self.inner.driver_threads

    @property
    def threads(self) -> int:  # type: ignore[override]
        return self.inner.threads

    def objectives(self) -> list[str]:
        return self.inner.objectives()

    def set_objective(self, objective: Any) -> None:
        self.inner.set_objective(objective)
        self.objective = objective

    def params_of(self, arch: Architecture) -> int | None:
        build = getattr(self.inner, "build", None)
        if build is None:
            return None
        return count_params(build(arch))

    def _over(self, arch: Architecture) -> Result | None:
        n = self.params_of(arch)
        if n is not None and n > self.limit:
            return Result.failed(
                f"{n} trainable parameters > max_params {self.limit}", params=n
            )
        return None

    def evaluate(self, arch: Architecture, *, seed: int) -> Result:
        return self._over(arch) or self.inner.evaluate(arch, seed=seed)

    def evaluate_batch(self, archs: Sequence[Architecture], seeds: Sequence[int]) -> list[Result]:
        out: list[Result | None] = []
        todo: list[int] = []
        for i, a in enumerate(archs):
            try:
                r = self._over(a)
            except Exception:  # cannot build: the wrapped evaluator reports it
                r = None
            out.append(r)
            if r is None:
                todo.append(i)
        done = self.inner.evaluate_batch([archs[i] for i in todo], [seeds[i] for i in todo])
        for i, r in zip(todo, done):
            out[i] = r
        return [r for r in out if r is not None]
