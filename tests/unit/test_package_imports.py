"""The import graph of ``fleetlearn/``: no cycle, and no reaching into another package's
private modules.

Every module's imports are read with ``ast`` (function-local ones included, since they
run too). A cycle between modules makes import order matter and hides which layer
owns what; ``from fleetlearn.X._y import`` from outside package X ties a caller to
code X may change at will: ask X's ``__init__`` for a public name instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fleetlearn

ROOT = Path(fleetlearn.__file__).parent

#: Known violations, each with who removes it (none left after issue 8; a new entry
#: needs a reason). (importer, imported private module)
ALLOWED_PRIVATE: set[tuple[str, str]] = set()
#: Known cycles, same rule.
ALLOWED_CYCLES: list[list[str]] = []
BENCHMARKS = ROOT.parent / "benchmarks"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))
            if "migrations" not in p.relative_to(ROOT).parts}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The fleetlearn modules ``name`` imports (``from P import m`` counts m if a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("fleetlearn"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("fleetlearn"):
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(target)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
    return found


def _private_violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    out = set()
    for importer, imported in ((a, b) for a, deps in graph.items() for b in deps):
        parts = imported.split(".")
        for depth, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                owner = ".".join(parts[:depth])  # the package the private module is in
                if importer != owner and not importer.startswith(owner + "."):
                    out.add((importer, imported))
                break
    return out


def test_the_graph_sees_function_local_and_relative_imports() -> None:
    graph = _graph()
    # fleetlearn/__init__ imports lazily, by name: nothing to see there, but the CLI's
    # verbs import their libraries inside functions.
    assert "fleetlearn.api" in graph["fleetlearn.cli.serve"]
    assert "fleetlearn.serving._state" in graph["fleetlearn.serving"]
    assert len(graph) > 50


def test_no_module_import_cycle_in_fleetlearn() -> None:
    cycles = _cycles(_graph())
    new = [c for c in cycles if c not in ALLOWED_CYCLES]
    assert new == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in new)
    stale = [c for c in ALLOWED_CYCLES if c not in cycles]
    assert stale == [], f"allowed cycles that are gone, remove them: {stale}"


def test_no_package_imports_another_packages_private_module() -> None:
    found = _private_violations(_graph())
    new = sorted(found - ALLOWED_PRIVATE)
    assert new == [], ("private modules imported from outside their package (import the "
                       "package's public name instead): "
                       + ", ".join(f"{a} -> {b}" for a, b in new))
    stale = sorted(ALLOWED_PRIVATE - found)
    assert stale == [], f"allow-list entries no longer needed, remove them: {stale}"


def test_a_cycle_and_a_private_import_are_caught() -> None:
    graph = {"fleetlearn.a": {"fleetlearn.b._x"}, "fleetlearn.b._x": {"fleetlearn.a"},
             "fleetlearn.b": {"fleetlearn.b._x"}}
    assert _cycles(graph) == [["fleetlearn.a", "fleetlearn.b._x"]]
    assert _private_violations(graph) == {("fleetlearn.a", "fleetlearn.b._x")}


#: The one exception, by exact (file, module): scale.py's "no compute" variant of part
#: (o) swaps the driver's task body for one that returns a recorded result, to time
#: orchestration alone; no public name offers that, on purpose.
_BENCHMARK_PRIVATE_OK = {("scale.py", "fleetlearn.training._execute")}


def test_no_benchmark_imports_a_private_module() -> None:
    # A benchmark measures what users run: through the packages' public names.
    known = set(_modules())
    found = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        imports = _imports(f"benchmarks.{path.stem}", path, known)
        found += [(path.name, m) for m in sorted(imports)
                  if any(p.startswith("_") and not p.startswith("__")
                         for p in m.split(".")[1:])
                  and (path.name, m) not in _BENCHMARK_PRIVATE_OK]
    assert found == [], f"benchmarks importing private modules: {found}"
