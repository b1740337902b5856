"""Property test of the OTA server as a board sees it: a valid board conversation (docs/
protocol.md), mutated line by line and step by step (bytes flipped, inserted, dropped, lines
duplicated, reordered, case changed, CR/NUL/markup injected, sent byte by byte, the connection
closed, reset or left open at any point).

The server runs in its own process with its address space capped (RLIMIT_AS), so a leak or a
blow-up is a failure of this test, not of the machine. Invariants, per input: the session ends
with a documented outcome and a reason (never ``error``), within its timeouts; the next
well-formed board is served to ACK at once (never BUSY); the unmutated conversation ACKs. At the
end: the server's peak memory stayed under the cap, it printed no traceback. The number of
inputs is printed (``-s``/``-rA``) and recorded as a test-suite property."""

from __future__ import annotations

import json
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from ota_board import ScriptedBoard

from rig.ota.transcript import OUTCOMES

IMAGE = bytes(range(256)) * 48  # 12 KiB
MEMORY_CAP = 1 << 30  # the server process's address space
PEAK_RSS_CAP_KB = 400 * 1024
SESSION_LIMIT = 5.0

SERVER = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
from rig.ota import OtaServer, Timeouts

def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

def on_session(res):
    doc = {{k: v for k, v in res.to_dict().items() if k != "transcript"}}
    doc["peak_kb"] = peak_kb()
    print(json.dumps(doc), flush=True)

t = Timeouts(connect=5, request=0.2, ready=0.2, ack=0.2, send=1.0, stall=0.3, linger=0.05,
             session={SESSION_LIMIT})
with OtaServer(bytes(range(256)) * 48, timeouts=t, on_session=on_session) as srv:
    print(json.dumps({{"port": srv.address[1]}}), flush=True)
    sys.stdin.read()  # serve until the test closes stdin
"""


class Server:
    """The OTA server in a capped subprocess; its session results as they come."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first, self.proc.stderr.read() if self.proc.stderr else ""
        self.address = ("127.0.0.1", json.loads(first)["port"])
        threading.Thread(target=self._read, daemon=True).start()
        self.next_index = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.results.put(json.loads(line))

    def result(self, timeout: float) -> dict[str, Any]:
        res = self.results.get(timeout=timeout)
        assert res["index"] == self.next_index, res
        self.next_index += 1
        return res

    def close(self) -> str:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.proc.stderr.read()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.close()


# --------------------------------------------------------------------------- conversations
# A step: ("send", bytes) | ("drip", bytes) | ("read", token) | ("end", how)
VALID = [
    ("send", b"REQ_FW\n"),
    ("read", b"OTA_UPDATE\n"),
    ("send", b"OTA_READY\n"),
    ("read", b"OTA_DONE\n"),
    ("send", b"ACK\n"),
    ("end", "close"),
]
TOKENS = [b"REQ_FW\n", b"OTA_READY\n", b"ACK\n", b"NACK:crc\n", b"NACK:flash\n", b"NACK:\n", b"BUSY\n"]
INJECT = [b"\r", b"\x00", b"\x1b[2J", b"[/]", b"%s", b"{0}", b"\xff", b"\n", b"NACK:", b" ", b"A" * 70]


@st.composite
def mutated_line(draw: st.DrawFn, line: bytes) -> bytes:
    kind = draw(
        st.sampled_from(["flip", "insert", "delete", "case", "inject", "truncate", "repeat", "token"])
    )
    data = bytearray(line)
    at = draw(st.integers(0, max(0, len(data) - 1)))
    if kind == "flip" and data:
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "insert":
        data[at:at] = bytes([draw(st.integers(0, 255))])
    elif kind == "delete" and data:
        del data[at]
    elif kind == "case":
        data = bytearray(bytes(data).swapcase())
    elif kind == "inject":
        data[at:at] = draw(st.sampled_from(INJECT))
    elif kind == "truncate":
        data = data[:at]
    elif kind == "repeat":
        data = data * draw(st.integers(2, 5))
    elif kind == "token":
        data = bytearray(draw(st.sampled_from(TOKENS)))
    return bytes(data)


@st.composite
def conversation(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], int]:
    """A valid conversation with 0..4 mutations; also how many were applied."""
    steps = list(VALID)
    n = draw(st.integers(0, 4))
    for _ in range(n):
        kind = draw(
            st.sampled_from(["line", "line", "drop", "duplicate", "swap", "drip", "end", "early-end"])
        )
        sends = [i for i, s in enumerate(steps) if s[0] in ("send", "drip")]
        if kind == "line" and sends:
            i = draw(st.sampled_from(sends))
            steps[i] = (steps[i][0], draw(mutated_line(steps[i][1])))
        elif kind == "drop" and len(steps) > 1:
            del steps[draw(st.integers(0, len(steps) - 2))]
        elif kind == "duplicate" and len(steps) > 1:
            i = draw(st.integers(0, len(steps) - 2))
            steps.insert(i, steps[i])
        elif kind == "swap" and len(steps) > 2:
            i = draw(st.integers(0, len(steps) - 3))
            steps[i], steps[i + 1] = steps[i + 1], steps[i]
        elif kind == "drip" and sends:
            i = draw(st.sampled_from(sends))
            steps[i] = ("drip", steps[i][1])
        elif kind == "end":
            steps[-1] = ("end", draw(st.sampled_from(["close", "rst", "shutdown", "silent"])))
        elif kind == "early-end":
            cut = draw(st.integers(0, len(steps) - 1))
            steps = [*steps[:cut], ("end", draw(st.sampled_from(["close", "rst", "silent"])))]
    return steps, n


def _read_until(s: socket.socket, token: bytes, deadline: float) -> None:
    buf = b""
    while token not in buf[-len(token) - 4096 :] and time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not chunk:
            return
        buf += chunk


def play(address: tuple[str, int], steps: list[tuple[str, Any]]) -> socket.socket | None:
    """Run the steps; a socket left open on purpose ("silent") is returned for the caller to close."""
    s = socket.create_connection(address, timeout=5)
    s.settimeout(0.1)
    deadline = time.monotonic() + 5
    try:
        for kind, arg in steps:
            if kind == "send":
                s.sendall(arg)
            elif kind == "drip":
                for b in arg:
                    s.send(bytes([b]))
                    time.sleep(0.002)
            elif kind == "read":
                _read_until(s, arg, deadline)
            elif arg == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
            elif arg == "shutdown":
                s.shutdown(socket.SHUT_WR)
                _read_until(s, b"\x00never", time.monotonic() + 0.5)
                break
            elif arg == "silent":
                return s
            else:
                break
    except OSError:
        pass  # the server ended the session first: fine
    s.close()
    return None


def test_mutated_board_conversations(
    server: Server, record_testsuite_property: Callable[[str, object], None]
) -> None:
    stats: dict[str, Any] = {"inputs": 0, "mutations": 0, "outcomes": {}, "peak_kb": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(conv=conversation())
    def one(conv: tuple[list[tuple[str, Any]], int]) -> None:
        steps, n = conv
        left_open = play(server.address, steps)
        try:
            res = server.result(timeout=SESSION_LIMIT + 10)
        finally:
            if left_open is not None:
                left_open.close()
        stats["inputs"] += 1
        stats["mutations"] += n
        stats["outcomes"][res["outcome"]] = stats["outcomes"].get(res["outcome"], 0) + 1
        stats["peak_kb"] = max(stats["peak_kb"], res["peak_kb"])
        assert res["outcome"] in OUTCOMES and res["outcome"] != "error", res
        assert res["reason"].strip(), res
        assert res["duration"] < SESSION_LIMIT + 1, res
        assert res["peak_kb"] < PEAK_RSS_CAP_KB, res
        if steps == VALID:
            assert res["outcome"] == "ack", res
        # the next well-formed board is served to its end, never refused
        board = ScriptedBoard(server.address, timeout=5).run()
        nxt = server.result(timeout=SESSION_LIMIT + 10)
        assert board.outcome == "ack" and nxt["outcome"] == "ack" and not nxt["refused"], (board, nxt)

    one()
    counts = ", ".join(f"{k}={v}" for k, v in sorted(stats["outcomes"].items()))
    print(
        f"\n[ota mutated fuzz] {stats['inputs']} mutated conversations ({stats['mutations']} mutations), "
        f"each followed by a well-formed board; outcomes: {counts}; server peak RSS {stats['peak_kb']} KiB"
    )
    record_testsuite_property("ota_mutated_fuzz_inputs", stats["inputs"])
    assert stats["inputs"] >= 100 and len(stats["outcomes"]) >= 3, stats
    assert server.proc.poll() is None, "the server process died"


def test_the_fuzzed_server_printed_no_traceback(server: Server) -> None:
    """Runs after the fuzz (same module): close the server and read everything it logged."""
    stderr = server.close()
    assert server.proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "crashed" not in stderr, stderr[-3000:]
