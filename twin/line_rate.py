"""The console line's two ends at different baud rates, as the ST-LINK's virtual COM port
meets them: the host sets the line's rate (pyserial's ``baudrate``: USB CDC SET_LINE_CODING,
here the PTY's termios), the ST-LINK's UART runs at it, and the STM32's U(S)ART runs at its
kernel clock / BRR. Within a few per cent they understand each other; beyond, each reads
the other's frames at its own rate and gets other bytes. A firmware whose BRR was computed
for another clock (an app that assumes the reset clock after a bootloader left the PLL
running, a wrong HSE_VALUE) prints garbage on the board, and did not on a twin that handed
its bytes to the host whatever the rates.

:func:`resample` is that receiver: 8N1 frames sent back to back at one rate, read by a UART
at another that waits for a falling edge, samples each bit in its middle and takes the
stop bit's sample as it comes (a framing error still gives a byte, as USB-serial bridges
pass them on). :func:`host_baud` reads the rate the host set on the PTY.

Owns: the rates' arithmetic and the resampling. Must not touch: the U(S)ART (twin/usart.py
calls it), the PTY's data.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Callable

#: the most the two rates may differ before bytes change (RM0410's receiver tolerance for
#: 8 data bits, 16x oversampling, is 3.75 % in all; the ST-LINK's bridge has its own error)
TOLERANCE = 0.03
#: what the twin sets on its PTY at creation (the rate the rig and the firmware use)
DEFAULT_BAUD = 115200
_TCGETS2 = 0x802C542A  # Linux asm-generic termios2 (x86-64, arm64): the rate as a number
_BOTHER = 0o010000
_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios) if n[:1] == "B" and n[1:].isdigit()}


def host_baud(fd: int) -> int | None:
    """The output rate set on the tty ``fd`` (a PTY's slave: every opener shares it), or None."""
    try:
        attrs = termios.tcgetattr(fd)
    except (termios.error, OSError):
        return None
    speed = _SPEEDS.get(attrs[5])
    if speed is not None and not attrs[2] & _BOTHER:
        return speed
    try:  # a rate outside the Bxxx table (pyserial sets those with BOTHER)
        raw = fcntl.ioctl(fd, _TCGETS2, bytes(44))
    except OSError:
        return speed
    return struct.unpack_from("<I", raw, 40)[0] or speed


def set_baud(fd: int, baud: int = DEFAULT_BAUD) -> None:
    """Set a standard rate on the tty ``fd`` (both directions), leaving the rest as it is."""
    attrs = termios.tcgetattr(fd)
    code = next(c for c, b in _SPEEDS.items() if b == baud)
    attrs[4] = attrs[5] = code
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def mismatch(a: int, b: int) -> float:
    """How far rate ``a`` is from ``b``, as a fraction of ``b``."""
    return abs(a - b) / b


def resample(data: bytes, tx_baud: float, rx_baud: float) -> bytes:
    """What a UART at ``rx_baud`` reads from ``data`` sent as back-to-back 8N1 frames at
    ``tx_baud`` (the line idles high before and after)."""
    bits = []
    for byte in data:
        bits.append(0)
        bits.extend((byte >> i) & 1 for i in range(8))
        bits.append(1)
    n = len(bits)

    def level(t: float) -> int:
        k = int(t * tx_baud)
        return bits[k] if 0 <= k < n else 1

    out = bytearray()
    k = 0  # the next bit boundary (at tx_baud) where a falling edge may be
    t = 0.0  # the receiver waits for a falling edge from here
    while k < n:
        while k < n and (k / tx_baud < t or bits[k] != 0 or (k > 0 and bits[k - 1] != 1)):
            k += 1  # a falling edge: a 0 bit after a 1 (or after idle)
        if k >= n:
            break
        edge = k / tx_baud
        value = 0
        for i in range(8):
            value |= level(edge + (i + 1.5) / rx_baud) << i
        out.append(value)
        t = edge + 9.5 / rx_baud  # the stop bit's sample; then the next falling edge
        k += 1
    return bytes(out)


class HostLine:
    """The host's end of one U(S)ART's PTY (``fd``: its slave): what crosses it in each
    direction at the rates of the moment, said once per pair of rates (``log``)."""

    def __init__(self, fd: int, name: str, log: Callable[[str], None]) -> None:
        self.fd, self.name, self._log = fd, name, log
        self._said: set[tuple[int, int]] = set()
        set_baud(fd)

    def to_host(self, data: bytes, mine: int) -> bytes:
        """``data`` the U(S)ART sent at ``mine`` baud, as the host reads it."""
        host = self._off(mine)
        return data if host is None else resample(data, mine, host)

    def from_host(self, data: bytes, mine: int) -> bytes:
        """``data`` the host wrote, as the U(S)ART at ``mine`` baud receives it."""
        host = self._off(mine)
        return data if host is None else resample(data, host, mine)

    def _off(self, mine: int) -> int | None:
        """The host's rate if it is out of tolerance with ``mine`` (0: BRR not set), else None."""
        host = host_baud(self.fd)
        if not host or not mine or mismatch(mine, host) <= TOLERANCE:
            return None
        if (mine, host) not in self._said:
            self._said.add((mine, host))
            self._log(
                f"{self.name.upper()} runs at {mine} baud and the host's line at {host} "
                f"({mismatch(mine, host):.0%} apart): on the board each side reads the other's bytes "
                "as garbage (the twin passes them through a receiver at the other rate); BRR was "
                "computed for another clock (an app that assumes the reset clock after its "
                "bootloader left the PLL running, a wrong HSE_VALUE) or the host's baud rate differs"
            )
        return host
