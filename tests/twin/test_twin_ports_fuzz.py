"""Bounded fuzzing of the twin's control port (JSON lines) and debug port (pyOCD's
remote-probe protocol) (issue 21: the systematic part for the twin's ports).

Inputs are generated from the real command/request sets and then mutated (values of the
wrong type or range, deep nesting, long digit strings, byte flips, truncation, junk). The
twin runs in its own process. Invariants per input: exactly one reply line, a JSON object
with a clear error (``ok: false``/``status != 0``) or the documented answer, within 5 s; the
next well-formed request is served. At the end: no traceback in the twin's log, RSS grown by
less than 64 MiB. A fixed seed keeps runs reproducible (FUZZ_SEED overrides it); counts go
to the test output (``-s`` or the report).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections import Counter

import pytest
from twin_core_util import TwinProcess

SEED = int(os.environ.get("FUZZ_SEED", "21"))
N_CONTROL = 1000
N_DEBUG = 1000
REPLY_TIMEOUT = 5.0
RSS_GROWTH_KIB = 64 * 1024
TIME_BUDGET = 60.0

# file-writing commands are not fuzzed (frames.pcap would create files in the twin's cwd)
SKIP_COMMANDS = {"frames.pcap"}
CONTROL_KEYS = [
    "address", "length", "kind", "cancel", "drive", "up", "port", "pin", "nth", "mode",
    "last", "device", "after_ms", "action", "n", "stop",
]  # fmt: skip
PROBE_REQUESTS = {
    "hello": ["i"], "readprop": ["s"], "open": [], "close": [], "lock": [], "unlock": [],
    "flush": [], "set_clock": ["i"], "connect": ["s"], "disconnect": [], "swj_sequence": ["i", "i"],
    "assert_reset": ["b"], "is_reset_asserted": [], "read_dp": ["a"], "write_dp": ["a", "i"],
    "read_ap": ["a"], "write_ap": ["a", "i"], "read_ap_multiple": ["a", "n"],
    "write_ap_multiple": ["a", "li"], "get_memory_interface_for_ap": ["i", "i"], "has_swo": [],
    "swo_start": ["i"], "swo_stop": [], "swo_read": [], "read_mem": ["h", "m", "x"],
    "write_mem": ["h", "m", "i", "x"], "read_block32": ["h", "m", "n"], "write_block32": ["h", "m", "li"],
    "read_block8": ["h", "m", "n"], "write_block8": ["h", "m", "lb"], "reset": [],
}  # fmt: skip
PROPS = ["supported_wire_protocols", "wire_protocol", "capabilities", "vendor_name", "product_name", "x"]
ADDRS = [0x20000000, 0x20001000, 0x08000000, 0xE000ED00, 0xE000EDF0, 0x40023800, 0x0, 0xFFFFFFFC]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _weird(r: random.Random) -> object:
    return r.choice(
        [
            None, True, False, -1, 0, 1, 2**31, 2**32, 2**40, 2**64, -(2**63), 1.5, float("inf"),
            "", "x", "ÿ\u2028", "9" * 50, [], [1, 2], {}, {"a": 1}, [[[[]]]], r.randrange(-9, 2**33),
        ]
    )  # fmt: skip


def _mutate(r: random.Random, line: bytes) -> bytes:
    b = bytearray(line)
    op = r.randrange(9)
    if op == 0 and b:  # flip bytes
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] = r.randrange(256)
    elif op == 1:  # truncate
        b = b[: r.randrange(len(b) + 1)]
    elif op == 2:  # insert junk
        i = r.randrange(len(b) + 1)
        b[i:i] = bytes(r.randrange(256) for _ in range(r.randint(1, 16)))
    elif op == 3:  # deep nesting
        d = r.choice([50, 999, 1001, 3000, 20000])
        b = b[:-1] + b', "z": ' + b"[" * d + b"]" * d + b"}"
    elif op == 4:  # long digit strings
        b = b[:-1] + b', "z": ' + b"7" * r.choice([4299, 4301, 20000]) + b"}"
    elif op == 5:  # duplicate the line (no newline in between)
        b = b + b
    elif op == 6:  # wrong top-level type
        b = bytearray(json.dumps(r.choice([[], 1, "x", None, [{"cmd": "status"}]])).encode())
    elif op == 7:  # NUL and control bytes
        b = b.replace(b" ", bytes([r.choice([0, 1, 27, 127])]))
    else:  # unbalanced
        b = b + b"{" * r.randint(1, 5)
    return bytes(b).replace(b"\n", b" ")


class _Line:
    def __init__(self, addr: str) -> None:
        host, port = addr.removeprefix("remote:").split(":")
        self.s = socket.create_connection((host, int(port)), timeout=REPLY_TIMEOUT)
        self.buf = b""

    def ask(self, line: bytes) -> dict:
        self.s.sendall(line + b"\n")
        deadline = time.monotonic() + REPLY_TIMEOUT
        while b"\n" not in self.buf:
            assert time.monotonic() < deadline, f"no reply within {REPLY_TIMEOUT} s to {line[:120]!r}"
            chunk = self.s.recv(1 << 16)
            assert chunk, f"connection dropped after {line[:120]!r}"
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n", 1)
        obj = json.loads(reply)
        assert isinstance(obj, dict), reply[:200]
        return obj

    def close(self) -> None:
        self.s.close()


@pytest.fixture(scope="module")
def twin():
    with TwinProcess() as t:
        yield t


def _control_inputs(r: random.Random, commands: list[str]) -> list[bytes]:
    out = []
    names = [c for c in commands if c not in SKIP_COMMANDS]
    while len(out) < N_CONTROL:
        req: dict = {"cmd": r.choice([*names, "", "nope", "status " * 3])}
        for key in r.sample(CONTROL_KEYS, r.randint(0, 3)):
            req[key] = r.choice([_weird(r), r.choice(ADDRS), r.randint(0, 8)])
        line = json.dumps(req).encode()
        if r.random() < 0.6:
            line = _mutate(r, line)
        if line.strip() and b"pcap" not in line and b"path" not in line:
            out.append(line)
    return out


def _arg(r: random.Random, kind: str) -> object:
    if r.random() < 0.25:
        return _weird(r)
    if kind == "i":
        return r.choice([0, 1, r.randrange(2**32)])
    if kind == "s":
        return r.choice([*PROPS, "SWD", "DEFAULT", "JTAG"])
    if kind == "b":
        return r.random() < 0.3
    if kind == "a":
        return r.choice([0x0, 0x4, 0x8, 0xC, 0x00, 0x04, 0x0C, 0x10, 0xF8, 0xFC, 0x01000000])
    if kind == "h":
        return 0
    if kind == "m":
        return r.choice(ADDRS) + r.choice([0, 1, 2, 4])
    if kind == "x":
        return r.choice([8, 16, 32, 32, 64, 0, 7, 16384, -8, 2**32])
    if kind == "n":
        return r.choice([0, 1, 4, 64, 1024, 2**22, -1])
    if kind == "li":
        return [r.randrange(2**32) for _ in range(r.randint(0, 8))]
    if kind == "lb":
        return [r.randrange(256) for _ in range(r.randint(0, 16))]
    raise AssertionError(kind)


def _debug_inputs(r: random.Random) -> list[tuple[int | None, bytes]]:
    out = []
    names = list(PROBE_REQUESTS)
    rid = 1
    while len(out) < N_DEBUG:
        name = r.choice([*names, "nope", ""])
        kinds = PROBE_REQUESTS.get(name, ["i"])
        args = [_arg(r, k) for k in kinds]
        if r.random() < 0.1:
            args = [*args, 0] if r.random() < 0.5 else args[:-1]
        rid += 1
        line = json.dumps({"id": rid, "request": name, "arguments": args}).encode()
        expect: int | None = rid
        if r.random() < 0.5:
            line, expect = _mutate(r, line), None
        if line.strip():
            out.append((expect, line))
    return out


def _report(title: str, counts: Counter, n: int, seconds: float) -> None:
    parts = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"\n{title}: {n} inputs in {seconds:.1f} s (seed {SEED}): {parts}")


def test_control_port_fuzz(twin: TwinProcess) -> None:
    assert twin.proc is not None
    commands = twin.control("commands")["commands"]
    r = random.Random(SEED)
    inputs = _control_inputs(r, commands)
    rss0 = _rss_kib(twin.proc.pid)
    counts: Counter = Counter()
    t0 = time.monotonic()
    c = _Line(twin.info["control"])
    try:
        for i, line in enumerate(inputs):
            reply = c.ask(line)
            assert isinstance(reply.get("ok"), bool), (line[:120], reply)
            if reply["ok"]:
                counts["ok"] += 1
            else:
                assert isinstance(reply.get("error"), str) and reply["error"], (line[:120], reply)
                counts["error"] += 1
            if i % 10 == 0:  # the next well-formed request is served
                assert c.ask(b'{"cmd": "status"}')["ok"] is True, line[:120]
                counts["status checks"] += 1
            assert time.monotonic() - t0 < TIME_BUDGET
        assert c.ask(b'{"cmd": "status"}')["ok"] is True
    finally:
        c.close()
    _report("control port fuzz", counts, len(inputs), time.monotonic() - t0)
    assert _rss_kib(twin.proc.pid) - rss0 < RSS_GROWTH_KIB
    assert "Traceback" not in twin.stderr()


def test_debug_port_fuzz(twin: TwinProcess) -> None:
    assert twin.proc is not None
    r = random.Random(SEED + 1)
    inputs = _debug_inputs(r)
    rss0 = _rss_kib(twin.proc.pid)
    counts: Counter = Counter()
    t0 = time.monotonic()
    c = _Line(twin.probe)
    try:
        for i, (rid, line) in enumerate(inputs):
            reply = c.ask(line)
            assert isinstance(reply.get("status"), int) and "id" in reply, (line[:120], reply)
            if rid is not None:  # a well-formed request is answered under its own id
                assert reply["id"] == rid, (line[:120], reply)
            if reply["status"] == 0:
                counts["ok"] += 1
            else:
                assert isinstance(reply.get("error"), str) and reply["error"], (line[:120], reply)
                counts[f"status {reply['status']}"] += 1
            if i % 10 == 0:
                hello = c.ask(b'{"id": 1, "request": "hello", "arguments": [1]}')
                assert hello == {"id": 1, "status": 0}, line[:120]
                counts["hello checks"] += 1
            assert time.monotonic() - t0 < TIME_BUDGET
        assert c.ask(b'{"id": 2, "request": "read_dp", "arguments": [0]}')["status"] == 0
    finally:
        c.close()
    _report("debug port fuzz", counts, len(inputs), time.monotonic() - t0)
    assert _rss_kib(twin.proc.pid) - rss0 < RSS_GROWTH_KIB
    assert "Traceback" not in twin.stderr()
