"""The WINC module's wire protocol on SPI (docs/twin-network.md): codes, CRC and framing.

The twin's own simple framing, not Microchip's HIF: :class:`WincFraming` turns the SPI
byte stream into command frames and event reads and hands them to the module
(twin/net/winc.py); the constants are the frame bytes, statuses, opcodes and events both
sides share.

Owns: the frame state machine and the byte-level fault hooks (corruption, dropped
transactions). Must not touch: sockets, pins or the network (the module does).
"""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.net.winc import WincModule

FRAME_CMD, FRAME_EVT = 0xC1, 0xC2
ST_ACK, ST_CRC, ST_ARG, ST_STATE, ST_OPCODE = 0xAC, 0xE1, 0xE2, 0xE3, 0xE5
OP_NOP, OP_CONNECT, OP_SEND, OP_RECV, OP_CLOSE = 0x00, 0x10, 0x11, 0x12, 0x13
EV_CONNECT, EV_RECV, EV_SEND, EV_READY = 5, 6, 7, 0x80


SOCKET_BUFFER_MAX_LENGTH = 1400
MAX_FRAME = 1 + 4 + SOCKET_BUFFER_MAX_LENGTH + 16


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, MSB first, init 0xFFFF, no final XOR), as the
    firmware computes it: ``binascii.crc_hqx`` is that CRC with ``crc`` as the start value
    (tests/twin/test_net_winc.py compares it with a table implementation)."""
    return binascii.crc_hqx(data, crc)


class WincFraming:
    """The twin's SPI framing (replaceable).

    Command:  MOSI ``C1 len16 body[len] crc16`` then one dummy byte; MISO of that dummy byte
    is the status (AC ok, E1 CRC, E2 argument, E3 state, E5 opcode; FF = nobody answered).
    Event read: MOSI ``C2`` then dummies; MISO ``len16 body[len] crc16`` (len 0: no event,
    nothing follows). The event leaves the queue once its last byte is clocked out.
    All fields little-endian; CRC-16/CCITT-FALSE over ``body``.
    """

    def __init__(self, module: WincModule) -> None:
        self.module = module
        self.reset()

    def reset(self) -> None:
        """Abort any frame in progress (CS high, module reset)."""
        self.state = "idle"
        self.out = b""
        self.out_pos = 0
        self.out_payload = (0, 0)
        self.out_is_event = False
        self.body = bytearray()
        self.need = 0
        self.crc_in = bytearray()
        self.dropped = False

    def exchange(self, mosi: int) -> int:
        """One byte in each direction."""
        faults = self.module.faults
        # ---- output side: the byte prepared earlier
        if self.out_pos < len(self.out):
            pos = self.out_pos
            miso = self.out[pos]
            self.out_pos += 1
            lo, hi = self.out_payload
            miso = faults.corrupt("miso", miso, lo <= pos < hi)
            if self.out_pos == len(self.out):
                done_event = self.out_is_event
                self.out, self.out_pos, self.out_is_event = b"", 0, False
                if self.state == "evt":
                    self.state = "idle"
                if done_event:
                    self.module.event_consumed()
        else:
            miso = 0xFF if self.dropped else 0x00
        # ---- input side
        st = self.state
        if st == "idle":
            if mosi in (FRAME_CMD, FRAME_EVT):
                self.dropped = faults.drop_transaction()
                if mosi == FRAME_CMD:
                    self.state, self.body, self.need = "len0", bytearray(), 0
                elif self.dropped:
                    self.out, self.out_pos, self.out_payload = b"\xff\xff", 0, (0, 0)
                    self.state = "evt"
                else:
                    wire, payload = self.module.event_wire()
                    self.out, self.out_pos, self.out_payload = wire, 0, payload
                    self.out_is_event = len(wire) > 2
                    self.state = "evt"
            elif mosi not in (0x00, 0xFF):
                self.module.note_garbage(mosi)
        elif st == "len0":
            self.need = mosi
            self.state = "len1"
        elif st == "len1":
            self.need |= mosi << 8
            if not 0 < self.need <= MAX_FRAME:
                self.module.note_garbage(mosi, f"command length {self.need}")
                self.state = "idle"
                self.out, self.out_pos, self.out_payload = bytes([ST_ARG]), 0, (0, 0)
            else:
                self.state = "body"
        elif st == "body":
            payload = len(self.body) >= 4 and self.body[0] == OP_SEND
            self.body.append(faults.corrupt("mosi", mosi, payload))
            if len(self.body) == self.need:
                self.state, self.crc_in = "crc", bytearray()
        elif st == "crc":
            self.crc_in.append(mosi)
            if len(self.crc_in) == 2:
                self.state = "idle"
                if self.dropped:
                    status = 0xFF
                else:
                    ok = crc16(bytes(self.body)) == self.crc_in[0] | (self.crc_in[1] << 8)
                    status = self.module.command(bytes(self.body)) if ok else self.module.crc_error()
                self.out, self.out_pos, self.out_payload = bytes([status]), 0, (0, 0)
        elif st == "evt":
            pass  # dummies while the event is clocked out
        return miso
