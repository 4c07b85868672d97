"""The shape of the house: what a module may load, checked by importing it in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

SHOW_MODULES = ["agentsync_fleet.output", "agentsync_fleet.output.health", "agentsync_fleet.output.sync",
                "agentsync_fleet.output.history", "agentsync_fleet.output.transfer", "agentsync_fleet.output.relay",
                "agentsync_fleet.output.artifacts", "agentsync_fleet.output.claims",
                "agentsync_fleet.output.locks", "agentsync_fleet.output.status", "agentsync_fleet.records"]


def imported_modules(module: str) -> set[str]:
    """Every module `import module` loads, as `python -X importtime` lists them."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_rendering_a_health_report_does_not_load_paramiko():
    loaded = imported_modules("agentsync_fleet.output.health")
    assert "agentsync_fleet.output.health" in loaded  # the listing is real
    assert not {m for m in loaded if m.split(".")[0] in ("paramiko", "fabric")}


@pytest.mark.parametrize("module", SHOW_MODULES)
def test_show_and_records_load_without_the_wire(module):
    loaded = imported_modules(module)
    assert module in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("paramiko", "fabric")
                or m.startswith(("agentsync_fleet.connection", "agentsync_fleet.remote"))}


def our_import_graph() -> dict[str, set[str]]:
    """Every import between agentsync_fleet's modules, function-level ones included (grimp reads them all)."""
    import grimp

    graph = grimp.build_graph("agentsync_fleet", cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def cycle_in(edges: dict[str, set[str]]) -> list[str]:
    """One cycle of `edges` (a list of nodes, the first repeated at the end), or [] if there is none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_module_imports_itself_back_through_others():
    graph = our_import_graph()
    assert len(graph) > 50  # the graph is real
    assert cycle_in(graph) == []


def test_no_package_imports_itself_back_through_others():
    def room(module: str) -> str:  # agentsync_fleet.sync.stages -> agentsync_fleet.sync
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, imported in our_import_graph().items():
        packages.setdefault(room(module), set()).update(room(i) for i in imported if room(i) != room(module))
    assert cycle_in(packages) == []


def test_only_the_face_imports_our_modules_inside_functions():
    """The Face (cli.py, commands/, and the start-up path launch.py and _startup.py) imports lazily for
    start-up time; everywhere else imports sit at the top (or in a top-level `if TYPE_CHECKING:` block),
    where the import contract (`make lint`) sees them."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "agentsync_fleet"
    hidden = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel in ("cli.py", "launch.py", "_startup.py") or rel.startswith("commands/"):
            continue
        tree = ast.parse(path.read_text())
        typing_only = [node.body for node in tree.body
                       if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"]
        top = {id(node) for node in [*tree.body, *(n for body in typing_only for n in body)]}
        for node in ast.walk(tree):
            ours = (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("agentsync_fleet"))
                    or isinstance(node, ast.Import) and any(a.name.startswith("agentsync_fleet") for a in node.names))
            if ours and id(node) not in top:
                hidden.append(f"{rel}:{node.lineno}")
    assert hidden == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": set()}) == []
