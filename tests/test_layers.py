"""The layering contract: each package imports only from its own layer and the ones below, and
no module imports nasforge's own modules inside a function (which would hide a cycle).

Run by ``make test`` and ``make lint``. Type-only imports (under ``if TYPE_CHECKING:``) are
exempt: they create no import-time edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("nasforge.exceptions", "nasforge.logging", "nasforge.registry", "nasforge.seeding",
     "nasforge.devices", "nasforge.plotting", "nasforge.safeload"),
    ("nasforge.config", "nasforge.ops", "nasforge.objectives"),
    ("nasforge.spaces",),
    ("nasforge.data",),
    ("nasforge.evaluators", "nasforge.storage", "nasforge.rl", "nasforge.baselines",
     "nasforge.envs"),
    ("nasforge.executors",),
    ("nasforge.engine",),
    ("nasforge.strategies", "nasforge.components"),
    ("nasforge.progress", "nasforge.report"),
    ("nasforge.run", "nasforge.search", "nasforge.tabulate", "nasforge.bench"),
    ("nasforge.viz", "nasforge.testing"),
    ("nasforge.cli",),
]
"""Lowest first. ``spaces`` sits below ``viz`` (a space never imports a plotting module)."""


def _layer(module: str) -> int:
    """The layer of ``module``; the package root (``import nasforge``, names re-exported by
    ``nasforge/__init__``) is the top layer, with the CLI."""
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return len(LAYERS) - 1 if module == "nasforge" else -1


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted((SRC / "nasforge").rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, p))
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(module-level imports, imports inside functions)`` of nasforge modules."""
    top: list[tuple[int, str]] = []
    local: list[tuple[int, str]] = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "nasforge":  # from nasforge import ops: the submodules named
                return [f"nasforge.{a.name}" for a in node.names]
            return [node.module] if node.module.startswith("nasforge") else []
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if a.name.startswith("nasforge")]
        return []

    def visit(body: list[ast.stmt], in_function: bool) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            for n in names(node):
                (local if in_function else top).append((node.lineno, n))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit(child.body, True)
                elif isinstance(child, ast.ClassDef):
                    visit(child.body, in_function)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, True)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(node, field, None) or []
                    for s in sub:
                        if isinstance(s, ast.ExceptHandler):
                            visit(s.body, in_function)
                    visit([s for s in sub if isinstance(s, ast.stmt)], in_function)

    visit(tree.body, False)
    return top, local


@pytest.mark.parametrize("name,path", _modules(), ids=[m for m, _ in _modules()])
def test_module_respects_the_layers(name: str, path: Path) -> None:
    top, local = _imports(ast.parse(path.read_text()))
    assert not local, f"{name}: function-local imports of nasforge modules at lines {local}"
    mine = _layer(name)
    assert mine >= 0, f"{name} is in no layer of tests/test_layers.py: add it"
    upward = [(ln, m) for ln, m in top if _layer(m) > mine]
    assert not upward, f"{name} (layer {mine}) imports a higher layer: {upward}"
