"""headprobe's imports point down (docs/architecture.md): the import graph, function-level
imports included (``if TYPE_CHECKING:`` blocks left out), has no cycle, and no module imports a
layer above its own or a sibling package of its layer."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "headprobe"

#: Bottom to top. A module may import its own layer's leaves, its own package, and any layer
#: below; a name is matched by its longest prefix here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("headprobe._version", "headprobe.errors", "headprobe.heads", "headprobe.paths",
     "headprobe.atomic", "headprobe.runs", "headprobe.settings", "headprobe.progress",
     "headprobe.outputs", "headprobe.cachefiles", "headprobe.interrupts",
     "headprobe.notebook"),
    ("headprobe.claims",),
    ("headprobe.model",),
    ("headprobe.cache", "headprobe.generate"),
    ("headprobe.evaluation",),
    ("headprobe.report", "headprobe.discovery", "headprobe.regression", "headprobe.sentence_sets"),
    ("headprobe.engine",),
    ("headprobe.commands", "headprobe.cli", "headprobe.pytest_plugin", "headprobe.strategies",
     "headprobe"),  # the package itself: `headprobe.load`
)
#: Imports between packages of one layer that are part of the design.
SIDEWAYS = {("headprobe.cli", "headprobe.commands")}


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def _type_checking_only(tree: ast.Module) -> set[int]:
    skipped = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    return skipped


def imports_of(name: str, path: Path, names: Iterable[str]) -> set[str]:
    """The headprobe modules ``name`` imports, wherever the import stands."""
    known = set(names)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                found.add(target)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    names = module_names(package)
    return {name: imports_of(name, path, names) for name, path in names.items()}


def layer_of(name: str) -> tuple[int, str]:
    """(layer index, the prefix that placed it)."""
    best = max(((len(prefix), index, prefix) for index, layer in enumerate(LAYERS)
                for prefix in layer
                if name == prefix or (prefix != "headprobe" and name.startswith(prefix + "."))),
               default=None)
    if best is None:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")
    return best[1], best[2]


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """Every import that points up, or sideways into another package of the same layer."""
    wrong = []
    for name, targets in sorted(graph.items()):
        layer, prefix = layer_of(name)
        for target in sorted(targets):
            target_layer, target_prefix = layer_of(target)
            sideways_ok = (target_prefix == prefix or layer == 0
                           or (prefix, target_prefix) in SIDEWAYS
                           or target_prefix == "headprobe._version")
            if target_layer > layer or (target_layer == layer and not sideways_ok):
                wrong.append(f"{name} imports {target}")
    return wrong


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_import_graph_has_no_cycle(graph):
    assert cycles(graph) == []


def test_every_import_points_down_the_layers(graph):
    wrong = upward_imports(graph)
    assert wrong == [], "\n".join(wrong)


def test_every_module_belongs_to_a_layer(graph):
    for name in graph:
        layer_of(name)


def test_an_upward_import_is_caught_even_inside_a_function(tmp_path):
    package = tmp_path / "headprobe"
    (package / "claims").mkdir(parents=True)
    (package / "engine").mkdir()
    for init in (package, package / "claims", package / "engine"):
        (init / "__init__.py").write_text("")
    (package / "engine" / "run.py").write_text("from headprobe.claims import spec\n")
    (package / "claims" / "spec.py").write_text(
        "def late():\n    from headprobe.engine.run import x\n")
    built = import_graph(package)
    assert upward_imports(built) == ["headprobe.claims.spec imports headprobe.engine.run"]
    assert cycles(built) == [["headprobe.claims.spec", "headprobe.engine.run"]]


def test_an_import_under_type_checking_is_not_counted(tmp_path):
    package = tmp_path / "headprobe"
    (package / "claims").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "claims" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from headprobe.engine import x\n")
    (package / "engine.py").write_text("")
    assert upward_imports(import_graph(package)) == []
