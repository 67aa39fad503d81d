"""The emulator's import structure, read from the source (ast), not from what Python loaded.

Every import counts, also those under TYPE_CHECKING and inside functions: a cycle a type
checker sees is still a cycle a maintainer has to untangle.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import hsm_lifecycle.emulator

PACKAGE = "hsm_lifecycle.emulator"
COMMAND_MODULES = ("pins", "files", "keyops", "initialize")
SHARED = frozenset({"hsm_lifecycle.protocol", "hsm_lifecycle.tlv", "hsm_lifecycle.cvc"})


def _modules() -> dict[str, Path]:
    root = Path(hsm_lifecycle.emulator.__file__).parent
    found = {}
    for path in sorted(root.glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        found[name] = path
    return found


def _imports(module: str, path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(imported module, names taken from it) for every import statement in `module`."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if not node.level:
                source = node.module or ""
            else:
                source = f"{base}.{node.module}" if node.module else base
            found.append((source, tuple(alias.name for alias in node.names)))
    return found


def _graph() -> dict[str, set[str]]:
    """Emulator module -> the emulator modules it imports. `from package import submodule`
    is an edge to the submodule only."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for source, names in _imports(module, path):
            submodules = {f"{source}.{name}" for name in names} & modules.keys()
            edges |= submodules
            if source in modules and (len(submodules) < len(names) or not names):
                edges.add(source)
        edges &= modules.keys()
        edges.discard(module)
        graph[module] = edges
    return graph


def test_the_emulator_modules_are_found() -> None:
    graph = _graph()
    assert f"{PACKAGE}.applet" in graph
    assert f"{PACKAGE}.applet" in graph[f"{PACKAGE}.token"]
    assert f"{PACKAGE}.pins" in graph[f"{PACKAGE}.applet"]


def test_no_import_cycle_in_the_emulator() -> None:
    sorter = graphlib.TopologicalSorter(_graph())
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


@pytest.mark.parametrize("command_module", COMMAND_MODULES)
def test_command_modules_do_not_import_the_applet(command_module: str) -> None:
    graph = _graph()
    assert f"{PACKAGE}.applet" not in graph[f"{PACKAGE}.{command_module}"]
    assert f"{PACKAGE}.card" in graph[f"{PACKAGE}.{command_module}"]


def test_the_emulator_imports_only_shared_codecs_from_the_project() -> None:
    """Independent implementations: nothing from hsm_lifecycle.model or .conformance."""
    foreign = {}
    for module, path in _modules().items():
        imported = {
            f"{source}.{name}" if source == "hsm_lifecycle" else source
            for source, names in _imports(module, path)
            for name in names or ("",)
        }
        ours = {
            name
            for name in imported
            if name.startswith("hsm_lifecycle.")
            and not name.startswith(f"{PACKAGE}.")
            and name != PACKAGE
            and not any(name == shared or name.startswith(f"{shared}.") for shared in SHARED)
        }
        if ours:
            foreign[module] = sorted(ours)
    assert foreign == {}
