#!/usr/bin/env python3
"""Worst-case stack use of a firmware image from GCC's ``-fcallgraph-info=su`` output.

``stack_usage.py PATH...`` reads every ``*.ci`` file under the given object directories
(or the given ``.ci`` files themselves),
builds the call graph (nodes carry the frame size GCC computed), and prints the deepest
path from ``Reset_Handler``/``main``. Indirect calls (function pointers, e.g. the
transport and flash operations) are not in GCC's graph: the script adds the largest
frame chain among functions whose address is taken, and says so. ``--calls FILE`` adds the
pointer calls a driver knows it makes (lines ``caller callee...``, ``#`` comments; a name
also matches GCC's clones such as ``name.constprop.0``), so chains through them count.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

NODE = re.compile(r'node:\s*\{\s*title:\s*"([^"]+)"\s*label:\s*"([^"]*)"')
EDGE = re.compile(r'edge:\s*\{\s*sourcename:\s*"([^"]+)"\s*targetname:\s*"([^"]+)"')
FRAME = re.compile(r"\\n(\d+) bytes \((static|dynamic|bounded)")


def load(dirs: list[str]) -> tuple[dict[str, int], dict[str, set[str]], set[str]]:
    """Parse .ci files: frame size per function, call edges, dynamic-frame functions."""
    frames: dict[str, int] = {}
    edges: dict[str, set[str]] = {}
    dynamic: set[str] = set()
    for d in dirs:
        path = Path(d)
        for ci in [path] if path.is_file() else sorted(path.rglob("*.ci")):
            text = ci.read_text(errors="replace")
            for title, label in NODE.findall(text):
                name = title.split(":")[-1]
                m = FRAME.search(label)
                if m:
                    frames[name] = max(frames.get(name, 0), int(m.group(1)))
                    if m.group(2) != "static":
                        dynamic.add(name)
                else:
                    frames.setdefault(name, 0)
            for src, dst in EDGE.findall(text):
                edges.setdefault(src.split(":")[-1], set()).add(dst.split(":")[-1])
    return frames, edges, dynamic


def add_calls(path: str, frames: dict[str, int], edges: dict[str, set[str]]) -> int:
    """Add the edges listed in ``path``; return how many were added."""

    def nodes(name: str) -> list[str]:
        return [f for f in frames if f == name or f.startswith(name + ".")]

    added = 0
    for raw in Path(path).read_text().splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        for caller in nodes(words[0]):
            for name in words[1:]:
                for callee in nodes(name):
                    edges.setdefault(caller, set()).add(callee)
                    added += 1
    return added


def deepest(root: str, frames: dict[str, int], edges: dict[str, set[str]]) -> tuple[int, list[str]]:
    """Return (bytes, path) of the deepest call chain from root; recursion is cut."""
    memo: dict[str, tuple[int, list[str]]] = {}

    def walk(fn: str, stack: tuple[str, ...]) -> tuple[int, list[str]]:
        if fn in memo:
            return memo[fn]
        best = (0, [])
        for callee in sorted(edges.get(fn, ())):
            if callee in stack:
                continue
            best = max(best, walk(callee, (*stack, fn)), key=lambda t: t[0])
        res = (frames.get(fn, 0) + best[0], [fn] + best[1])
        memo[fn] = res
        return res

    return walk(root, ())


def main(argv: list[str]) -> int:
    """Print the worst-case stack estimate for the objects under argv's directories."""
    calls: list[str] = []
    paths: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--calls":
            calls.append(next(it))
        else:
            paths.append(arg)
    frames, edges, dynamic = load(paths)
    known = sum(add_calls(c, frames, edges) for c in calls)
    if not frames:
        print("stack: no .ci files found (build with -fcallgraph-info=su)")
        return 0
    roots = [r for r in ("reset_c", "main", "Reset_Handler") if r in frames]
    root = roots[0] if roots else max(frames, key=frames.get)
    total, path = deepest(root, frames, edges)
    # Functions only reachable through pointers (transport/flash ops, handlers).
    reached = set()
    todo = [root]
    while todo:
        f = todo.pop()
        if f in reached:
            continue
        reached.add(f)
        todo.extend(edges.get(f, ()))
    indirect = [f for f in frames if f not in reached and not f.startswith("__")]
    extra, extra_path = 0, []
    for f in indirect:
        t, p = deepest(f, frames, edges)
        if t > extra:
            extra, extra_path = t, p
    kind = f"direct calls + {known} listed pointer calls" if calls else "direct calls"
    print(f"worst-case stack ({kind}): {total} bytes via {' > '.join(path)}")
    if extra:
        print(f"  + deepest indirectly-called chain: {extra} bytes via {' > '.join(extra_path)}")
        print(f"  bound: {total + extra} bytes (+ 32 bytes exception frame per active handler)")
    if dynamic & reached:
        print(f"  note: dynamic frames in {sorted(dynamic & reached)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
