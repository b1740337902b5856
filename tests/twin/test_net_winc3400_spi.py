"""The microchip WINC3400 model's SPI framing against literal byte vectors, driven through
SPI1's registers and CS like firmware (issue 17 §1/§4).

Expected CRC7/CRC16 bytes are computed here from the polynomial definitions
(tests/twin/winc_host.py: bit by bit), never from twin/net/winc_bus.py; the spec's own
examples (``CA 00 E8 24`` -> ``BC``, ``CF FF FF FF`` -> ``AA``) pin the CRC7 down.
"""

from __future__ import annotations

import pytest
from net_harness import Gpio
from winc_host import MicrochipHost, SpiWire, crc7_bits, crc16_bits, make_services

from twin.net import spi as S
from twin.net.stack import NetStack
from twin.net.winc3400 import Winc3400
from twin.testing import ServicesDouble

FF = 0xFF


def c7(cmd: bytes) -> bytes:
    """The command with its CRC7 byte."""
    return cmd + bytes((crc7_bits(cmd) << 1,))


def c16(data: bytes) -> bytes:
    return crc16_bits(data).to_bytes(2, "big")


class Rig:
    """A powered module on SPI1, and raw byte access to it."""

    def __init__(self) -> None:
        self.m = make_services()
        self.stack = NetStack([])
        self.winc = Winc3400(self.stack)
        self.spi = S.Stm32Spi(self.winc)
        self.m.add(self.spi)
        self.wire = SpiWire(self.m, self.spi)
        self.wire.gpiof.out[13] = self.wire.gpiof.out[12] = True
        self.winc.sample_pins()

    def tx(self, mosi: bytes) -> bytes:
        """One CS-low window."""
        return self.wire.xfer(mosi)

    def cmd(self, mosi: bytes, answer: int) -> bytes:
        """Send ``mosi`` then ``answer`` fill bytes; return the MISO of the fill bytes."""
        miso = self.tx(mosi + bytes(answer))
        return miso[len(mosi) :]

    def crc_off(self) -> None:
        """What nm_spi_init does: config 0x0C -> 0x5C & ~0x0C = 0x50, written with CRC."""
        assert self.cmd(c7(bytes.fromhex("C9 00 E8 24 00 00 00 50")), 2) == bytes.fromhex("C9 00")


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.stack.shutdown()


def test_spec_crc7_examples_match_the_polynomial():
    assert crc7_bits(bytes.fromhex("CA00E824")) << 1 == 0xBC
    assert crc7_bits(bytes.fromhex("CFFFFFFF")) << 1 == 0xAA
    assert crc7_bits(bytes.fromhex("CA001000")) << 1 == 0xCA
    assert crc16_bits(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value


def test_first_command_of_the_driver_reads_the_protocol_config_with_crc(rig):
    # nm_spi_init's first packet: CA 00 E8 24 BC; the answer starts on the next byte
    miso = rig.tx(bytes.fromhex("CA 00 E8 24 BC") + bytes(10))
    value = bytes.fromhex("0C 00 00 00")  # reset: CRC7 + CRC16 on, 256-byte packets
    assert miso == bytes([FF] * 5) + bytes.fromhex("CA 00 F3") + value + c16(value) + bytes([FF])


def test_crc_negotiation_turns_both_crcs_off(rig):
    rig.crc_off()
    # from here on: no CRC7 byte, no CRC16 after the data
    assert rig.cmd(bytes.fromhex("CA 00 E8 24"), 8) == bytes.fromhex("CA 00 F3 50 00 00 00 FF")
    assert rig.cmd(bytes.fromhex("CA 00 10 00"), 8) == bytes.fromhex("CA 00 F3 F0 00 10 00 FF")
    assert rig.winc.bus.packet_size == 8192


def test_single_write_value_is_big_endian_read_is_little_endian(rig):
    assert rig.cmd(c7(bytes.fromhex("C9 15 00 14 12 34 56 78")), 2) == bytes.fromhex("C9 00")
    value = bytes.fromhex("78 56 34 12")
    assert rig.cmd(c7(bytes.fromhex("CA 15 00 14")), 9) == bytes.fromhex("CA 00 F3") + value + c16(value)


def test_clockless_internal_read_and_write_carry_no_crc16(rig):
    assert rig.cmd(c7(bytes.fromhex("C3 80 01 00 00 00 02")), 2) == bytes.fromhex("C3 00")
    # clockless read: token, 4 bytes, no CRC16 even with CRC16 on, then idle
    assert rig.cmd(c7(bytes.fromhex("C4 80 01 00")), 8) == bytes.fromhex("C4 00 F3 02 00 00 00 FF")


def test_internal_read_without_clockless_bit_is_the_spi_block(rig):
    value = bytes.fromhex("0C 00 00 00")
    assert rig.cmd(c7(bytes.fromhex("C4 00 24 00")), 9) == bytes.fromhex("C4 00 F3") + value + c16(value)


def test_bad_crc7_is_answered_03_and_not_executed(rig):
    bad = bytes.fromhex("C9 00 10 8C 12 34 56 78")
    wrong = (crc7_bits(bad) << 1) ^ 0x10
    assert rig.cmd(bad + bytes((wrong,)), 3) == bytes.fromhex("C9 03 FF")
    value = bytes(4)
    assert rig.cmd(c7(bytes.fromhex("CA 00 10 8C")), 9) == bytes.fromhex("CA 00 F3") + value + c16(value)
    assert rig.winc.bus.stats["crc7_errors"] == 1


def test_crc7_bit0_is_not_checked(rig):
    cmd = bytes.fromhex("CA 00 10 00")
    value = bytes.fromhex("F0 00 10 00")
    answer = bytes.fromhex("CA 00 F3") + value + c16(value)
    assert rig.cmd(cmd + bytes(((crc7_bits(cmd) << 1) | 1,)), 9) == answer  # wilc1000 style


def test_unknown_command_is_answered_unsupported(rig):
    assert rig.cmd(c7(bytes.fromhex("CB 00 00 00")), 3) == bytes.fromhex("CB 01 FF")
    assert rig.cmd(c7(bytes.fromhex("C0 12 34 56")), 2) == bytes.fromhex("C0 01")
    assert rig.winc.bus.stats["unsupported"] == 2


def test_command_without_crc_while_crc_is_on_takes_the_fill_as_crc(rig):
    # a host that skips the CRC byte: the first fill byte is taken as CRC7 -> error
    assert rig.cmd(bytes.fromhex("CA 00 10 00"), 4) == bytes.fromhex("FF CA 03 FF")


def test_crc_byte_sent_to_a_module_with_crc_off_is_too_late(rig):
    rig.crc_off()
    # the module answers after 4 bytes: the host's CRC byte meets the echo, its polling misses it
    miso = rig.tx(bytes.fromhex("CA 00 E8 24 BC") + bytes(8))
    assert miso == bytes.fromhex("FF FF FF FF CA 00 F3 50 00 00 00 FF FF")


def test_block_write_and_read_with_crc16(rig):
    data = bytes.fromhex("01 02 03 04 05 06")
    assert rig.cmd(c7(bytes.fromhex("C7 0D 00 00 00 00 06")), 2) == bytes.fromhex("C7 00")
    # data packet: token F3, data, CRC16 big-endian; answered C3 00 right after the CRC
    assert rig.cmd(b"\xf3" + data + c16(data), 3) == bytes.fromhex("C3 00 FF")
    answer = bytes.fromhex("C8 00 F3") + data + c16(data) + bytes([FF])
    assert rig.cmd(c7(bytes.fromhex("C8 0D 00 00 00 00 06")), 12) == answer


def test_block_write_with_bad_crc16_is_discarded(rig):
    data = bytes.fromhex("AA BB CC DD")
    rig.cmd(c7(bytes.fromhex("C7 0D 00 10 00 00 04")), 2)
    assert rig.cmd(b"\xf3" + data + bytes(2), 2) == bytes.fromhex("C3 04")
    zeros = bytes(4)
    assert rig.cmd(c7(bytes.fromhex("C8 0D 00 10 00 00 04")), 9) == bytes.fromhex("C8 00 F3") + zeros + c16(
        zeros
    )
    assert rig.winc.bus.stats["crc16_errors"] == 1


def test_block_write_without_crc_answers_one_byte_later(rig):
    rig.crc_off()
    assert rig.cmd(bytes.fromhex("C7 0D 00 20 00 00 02"), 2) == bytes.fromhex("C7 00")
    assert rig.cmd(bytes.fromhex("F3 11 22"), 3) == bytes.fromhex("FF C3 00")
    assert rig.cmd(bytes.fromhex("C8 0D 00 20 00 00 02"), 6) == bytes.fromhex("C8 00 F3 11 22 FF")


def test_read_is_split_into_packets_of_the_configured_size(rig):
    data = bytes(range(256)) * 2 + bytes(range(88))
    rig.cmd(c7(bytes.fromhex("C7 0D 01 00 00 02 58")), 2)  # 600 bytes in 256-byte packets
    assert rig.cmd(b"\xf1" + data[:256] + c16(data[:256]), 2) == bytes.fromhex("C1 00")
    assert rig.cmd(b"\xf2" + data[256:512] + c16(data[256:512]), 2) == bytes.fromhex("C2 00")
    assert rig.cmd(b"\xf3" + data[512:] + c16(data[512:]), 2) == bytes.fromhex("C3 00")
    miso = rig.cmd(c7(bytes.fromhex("C8 0D 01 00 00 02 58")), 2 + 600 + 3 * 3)
    expected = bytes.fromhex("C8 00") + b"\xf1" + data[:256] + c16(data[:256])
    expected += b"\xf2" + data[256:512] + c16(data[256:512]) + b"\xf3" + data[512:] + c16(data[512:])
    assert miso == expected


def test_dma_read_and_write_with_16_bit_size(rig):
    rig.crc_off()
    assert rig.cmd(bytes.fromhex("C1 0D 00 40 00 03"), 2) == bytes.fromhex("C1 00")
    rig.tx(bytes.fromhex("F3 7A 7B 7C"))
    assert rig.cmd(bytes.fromhex("C2 0D 00 40 00 03"), 6) == bytes.fromhex("C2 00 F3 7A 7B 7C")


def test_repeat_sends_the_packet_being_read_again(rig):
    data = bytes(range(256)) + bytes(range(255, -1, -1)) + bytes(88)
    rig.winc.chip.mem.write(0xD0100, data)
    rig.tx(c7(bytes.fromhex("C8 0D 01 00 00 02 58")))
    # the host reads the answer, packet 1 and half of packet 2, then asks for a repeat
    rig.tx(bytes(2 + 1 + 256 + 2 + 1 + 100))
    miso = rig.cmd(c7(bytes.fromhex("C6 00 00 00")), 3 + 1 + 256 + 2 + 1 + 88 + 2)
    expected = bytes.fromhex("FF C6 00") + b"\xf2" + data[256:512] + c16(data[256:512])
    assert miso == expected + b"\xf3" + data[512:] + c16(data[512:])


def test_terminate_aborts_a_pending_write(rig):
    rig.cmd(c7(bytes.fromhex("C7 0D 00 00 00 01 00")), 2)
    assert rig.cmd(c7(bytes.fromhex("C5 00 00 00")), 3) == bytes.fromhex("FF C5 00")
    assert rig.cmd(b"\xf3", 2) == bytes.fromhex("C3 02")  # no write expected any more


def test_reset_command(rig):
    rig.cmd(c7(bytes.fromhex("C7 0D 00 00 00 01 00")), 2)  # a write left waiting for data
    assert rig.cmd(bytes.fromhex("CF FF FF FF AA"), 3) == bytes.fromhex("FF CF 00")
    assert rig.winc.bus.stats["resets"] == 1
    assert rig.cmd(b"\xf3", 2) == bytes.fromhex("C3 02")


def test_cs_high_between_pieces_keeps_the_protocol_state(rig):
    pkt = c7(bytes.fromhex("CA 00 10 00"))
    out = b"".join(rig.tx(bytes((b,))) for b in pkt + bytes(7))  # one CS window per byte
    assert out[len(pkt) :] == bytes.fromhex("CA 00 F3 F0 00 10 00")


def test_bytes_clocked_with_cs_high_are_not_seen(rig):
    rig.wire.gpiod.out[14] = False
    for b in bytes.fromhex("CA 00"):
        rig.spi.write(S.DR, 1, b)
        rig.spi.read(S.DR, 1)
    rig.wire.gpiod.out[14] = True
    rig.spi.write(S.DR, 1, 0x55)  # not selected: MISO floats high, the module sees nothing
    assert rig.spi.read(S.DR, 1) == FF
    assert rig.cmd(
        bytes.fromhex("10 00") + bytes((crc7_bits(bytes.fromhex("CA 00 10 00")) << 1,)), 2
    ) == bytes.fromhex("CA 00")


def test_module_in_reset_answers_nothing(rig):
    rig.wire.gpiof.out[12] = False
    rig.winc.sample_pins()
    assert rig.tx(c7(bytes.fromhex("CA 00 10 00")) + bytes(6)) == bytes([FF] * 11)
    assert rig.winc.bus.stats["commands"] == 0


def test_microchip_fallback_when_the_module_already_has_crc_off(rig):
    """A host restarted while the module kept CRC off (nm_spi_init's comment): the CRC-on read
    fails every retry, the CRC-off read works."""
    rig.crc_off()
    host = MicrochipHost(rig.wire)
    host.spi_init()
    assert host.crc_off and host.retries == 10
    assert host.read_reg(0x1000) == 0x1000F0


def test_unexpected_data_token_is_answered(rig):
    assert rig.cmd(b"\xf3", 2) == bytes.fromhex("C3 02")
    assert rig.winc.bus.stats["unexpected_data"] == 1


class ListeningGpio(Gpio):
    """A port that reports level changes to listeners, like twin.periph.gpio."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.listeners = []

    def add_listener(self, fn) -> None:
        self.listeners.append(fn)

    def set_out(self, pin: int, level: bool) -> None:
        self.out[pin] = level
        for fn in self.listeners:
            fn(pin, level)


def test_pins_followed_through_gpio_listeners():
    m = ServicesDouble()
    for n in ("gpiob", "gpiod", "gpiof"):
        m.devices[n] = ListeningGpio(n)
    stack = NetStack([])
    winc = Winc3400(stack)
    spi = S.Stm32Spi(winc)
    try:
        m.add(spi)
        assert winc._hooked and winc._poll_handle is None  # no polling timer
        wire = SpiWire(m, spi)
        wire.gpiod.set_out(14, True)
        m.devices["gpiof"].set_out(13, True)
        m.devices["gpiof"].set_out(12, True)
        assert winc.power == "on"  # seen at once, no time passed
        pkt = c7(bytes.fromhex("CA 00 10 00"))
        out = bytearray()
        for b in pkt + bytes(7):  # CS followed through the listener, byte by byte
            wire.gpiod.set_out(14, False)
            spi.write(S.DR, 1, b)
            out.append(spi.read(S.DR, 1))
            wire.gpiod.set_out(14, True)
        assert bytes(out[len(pkt) :]) == bytes.fromhex("CA 00 F3 F0 00 10 00")
        spi.write(S.DR, 1, 0xCA)  # CS high: not seen
        assert spi.read(S.DR, 1) == FF and winc.bus.stats["commands"] == 1
        m.devices["gpiof"].set_out(12, False)
        assert winc.power == "off"
    finally:
        stack.shutdown()


def test_spi_overruns_are_counted_and_logged_sparingly():
    """A send-only burst that never reads DR (clearing OVR afterwards) is legitimate; the
    log names the first overruns, the count is in the snapshot."""
    m = ServicesDouble()
    spi = S.Stm32Spi(None)
    m.add(spi)
    spi.write(S.CR2, 4, 0x0700 | S.CR2_FRXTH)
    spi.write(S.CR1, 4, S.CR1_MSTR | S.CR1_SSM | S.CR1_SSI | S.CR1_SPE)
    for _ in range(50):
        for _ in range(6):
            spi.write(S.DR, 1, 0)
        spi.read(S.DR, 1)
        spi.read(S.SR, 4)  # DR then SR: OVR cleared
        while spi.read(S.SR, 4) & S.SR_RXNE:
            spi.read(S.DR, 1)
    assert spi.snapshot()["overruns"] == 50
    assert sum("OVR" in line for line in m.logs) == 2  # the 1st and the 10th


# ---------------------------------------------------------------- SPI1 itself (twin/net/spi.py)
def test_spi_rxne_needs_frxth_for_single_bytes():
    m = ServicesDouble()
    spi = S.Stm32Spi(None)
    m.add(spi)
    spi.write(S.CR1, 4, S.CR1_MSTR | S.CR1_SSM | S.CR1_SSI | S.CR1_SPE)
    spi.write(S.DR, 1, 0x55)  # FRXTH=0: RXNE only at 16 bits
    assert not spi.read(S.SR, 4) & S.SR_RXNE
    spi.write(S.DR, 1, 0x55)
    assert spi.read(S.SR, 4) & S.SR_RXNE
    assert spi.read(S.DR, 2) == 0xFFFF  # no slave: MISO floats high, packed read


def test_spi_overrun_and_clear_sequence():
    m = ServicesDouble()
    spi = S.Stm32Spi(None)
    m.add(spi)
    spi.write(S.CR2, 4, 0x0700 | S.CR2_FRXTH | S.CR2_ERRIE)
    spi.write(S.CR1, 4, S.CR1_MSTR | S.CR1_SSM | S.CR1_SSI | S.CR1_SPE)
    for _ in range(5):
        spi.write(S.DR, 1, 0)
    sr = spi.read(S.SR, 4)
    assert sr & S.SR_OVR and (sr >> 9) & 3 == 3
    assert m.irqs[S.SPI1_IRQ] is True
    spi.read(S.DR, 1)
    spi.read(S.SR, 4)  # DR read then SR read clears OVR
    assert not spi.read(S.SR, 4) & S.SR_OVR


def test_spi_modf_when_ssi_low():
    m = ServicesDouble()
    spi = S.Stm32Spi(None)
    m.add(spi)
    spi.write(S.CR1, 4, S.CR1_MSTR | S.CR1_SSM | S.CR1_SPE)
    assert spi.read(S.SR, 4) & S.SR_MODF
    assert not spi.read(S.CR1, 4) & (S.CR1_MSTR | S.CR1_SPE)


def test_spi_disabled_sends_nothing(rig):
    rig.spi.write(S.CR1, 4, 0)
    rig.wire.gpiod.out[14] = False  # selected, but SPI1 is off: nothing is clocked
    rig.spi.write(S.DR, 1, 0xCA)
    assert not rig.spi.read(S.SR, 4) & S.SR_RXNE
    assert rig.winc.bus.stats["commands"] == 0 and rig.winc.faults.counters["transactions"] == 0


class _Mem:
    """A BusTarget: registers and memory in dicts, every write recorded."""

    def __init__(self) -> None:
        self.regs: dict[int, int] = {0x1000: 0x1000F0}
        self.mem = bytearray(range(256)) * 64
        self.writes: list[tuple[int, bytes]] = []

    def read_reg(self, address: int) -> int:
        return self.regs.get(address, 0)

    def write_reg(self, address: int, value: int) -> None:
        self.regs[address] = value
        self.writes.append((address, value.to_bytes(4, "little")))

    def read_block(self, address: int, size: int) -> bytes:
        return bytes(self.mem[address : address + size])

    def write_block(self, address: int, data: bytes) -> None:
        self.mem[address : address + len(data)] = data
        self.writes.append((address, bytes(data)))

    def payload_ranges(self, address: int, size: int) -> list[tuple[int, int]]:
        return [(4, min(size, 100))] if size > 4 else []


def _script(crc: bool) -> bytes:
    """Commands, answers polled with fill, block reads over several packets, block writes
    with tokens (one with a wrong CRC16), terminate, repeat, reset, stray tokens."""

    def cmd(b: bytes) -> bytes:
        return c7(b) if crc else b

    def pkt(order: int, data: bytes, good: bool = True) -> bytes:
        tail = (c16(data) if good else b"\x00\x00") if crc else b""
        return bytes((0xF0 | order,)) + data + tail + bytes(4)

    data = bytes((i * 31 + 7) & 0xFF for i in range(700))
    out = cmd(bytes.fromhex("CA 00 10 00")) + bytes(12)
    out += cmd(bytes.fromhex("C9 00 10 6C 00 00 12 34")) + bytes(3)
    out += cmd(bytes.fromhex("C8 00 01 00 00 02 80")) + bytes(700) + b"\xff\x00"
    out += cmd(bytes.fromhex("C6 00 00 00")) + bytes(300)
    out += cmd(bytes.fromhex("C7 00 20 00 00 02 BC")) + bytes(3)
    out += pkt(1, data[:256]) + pkt(2, data[256:512], good=False) + pkt(3, data[512:700])
    out += b"\xf3\x00\x00" + cmd(bytes.fromhex("C5 00 00 00")) + bytes(4)
    out += cmd(bytes.fromhex("C4 80 13 00")) + bytes(9) + b"\xcf\xff\xff\xff" + bytes(5)
    return out


@pytest.mark.parametrize("crc", [True, False])
def test_exchange_block_and_pairs_are_exchange_per_byte(crc):
    """The block path (DMA) and the pair path (16-bit DR accesses) give the bytes, writes
    and counters of one exchange per byte, however the stream is cut."""
    import random

    from twin.net.faults import WincFaults
    from twin.net.winc_bus import PROTOCOL_CONFIG, SpiSlave

    def slave() -> tuple[SpiSlave, _Mem]:
        target = _Mem()
        s = SpiSlave(target, WincFaults(), lambda msg: None)
        if not crc:
            s.reg_write(PROTOCOL_CONFIG, 0)
        return s, target

    stream = _script(crc)
    ref, ref_target = slave()
    want = bytes(ref.exchange(b) for b in stream)
    rnd = random.Random(5)
    for _ in range(20):
        s, target = slave()
        got, i = bytearray(), 0
        while i < len(stream):
            k = rnd.choice((1, 2, 3, 17, 64, 300, 1000))
            piece = stream[i : i + k]
            if rnd.random() < 0.5:
                got += s.exchange_block(piece)
            else:  # 16-bit DR accesses: pairs
                for j in range(0, len(piece) - 1, 2):
                    got += s.exchange2(piece[j], piece[j + 1]).to_bytes(2, "little")
                if len(piece) % 2:
                    got.append(s.exchange(piece[-1]))
            i += k
        assert bytes(got) == want
        assert target.writes == ref_target.writes and s.stats == ref.stats
    assert ref.stats["crc16_errors"] == (1 if crc else 0) and ref.stats["repeats"] == 1
