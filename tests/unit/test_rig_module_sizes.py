"""Size limits for rig/: one job per module, so none grows past what a reader takes in at once.

No module over 500 lines, no class over 400, no function (or method) over 80, counted from
the ``def``/``class`` line to the last line of the body. A module, class or function that
must stay longer is listed in :data:`EXCEPTIONS` with the size it may reach and why; going
past that size fails too.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

RIG = Path(__file__).resolve().parents[2] / "rig"
LIMITS = {"module": 500, "class": 400, "function": 80}

#: (path relative to the repository, kind, name) -> (the size it may reach, why)
EXCEPTIONS: dict[tuple[str, str, str], tuple[int, str]] = {
    ("rig/hil.py", "module", ""): (
        720,
        (
            "the HIL bench and its scenario steps in one module, left whole while the real-board "
            "work (issue 15) changes it; split it by job (bench, scenario steps) next"
        ),
    ),
    ("rig/hil.py", "class", "Bench"): (
        600,
        ("Bench holds flashing, the OTA request, readback and the jump check of one board; see rig/hil.py"),
    ),
}


def _measure() -> dict[tuple[str, str, str], int]:
    """Size in lines of every module, class and function under rig/."""
    sizes: dict[tuple[str, str, str], int] = {}
    for path in sorted(RIG.rglob("*.py")):
        rel = path.relative_to(RIG.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        sizes[(rel, "module", "")] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, filename=rel)):
            if isinstance(node, ast.ClassDef):
                kind = "class"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "function"
            else:
                continue
            assert node.end_lineno is not None
            key = (rel, kind, node.name)
            sizes[key] = max(sizes.get(key, 0), node.end_lineno - node.lineno + 1)
    return sizes


@pytest.fixture(scope="module")
def sizes() -> dict[tuple[str, str, str], int]:
    return _measure()


def test_rig_is_measured(sizes: dict[tuple[str, str, str], int]) -> None:
    assert ("rig/board.py", "module", "") in sizes and ("rig/diff.py", "function", "analyze") in sizes


def test_size_limits(sizes: dict[tuple[str, str, str], int]) -> None:
    over = []
    for key, size in sizes.items():
        path, kind, name = key
        limit, why = EXCEPTIONS.get(key, (LIMITS[kind], ""))
        if size > limit:
            what = f"{path}" + (f" {kind} {name}" if name else "")
            if why:
                over.append(f"{what}: {size} lines, over its exception's {limit} ({why})")
            else:
                over.append(
                    f"{what}: {size} lines, over the {limit}-line limit for a {kind}: split it by job "
                    "(or, if it must stay longer, list it in EXCEPTIONS with the reason, and say "
                    "why in its docstring)"
                )
    assert not over, "\n".join(over)


def test_exceptions_name_real_code(sizes: dict[tuple[str, str, str], int]) -> None:
    missing = [key for key in EXCEPTIONS if key not in sizes]
    assert not missing, f"exceptions for code that does not exist (remove them): {missing}"
    for key, (_, why) in EXCEPTIONS.items():
        assert why.strip(), f"{key}: an exception needs its reason"
    stale = [key for key in EXCEPTIONS if sizes[key] <= LIMITS[key[1]]]
    if stale:  # not a failure: whoever shrank it may not own this file
        warnings.warn(f"size exceptions no longer needed, remove them: {stale}", stacklevel=1)
