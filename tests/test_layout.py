"""The package's layout: stages as folders, imports only down the chain, no import cycle.

The import graph is read from the source with ``ast`` (every ``import`` and ``from ... import``,
also those inside functions), so a cycle cannot hide in a function body. Imports of modules
outside the package (the optional extras among them) are not edges.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stochctl"

#: The stages, lowest first (docs/DESIGN.md, Layout): a module may import its own folder and lower
#: ranks only. ``base`` is the package's top-level helper modules; ``documents``, ``figures``, ``cli``,
#: the ``policy`` face and the package face sit on the side, above what they read.
RANKS = {
    "base": 0, "models": 1, "symbolic": 2, "solvers": 3, "analysis": 4, "tables": 5, "documents": 5,
    "policies": 6, "trainers": 7, "study": 8, "policy": 8, "figures": 9, "cli": 10, "face": 11,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file, submodules resolved)."""
    graph = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if parts[1] in RANKS and (len(parts) > 2 or (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "base"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def without_parents(graph):
    """The graph without edges from a module to the packages that contain it (Python imports those first anyway)."""
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_every_folder_is_a_known_stage():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(RANKS), f"folders without a stage: {sorted(folders - set(RANKS))}"


def test_no_module_level_import_cycle():
    assert cycles(without_parents(import_graph(modules()))) == []


def test_no_folder_level_import_cycle():
    graph = import_graph(modules())
    folder = {}
    for m, ts in graph.items():
        folder.setdefault(stage(m), set()).update(stage(t) for t in ts if stage(t) != stage(m))
    assert cycles(folder) == []


def test_imports_point_down_the_chain():
    graph = import_graph(modules())
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                    if stage(t) != stage(m) and RANKS[stage(t)] >= RANKS[stage(m)])
    assert upward == []


def test_no_cycle_dodges():
    """No import placed below code to dodge a cycle, no importlib loading the package's own modules."""
    bad = []
    for name, path in modules().items():
        text = path.read_text()
        if re.search(r"noqa:[^\n]*E402", text):
            bad.append(f"{name}: noqa E402")
        for m in re.finditer(r"import_module\(([^)]*)\)", text):
            if "stochctl" in m.group(1) or "__name__" in m.group(1) or "__package__" in m.group(1) \
                    or m.group(1).strip().startswith(("f\".", "\".")):
                bad.append(f"{name}: import_module({m.group(1)})")
    assert bad == []


# ---------------------------------------------------------------- the checks can fail
def test_cycle_finder_finds_planted_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_import_is_an_edge(tmp_path, monkeypatch):
    pkg = tmp_path / "stochctl"
    (pkg / "solvers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "solvers" / "__init__.py").write_text("")
    (pkg / "solvers" / "a.py").write_text("def f():\n    from ..analysis import b\n")
    (pkg / "analysis").mkdir()
    (pkg / "analysis" / "__init__.py").write_text("")
    (pkg / "analysis" / "b.py").write_text("from ..solvers.a import f\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    graph = import_graph(modules())
    assert "stochctl.analysis" in graph["stochctl.solvers.a"] or "stochctl.analysis.b" in graph["stochctl.solvers.a"]
    assert "stochctl.solvers.a" in graph["stochctl.analysis.b"]
    with pytest.raises(AssertionError):
        test_imports_point_down_the_chain()
