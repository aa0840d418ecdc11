"""A small name -> object registry used for spaces, tasks, strategies, ops and evaluators."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nasforge.exceptions import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; unknown names raise :class:`UnknownName` listing the allowed ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Register ``obj`` as ``name``. Registering the same object again is allowed, and so is
        a new definition of the same class (same module and qualified name: a notebook cell or
        a reloaded module run twice), which replaces the old one; another object under a taken
        name is an error."""

        def deco(obj: T) -> T:
            old = self._items.get(name)
            if old is not None and old is not obj and not _same_definition(old, obj):
                raise ValueError(
                    f"{self.kind} {name!r} is registered twice ({_where(old)} and {_where(obj)})"
                )
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _where(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _same_definition(a: object, b: object) -> bool:
    return hasattr(a, "__qualname__") and _where(a) == _where(b)
