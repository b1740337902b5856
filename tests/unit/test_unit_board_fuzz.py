"""Property test of the board-file loader: the shipped board file, mutated as a YAML tree (keys
dropped, renamed, duplicated; values replaced by other types, extreme numbers, long or hostile
strings, deep nests; subtrees moved) and as YAML text (anchors, aliases, tags, flow syntax,
control and non-UTF-8 bytes, truncation).

Invariant per input: :func:`rig.board.load_board` returns a BoardSpec or raises one
ConfigError naming the file, never another exception, within 2 s (SIGALRM), with the process's
address space capped at 512 MiB more than before the run (RLIMIT_AS: a blow-up is a
MemoryError here); the shipped file still loads afterwards. The number of inputs is printed (``-s``/``-rA``)
and recorded as a test-suite property."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_caps import memory_cap, peak_rss, time_cap

from rig.board import BoardSpec, default_board_path, load_board
from rig.errors import ConfigError

SHIPPED = Path(default_board_path()).read_text()
RAW: dict[str, Any] = yaml.safe_load(SHIPPED)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
TIME_CAP = 2.0
MEMORY_CAP = 512 << 20

HOSTILE_TEXT = ["", " ", "\x00", "\x1b[2J", "[/]", "%s{0}", "\u202e", "é", "0x", "32K", "2M", "1.5K", "-1"]
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**32, 2**32 - 1, 2**64, 10**400, 0x08000000, 0x08040000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(["9" * 400, "0x" + "F" * 300, "1" * 5000, "x" * 5000]),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


@st.composite
def tree_mutation(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(RAW)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        kind = draw(st.sampled_from(["replace", "replace", "drop", "rename", "duplicate", "nest", "move"]))
        if kind == "replace":
            parent[key] = draw(value)
        elif kind == "drop":
            del parent[key]
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from([*map(str, parent), "x", "", "app_region", "twin"]))] = parent.pop(
                key
            )
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif kind == "nest":
            node = parent[key]
            for _ in range(draw(st.integers(1, 60))):
                node = [node]
            parent[key] = node
        elif kind == "move":
            other = draw(st.sampled_from(paths))
            if other[: len(path)] != path:
                parent[key] = copy.deepcopy(_parent(doc, other)[other[-1]])
    return yaml.dump(doc, Dumper=DUMPER, allow_unicode=True)


SYNTAX = ["&a ", "*a", "<<: *a\n", "!!binary ", "!!python/object:os.system ", "? ", "- ", "{", "}", "[", "]",
          ": ", "'", '"', "\t", "\n  ", "%YAML 1.1\n", "---\n", "...\n", "|\n", ">\n", "#", "!!set ", "!!int "]  # fmt: skip


@st.composite
def text_mutation(draw: st.DrawFn) -> bytes:
    raw = bytearray((SHIPPED if draw(st.booleans()) else draw(tree_mutation())).encode())
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(raw)))
        kind = draw(st.sampled_from(["syntax", "byte", "delete", "truncate", "duplicate-line"]))
        if kind == "syntax":
            raw[at:at] = draw(st.sampled_from(SYNTAX)).encode()
        elif kind == "byte":
            raw[at:at] = bytes([draw(st.integers(0, 255))])
        elif kind == "delete":
            del raw[at : at + draw(st.integers(1, 40))]
        elif kind == "truncate":
            del raw[at:]
        else:
            start = raw.rfind(b"\n", 0, at) + 1
            end = raw.find(b"\n", at)
            line = bytes(raw[start : end + 1 if end >= 0 else len(raw)])
            raw[start:start] = line
    return bytes(raw)


def check_one(path: Path, data: bytes, stats: dict[str, Any]) -> None:
    path.write_bytes(data)
    t0 = time.monotonic()
    with time_cap(TIME_CAP):
        try:
            spec = load_board(path)
            outcome = "loaded"
            assert isinstance(spec, BoardSpec)
        except ConfigError as exc:
            outcome = "ConfigError"
            assert str(exc).startswith(str(path)), str(exc)
    stats["inputs"] += 1
    stats[outcome] += 1
    stats["slowest"] = max(stats["slowest"], time.monotonic() - t0)


def test_mutated_board_files(
    tmp_path: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    stats: dict[str, Any] = {"inputs": 0, "loaded": 0, "ConfigError": 0, "slowest": 0.0}
    path = tmp_path / "board.yaml"

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=tree_mutation())
    def as_tree(text: str) -> None:
        check_one(path, text.encode(), stats)

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=text_mutation())
    def as_text(data: bytes) -> None:
        check_one(path, data, stats)

    rss0 = peak_rss()
    with memory_cap(MEMORY_CAP) as cap:
        as_tree()
        as_text()
    assert load_board().name == RAW["name"]
    print(
        f"\n[board fuzz] {stats['inputs']} mutated board files: {stats['loaded']} loaded, "
        f"{stats['ConfigError']} ConfigError, nothing else; slowest {stats['slowest'] * 1000:.0f} ms; "
        f"address space capped at {cap >> 20} MiB, peak RSS grew {(peak_rss() - rss0) >> 20} MiB"
    )
    record_testsuite_property("board_fuzz_inputs", stats["inputs"])
    assert stats["inputs"] >= 700 and stats["ConfigError"] > 0 and stats["loaded"] > 0, stats


@pytest.mark.parametrize("depth", [31, 33, 5000])
def test_nesting_limit_is_exact(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "board.yaml"
    path.write_text(SHIPPED + "x: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError) as err:
        load_board(path)
    # the top-level mapping is one level: 31 lists fit, 33 do not (then x is an unknown key)
    assert ("nested deeper than 32 levels" in str(err.value)) == (depth >= 32), str(err.value)
