"""A WINC3400 host in Python that drives the twin's module the way Microchip's host driver
v1.1.0 does (nmspi.c / nmbus.c / nmasic.c / m2m_hif.c / socket.c, written here from their
behaviour, not copied): through SPI1's registers and the GPIO ports, dropping CS after every
piece of a transfer as Microchip's bus wrapper does, with the same retries (RESET command and
again, 10 times), the same CRC negotiation, init handshake, HIF send/receive and socket
requests.

CRC7/CRC16 here are computed bit by bit from the polynomial definitions, independently of
twin/net/winc_bus.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from net_harness import Gpio

from twin.net import spi as S
from twin.testing import ServicesDouble

PROTOCOL_CONFIG = 0xE824


def crc7_bits(data: bytes) -> int:
    """CRC-7, polynomial x^7 + x^3 + 1, initial value 0x7F, MSB first (the wire byte is ``<< 1``)."""
    crc = 0x7F
    for byte in data:
        for i in range(7, -1, -1):
            top = ((crc >> 6) & 1) ^ ((byte >> i) & 1)
            crc = (crc << 1) & 0x7F
            if top:
                crc ^= 0x09
    return crc


def crc16_bits(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, MSB first, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


class BusError(Exception):
    """The host gave up on a bus transfer after its retries."""


class SpiWire:
    """Byte-level access to the module through SPI1's DR/SR and CS on PD14."""

    def __init__(self, m: ServicesDouble, spi: S.Stm32Spi) -> None:
        self.m, self.spi = m, spi
        self.gpiob, self.gpiod, self.gpiof = (m.devices[n] for n in ("gpiob", "gpiod", "gpiof"))
        self.gpiod.out[14] = True
        spi.write(S.CR2, 4, 0x0700 | S.CR2_FRXTH)
        spi.write(S.CR1, 4, S.CR1_MSTR | S.CR1_SSM | S.CR1_SSI | S.CR1_SPE)
        self.log: list[tuple[bytes, bytes]] = []  # (mosi, miso) per CS window

    def xfer(self, mosi: bytes) -> bytes:
        """One CS-low window: clock ``mosi`` out, return what MISO carried."""
        self.gpiod.out[14] = False
        out = bytearray()
        for b in mosi:
            self.spi.write(S.DR, 1, b)
            out.append(self.spi.read(S.DR, 1))
        self.gpiod.out[14] = True
        self.log.append((bytes(mosi), bytes(out)))
        return bytes(out)

    def irqn_low(self) -> bool:
        return self.gpiob.inputs.get(1) is False

    def falling_edges(self) -> int:
        return sum(1 for pin, level in self.gpiob.edges if pin == 1 and level is False)


class MicrochipHost:
    """The driver's bus layer (nmspi.c + nmbus.c with a 256-byte bus wrapper).

    ``keep_crc``: a driver that leaves CRC on and uses it (what the reference firmware's
    default build does): it sends real CRC16s, checks every read CRC16 and reads the answer
    to each write packet; a mismatch or a refusal counts as a failed access (reset, retry).
    """

    MAX_TRX = 256 - 8

    def __init__(self, wire: SpiWire, keep_crc: bool = False) -> None:
        self.wire = wire
        self.m = wire.m
        self.crc_off = False
        self.keep_crc = keep_crc
        self.retries = 0
        self.crc_mismatches = 0

    # ---------------------------------------------------------------- packets
    def _cmd(self, op: int, body: bytes) -> None:
        pkt = bytes((op,)) + body
        if not self.crc_off:
            pkt += bytes((crc7_bits(pkt) << 1,))
        self.wire.xfer(pkt)

    def _rsp(self, op: int) -> bool:
        if op in (0xC5, 0xC6):
            self.wire.xfer(b"\0")
        for _ in range(11):
            if self.wire.xfer(b"\0")[0] == op:
                break
        else:
            return False
        return any(self.wire.xfer(b"\0")[0] == 0 for _ in range(11))

    def _data_read(self, n: int, clockless: bool) -> bytes | None:
        for _ in range(10):
            if self.wire.xfer(b"\0")[0] & 0xF0 == 0xF0:
                break
        else:
            return None
        data = self.wire.xfer(bytes(n))
        if not clockless and not self.crc_off:
            crc = self.wire.xfer(bytes(2))  # never checked by Microchip's driver
            if self.keep_crc and int.from_bytes(crc, "big") != crc16_bits(data):
                self.crc_mismatches += 1
                return None
        return data

    def _retry(self, what: Callable[[], object]) -> object:
        for _ in range(10):
            result = what()
            if result is not None:
                return result
            self.retries += 1
            self.m.advance_ns(1_000_000)
            self._cmd(0xCF, b"\xff\xff\xff")
            self._rsp(0xCF)
            self.m.advance_ns(1_000_000)
        raise BusError(f"gave up after 10 tries: {what}")

    # ---------------------------------------------------------------- registers and blocks
    def read_reg(self, addr: int) -> int:
        def once() -> int | None:
            if addr <= 0xFF:
                op, body, clockless = 0xC4, bytes(((addr >> 8) | 0x80, addr & 0xFF, 0)), True
            else:
                op, body, clockless = 0xCA, addr.to_bytes(3, "big"), False
            self._cmd(op, body)
            if not self._rsp(op):
                return None
            data = self._data_read(4, clockless)
            return None if data is None else int.from_bytes(data, "little")

        return self._retry(once)  # type: ignore[return-value]

    def write_reg(self, addr: int, value: int) -> None:
        def once() -> bool | None:
            if addr <= 0x30:
                op, body = 0xC3, bytes(((addr >> 8) | 0x80, addr & 0xFF)) + value.to_bytes(4, "big")
            else:
                op, body = 0xC9, addr.to_bytes(3, "big") + value.to_bytes(4, "big")
            self._cmd(op, body)
            return True if self._rsp(op) else None

        self._retry(once)

    def _read_block(self, addr: int, size: int) -> bytes:
        def once() -> bytes | None:
            n = max(size, 2)  # the driver's single-byte workaround
            self._cmd(0xC8, addr.to_bytes(3, "big") + n.to_bytes(3, "big"))
            if not self._rsp(0xC8):
                return None
            data = self._data_read(n, False)
            return None if data is None else data[:size]

        return self._retry(once)  # type: ignore[return-value]

    def _write_block(self, addr: int, data: bytes) -> None:
        def once() -> bool | None:
            payload = data if len(data) > 1 else data + b"\0"
            self._cmd(0xC7, addr.to_bytes(3, "big") + len(payload).to_bytes(3, "big"))
            if not self._rsp(0xC7):
                return None
            self.wire.xfer(b"\xf3")
            self.wire.xfer(payload)
            if self.keep_crc:
                self.wire.xfer(crc16_bits(payload).to_bytes(2, "big"))
                return True if self.wire.xfer(bytes(2)) == b"\xc3\x00" else None
            if not self.crc_off:
                self.wire.xfer(b"\0\0")  # the driver's "CRC": zeros
            return True

        self._retry(once)

    def read_block(self, addr: int, size: int) -> bytes:
        out = bytearray()
        while size:
            n = min(size, self.MAX_TRX)
            out += self._read_block(addr, n)
            addr, size = addr + n, size - n
        return bytes(out)

    def write_block(self, addr: int, data: bytes) -> None:
        for i in range(0, len(data), self.MAX_TRX):
            self._write_block(addr + i, data[i : i + self.MAX_TRX])

    def spi_init(self) -> None:
        """nm_spi_init: read the protocol config with CRC (else without), turn CRC off."""
        self.crc_off = False
        try:
            reg = self.read_reg(PROTOCOL_CONFIG)
        except BusError:
            self.crc_off = True
            reg = self.read_reg(PROTOCOL_CONFIG)
        if self.keep_crc:
            self.write_reg(PROTOCOL_CONFIG, (reg & ~0x70) | (5 << 4))
            return
        if not self.crc_off:
            reg = (reg & ~0x7C) | (5 << 4)
            self.write_reg(PROTOCOL_CONFIG, reg)
            self.crc_off = True
        self.read_reg(0x1000)
        reg = self.read_reg(PROTOCOL_CONFIG)
        self.write_reg(PROTOCOL_CONFIG, (reg & ~0x70) | (5 << 4))


def make_services() -> ServicesDouble:
    m = ServicesDouble()
    for n in ("gpiob", "gpiod", "gpiof"):
        m.devices[n] = Gpio(n)
    return m


def hif_header(gid: int, op: int, length: int) -> int:
    return gid | (op << 8) | (length << 16)


def pack_connect(sock: int, ip: str, port: int, session: int) -> bytes:
    return (
        struct.pack("<H", 2)
        + port.to_bytes(2, "big")
        + bytes(map(int, ip.split(".")))
        + struct.pack("<BBH", sock, 0xA5, session)
    )


class M2mHost:
    """m2m_wifi_init / hif_send / hif_isr / socket calls, on top of :class:`MicrochipHost`.

    Interrupts are counted like the driver's edge ISR: one per falling edge of IRQN.
    Received messages land in ``events`` as ``(gid, op, payload)``; socket replies also in
    ``sock_events`` as decoded tuples.
    """

    def __init__(self, bus: MicrochipHost) -> None:
        self.bus, self.wire, self.m = bus, bus.wire, bus.m
        self.edges_handled = 0
        self.events: list[tuple[int, int, bytes]] = []
        self.false_interrupts = 0
        self.session = 0
        self.sessions: dict[int, int] = {}
        self.recv_buf: dict[int, int] = {}
        self.trace: list[str] = []

    # ---------------------------------------------------------------- power-up and init
    def reset_pins(self) -> None:
        """nm_bsp_reset: CHIP_EN and RESET_N low, CHIP_EN high, RESET_N high."""
        f = self.wire.gpiof
        f.out[13] = f.out[12] = False
        self._pins()
        self.m.advance_ns(1_000_000)
        f.out[13] = True
        self._pins()
        self.m.advance_ns(5_000_000)
        f.out[12] = True
        self._pins()
        self.m.advance_ns(1_000_000)

    def _pins(self) -> None:
        self.wire.spi.slave.sample_pins()

    def init(self) -> None:
        """m2m_wifi_init (CONF_WINC_DEBUG 0): bus, chip_idle, cpu_start, boot ROM, firmware, interrupts."""
        b = self.bus
        b.spi_init()
        reg = b.read_reg(0x01)
        if reg & 2:
            b.write_reg(0x01, reg & ~2)
        for addr in (0xC000C, 0x108C, 0x207AC):
            b.write_reg(addr, 0)
        b.write_reg(0x1118, b.read_reg(0x1118) | 1)
        b.write_reg(0x150014, 1)
        reg = b.read_reg(0x1400)
        if reg & (1 << 10):
            reg &= ~(1 << 10)
            b.write_reg(0x1400, reg)
        b.write_reg(0x1400, reg | (1 << 10))
        self.m.advance_ns(1_000_000)
        self._wait_for_bootrom()
        self._wait(lambda: b.read_reg(0x108C) == 0x02532636, 2000, 2_000_000, "firmware start")
        b.write_reg(0x108C, 0)
        b.write_reg(0x1408, b.read_reg(0x1408) | (1 << 8))
        b.write_reg(0x1A00, b.read_reg(0x1A00) | (1 << 16))
        self.edges_handled = self.wire.falling_edges()

    def _wait(self, cond: Callable[[], bool], tries: int, step_ns: int, what: str) -> None:
        for _ in range(tries):
            if cond():
                return
            self.m.advance_ns(step_ns)
        raise AssertionError(f"timed out waiting for {what}")

    def _wait_for_bootrom(self) -> None:
        b = self.bus
        while not b.read_reg(0x1014) & 0x80000000:
            self.m.advance_ns(1_000_000)
        if not b.read_reg(0x207BC) & 1:
            self._wait(lambda: b.read_reg(0xC000C) == 0x10ADD09E, 2000, 1_000_000, "boot ROM")
        self.chip_id()
        b.write_reg(0x14A0, 0)  # chip_apply_conf(0): REV != 0x3A0
        b.write_reg(0xC000C, 0xEF522F61)

    def chip_id(self) -> int:
        """nmi_get_chipid as the driver computes it."""
        b = self.bus
        chipid, rfrev = b.read_reg(0x1000), b.read_reg(0x13F4)
        if chipid == 0x1000F0:
            chipid = b.read_reg(0x3B0000)
            if chipid == 0x3000D0:
                chipid = {6: 0x3000D1, 2: 0x3000D2}.get(rfrev, chipid)
        if chipid & 0xF00000 == 0x300000:
            chipid = (chipid & ~0x0F0000) | 0x040000
        return chipid

    def firmware_info(self) -> tuple[int, bytes]:
        """nm_get_firmware_full_info: (hif info register, tstrM2mRev bytes)."""
        b = self.bus
        hif = b.read_reg(0x207AC) & 0xFFFF
        gp = b.read_block(b.read_reg(0x149C) | 0x30000, 8)
        rev_at = int.from_bytes(gp[4:8], "little") & 0xFFFF
        return hif, b.read_block(rev_at | 0x30000, 28)

    # ---------------------------------------------------------------- HIF
    def hif_send(self, gid: int, op: int, ctrl: bytes, data: bytes | None = None, offset: int = 0) -> int:
        """hif_send: 0 or M2M_ERR_MEM_ALLOC (-3)."""
        b = self.bus
        length = 8 + (offset + len(data) if data is not None else len(ctrl))
        b.write_reg(0x108C, hif_header(gid, op, length))
        b.write_reg(0x1078, 2)
        b.write_reg(0x10AC, 1)
        addr = 0
        for _ in range(5000):
            if not b.read_reg(0x1078) & 2:
                addr = b.read_reg(0x150400)
                break
        if addr == 0:
            return -3
        b.write_block(addr, bytes((gid, op & 0x7F)) + length.to_bytes(2, "little") + b"\xde\xad\xbe\xef")
        b.write_block(addr + 8, ctrl)
        if data is not None:
            b.write_block(addr + 8 + offset, data)
        b.write_reg(0x106C, (addr << 2) | 2)
        b.write_reg(0x10B0, 1)
        return 0

    def handle_events(self) -> int:
        """m2m_wifi_handle_events: one hif_isr per falling edge counted since last time."""
        n = 0
        while self.edges_handled < self.wire.falling_edges():
            self.edges_handled += 1
            self.hif_isr()
            n += 1
        return n

    def hif_isr(self) -> None:
        b = self.bus
        reg = b.read_reg(0x1070)
        if not reg & 1:
            self.false_interrupts += 1
            return
        reg = b.read_reg(0x1070)
        b.write_reg(0x1070, reg & ~1)
        reg = b.read_reg(0x1070)
        size = (reg >> 2) & 0xFFF
        addr = b.read_reg(0x1084)
        hdr = b.read_block(addr, 4)
        gid, op, length = hdr[0], hdr[1], int.from_bytes(hdr[2:4], "little")
        assert length <= size and size - length <= 4, (size, length)
        if gid == 2 and op in (0x46, 0x48):
            self._recv_cb(op, addr + 8, length - 8)
        else:
            self.events.append((gid, op, b.read_block(addr + 8, length - 8)))
            b.write_reg(0x10A8, 1)

    def _recv_cb(self, op: int, addr: int, size: int) -> None:
        """m2m_ip_cb for RECV/RECVFROM as socket.c reads it (session check, min(status, buf))."""
        b = self.bus
        rep = b.read_block(addr, 16)
        status, offset, sock, session = struct.unpack_from("<hHBxH", rep, 8)
        data = b""
        if session == self.sessions.get(sock) and 0 < status < size:
            n = min(status, self.recv_buf.get(sock, 0))
            data = b.read_block(addr + offset, n)
        b.write_reg(0x10A8, 1)
        self.events.append((2, op, rep + data))

    def wait_event(self, gid: int, op: int, timeout: float = 10.0) -> bytes:
        """Pump until a message ``(gid, op)`` arrived (handling every interrupt on the way)."""
        found: list[bytes] = []

        def arrived() -> bool:
            self.handle_events()
            for i, (g, o, p) in enumerate(self.events):
                if (g, o) == (gid, op):
                    found.append(p)
                    del self.events[i]
                    return True
            return False

        self.m.pump(arrived, timeout=timeout, step_ns=200_000)
        return found[0]

    # ---------------------------------------------------------------- WiFi and sockets
    def wifi_connect(self, ssid: str, passphrase: str) -> tuple[bytes, bytes]:
        """m2m_wifi_connect(WPA-PSK): (state-change payload, DHCP payload or b"")."""
        ssid_b = ssid.encode()
        hdr = struct.pack("<HBB", 44 + 108, 3, 255)
        cmn = bytes((len(ssid_b),)) + ssid_b.ljust(32, b"\0") + bytes(1 + 6) + bytes((2,)) + bytes(3)
        assert len(cmn) == 44
        psk = bytes((len(passphrase),)) + passphrase.encode().ljust(107, b"\0")
        assert self.hif_send(1, 0x3D | 0x80, hdr + cmn, psk, 48) == 0
        state = self.wait_event(1, 0x2C)
        dhcp = self.wait_event(1, 0x32) if state[0] == 1 else b""
        return state, dhcp

    def socket(self, sock: int) -> int:
        self.session = (self.session + 1) & 0xFFFF or 1
        self.sessions[sock] = self.session
        return sock

    def connect(self, sock: int, ip: str, port: int) -> tuple[int, int, int]:
        assert self.hif_send(2, 0x44, pack_connect(sock, ip, port, self.sessions[sock])) == 0
        return struct.unpack("<bbH", self.wait_event(2, 0x44)[:4])

    def send(self, sock: int, data: bytes, op: int = 0x45) -> int:
        ctrl = struct.pack("<BBH8sHH", sock, 0, len(data), bytes(8), self.sessions[sock], 0)
        off = 80 if op == 0x45 else 68
        assert self.hif_send(2, op | 0x80, ctrl, data, off) == 0
        sid, sent, session = struct.unpack_from("<BxhH", self.wait_event(2, op))
        assert (sid, session) == (sock, self.sessions[sock])
        return sent

    def recv_request(self, sock: int, buflen: int, timeout_ms: int = 0, op: int = 0x46) -> None:
        self.recv_buf[sock] = buflen
        t = 0xFFFFFFFF if timeout_ms == 0 else timeout_ms
        assert self.hif_send(2, op, struct.pack("<IBBHHxx", t, sock, 0, self.sessions[sock], buflen)) == 0

    def recv(self, sock: int, buflen: int, timeout_ms: int = 0, op: int = 0x46) -> tuple[int, bytes]:
        """recv + wait for SOCKET_MSG_RECV: (s16BufferSize, data)."""
        self.recv_request(sock, buflen, timeout_ms, op)
        rep = self.wait_event(2, op, timeout=20.0)
        status, _off, sid, session = struct.unpack_from("<hHBxH", rep, 8)
        assert (sid, session) == (sock, self.sessions[sock])
        return status, rep[16:]

    def close(self, sock: int) -> None:
        assert self.hif_send(2, 0x49, struct.pack("<BBH", sock, 0, self.sessions.pop(sock))) == 0
