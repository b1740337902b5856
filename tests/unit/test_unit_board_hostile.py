"""Hostile and careless board files (issue 21, finding 5): each is one clear ConfigError naming
the file, never a traceback, a hang or a memory blow-up.

Every case is loaded in one subprocess with its address space capped (RLIMIT_AS 1 GiB) and a
10 s alarm per case, so a regression (a FIFO that blocks, a YAML bomb) fails its own case
instead of hanging or exhausting the machine running the suite."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.board import default_board_path, load_board, parse_board
from rig.errors import ConfigError

SHIPPED = Path(default_board_path()).read_text()
RAW: dict[str, Any] = yaml.safe_load(SHIPPED)

#: loads each path given on stdin (one JSON list), prints one JSON line per path
WORKER = r"""
import json, resource, signal, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from rig.board import load_board
from rig.errors import ConfigError

def alarm(*_):
    raise TimeoutError("no answer within 10 s")

signal.signal(signal.SIGALRM, alarm)
for name, path in json.load(sys.stdin):
    signal.alarm(10)
    try:
        load_board(path)
        out = {"kind": "accepted", "message": ""}
    except ConfigError as exc:
        out = {"kind": "ConfigError", "message": str(exc)}
    except BaseException as exc:
        out = {"kind": type(exc).__name__, "message": str(exc)[:300]}
    finally:
        signal.alarm(0)
    print(json.dumps({"name": name, **out}), flush=True)
"""


def _modified(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        doc = copy.deepcopy(RAW)
        change(doc)
        path = d / "board.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return build


def _text(text: str | bytes) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        path = d / "board.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    return build


def _fifo(d: Path) -> Path:
    path = d / "board.yaml"
    os.mkfifo(path)
    return path


def _bomb() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return change


#: name -> (how to build the file in a fresh directory, words the one ConfigError must contain)
CASES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "latin-1": (_text(SHIPPED.encode() + b"# caf\xe9\n"), ["not UTF-8 text: byte 0xE9 on line"]),
    "utf-16": (_text(SHIPPED.encode("utf-16")), ["UTF-16/UTF-32 text"]),
    "utf-32": (_text(SHIPPED.encode("utf-32")), ["UTF-16/UTF-32 text"]),
    "billion laughs": (_text(_bomb()), ["more than 100000 values once its aliases are expanded"]),
    "5000-deep list": (_text("name: " + "[" * 5000 + "]" * 5000 + "\n"), ["nested deeper than 32 levels"]),
    "5000-deep mapping": (
        _text("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 400))),
        ["deeper than 32"],
    ),
    "5000-digit integer": (
        _text(SHIPPED.replace("base: 0x08000000", "base: " + "9" * 5000, 1)),
        ["a value of 5000 characters"],
    ),
    "4000-digit integer": (
        _text(SHIPPED.replace("base: 0x08000000", "base: " + "9" * 4000, 1)),
        ["memory.flash.base: got a 4000-digit integer"],
    ),
    "400-digit size string": (
        _modified(_set("memory.flash.size", "9" * 400)),
        ["memory.flash.size: got '999"],
    ),
    "size of 5G": (_modified(_set("memory.flash.size", 5 << 30)), ["at most 4294967296"]),
    "fractional size": (_modified(_set("memory.flash.size", "1.0000000000000001K")), ["not a whole number"]),
    "over 1 MiB": (_text(SHIPPED + "#" * (1 << 20) + "\n"), ["larger than 1 MiB"]),
    "empty file": (_text(""), ["the board file holds no YAML document"]),
    "only a comment": (_text("# nothing\n"), ["the board file holds no YAML document"]),
    "FIFO": (_fifo, ["a FIFO (named pipe), not a regular file"]),
    "directory": (lambda d: d, ["a directory, not a regular file"]),
    "/dev/null": (lambda d: Path("/dev/null"), ["a character device, not a regular file"]),
    "/dev/zero": (lambda d: Path("/dev/zero"), ["a character device, not a regular file"]),
    "missing": (lambda d: d / "nope.yaml", ["cannot read board file: No such file or directory"]),
    "duplicate top-level key": (
        _text(SHIPPED + "\nname: OTHER\n"),
        ["duplicate key 'name' (first given on line"],
    ),
    "duplicate nested key": (
        _text(SHIPPED.replace("  nucleo:\n", "  nucleo:\n    baudrate: 9600\n", 1)),
        ["duplicate key 'baudrate'"],
    ),
    "duplicate key in a flow mapping": (_text(SHIPPED + "\nx: {a: 1, a: 2}\n"), ["duplicate key 'a'"]),
    "staging in the bootloader": (
        _modified(_set("ota.staging_region", "bootloader")),
        ["ota.staging_region: regions.bootloader is not OTA-writable"],
    ),
    "app region in the bootloader": (
        _modified(_set("ota.app_region", "bootloader")),
        ["ota.app_region: regions.bootloader is not OTA-writable"],
    ),
    "app region = staging region": (
        _modified(_set("ota.staging_region", "app_slot")),
        ["ota.staging_region: the same region as ota.app_region"],
    ),
    "targets: {}": (_modified(_set("targets", {})), ["targets: no target"]),
    "targets.twin: null": (_modified(_set("targets.twin", None)), ["targets.twin: got null"]),
    "probe_uid: [1, 2]": (_modified(_set("targets.nucleo.probe_uid", [1, 2])), ["probe_uid: got [1, 2]"]),
    "debug: []": (_modified(_set("debug", [])), ["debug: got list (expected a mapping)"]),
    "debug: 0": (_modified(_set("debug", 0)), ["debug: got int (expected a mapping)"]),
    "a 5000-character description": (
        _modified(_set("memory.flash.description", "x" * 5000)),
        ["a value of 5000 characters"],
    ),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    paths = []
    for name, (build, _) in CASES.items():
        d = tmp_path_factory.mktemp("case")
        paths.append((name, str(build(d))))
    proc = subprocess.run(
        [sys.executable, "-c", WORKER],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        timeout=10 * len(paths) + 30,
    )
    got = {}
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        got[doc.pop("name")] = doc
    if len(got) < len(paths):  # the worker died: the next case is the culprit
        culprit = paths[len(got)][0]
        got[culprit] = {"kind": f"worker died (exit {proc.returncode})", "message": proc.stderr[-1500:]}
    return got


@pytest.mark.parametrize("name", list(CASES))
def test_one_clear_config_error(name: str, outcomes: dict[str, dict[str, str]]) -> None:
    got = outcomes.get(name, {"kind": "not reached", "message": ""})
    assert got["kind"] == "ConfigError", got
    assert "Traceback" not in got["message"] and "\n" not in got["message"], got
    for words in CASES[name][1]:
        assert words in got["message"], got["message"]


def test_the_shipped_file_and_reasonable_aliases_still_load() -> None:
    """Anchors and aliases stay usable within the limits: bank 2 reuses bank 1's sector list."""
    layout = "sectors: [{count: 4, size: 16K}, {count: 1, size: 64K}, {count: 7, size: 128K}]"
    assert SHIPPED.count(layout) == 2
    shared = SHIPPED.replace(layout, "sectors: &bank " + layout.split(": ", 1)[1], 1).replace(
        layout, "sectors: *bank"
    )
    assert "*bank" in shared
    spec = parse_board(shared)
    assert spec.layout(True).sectors == load_board().layout(True).sectors


def test_an_unreadable_file_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests may run as root, who reads every file: the refusal is simulated at os.open."""
    path = tmp_path / "board.yaml"
    path.write_text(SHIPPED)

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ConfigError, match=r"board\.yaml: cannot read board file: Permission denied"):
        load_board(path)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "board.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SHIPPED.encode())
    assert load_board(path).name == load_board().name


def test_the_plugin_says_what_a_non_regular_board_file_is(tmp_path: Path) -> None:
    fifo = tmp_path / "board.yaml"
    os.mkfifo(fifo)
    repo = Path(__file__).resolve().parents[2]
    for path, words in ((fifo, "a FIFO (named pipe), not a regular file"), (tmp_path, "a directory")):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--board-file",
                str(path),
                "--co",
                "-q",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
            | {"PWD": str(repo)},
        )
        assert proc.returncode == 4 and f"--board-file {path}: {words}" in proc.stderr, proc.stderr[-2000:]
