"""The package's shape, read from its source with `ast`: layers that only import downward (imports inside
functions count), no import cycle, and functions and modules small enough to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

from helpers import ROOT

# Bottom to top. A module may import from its own layer or any layer below, never from one above.
LAYERS = [
    ("errors", ["cgtools.errors", "cgtools.limits", "cgtools.memory", "cgtools.threads", "cgtools.files",
                "cgtools.notebook"]),
    ("values and gradients", ["cgtools.values", "cgtools.gradients", "cgtools.onnx.mapping", "cgtools.onnx"]),
    ("ops", ["cgtools.ops"]),
    ("engine", ["cgtools.backward", "cgtools.compiled", "cgtools.interpreter", "cgtools.runs",
                "cgtools.numerics"]),
    ("parts, checks and the JSON form", ["cgtools.parts", "cgtools.checks", "cgtools.json_format"]),
    ("graph", ["cgtools.graph"]),
    ("formats", ["cgtools.onnx.read", "cgtools.onnx.roles", "cgtools.onnx.write", "cgtools.expr", "cgtools.tensor"]),
    ("export", ["cgtools.export"]),
    ("façade", ["cgtools.io", "cgtools.optim", "cgtools.train", "cgtools.compare", "cgtools.gradcheck",
                 "cgtools.info", "cgtools.losses", "cgtools.profile"]),
    ("applications", ["cgtools.cli", "cgtools.onnx.conformance", "cgtools"]),
]
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name: cgtools/ and cli/ (installed as cgtools.cli)."""
    found = {}
    for folder, package in ((ROOT / "cgtools", "cgtools"), (ROOT / "cli", "cgtools.cli")):
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, known: set[str], package: str = "") -> set[str]:
    """The package modules a file imports anywhere in it (inside functions too), except under TYPE_CHECKING;
    relative imports are resolved from `package`, the file's own package."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            for alias in node.names:  # `from cgtools import values` imports the module, not the package
                names.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
    return {name for name in names if name in known}


def layer_of(module: str) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


@pytest.fixture(scope="module")
def import_graph() -> nx.DiGraph:
    found = modules()
    G = nx.DiGraph()
    G.add_nodes_from(found)
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        G.add_edges_from((name, target) for target in imported(path, set(found), package) if target != name)
    return G


def test_the_package_has_no_import_cycle(import_graph):
    assert len(import_graph) > 40 and import_graph.number_of_edges() > 80  # the walk found the package
    cycles = list(nx.simple_cycles(import_graph))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:5])


def test_every_import_goes_down_the_layers(import_graph):
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, b in import_graph.edges if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def data_lines(tree: ast.Module) -> int:
    """Lines of module-level tables: assignments of literal dicts, lists, tuples and sets."""
    tables = (ast.Dict, ast.List, ast.Tuple, ast.Set)
    return sum(node.end_lineno - node.lineno + 1 for node in tree.body
               if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, tables))


def test_functions_and_modules_are_small_enough_to_read_at_once():
    long = []
    for name, path in sorted(modules().items()):
        tree = ast.parse(path.read_text())
        lines = len(path.read_text().splitlines()) - data_lines(tree)
        if lines > MAX_MODULE_LINES:
            long.append(f"module {name}: {lines} lines (tables of data not counted)")
        long += [f"{name}.{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
                 for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_the_walk_counts_imports_inside_functions_and_sees_a_long_one(tmp_path):
    """The walk itself: imports inside functions count, TYPE_CHECKING ones do not."""
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cgtools.io\n"
                      "def f():\n    from cgtools.export import draw\n" + "    x = 1\n" * 60)
    known = {"cgtools", "cgtools.io", "cgtools.export", "cgtools.export.dot", "cgtools.values"}
    assert imported(source, known) == {"cgtools.export"}
    tree = ast.parse(source.read_text())
    assert [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES] == ["f"]
    source.write_text("from cgtools import values\nfrom cgtools.export import dot, draw\n")
    assert imported(source, known) == {"cgtools.values", "cgtools.export.dot", "cgtools.export"}
    source.write_text("from . import dot\nfrom .. import io\nfrom .dot import draw\n")
    assert imported(source, known, "cgtools.export") == {"cgtools.export.dot", "cgtools.io"}
    assert layer_of("cgtools.export.dot") > layer_of("cgtools.graph") > layer_of("cgtools.ops.base")


def test_the_readme_layout_names_every_module_and_only_those():
    """Each module has a line with its role in the README's layout, and every path named there exists."""
    section = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    named = {}
    for line in section.splitlines():
        path, _, role = line.partition(" ")
        if path.endswith(".py"):
            named[path] = role.strip()
    on_disk = {str(path.relative_to(ROOT)) for path in modules().values()}
    assert set(named) == on_disk, f"missing: {sorted(on_disk - set(named))}, stale: {sorted(set(named) - on_disk)}"
    assert all(named.values()), [path for path, role in named.items() if not role]
