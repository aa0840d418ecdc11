"""Importing this module registers every built-in component: tasks, spaces, evaluators,
executors and strategies (each package's ``__init__`` fills its registry).
:func:`load_registries` adds the installed plugins. The driver (``search``), the CLI and the
readers of exported models (``run.load``) call it, so a name in a config or an export resolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from nasforge import data, evaluators, executors, spaces, strategies
from nasforge.evaluators.function import import_plugin
from nasforge.logging import get_logger

__all__ = ["ENTRY_POINT_GROUP", "data", "evaluators", "executors", "load_plugins",
           "load_registries", "spaces", "strategies"]

_logger = get_logger(__name__)
ENTRY_POINT_GROUP = "nasforge.plugins"
_loaded_entry_points: set[str] = set()


def load_registries() -> None:
    """Load the installed plugins: every entry point of the group ``nasforge.plugins`` (a
    package's own request), once each; the built-in components are already registered."""
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
