"""The package's shape, as docs/architecture.md draws it: every module named there, in
an order where each module imports only modules listed below it (so there are no import cycles,
function-level imports included), and no module longer than ~500 lines without a stated reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "evalharness"
MAX_LINES = 500
LONG_REASON = "Longer than 500 lines:"  # what a long module's docstring says, and why


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages as their __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The package module an imported name lives in (the longest dotted prefix that is a module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _import_nodes(module: str, tree: ast.Module) -> list[ast.AST]:
    """Every node of a module, except, in the root package, the body of its PEP 562 `__getattr__`: the
    root `__init__` runs before any submodule, so it imports nothing itself, and re-exports the public
    API (evalharness.api) only when a user asks for a name; that is not a dependency of the modules
    below it. Anywhere else a function-level import counts."""
    lazy: set[int] = set()
    if module == "evalharness":
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                lazy |= {id(n) for n in ast.walk(node)}
    return [n for n in ast.walk(tree) if id(n) not in lazy]


def import_graph() -> dict[str, set[str]]:
    """module -> package modules it imports anywhere in its body (`from a import b` where b is a
    submodule counts as importing a.b; importing a package runs its __init__, so it counts too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _import_nodes(module, ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module if is_package else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                names = [source] + [f"{source}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("evalharness"):
                    continue
                target = _target(name, modules)
                # `import evalharness.a.b` also runs evalharness/__init__ and evalharness/a/__init__
                while target and target != module:
                    graph[module].add(target)
                    parent = target.rpartition(".")[0]
                    target = parent if parent in modules and module != parent else None
    for module in graph:
        graph[module].discard(module)
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}  # own packages
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def architecture_doc_modules() -> list[str]:
    """The modules docs/architecture.md's listing names, top to bottom, as dotted names."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("# Architecture", 1)[1]
    block = section.split("```", 2)[1]
    out = []
    for line in block.splitlines():
        match = re.match(r"^\s*(evalharness/\S+?\.py)\b", line)
        if match:
            parts = list(Path(match.group(1)).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append(".".join(parts))
    return out


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_graph_sees_function_level_and_package_imports():
    """The checker itself: a lazy import inside a function is an edge, and so is a package's
    __init__ that a `from evalharness.x.y import z` runs."""
    graph = import_graph()
    assert "evalharness.encoders.loading" in graph["evalharness.train.trainer"]  # inside a function
    assert "evalharness.examples" in graph["evalharness.prompts"]  # the package __init__
    # the root package imports nothing at import time; its lazy re-exports are not edges
    assert graph["evalharness"] == set()
    import evalharness

    assert evalharness.evaluate.__module__ == "evalharness.api"


def test_architecture_doc_names_every_module_in_import_order():
    graph = import_graph()
    listed = architecture_doc_modules()
    assert len(listed) == len(set(listed)), "a module is listed twice"
    missing = sorted(set(graph) - set(listed))
    extra = sorted(set(listed) - set(graph))
    assert not missing and not extra, f"docs/architecture.md: missing {missing}, no such module {extra}"
    position = {m: i for i, m in enumerate(listed)}
    upward = sorted(
        f"{m} imports {t}, listed above it"
        for m, targets in graph.items()
        for t in targets
        if position[t] < position[m]
    )
    assert not upward, "\n".join(upward)


def test_modules_are_short_or_say_why():
    long = []
    for module, path in _modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and LONG_REASON not in doc:
            long.append(f"{module}: {lines} lines")
    assert not long, long
