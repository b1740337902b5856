"""The WINC3400's SPI slave: Microchip's command/response/data-packet protocol on the wire.

What a host driver (Microchip's ``nmspi.c`` or the reference firmware's) sees byte by byte;
docs/twin-network.md "WiFi (microchip)" has the tables. In short:

* **Commands** start with a byte ``0xC?``; the address is big-endian: ``C1``/``C2`` DMA
  write/read (addr24, size16), ``C3``/``C4`` internal write/read (addr16 with bit 15 =
  clockless, + value32 BE for the write), ``C5`` terminate, ``C6`` repeat, ``C7``/``C8``
  extended DMA write/read (addr24, size24), ``C9``/``CA`` single write/read (addr24, +
  value32 BE for the write), ``CF`` reset (``FF FF FF``). While CRC7 is on (protocol
  config bit 2) one more byte ends the command: CRC-7 (x^7+x^3+1, seed 0x7F) of the bytes
  before it, shifted left by one (bit 0 is not checked).
* **Response**: the byte after the command is the echo ``C?`` (response start 0b1100 +
  command type), the next one the state: 0 ok, 1 unsupported command, 2 unexpected data
  packet, 3 command CRC7 error, 4 data CRC16 error. Terminate, repeat and reset answer one
  byte later. A CRC7 error executes nothing.
* **Read data** follows the response at once: per packet (the configured packet size,
  256 << bits 6:4) a token ``F1`` first / ``F2`` middle / ``F3`` last or only, the data
  (register values little-endian) and, while CRC16 is on (bit 3) and the read was not
  clockless, CRC-16/CCITT-FALSE of the packet, big-endian. ``C6`` sends the packet the
  host was reading again, and the rest of the transfer after it.
* **Write data**: the host sends ``F?`` then the packet (and, while CRC16 is on, its CRC;
  a wrong one discards the packet). After each packet the module answers ``C<order>
  <state>`` (one byte later when CRC16 is off); nothing obliges the host to read it.
* MISO idles at 0xFF. Chip select does not reset any of this: a host may drop CS between
  every piece of a transfer (Microchip's bus wrapper does), and a new command aborts what
  was left of the previous response.

Faults (twin/net/faults.py): bit errors on MOSI before the CRC checks and on MISO after
the CRCs were computed, so they pass silently with CRC off and are refused (MOSI) or
detectable (MISO) with CRC on; a dropped transaction is a command the module never saw
(no response, a write's data swallowed).

Owns: the protocol state machine, the SPI block's registers (0xE800.., protocol config
at 0xE824); the CRCs are twin/net/winc_crc.py. Must not touch: the chip's other registers and memory (it calls
its :class:`BusTarget`), pins, sockets.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from twin.net.winc_crc import crc7, crc16

CMD_DMA_WRITE, CMD_DMA_READ = 0xC1, 0xC2
CMD_INTERNAL_WRITE, CMD_INTERNAL_READ = 0xC3, 0xC4
CMD_TERMINATE, CMD_REPEAT = 0xC5, 0xC6
CMD_DMA_EXT_WRITE, CMD_DMA_EXT_READ = 0xC7, 0xC8
CMD_SINGLE_WRITE, CMD_SINGLE_READ = 0xC9, 0xCA
CMD_RESET = 0xCF

#: command length without the CRC7 byte
CMD_LEN = {0xC1: 6, 0xC2: 6, 0xC3: 7, 0xC4: 4, 0xC5: 4, 0xC6: 4, 0xC7: 7, 0xC8: 7, 0xC9: 8, 0xCA: 4, 0xCF: 4}
UNKNOWN_CMD_LEN = 4  # C0, CB..CE: taken as a 4-byte command and answered "unsupported"
SPECIAL = (CMD_TERMINATE, CMD_REPEAT, CMD_RESET)  # answered one byte later
WRITES = (CMD_DMA_WRITE, CMD_DMA_EXT_WRITE)

ST_OK, ST_UNSUPPORTED, ST_UNEXPECTED_DATA, ST_CRC7, ST_CRC16, ST_GENERAL = 0, 1, 2, 3, 4, 5
ORDER_FIRST, ORDER_MIDDLE, ORDER_LAST = 1, 2, 3
IDLE_MISO = 0xFF

SPI_REG_BASE = 0xE800
PROTOCOL_CONFIG = 0xE824
CFG_CRC7, CFG_CRC16 = 1 << 2, 1 << 3
CFG_PKT_SHIFT, CFG_PKT_MASK = 4, 0x7
#: reset value of the protocol config (our choice): CRC7 and CRC16 on, 256-byte packets
PROTOCOL_CONFIG_RESET = CFG_CRC7 | CFG_CRC16

_IDLE, _CMD, _TOKEN, _DATA = 0, 1, 2, 3
#: MOSI bytes that may change the state outside a command or packet: a command start, a
#: data token (and 0xFF, an unexpected one while idle); anything else is fill
_SIGNIFICANT = re.compile(rb"[\xC0-\xCF\xF0-\xFF]")
_SIG = bytes(1 if b & 0xF0 in (0xC0, 0xF0) else 0 for b in range(256))


class BusTarget(Protocol):
    """The chip behind the SPI slave: its registers and memory (twin/net/winc_chip.py)."""

    def read_reg(self, address: int) -> int: ...

    def write_reg(self, address: int, value: int) -> None: ...

    def read_block(self, address: int, size: int) -> bytes: ...

    def write_block(self, address: int, data: bytes) -> None: ...

    def payload_ranges(self, address: int, size: int) -> list[tuple[int, int]]:
        """Offsets ``[lo, hi)`` of ``[address, address + size)`` that hold socket data."""


class SpiSlave:
    """The protocol engine: one :meth:`exchange` per SPI byte while CS is low."""

    def __init__(self, target: BusTarget, faults: Any, log: Any) -> None:
        self.target = target
        self.faults = faults
        self._log = log
        self.stats = {
            "commands": 0,
            "crc7_errors": 0,
            "crc16_errors": 0,
            "unsupported": 0,
            "unexpected_data": 0,
            "repeats": 0,
            "resets": 0,
            "dropped": 0,
        }
        self.power_on()

    # ---------------------------------------------------------------- state
    def power_on(self) -> None:
        """Chip reset: protocol config back to its reset value (CRC on), nothing pending."""
        self.regs: dict[int, int] = {PROTOCOL_CONFIG: PROTOCOL_CONFIG_RESET}
        self._apply_config()
        self.reset()
        self._prev: tuple[bytes, int, list[int], list[tuple[int, int]]] = (b"", 0, [], [])

    def reset(self) -> None:
        """The protocol state machine back to idle (RESET command, chip reset)."""
        self._state = _IDLE
        self._cmd = bytearray()
        self._need = 0
        self._dropped = False
        self._wr_addr = self._wr_left = 0
        self._wr_first = True
        self._wr_payload: list[tuple[int, int]] = []
        self._wr_base = 0
        self._swallow = False
        self._pkt = bytearray()
        self._pkt_n = self._pkt_order = 0
        self._pkt_need = 0
        self._set_out(b"")

    def _apply_config(self) -> None:
        cfg = self.regs[PROTOCOL_CONFIG]
        self.crc7_on = bool(cfg & CFG_CRC7)
        self.crc16_on = bool(cfg & CFG_CRC16)
        self.packet_size = 256 << min((cfg >> CFG_PKT_SHIFT) & CFG_PKT_MASK, 5)

    def _set_out(self, data: bytes, packets: list[int] | None = None, payload: list | None = None) -> None:
        self._out = data
        self._pos = 0
        self._packets = packets or []
        self._out_payload: list[tuple[int, int]] = payload or []

    def reg_read(self, address: int) -> int:
        """A register of the SPI block (0xE800..0xE8FF)."""
        return self.regs.get(address, 0)

    def reg_write(self, address: int, value: int) -> None:
        """Store a register of the SPI block; the protocol config takes effect after this command."""
        self.regs[address] = value & 0xFFFFFFFF
        if address == PROTOCOL_CONFIG:
            self._apply_config()
            self._log(
                f"SPI protocol config 0x{value:08X}: CRC7 {'on' if self.crc7_on else 'off'}, "
                f"CRC16 {'on' if self.crc16_on else 'off'}, packets of {self.packet_size} bytes"
            )

    # ---------------------------------------------------------------- the wire
    def exchange(self, mosi: int) -> int:
        """One SPI byte: return the MISO byte and take the MOSI byte."""
        faults = self.faults
        if faults.miso is not None or faults.mosi is not None:
            return self._exchange_faulty(mosi)
        pos = self._pos
        out = self._out
        if pos < len(out):
            miso = out[pos]
            self._pos = pos + 1
        else:
            miso = IDLE_MISO
        state = self._state
        if state == _DATA:
            pkt = self._pkt
            pkt.append(mosi)
            if len(pkt) == self._pkt_need:
                self._packet_done()
        elif state == _CMD:
            self._cmd.append(mosi)
            if len(self._cmd) == self._need:
                self._state = _IDLE
                self._command_done()
        elif _SIG[mosi]:  # else fill: ignored
            if state == _TOKEN and mosi >= 0xF0:
                self._start_packet(mosi & 0x0F)
            else:
                self._idle(mosi)
        return miso

    def exchange2(self, first: int, second: int) -> int:
        """:meth:`exchange` of two bytes (a 16-bit DR access); MISO ``first | second << 8``.
        Fill bytes outside a command and packet data inside one move without a call each."""
        faults = self.faults
        state = self._state
        if faults.miso is None and faults.mosi is None:
            if state == _DATA:
                fits = self._pkt_need - len(self._pkt) >= 2
            else:
                fits = state != _CMD and not _SIG[first] and not _SIG[second]
            if fits:
                pos, out = self._pos, self._out
                n = len(out)
                if pos + 2 <= n:
                    miso = out[pos] | (out[pos + 1] << 8)
                    self._pos = pos + 2
                elif pos < n:
                    miso = out[pos] | 0xFF00
                    self._pos = n
                else:
                    miso = 0xFFFF
                if state == _DATA:
                    pkt = self._pkt
                    pkt.append(first)
                    pkt.append(second)
                    if len(pkt) == self._pkt_need:
                        self._packet_done()
                return miso
        return self.exchange(first) | (self.exchange(second) << 8)

    def _exchange_faulty(self, mosi: int) -> int:
        """:meth:`exchange` while a bit-error fault is armed."""
        faults = self.faults
        pos = self._pos
        if pos < len(self._out):
            miso = self._out[pos]
            self._pos = pos + 1
            if faults.miso is not None:
                miso = faults.corrupt("miso", miso, self._in_out_payload(pos))
        else:
            miso = IDLE_MISO
            if faults.miso is not None and faults.scope == "all":
                miso = faults.corrupt("miso", miso, False)
        state = self._state
        if faults.mosi is not None:
            mosi = faults.corrupt("mosi", mosi, state == _DATA and self._in_wr_payload())
        if state == _DATA:
            self._pkt.append(mosi)
            if len(self._pkt) == self._pkt_need:
                self._packet_done()
        elif state == _CMD:
            self._cmd.append(mosi)
            if len(self._cmd) == self._need:
                self._state = _IDLE
                self._command_done()
        elif state == _TOKEN and mosi & 0xF0 == 0xF0:
            self._start_packet(mosi & 0x0F)
        else:
            self._idle(mosi)
        return miso

    def exchange_block(self, mosi: bytes) -> bytes:
        """:meth:`exchange` for each byte of ``mosi``, in order; runs of fill bytes and of
        packet data move as slices (while no bit-error fault is armed)."""
        faults = self.faults
        if faults.miso is not None or faults.mosi is not None:
            return bytes([self.exchange(b) for b in mosi])
        out = bytearray()
        i, n = 0, len(mosi)
        while i < n:
            state = self._state
            if state == _DATA:
                k = min(n - i, self._pkt_need - len(self._pkt))
                out += self._take(k)
                self._pkt += mosi[i : i + k]
                i += k
                if len(self._pkt) == self._pkt_need:
                    self._packet_done()
                continue
            if state != _CMD:
                m = _SIGNIFICANT.search(mosi, i)
                j = n if m is None else m.start()
                if j > i:
                    out += self._take(j - i)
                    i = j
                    continue
            out.append(self.exchange(mosi[i]))
            i += 1
        return bytes(out)

    def _take(self, k: int) -> bytes:
        """MISO of ``k`` bytes that change nothing else (fill, packet data)."""
        pos = self._pos
        chunk = self._out[pos : pos + k]
        self._pos = pos + len(chunk)
        return chunk if len(chunk) == k else chunk + b"\xff" * (k - len(chunk))

    def _in_out_payload(self, pos: int) -> bool:
        return any(lo <= pos < hi for lo, hi in self._out_payload)

    def _in_wr_payload(self) -> bool:
        offset = self._wr_addr - self._wr_base + len(self._pkt)
        return any(lo <= offset < hi for lo, hi in self._wr_payload)

    def _idle(self, b: int) -> None:
        """A byte outside a command or packet: a command start, a stray data token or fill."""
        if b & 0xF0 == 0xC0:
            self._prev = (self._out, self._pos, self._packets, self._out_payload)
            self._set_out(b"")
            self._dropped = self.faults.drop_transaction()
            self._cmd = bytearray((b,))
            self._need = CMD_LEN.get(b, UNKNOWN_CMD_LEN) + (1 if self.crc7_on else 0)
            self._state = _CMD
        elif b & 0xF0 == 0xF0 and self._state == _IDLE:
            self.stats["unexpected_data"] += 1
            self._set_out(bytes((0xC0 | (b & 0x0F), ST_UNEXPECTED_DATA)))
        # anything else (0x00/0xFF fill, a wrong byte while a token is awaited) is ignored

    # ---------------------------------------------------------------- commands
    def _command_done(self) -> None:
        """A whole command arrived: check its CRC7, then execute and queue the response."""
        cmd = bytes(self._cmd)
        op = cmd[0]
        self.stats["commands"] += 1
        if self._dropped:
            self.stats["dropped"] += 1
            if op in WRITES:
                self._expect_data(*self._addr_size(cmd), swallow=True)
            return
        if self.crc7_on and (crc7(cmd[:-1]) << 1) != (cmd[-1] & 0xFE):
            self.stats["crc7_errors"] += 1
            self._log(f"command {cmd.hex(' ')}: CRC7 error, answered {op:02X} 03")
            self._set_out(bytes((op, ST_CRC7)))
            return
        if op in (CMD_SINGLE_READ, CMD_INTERNAL_READ):
            self._single_read(cmd)
        elif op in (CMD_SINGLE_WRITE, CMD_INTERNAL_WRITE):
            self._single_write(cmd)
        elif op in (CMD_DMA_READ, CMD_DMA_EXT_READ):
            self._block_read(cmd)
        elif op in WRITES:
            self._set_out(bytes((op, ST_OK)))
            self._expect_data(*self._addr_size(cmd), swallow=False)
        elif op in SPECIAL:
            self._special(op)
        else:
            self.stats["unsupported"] += 1
            self._set_out(bytes((op, ST_UNSUPPORTED)))

    @staticmethod
    def _addr_size(cmd: bytes) -> tuple[int, int]:
        addr = int.from_bytes(cmd[1:4], "big")
        n = 2 if cmd[0] in (CMD_DMA_READ, CMD_DMA_WRITE) else 3
        return addr, int.from_bytes(cmd[4 : 4 + n], "big")

    @staticmethod
    def _internal_address(cmd: bytes) -> tuple[int, bool]:
        """(address, clockless) of a C3/C4 command: bit 15 selects the clockless registers,
        otherwise the address is an offset into the SPI block (0xE800 + offset)."""
        raw = (cmd[1] << 8) | cmd[2]
        if raw & 0x8000:
            return raw & 0x7FFF, True
        return SPI_REG_BASE + (raw & 0xFF), False

    def _reg(self, address: int, value: int | None = None) -> int:
        spi_block = SPI_REG_BASE <= address < SPI_REG_BASE + 0x100
        if value is None:
            return self.reg_read(address) if spi_block else self.target.read_reg(address)
        if spi_block:
            self.reg_write(address, value)
        else:
            self.target.write_reg(address, value)
        return 0

    def _single_read(self, cmd: bytes) -> None:
        op = cmd[0]
        if op == CMD_INTERNAL_READ:
            address, clockless = self._internal_address(cmd)
        else:
            address, clockless = int.from_bytes(cmd[1:4], "big"), False
        data = (self._reg(address) & 0xFFFFFFFF).to_bytes(4, "little")
        out = bytes((op, ST_OK, 0xF0 | ORDER_LAST)) + data
        if self.crc16_on and not clockless:
            out += crc16(data).to_bytes(2, "big")
        self._set_out(out, packets=[2])

    def _single_write(self, cmd: bytes) -> None:
        op = cmd[0]
        if op == CMD_INTERNAL_WRITE:
            address, _ = self._internal_address(cmd)
            value = int.from_bytes(cmd[3:7], "big")
        else:
            address, value = int.from_bytes(cmd[1:4], "big"), int.from_bytes(cmd[4:8], "big")
        self._set_out(bytes((op, ST_OK)))  # queued first: the config change applies to what follows
        self._reg(address, value)

    def _block_read(self, cmd: bytes) -> None:
        """C2/C8: the data in packets of the configured size, each with token (and CRC16)."""
        address, size = self._addr_size(cmd)
        out = bytearray((cmd[0], ST_OK))
        if size == 0:
            self._set_out(bytes(out))
            return
        data = self.target.read_block(address, size)
        ranges = self.target.payload_ranges(address, size)
        packets: list[int] = []
        payload: list[tuple[int, int]] = []
        pkt = self.packet_size
        for start in range(0, size, pkt):
            chunk = data[start : start + pkt]
            last = start + pkt >= size
            order = ORDER_LAST if last else ORDER_FIRST if start == 0 else ORDER_MIDDLE
            packets.append(len(out))
            out.append(0xF0 | order)
            base = len(out) - start  # out offset of data byte 0
            payload += [(base + max(lo, start), base + min(hi, start + len(chunk))) for lo, hi in ranges]
            out += chunk
            if self.crc16_on:
                out += crc16(chunk).to_bytes(2, "big")
        self._set_out(bytes(out), packets, [(lo, hi) for lo, hi in payload if lo < hi])

    def _special(self, op: int) -> None:
        """Terminate, repeat, reset: answered after one byte of latency."""
        if op == CMD_RESET:
            self.stats["resets"] += 1
            self.reset()
            self._set_out(bytes((IDLE_MISO, op, ST_OK)))
            return
        if op == CMD_TERMINATE:
            self._state = _IDLE
            self._wr_left = 0
            self._set_out(bytes((IDLE_MISO, op, ST_OK)))
            return
        self.stats["repeats"] += 1
        out, pos, packets, payload = self._prev
        starts = [p for p in packets if p < max(pos, 1)]
        head = bytes((IDLE_MISO, op, ST_OK))
        if not starts:
            self._set_out(head)
            return
        start = starts[-1]
        shift = len(head) - start
        self._set_out(
            head + out[start:],
            [p + shift for p in packets if p >= start],
            [(lo + shift, hi + shift) for lo, hi in payload if hi > start],
        )

    # ---------------------------------------------------------------- block writes
    def _expect_data(self, address: int, size: int, swallow: bool) -> None:
        self._wr_addr, self._wr_left, self._wr_first = address, size, True
        self._swallow = swallow
        self._wr_payload = [] if swallow else self.target.payload_ranges(address, size)
        self._wr_base = address
        self._state = _TOKEN if size else _IDLE

    def _start_packet(self, order: int) -> None:
        self._pkt = bytearray()
        n = min(self.packet_size, self._wr_left)
        self._pkt_n = n
        self._pkt_order = order
        self._pkt_need = n + (2 if self.crc16_on else 0)
        self._state = _DATA

    def _packet_done(self) -> None:
        """A data packet (and its CRC16) arrived: write it unless the CRC is wrong; answer."""
        n = self._pkt_n
        data = bytes(self._pkt[:n])
        status = ST_OK
        if self.crc16_on and crc16(data) != int.from_bytes(self._pkt[n : n + 2], "big"):
            status = ST_CRC16
            self.stats["crc16_errors"] += 1
            self._log(f"data packet for 0x{self._wr_addr:06X} (+{n}): CRC16 error, discarded")
        elif not self._swallow:
            self.target.write_block(self._wr_addr, data)
        self._wr_addr += n
        self._wr_left -= n
        self._state = _TOKEN if self._wr_left else _IDLE
        if not self._swallow:
            order = self._pkt_order or ORDER_LAST
            rsp = bytes((0xC0 | order, status))
            self._set_out(rsp if self.crc16_on else bytes((IDLE_MISO,)) + rsp)

    def snapshot(self) -> dict[str, Any]:
        """Protocol settings and counters."""
        return {
            "crc7": self.crc7_on,
            "crc16": self.crc16_on,
            "packet_size": self.packet_size,
            **self.stats,
        }
