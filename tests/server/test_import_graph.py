"""The server's imports run one way, down the layers, and never in a circle (read from the source with ast).

Layers, lowest first: the foundation (config, settings, ops: metrics and logs), the model adapters,
then the runtime and the accounts side by side (neither imports the other), the wire (api/, the
error envelope, the app factory), and the serve process on top (serve/, cli.py). A module imports
its own group and the groups below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "maas_server"

# (group, rank, module prefixes): the longest matching prefix names a module's group.
GROUPS = [
    ("foundation", 0, ("maas_server", "maas_server.config", "maas_server.settings", "maas_server.ops",
                       "maas_server.accounts.settings")),
    ("model", 1, ("maas_server.models",)),
    ("runtime", 2, ("maas_server.runtime",)),
    ("accounts", 2, ("maas_server.accounts",)),
    ("wire", 3, ("maas_server.api", "maas_server.errors", "maas_server.app")),
    ("serve", 4, ("maas_server.serve", "maas_server.cli", "maas_server._entry", "maas_server.testing")),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The maas_server modules `name` imports (at any depth of its code: lazy imports count too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found |= {f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                      for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {module for module in found if module in modules and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _group(module: str) -> tuple[str, int]:
    matches = [(len(prefix), group, rank) for group, rank, prefixes in GROUPS for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    _, group, rank = max(matches)
    return group, rank


def _upward(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in graph.items():
        group, rank = _group(module)
        for target in imported:
            other, other_rank = _group(target)
            if other != group and other_rank >= rank:
                found.append(f"{module} ({group}) imports {target} ({other})")
    return sorted(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return components


def test_no_import_runs_up_the_layers() -> None:
    assert _upward(_graph()) == []


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_checks_can_fail() -> None:
    graph = {"maas_server.models.contract": {"maas_server.api.wire"}, "maas_server.api.wire": set(),
             "maas_server.runtime.a": {"maas_server.runtime.b"}, "maas_server.runtime.b": {"maas_server.runtime.a"}}
    assert _upward(graph) == ["maas_server.models.contract (model) imports maas_server.api.wire (wire)"]
    assert _cycles(graph) == [["maas_server.runtime.a", "maas_server.runtime.b"]]
    assert _upward({"maas_server.runtime.x": {"maas_server.accounts.keys"}, "maas_server.accounts.keys": set()})
