"""The console line's two rates (twin/line_rate.py): what the host reads when the STM32's
U(S)ART and the host's line disagree, and what the U(S)ART receives. The host's rate is the
PTY's termios, set as pyserial sets it."""

from __future__ import annotations

import random

import pytest
import serial
from test_usart_tx_pty import BRR, CR1, CR1_UE_RE_TE, ISR, _host_read, _send

from twin.line_rate import DEFAULT_BAUD, host_baud, resample
from twin.testing import ServicesDouble
from twin.usart import Usart

RDR, ISR_RXNE = 0x24, 1 << 5


@pytest.mark.parametrize("rx", [115200, 112000, 118500])  # equal, and within 3 %
def test_rates_within_tolerance_read_the_same_bytes(rx: int) -> None:
    data = bytes(random.Random(7).randrange(256) for _ in range(300))
    assert resample(data, 115200, rx) == data


def test_a_receiver_at_another_rate_reads_other_bytes() -> None:
    text = b"APP: ota-rig app v1 (16 KiB)\r\n"
    fast = resample(text, 316_546, 115200)  # BRR for 16 MHz with a 44 MHz clock
    slow = resample(text, 57600, 115200)
    assert fast != text and slow != text
    assert len(fast) < len(text) < len(slow)  # three frames in one, one frame read as two
    assert resample(b"", 9600, 115200) == b""


def test_the_host_rate_is_what_its_serial_port_set() -> None:
    u = Usart()
    try:
        assert host_baud(u.slave_fd) == DEFAULT_BAUD  # the twin's PTY starts at 115200
        for baud in (9600, 250_000, 115200):  # 250 000 is not a Bxxx rate: termios2
            with serial.Serial(u.slave_path, baud) as port:
                assert port.baudrate == baud and host_baud(u.slave_fd) == baud
    finally:
        u.close()


def _received(s: ServicesDouble, u: Usart, data: bytes) -> bytes:
    """What the firmware reads from RDR after the host wrote ``data`` (polled, as HAL does)."""
    u.inject_rx(data)
    got = bytearray()
    for _ in range(400):
        s.advance(u.frame_cycles() // 2)
        if u.read(ISR, 4) & ISR_RXNE:
            got.append(u.read(RDR, 4))
    return bytes(got)


def test_a_usart_at_the_wrong_rate_reaches_the_host_as_garbage_and_says_why() -> None:
    """BRR 139 (115200 baud at 16 MHz) with a 44 MHz kernel clock: 316 kbaud."""
    s = ServicesDouble(core_hz=44_000_000)
    u = Usart()
    s.add(u)
    try:
        u.write(BRR, 4, 139)
        u.write(CR1, 4, CR1_UE_RE_TE)
        _send(s, u, b"hello, host\r\n")
        s.advance(20 * u.frame_cycles())
        got = _host_read(u.slave_fd)
        assert got and got != b"hello, host\r\n"
        assert bytes(u.tx_log) == b"hello, host\r\n"  # what left the pin
        said = [line for line in s.logs if "baud" in line]
        assert len(said) == 1 and "USART3 runs at 316546 baud and the host's line at 115200" in said[0]
        assert _received(s, u, b"OTA_READY\n") == resample(b"OTA_READY\n", 115200, 316_546)
        u.write(BRR, 4, 382)  # 115200 at 44 MHz: right again
        _send(s, u, b"ok\r\n")
        s.advance(20 * u.frame_cycles())
        assert _host_read(u.slave_fd) == b"ok\r\n"
        assert _received(s, u, b"OTA_READY\n") == b"OTA_READY\n"
    finally:
        u.close()
