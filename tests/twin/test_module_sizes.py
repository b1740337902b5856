"""Size limits of the twin's code (issue 14): no module over 500 lines, no class over 400,
no function over 80, and every module says what it owns and what it must not touch.

A longer one is allowed only where its own docstring says why: a line starting with
``Longer than the size limit:`` followed by the reason. Today nothing in twin/ needs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TWIN = Path(__file__).resolve().parents[2] / "twin"
MODULE_LINES, CLASS_LINES, FUNCTION_LINES = 500, 400, 80
MARKER = "Longer than the size limit:"

SOURCES = sorted(TWIN.rglob("*.py"))


def _documented(node: ast.AST) -> bool:
    doc = ast.get_docstring(node) or ""  # type: ignore[arg-type]
    return any(
        line.strip().startswith(MARKER) and len(line.strip()) > len(MARKER) + 10 for line in doc.splitlines()
    )


def _too_long(path: Path, root: Path = TWIN.parent) -> list[str]:
    """What in the module at ``path`` breaks a limit without saying why."""
    source = path.read_text()
    tree = ast.parse(source)
    name = path.relative_to(root).as_posix()
    found = []
    lines = len(source.splitlines())
    if lines > MODULE_LINES and not _documented(tree):
        found.append(f"{name}: module of {lines} lines (limit {MODULE_LINES})")

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                size = child.end_lineno - child.lineno + 1  # type: ignore[operator]
                limit = CLASS_LINES if isinstance(child, ast.ClassDef) else FUNCTION_LINES
                what = "class" if isinstance(child, ast.ClassDef) else "function"
                if size > limit and not _documented(child):
                    found.append(f"{name}: {what} {prefix}{child.name} of {size} lines (limit {limit})")
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def test_the_twin_has_sources() -> None:
    assert len(SOURCES) > 30


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(TWIN.parent).as_posix())
def test_size_limits(path: Path) -> None:
    assert _too_long(path) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(TWIN.parent).as_posix())
def test_module_docstring_says_what_it_owns_and_must_not_touch(path: Path) -> None:
    doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
    assert "Owns:" in doc and "Must not touch:" in doc, (
        f"{path.name}: docstring lacks 'Owns:' / 'Must not touch:'"
    )


def test_an_undocumented_long_function_is_caught(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n")
    assert _too_long(tmp_path / "long.py", tmp_path) == ["long.py: function f of 81 lines (limit 80)"]
    doc = f'    """Too long on purpose.\n\n    {MARKER} a generated table of 80 entries."""\n'
    (tmp_path / "long.py").write_text(f"def f():\n{doc}{body}\n")
    assert _too_long(tmp_path / "long.py", tmp_path) == []
