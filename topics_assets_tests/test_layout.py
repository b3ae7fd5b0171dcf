"""The layout's rules, checked on the source: no import cycles, Dagster only in the Dagster layer,
SQL only in the store."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "topics_assets"
DAGSTER_LAYER = ("defs", "definitions.py")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, top_level_only: bool, modules: frozenset[str] = frozenset()) -> set[str]:
    """Modules this one imports; with top_level_only, the ones run when it is imported."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names}
            found.update(subs)
            if not subs <= modules:  # `from pkg import submodule` needs the submodule, not pkg's __init__
                found.add(base)
    return found


def test_no_import_cycles():
    modules = _modules()
    names = frozenset(modules)
    graph = {m: {i for i in _imports(m, p, True, names) if i in modules and i != m}
             for m, p in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_core_imports_no_dagster():
    offenders = []
    for name, path in _modules().items():
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in DAGSTER_LAYER or rel.parts[0] == "cli":
            continue
        if any(i == "dagster" or i.startswith(("dagster.", "dagster_")) for i in _imports(name, path, False)):
            offenders.append(name)
    assert not offenders, f"Dagster imported outside defs/, definitions.py and cli/: {offenders}"


def test_sql_stays_in_the_store():
    """No query is written outside store/: user SQL (`topics sql`) passes through, none is composed."""
    offenders = []
    for name, path in _modules().items():
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("store", "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "query_df", "sql")
                    and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"SQL written outside store/: {offenders}"
