"""The package's shape, checked from the source: the folders are layers, imports only point inwards.

Every import counts, the ones inside functions included (a lazy import is still a dependency, and the
engine → prepare → engine cycle this replaced was one). `if TYPE_CHECKING:` blocks are skipped. The layers and
what each may import are docs/architecture.md's "Layers".
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dsgkd"
# innermost first; "" is the package's top-level modules: errors, registry, choices, constants, storage, config
LAYERS = ("", "data", "models", "core", "pipeline", "search", "report", "experiments", "cli")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported_names(tree: ast.AST, here: str, is_package: bool) -> set[str]:
    """Fully qualified names of everything imported (module or module.attribute)."""
    out: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            out.update(f"{base}.{a.name}" for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return out


def dsgkd_edges() -> dict[str, set[str]]:
    """module → the dsgkd modules it imports: `from pkg import name` is an edge to pkg.name when that is a
    module, else to pkg. (The parent packages a submodule import initialises are not edges: their
    `__init__`s hold docstrings or re-exports only.)"""
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for full in imported_names(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py"):
            if not full.startswith("dsgkd"):
                continue
            while full not in MODULES:
                full = full.rpartition(".")[0]
            if full != name and full != "dsgkd":
                targets.add(full)
        graph[name] = targets
    return graph


def external_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.split(".")[0] for n in imported_names(tree, module_name(path), path.name == "__init__.py")}


def layer(module: str) -> int:
    """The module's layer: the index in LAYERS of the sub-package it lives in ("" for a top-level module)."""
    parts = module.split(".")
    return LAYERS.index(parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else "")


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a module in a layer further out than the importer's."""
    return sorted(f"{src} -> {dst}" for src, dsts in graph.items() for dst in dsts if layer(dst) > layer(src))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_every_module():
    graph = dsgkd_edges()
    assert {"dsgkd.core.engine", "dsgkd.pipeline.teachers", "dsgkd.search.tune", "dsgkd.cli.main"} <= set(graph)
    assert "dsgkd.core.engine" in graph["dsgkd.pipeline.teachers"]
    assert "dsgkd.core.distiller" in graph["dsgkd.core.engine"]


def test_no_import_cycles():
    assert cycles(dsgkd_edges()) == []


def test_cycle_finder_finds_a_lazy_cycle():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_every_package_is_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert packages == set(LAYERS) - {""}


def test_imports_point_inwards_only():
    """Each layer imports only its own and the layers below it, at package level: the names of choices and the
    config at the bottom, then data, models, core, pipeline, search, report, experiments, cli."""
    assert upward_edges(dsgkd_edges()) == []


@pytest.mark.parametrize("src, dst", [("dsgkd.config", "dsgkd.core.terms"), ("dsgkd.data.emr", "dsgkd.models.load"),
                                      ("dsgkd.models.tiny", "dsgkd.core.align"),
                                      ("dsgkd.core.engine", "dsgkd.pipeline.prepare")])
def test_a_planted_upward_edge_fails(src, dst):
    tree = dsgkd_edges()
    planted = {**tree, src: tree[src] | {dst}}
    assert set(upward_edges(planted)) - set(upward_edges(tree)) == {f"{src} -> {dst}"}


def test_the_bottom_names_every_choice_without_torch():
    """The config validates every registered choice (reading each registry imports its home) without loading
    torch: `dsgkd train --help` and a config check stay fast."""
    code = ("import sys; from dsgkd import choices; from dsgkd.config import RunConfig; RunConfig(); "
            "assert all(list(getattr(choices, n)) for n in ('SELECTORS', 'HIDDEN_LOSSES', 'LAYER_MAPS', "
            "'THRESHOLD_RULES', 'KD_TERMS')); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_only_the_search_package_imports_ray():
    users = sorted(name for name, path in MODULES.items() if "ray" in external_imports(path))
    assert users and all(name.startswith("dsgkd.search.") for name in users), users


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_400_lines(name):
    assert len(MODULES[name].read_text(encoding="utf-8").splitlines()) <= MAX_LINES
