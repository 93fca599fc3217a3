"""The package's layout: no import cycles between modules, no module over 400 lines, and the pieces
(params, objectives, transforms) free of the spec classes. The imports are read with ast, not run."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import featviz_cli

PACKAGE = Path(featviz_cli.__file__).resolve().parent
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    """One import of a package module by another: at module level (run on import) or inside a function."""

    source: str
    target: str
    line: int
    lazy: bool


def module_name(path: Path) -> str:
    """``featviz_cli.params.base`` for ``featviz_cli/params/base.py``; a package is its ``__init__``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, lazy: bool = False):  # noqa: ANN202 - yields (import node, lazy)
    """The import statements under ``node``; inside a function they are lazy. ``if TYPE_CHECKING:`` never runs."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, lazy
        elif isinstance(child, ast.If) and _type_checking(child):
            continue
        else:
            yield from _walk(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """The package modules ``name`` imports, relative imports resolved; ``from M import n`` names M.n when
    that is a module, else M."""
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, lazy in _walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
            names = [alias.name for alias in node.names if f"{module}.{alias.name}" not in known]
            targets = subs + ([module] if names or not subs else [])
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a package module: its deepest known part
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append(Import(name, target, node.lineno, lazy))
    return found


def all_imports() -> list[Import]:
    """Every import between the package's modules."""
    mods = modules()
    return [imp for name, path in mods.items() for imp in imports_of(name, path, set(mods))]


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
    return sorted(found)


def _describe(component: list[str], edges: list[Import]) -> str:
    inside = [f"{e.source} -> {e.target} (line {e.line}{', lazy' if e.lazy else ''})" for e in edges
              if e.source in component and e.target in component]
    return "{" + ", ".join(component) + "}: " + "; ".join(inside)


def test_the_import_reader_resolves_relative_and_submodule_imports() -> None:
    edges = {(e.source, e.target, e.lazy) for e in all_imports()}
    assert ("featviz_cli.params", "featviz_cli.params.cppn", False) in edges  # from . import cppn
    assert ("featviz_cli.params.base", "featviz_cli.runtime", False) in edges  # from ..runtime import to_device
    assert ("featviz_cli.recipe", "featviz_cli.objectives", False) in edges  # from . import objectives as obj
    assert ("featviz_cli.cli", "featviz_cli.api", True) in edges  # inside a command
    assert cycles([Import("a", "b", 1, False), Import("b", "c", 2, False), Import("c", "a", 3, False),
                   Import("c", "d", 4, False)]) == [["a", "b", "c"]]


def test_no_import_cycles_at_module_level() -> None:
    edges = all_imports()
    eager = [e for e in edges if not e.lazy]
    found = cycles(eager)
    lazy_cycles = [c for c in cycles(edges) if c not in found]
    print(f"{len(edges)} imports between the package's modules: {len(eager)} at module level, "
          f"{len(edges) - len(eager)} inside functions")
    # Function-level imports that close a cycle are allowed (they run after both modules are loaded): listed.
    for component in lazy_cycles:
        print("closed by a lazy import:", _describe(component, edges))
    assert not found, "import cycles at module level:\n" + "\n".join(_describe(c, eager) for c in found)


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{k} ({v})" for k, v in sorted(long.items()))


def test_the_pieces_never_import_the_spec() -> None:
    """params/, objectives/ and transforms.py take plain data: no import of featviz_cli.config, eager or lazy."""
    pieces = [n for n in modules() if n.startswith(("featviz_cli.params", "featviz_cli.objectives"))]
    pieces.append("featviz_cli.transforms")
    assert "featviz_cli.params.base" in pieces and "featviz_cli.objectives.units" in pieces
    config = [e for e in all_imports() if e.source in pieces
              and (e.target == "featviz_cli.config" or e.target.startswith("featviz_cli.config."))]
    assert not config, [f"{e.source} imports {e.target} (line {e.line})" for e in config]
