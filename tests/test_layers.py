"""Imports point down the layers of docs/architecture.md, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "atdak_agents"

# module prefix (dotted, relative to the package) -> layer; the longest matching prefix wins.
LAYERS: dict[str, int] = {
    "__init__": 5,
    "exceptions": 0,
    "_types": 0,
    "_ids": 0,  # run ids (graph, agent and served runs)
    "_sqlite": 0,  # SQLite under asyncio, shared by the memory store and the checkpointer
    "_timers": 0,  # long time limits on one coarse clock per event loop (model and tool calls)
    "messages": 0,
    "usage": 0,
    "settings": 0,
    "providers": 1,
    "templates": 1,
    "tools": 1,
    "memory": 1,
    "tracing": 1,
    "context": 2,
    "context.tokens": 1,  # pure token estimation: templates, tools and memory views use it
    "agent": 3,
    "calls": 3,
    "output": 3,
    "tool_protocols": 3,
    "graph": 3,
    "workflow": 4,
    "cli": 4,
    "server": 4,
    "testing": 4,  # aside: test doubles may use anything below the entry points
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"module {module!r} has no layer in tests/test_layers.py")


def package_modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imported_modules(module: str, path: Path) -> set[str]:
    """Package-internal modules imported by ``module`` (relative to the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("atdak_agents"):
                target = node.module.removeprefix("atdak_agents").lstrip(".")
            else:
                continue
            out.add(target or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("atdak_agents."):
                    out.add(alias.name.removeprefix("atdak_agents."))
    return {m for m in out if m}


MODULES = package_modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down(module: str, path: Path) -> None:
    own = layer_of(module)
    for target in imported_modules(module, path):
        assert layer_of(target) <= own, (
            f"{module} (layer {own}) imports {target} (layer {layer_of(target)}): "
            "move the shared piece down a layer instead"
        )


def test_every_module_has_a_layer() -> None:
    for module, _ in MODULES:
        layer_of(module)
