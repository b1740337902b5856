"""Property test of the ``rig`` command line as a careless user types it: ``rig diff`` and
``rig ota serve``/``policies`` with every argument drawn from valid values and their mutations
(numbers out of range, NaN, 5 000 digits, control characters; files that are directories,
FIFOs, /dev/zero, missing, not images; board files that are broken; policies with mutated
parameters; ``--sessions 0``, which serves until Ctrl-C, interrupted by a SIGINT-like
KeyboardInterrupt).

Invariant per input: ``main`` returns 0, 1 or 2 (130 after the interrupt), or argparse exits
with 2 for a malformed option; never another exception or a traceback; within 3 s; the
address space capped (RLIMIT_AS) at 512 MiB more than before the run. The number of inputs
is printed (``-s``/``-rA``) and recorded as a test-suite property."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_caps import memory_cap, peak_rss
from image_files import elf, intel_hex

from rig.board import default_board_path
from rig.cli import main

APP = 0x08040000
TIME_CAP = 3.0
MEMORY_CAP = 512 << 20


def _app(size: int = 4096) -> bytes:
    body = bytearray(size)
    struct.pack_into("<II", body, 0, 0x20080000, APP + 0x101)
    body[8:] = bytes(i & 0xFF for i in range(8, size))
    return bytes(body)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli")
    shipped = Path(default_board_path()).read_text()
    made: dict[str, bytes | str] = {
        "app.bin": _app(),
        "other.bin": _app()[:2048] + bytes(2048),
        "app.hex": intel_hex(APP, _app()),
        "app.elf": elf([(APP, _app())]),
        "sram.hex": intel_hex(0x20020000, _app()),
        "bad.hex": ":10000000ZZ\n",
        "empty.bin": b"",
        "big.bin": bytes(3 << 20),
        "x86.elf": Path(sys.executable).resolve().read_bytes()[:65536],
        "board.yaml": shipped,
        "dup.yaml": shipped + "\nname: X\n",
        "broken.yaml": shipped.replace("memory:", "memory: [", 1),
        "esc.yaml": shipped.replace("NUCLEO-F767ZI", "\x1b[2JNUCLEO", 1),
        "latin1.yaml": shipped.encode() + b"\xe9\n",
    }
    out = {}
    for name, content in made.items():
        path = d / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        out[name] = str(path)
    os.mkfifo(d / "fifo.bin")
    (d / "dir.bin").mkdir()
    out.update(fifo=str(d / "fifo.bin"), dir=str(d / "dir.bin"), missing=str(d / "missing.bin"))
    out.update(zero="/dev/zero", null="/dev/null", json=str(d / "out.json"), jsondir=str(d))
    return out


NUMBERS = ["0", "1", "-1", "0x08040000", "0x", "nan", "inf", "-inf", "1e400", "1.5", "abc", "", " 7",
           "9" * 5000, "0x" + "F" * 40, "\x1b[2J", "٣", "65536", "99999", "0.01", "768K", "1M", "0K"]  # fmt: skip
POLICIES = ["natural", "per-message", "glued:chunk=1", "split-tokens:at=3", "tiny:size=7", "random:seed=5",
            "pause:ms=1", "drop-at:byte=10", "rst-at:byte=10", "stall:after=5,ms=1", "corrupt:offsets=1,2",
            "wrong-size:delta=-1", "truncate:bytes=1", "wrong-crc", "nosuch", "tiny:size=0", "tiny:size=",
            "per-message+pause:ms=", "random:seed=" + "9" * 5000, "corrupt:offsets=99999999", "+", ":", "\x00"]  # fmt: skip


@st.composite
def argv(draw: st.DrawFn, files: dict[str, str]) -> list[str]:
    pick = st.sampled_from(sorted(files.values()))
    number = st.one_of(st.sampled_from(NUMBERS), st.text(max_size=6))
    which = draw(st.sampled_from(["diff", "diff", "serve", "serve", "policies", "junk"]))
    if which == "policies":
        return ["ota", "policies", *draw(st.lists(st.sampled_from(["-x", "--json", "x"]), max_size=1))]
    if which == "junk":
        return draw(
            st.lists(st.sampled_from(["diff", "ota", "serve", "--base", "-", "--", "x", ""]), max_size=4)
        )
    if which == "diff":
        args = ["diff", draw(pick), draw(pick)]
        if draw(st.booleans()):
            args += ["--base", draw(st.one_of(st.just("0x08040000"), st.just("0x08040000"), number))]
        if draw(st.booleans()):
            args += ["--board", draw(st.sampled_from([files["board.yaml"], files["dup.yaml"],
                                                      files["broken.yaml"], files["esc.yaml"],
                                                      files["latin1.yaml"], files["fifo"], files["dir"],
                                                      files["zero"], files["missing"]]))]  # fmt: skip
        if draw(st.booleans()):
            args += ["--previous", draw(pick)]
        if draw(st.booleans()):
            args += ["--bank-mode", draw(st.sampled_from(["single", "dual", "both", ""]))]
        if draw(st.booleans()):
            args.append("--json")
        return args
    args = ["ota", "serve", draw(st.one_of(st.just(files["app.bin"]), pick))]
    # valid values most of the time, so that most command lines reach the server
    args += ["--port", draw(st.sampled_from(["0"] * 12 + ["-1", "65536", "abc", "9" * 5000, ""]))]
    args += [
        "--timeout",
        draw(st.sampled_from(["0.01", "0", "0.05"] * 4 + ["-1", "nan", "inf", "1e400", "x"])),
    ]
    if draw(st.booleans()):
        args += ["--sessions", draw(st.sampled_from(["1", "2", "0", "0", "-1", "x", "9" * 5000]))]
    if draw(st.booleans()):
        args += ["--bind", draw(st.sampled_from(["127.0.0.1", "localhost", "0.0.0.0", "", "::", "lab",
                                                 "999.1.1.1", "\x1b[31m", "192.0.2.7"]))]  # fmt: skip
    for _ in range(draw(st.integers(0, 2))):
        args += ["--policy", draw(st.sampled_from(POLICIES))]
    if draw(st.integers(0, 3)) == 0:
        args += ["--max-size", draw(number)]
    if draw(st.integers(0, 3)) == 0:
        args += ["--session-limit", draw(st.sampled_from(["1", "0", "-1", "nan", "inf", "x"]))]
    if draw(st.booleans()):
        args += ["--json", draw(st.sampled_from([files["json"], files["jsondir"], "/dev/full", files["missing"]
                                                 + "/x.json"]))]  # fmt: skip
    args += draw(
        st.lists(st.sampled_from(["--crc", "--no-crc", "--transcript", "--no-progress"]), max_size=2)
    )
    return args


@contextlib.contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """A Ctrl-C (KeyboardInterrupt in the main thread) if the command is still running."""

    def fire(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run(args: list[str]) -> tuple[Any, str, float]:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), interrupt_after(1.0):
        try:
            code: Any = main(args)
        except SystemExit as exc:
            code = ("argparse", exc.code)
    return code, out.getvalue() + err.getvalue(), time.monotonic() - t0


def test_mutated_command_lines(
    files: dict[str, str], record_testsuite_property: Callable[[str, object], None]
) -> None:
    stats: dict[str, Any] = {"inputs": 0, "codes": {}, "slowest": 0.0}

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(args=argv(files))
    def one(args: list[str]) -> None:
        code, text, took = run(args)
        stats["inputs"] += 1
        stats["codes"][str(code)] = stats["codes"].get(str(code), 0) + 1
        stats["slowest"] = max(stats["slowest"], took)
        assert code in (0, 1, 2, 130, ("argparse", 0), ("argparse", 2)), (code, text[-2000:])
        assert "Traceback" not in text, text[-3000:]
        if not isinstance(code, tuple):  # argparse echoes the user's own argument as typed
            assert "\x1b" not in text, text[-2000:]
        if code == 130:
            assert "--sessions" in args and args[args.index("--sessions") + 1] == "0", args
        assert took < TIME_CAP, (args, took)

    rss0 = peak_rss()
    with memory_cap(MEMORY_CAP) as cap:
        one()
    codes = ", ".join(f"{k}={v}" for k, v in sorted(stats["codes"].items()))
    print(
        f"\n[cli fuzz] {stats['inputs']} command lines; exit codes: {codes}; slowest "
        f"{stats['slowest'] * 1000:.0f} ms; address space capped at {cap >> 20} MiB, "
        f"peak RSS grew {(peak_rss() - rss0) >> 20} MiB"
    )
    record_testsuite_property("cli_fuzz_inputs", stats["inputs"])
    assert stats["inputs"] >= 300 and len(stats["codes"]) >= 3, stats
