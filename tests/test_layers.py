"""Layers go one way: base helpers <- models/, datasets/ <- the loop, runs, report <- scripts.

Every import of the project's own code (read with ast, never executed) is checked against the layer table
below; a module outside it is an error. The README's "Code map" describes the same table.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"tests", "docs", "data", "runs"}

# utils/ holds two layers. The base: what models/ and datasets/ may use.
BASE = {"utils", "utils.errors", "utils.ops", "utils.paths", "utils.classes", "utils.device", "utils.distributed",
        "utils.checkpoint", "utils.schedule", "utils.metrics", "utils.complexity", "utils.losses", "utils.config",
        "utils.data", "utils.fast", "utils.stats"}
# Every other module of utils/ sits above models/ and datasets/: the loop, adaptation methods, run folders,
# results, report and plots (a new method module lands here without an edit of this file). They receive models
# and datasets as arguments and never import them (utils/ is one package: an import would make a package cycle).
LOOP_EXAMPLES = {"utils.engine", "utils.adaptation", "utils.runs", "utils.results", "utils.report", "utils.plots"}
TOOLS = {"benchmark", "predict"}  # top-level programs beside the step scripts (step*.py)
STUDIES = {"study"}  # runs the step scripts' commands (and reads their constants from their source)


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the project (a package by its ``__init__``)."""
    out = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP or any(p.startswith(".") for p in rel.parts):
            continue
        name = ".".join(rel.with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (``from pkg import submodule`` counts the submodule; a
    submodule importing its own package's ``__init__``, where re-exports live, is no layer edge)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in known.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                subs = [f"{base}.{a.name}" if base else a.name for a in node.names]
                names = [s for s in subs if s in known] or [base]
            else:
                continue
            for name in names:
                target = _resolve(name, known)
                if target and target != mod and not mod.startswith(target + "."):
                    edges[mod].add(target)
    return edges


def layer(mod: str) -> str:
    if mod in BASE:
        return "base"
    if mod.startswith("utils."):
        return "loop"
    if mod.split(".")[0] in ("models", "datasets"):
        return "models/datasets"
    if mod in TOOLS or ("." not in mod and mod.startswith("step")):
        return "script"
    if mod in STUDIES:
        return "study"
    return "unplaced"


def is_script(mod: str) -> bool:
    return layer(mod) == "script"


ALLOWED = {"base": {"base"}, "models/datasets": {"base", "models/datasets"}, "loop": {"base", "loop"},
           "script": {"base", "models/datasets", "loop"}, "study": {"base", "loop"}}


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import that goes against the layers, as "a -> b (why)"."""
    out = []
    for mod, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = layer(mod), layer(target)
            if a == "unplaced" or b == "unplaced":
                out.append(f"{mod} -> {target} (place the new module in tests/test_layers.py)")
            elif b not in ALLOWED[a]:
                out.append(f"{mod} -> {target} ({a} may not import {b})")
            elif a == b == "models/datasets" and mod.split(".")[0] != target.split(".")[0]:
                out.append(f"{mod} -> {target} (models/ and datasets/ do not import each other)")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def package_edges(edges: dict[str, set[str]], known: dict[str, Path]) -> dict[str, set[str]]:
    def package(m: str) -> str:
        return m if known[m].name == "__init__.py" or "." not in m else m.rpartition(".")[0]

    out: dict[str, set[str]] = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if package(a) != package(b):
                out[package(a)].add(package(b))
    return out


KNOWN = modules(ROOT)
EDGES = import_graph(KNOWN)


def test_every_module_has_a_layer():
    assert [m for m in KNOWN if layer(m) == "unplaced"] == []
    assert {layer(m) for m in LOOP_EXAMPLES} == {"loop"} and LOOP_EXAMPLES <= set(KNOWN)
    assert len([m for m in KNOWN if is_script(m) and m.startswith("step")]) == 5  # the course's four and step 6


def test_imports_follow_the_layers():
    assert violations(EDGES) == []


def test_no_import_cycle_between_modules_or_packages():
    assert cycles(EDGES) == []
    assert cycles(package_edges(EDGES, KNOWN)) == []


def test_nothing_imports_a_step_script():
    assert [f"{a} -> {b}" for a, bs in EDGES.items() for b in bs if is_script(b)] == []


@pytest.mark.parametrize("source,bad", [
    ("from utils.engine import fit\n", "models.bisenet -> utils.engine (models/datasets may not import loop)"),
    ("import datasets.cityscapes\n", "models.bisenet -> datasets.cityscapes (models/ and datasets/ do not import"),
    ("import step2b_bisenet_cityscapes\n", "models.bisenet -> step2b_bisenet_cityscapes (models/datasets may not"),
])
def test_a_model_importing_the_loop_is_caught(tmp_path, source, bad):
    """The checks above can fail: a copy of the project whose BiSeNet imports the loop, a dataset or a script."""
    known = dict(KNOWN)
    fake = tmp_path / "bisenet.py"
    fake.write_text(KNOWN["models.bisenet"].read_text() + source)
    known["models.bisenet"] = fake
    found = violations(import_graph(known))
    assert any(v.startswith(bad) for v in found), found


def test_a_cycle_is_caught():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
