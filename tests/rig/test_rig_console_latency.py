"""The console hands a line on when it arrives, not when the reader's read times out.

pyserial's ``read(n)`` returns only when ``n`` bytes came or its timeout ran out; a reader
asking for a big block therefore held every short line back by the whole timeout (50 ms on
each of a bootloader's lines). With the read timeout made long, a short line must still
show up at once.
"""

from __future__ import annotations

import os
import pty
import time
import tty

from rig.console import Console


def test_a_short_line_is_seen_before_the_read_timeout() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    con = Console(os.ttyname(slave))
    con.read_timeout = 5.0  # the old reader would sit on a short line for all of it
    try:
        con.open()
        time.sleep(0.1)  # the reader is inside its first read
        os.write(master, b"BL: hello\r\n")
        t0 = time.monotonic()
        con.expect(r"BL: hello", timeout=4.0)
        assert time.monotonic() - t0 < 2.5, "the line waited for the read timeout"
        os.write(master, b"x" * 5000 + b"\r\nEND\r\n")  # more than one block at once
        con.expect(r"END", timeout=4.0)
        assert con.text().count("x") == 5000
    finally:
        con.read_timeout = 0.05
        os.write(master, b"\n")  # wake the reader so close() need not wait out its read
        con.close()
        os.close(master)
        os.close(slave)
