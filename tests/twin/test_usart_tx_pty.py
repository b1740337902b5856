"""USART3 transmit to its PTY: bytes reach the host per line or burst (one write each, not one
per character), and never later than the moment the transmitter falls idle, so a prompt
without a newline still arrives."""

from __future__ import annotations

import os
import select

from twin.testing import ServicesDouble
from twin.usart import Usart

# written out from RM0410 (USART register map), not imported from twin.usart
CR1, BRR, ISR, TDR = 0x00, 0x0C, 0x1C, 0x28
CR1_UE_RE_TE = 0x0D
ISR_TXE = 1 << 7


def _send(s: ServicesDouble, u: Usart, text: bytes) -> None:
    """As polled firmware does: each byte into TDR as soon as TXE says it is empty."""
    for ch in text:
        while not u.read(ISR, 4) & ISR_TXE:
            s.advance(u.frame_cycles() // 8)
        u.write(TDR, 4, ch)


def _host_read(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0.05)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
    return out


def test_a_burst_reaches_the_pty_when_the_transmitter_falls_idle() -> None:
    s = ServicesDouble()
    u = Usart()
    s.add(u)
    try:
        u.write(BRR, 4, 139)  # 115200 baud at 16 MHz
        u.write(CR1, 4, CR1_UE_RE_TE)
        frame = u.frame_cycles()
        writes = []
        real_write = os.write

        def counting_write(fd: int, data: bytes) -> int:
            if fd == u.master_fd:
                writes.append(bytes(data))
            return real_write(fd, data)

        os.write = counting_write  # type: ignore[assignment]
        try:
            _send(s, u, b"ok> ")  # a prompt: no newline
            assert writes == []  # still shifting out: nothing written yet
            s.advance(4 * frame)  # the last frame ends: the line is quiet
            got = b"".join(writes)
            assert got == b"ok> "
            assert len(writes) == 1  # one write, not one per character
            _send(s, u, b"line\n")
            s.advance(4 * frame)
            assert b"".join(writes) == b"ok> line\n"
        finally:
            os.write = real_write  # type: ignore[assignment]
        assert _host_read(u.slave_fd) == b"ok> line\n"
    finally:
        u.close()
