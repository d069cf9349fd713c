"""The house rules, checked on the source: data flows one way through the
rooms of ``pipeline/`` (no circles, no room importing from a room above it),
no private name is imported from another module, no module outgrows 700
lines, and the page code of the HTML outputs lives in package files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
MAX_LINES = 700

# Rooms from the ground up: a room may import from rooms strictly below it
# (and from itself). The public face (pipeline/__init__) loads names lazily
# and the CLI sits on top of everything.
LAYERS = [
    {"types", "atomic", "about", "config_errors"},
    {"progress"},
    {"config"},
    {"decode"},
    {"embed", "analysis"},
    {"engine"},
    {"report", "store", "clips"},
    {"prepare"},
    {"live"},
    {"run"},
    {"measure"},
    {"explore"},
    {"serve"},
    {"cli"},
]
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every pipeline import in ``module``."""
    path = MODULES[module]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline") \
                and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                is_module = full in MODULES
                out.append((full, "", node.lineno) if is_module else (node.module, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("pipeline")]
    return out


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_belongs_to_a_room():
    assert not sorted(m for m in MODULES if m != "pipeline" and _room(m) not in RANK)


def test_rooms_import_only_from_rooms_below():
    wrong = []
    for module in MODULES:
        if module == "pipeline":
            continue
        for target, _, line in _imports(module):
            here, there = _room(module), _room(target)
            if there and there != here and RANK[there] >= RANK[here]:
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    graph = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return trail[trail.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            circle = visit(nxt, trail + [node])
            if circle:
                return circle
        done.add(node)
        return None

    for module in sorted(MODULES):
        circle = visit(module, [])
        assert circle is None, " -> ".join(circle)


def test_no_private_name_is_imported_from_another_module():
    private = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} takes {target}.{name}"
               for m in MODULES for target, name, line in _imports(m)
               if name.startswith("_") and target != m]
    assert not private, "\n".join(private)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_stays_readable(module):
    path = MODULES[module]
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: over {MAX_LINES} lines"
    if text.strip():
        assert ast.get_docstring(ast.parse(text)), f"{path.name} opens with no docstring"


PAGE_CODE = re.compile(r"\{[^{}]*\b(?:margin|padding|color|font|display|border|width|height)\s*:"
                       r"|\bfunction\s*\(|\bdocument\.|addEventListener|=>\s*\{")


def test_page_code_lives_in_package_files():
    """CSS and scripts of the HTML outputs are package files (page.css,
    report.js, cluster.js...), not Python strings."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings and PAGE_CODE.search(node.value)]
    assert not found, found


def test_the_public_face_names_documented_entry_points():
    import pipeline

    for name in pipeline.__all__:
        value = getattr(pipeline, name)
        assert value.__doc__, name
