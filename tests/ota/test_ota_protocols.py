"""Protocol selection and the forum thread's own wire format (issue 15, part 2).

The board side here is the thread's ``socket_cb`` transcribed to Python: one message per
receive, ``strncmp`` at the start of the buffer, ``FILE_SIZE:`` parsed with atoi, data
counted, ``ACK`` after the n-th byte, nothing terminated. It shares no code with rig.ota.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.errors import ConfigError
from rig.ota import (
    ForumThreadProtocol,
    OtaServer,
    ReferenceProtocol,
    ThreadProtocol,
    Timeouts,
    load_protocol,
)
from rig.ota.framing import FramingError, LineFraming, TokenFraming

FAST = Timeouts(connect=10, request=3, ready=3, ack=3, send=5, stall=2, linger=0.2)
IMAGE = os.urandom(30000)


@dataclass
class ThreadRun:
    outcome: str = ""
    receives: list[tuple[float, bytes]] = field(default_factory=list)
    data: bytes = b""
    expected: int | None = None


def thread_board(address, *, stream: bool = False, refuse: bool = False, tail: bytes = b"") -> ThreadRun:
    """The thread's board: ``stream`` parses the control bytes as a stream instead of one
    message per receive (a board that survives TCP gluing them)."""
    run = ThreadRun()
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(b"REQ_FW" + tail)
        in_progress = False
        pending = b""
        while True:
            chunk = s.recv(1024)
            if not chunk:
                run.outcome = "closed"
                return run
            run.receives.append((time.monotonic(), chunk))
            if in_progress:
                run.data += chunk
                if len(run.data) >= (run.expected or 0):
                    s.sendall(b"ACK" + tail)
                    run.outcome = "ack"
                    return run
                continue
            msgs = [chunk]
            if stream:  # split "FILE_SIZE:123OTA_UPDATE" the way a stream parser would
                pending += chunk
                msgs = []
                while pending:
                    if pending.startswith(b"FILE_SIZE:"):
                        digits = b""
                        for b in pending[10:]:
                            if not chr(b).isdigit():
                                break
                            digits += bytes([b])
                        if len(pending) == 10 + len(digits):
                            break  # more digits may follow
                        msgs.append(pending[: 10 + len(digits)])
                        pending = pending[10 + len(digits) :]
                    elif pending.startswith(b"OTA_UPDATE"):
                        msgs.append(pending[:10])
                        pending = pending[10:]
                    else:
                        break
            for msg in msgs:
                if msg.startswith(b"FILE_SIZE:"):
                    run.expected = atoi(msg[10:])
                elif msg.startswith(b"OTA_UPDATE"):
                    if refuse:
                        s.sendall(b"NACK")
                        run.outcome = "nack"
                        return run
                    in_progress = True
                    s.sendall(b"OTA_READY" + tail)


def atoi(text: bytes) -> int:
    """C's atoi: the leading digits, 0 without any."""
    digits = b""
    for b in text:
        if not 0x30 <= b <= 0x39:
            break
        digits += bytes([b])
    return int(digits or b"0")


def serve(protocol, board_kw: dict | None = None, **server_kw):
    with OtaServer(IMAGE, protocol=protocol, timeouts=FAST, **server_kw) as srv:
        out: dict = {}
        t = threading.Thread(
            target=lambda: out.setdefault("run", thread_board(srv.address, **(board_kw or {})))
        )
        t.start()
        res = srv.wait_session(10)
        t.join(10)
    return res, out.get("run")


# ------------------------------------------------------------------------------ the framing
def test_token_framing_recognises_words_without_terminators() -> None:
    f = TokenFraming(["REQ_FW", "OTA_READY", "ACK", "NACK"], reason_after=["NACK"])
    assert f.split(b"REQ_FW") == ("REQ_FW", 6)
    assert f.split(b"OTA_") is None  # the beginning of a word: wait
    assert f.split(b"OTA_READYACK") == ("OTA_READY", 9)  # two words in one receive
    assert f.split(b"\r\nACK\r\n") == ("ACK", 7)  # CR/LF around a word are ignored
    assert f.split(b"NACK") == ("NACK", 4)
    assert f.split(b"NACK:too_large\n") == ("NACK:too_large", 15)
    assert f.stray(b"\r\n") == 0 and f.stray(b"x\n") == 1
    with pytest.raises(FramingError, match="unexpected bytes from the board 'HELLO'"):
        f.split(b"HELLO")


def test_line_framing_is_unchanged() -> None:
    f = LineFraming()
    assert f.split(b"REQ_FW\nOTA") == ("REQ_FW", 7)
    assert f.split(b"REQ_FW") is None
    with pytest.raises(FramingError, match="longer than 64"):
        f.split(b"x" * 64)
    with pytest.raises(FramingError, match="invalid byte 0x0d"):
        f.split(b"ACK\r\n")


# ------------------------------------------------------------------------------ thread protocol
def test_thread_protocol_to_the_letter() -> None:
    proto = ForumThreadProtocol(pause_ms=120)
    res, run = serve(proto)
    assert res.outcome == "ack", res.to_text()
    assert run.outcome == "ack" and run.data == IMAGE
    # each control message alone in its own receive, no terminator, no FILE_CRC
    assert run.receives[0][1] == f"FILE_SIZE:{len(IMAGE)}".encode()
    assert run.receives[1][1] == b"OTA_UPDATE"
    assert run.receives[1][0] - run.receives[0][0] >= 0.1  # the configured pause
    assert res.transcript.messages("tx") == [f"FILE_SIZE:{len(IMAGE)}", "OTA_UPDATE"]
    assert res.transcript.messages("rx") == ["REQ_FW", "OTA_READY", "ACK"]
    assert proto.describe() == "thread(pause=120ms)" and res.transcript.protocol == proto.describe()
    assert not proto.crc and not proto.end_marker and not proto.nack_reasons


def test_thread_protocol_tolerates_line_ends_from_the_board() -> None:
    res, _ = serve(ForumThreadProtocol(pause_ms=20), {"tail": b"\r\n"})
    assert res.outcome == "ack", res.to_text()


def test_thread_protocol_bare_nack() -> None:
    res, _ = serve(ForumThreadProtocol(pause_ms=10), {"refuse": True})
    assert res.outcome == "nack" and res.nack_reason is None and "no reason" in res.reason
    assert res.phase == "ready"


def test_link_policies_apply_to_the_thread_protocol() -> None:
    """glued puts FILE_SIZE and OTA_UPDATE in one segment: the thread's one-message-per-
    receive board misses OTA_UPDATE (its real weakness), a stream-parsing board does not."""
    res, run = serve(ForumThreadProtocol(pause_ms=10), policy="glued")
    assert res.outcome == "timeout" and res.phase == "ready", res.to_text()
    assert run is None or run.outcome != "ack"
    res, run = serve(ForumThreadProtocol(pause_ms=10), {"stream": True}, policy="glued")
    assert res.outcome == "ack", res.to_text()
    assert run.receives[0][1].startswith(f"FILE_SIZE:{len(IMAGE)}OTA_UPDATE".encode())


def test_thread_protocol_has_no_crc() -> None:
    with pytest.raises(ConfigError, match="needs FILE_CRC"):
        OtaServer(IMAGE, protocol=ForumThreadProtocol(), policy="wrong-crc")


def test_thread_protocol_send_done() -> None:
    """Optional OTA_DONE after the data, its own segment (the board has ACKed already)."""
    proto = ForumThreadProtocol(pause_ms=10, send_done=True)
    assert proto.describe() == "thread(pause=10ms, OTA_DONE)"
    res, _ = serve(proto)
    assert res.outcome in ("ack", "closed"), res.to_text()


def test_unexpected_bytes_from_a_thread_board_are_a_protocol_error() -> None:
    with OtaServer(IMAGE, protocol=ForumThreadProtocol(), timeouts=FAST) as srv:
        s = socket.create_connection(srv.address, timeout=5)
        s.sendall(b"HELLO")
        res = srv.wait_session(5)
        s.close()
    assert res.outcome == "protocol" and "HELLO" in res.reason


# ------------------------------------------------------------------------------ selection
def test_load_protocol_builtin_names() -> None:
    ref = load_protocol("reference")
    assert isinstance(ref, ReferenceProtocol) and ref.crc and ref.describe() == "reference(crc=on)"
    assert load_protocol("reference", {"crc": False}).crc is False
    assert ThreadProtocol is ReferenceProtocol  # the old name of the reference protocol
    th = load_protocol("thread", {"pause_ms": 5})
    assert isinstance(th, ForumThreadProtocol) and th.pause_ms == 5


def test_load_protocol_user_class_from_a_file(tmp_path: Path) -> None:
    mod = tmp_path / "myproto.py"
    mod.write_text(
        textwrap.dedent(
            """
            from rig.ota.protocol import Protocol, Verdict

            class Hello(Protocol):
                name = "hello"

                def __init__(self, greeting="HELLO"):
                    self.greeting = greeting

                def run(self, session):
                    return Verdict("ack", "hi")

            class NotOne:
                pass
            """
        )
    )
    p = load_protocol(f"{mod}:Hello", {"greeting": "HI"})
    assert p.name == "hello" and p.greeting == "HI"
    with pytest.raises(ConfigError, match="not a subclass"):
        load_protocol(f"{mod}:NotOne")
    with pytest.raises(ConfigError, match="has no 'Missing'"):
        load_protocol(f"{mod}:Missing")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        load_protocol(f"{mod}:Hello", {"colour": "red"})


@pytest.mark.parametrize(
    "spec, match",
    [
        ("udp", "unknown OTA protocol"),
        ("no_such_module_xyz:Proto", "cannot import"),
        ("", "OTA protocol"),
        ("rig.ota.protocol:", "OTA protocol"),
    ],
)
def test_load_protocol_errors(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_protocol(spec)


def test_thread_protocol_option_errors() -> None:
    with pytest.raises(ConfigError, match="pause_ms"):
        load_protocol("thread", {"pause_ms": -1})
    with pytest.raises(ConfigError, match="send_done"):
        load_protocol("thread", {"send_done": "yes"})


# ------------------------------------------------------------------------------ rig ota serve
def test_rig_ota_serve_speaks_the_thread_protocol(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    image = tmp_path / "app.bin"
    image.write_bytes(IMAGE)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "rig.ota.cli", "serve", str(image), "--port", "0", "--timeout", "30"),
            *("--protocol", "thread", "--protocol-option", "pause_ms=20", "--transcript"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    m = re.search(r"listening on ([\d.]+):(\d+)", line)
    assert m, line
    run = thread_board((m.group(1), int(m.group(2))))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert run.outcome == "ack" and run.data == IMAGE
    assert "protocol=thread(pause=20ms)" in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--protocol", "pigeon"], "unknown OTA protocol 'pigeon'"),
        (["--protocol", "thread", "--protocol-option", "pause_ms"], "KEY=VALUE"),
        (["--protocol", "thread", "--protocol-option", "colour=red"], "unexpected keyword"),
    ],
)
def test_rig_ota_serve_protocol_errors(tmp_path: Path, args: list[str], words: str, capsys) -> None:
    from rig.ota.cli import main

    image = tmp_path / "app.bin"
    image.write_bytes(IMAGE)
    assert main(["serve", str(image), "--port", "0", *args]) == 2
    assert words in capsys.readouterr().err
