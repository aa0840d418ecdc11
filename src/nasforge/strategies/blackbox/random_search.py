"""Random search: uniform decisions, without replacement where the space is finite."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from nasforge.spaces.base import Architecture
from nasforge.storage.base import Record
from nasforge.strategies.base import STRATEGIES, AskTellParams, AskTellStrategy


class RandomParams(AskTellParams):
    batch_size: int = Field(default=16, ge=1, description="architectures per ask")
    replacement: bool = Field(default=False, description="allow repeats")


@STRATEGIES.register("random")
class RandomSearch(AskTellStrategy):
    """Samples each decision uniformly among the allowed choices (``SearchSpace.sample``).

    Without replacement, architectures already asked are rejected; once rejection stops paying
    (half of a finite space seen) the remaining ones are enumerated and drawn directly.
    """

    name: ClassVar[str] = "random"
    Params: ClassVar[type[BaseModel]] = RandomParams
    history: ClassVar[tuple[str, ...]] = ("seen",)

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        p = self.p
        self.replacement: bool = p.replacement
        self.seen: set[str] = set()

    def ask(self, n: int) -> list[Architecture]:
        assert self.space is not None
        if self.replacement:
            return [self.space.sample(self.rng) for _ in range(n)]
        size = self.space.size()
        out: list[Architecture] = []
        tries = 0
        while len(out) < n:
            if size is not None and len(self.seen) >= size:
                break
            if size is not None and (len(self.seen) > size // 2 or tries > 100 * n):
                rest = [a for a in self.space.enumerate() if a.arch_id not in self.seen]
                picks = self.rng.permutation(len(rest))[: n - len(out)]
                for i in picks:
                    self.seen.add(rest[int(i)].arch_id)
                    out.append(rest[int(i)])
                break
            arch = self.space.sample(self.rng)
            tries += 1
            if arch.arch_id not in self.seen:
                self.seen.add(arch.arch_id)
                out.append(arch)
        return out

    def tell(self, records: list[Record]) -> None:
        pass

    def rebuild(self, told: list[Record], pending: list[Architecture]) -> None:
        self.seen = {r.arch_id for r in told} | {a.arch_id for a in pending}
