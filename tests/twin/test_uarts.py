"""The F767's eight U(S)ARTs (RM0410: memory map, vector table, RCC_APBxENR/RSTR bits, DMA
request mapping, RCC_DCKCFGR2's kernel clock selection) and the console on the one the
board file names (``python -m twin --console-uart N``). Values are RM0410's, written out
here, not imported from the twin."""

from __future__ import annotations

import subprocess
import sys

import pytest

from twin.board import Board, BoardOptions
from twin.periph.dma import Dma1, Dma2
from twin.periph.rcc import Rcc
from twin.testing import RAM_BASE, RamPort, ServicesDouble
from twin.uarts import build, parse_console, parse_pins
from twin.usart import Usart

# name: (base, IRQ, RCC enable register offset, bit)
RM0410 = {
    "usart1": (0x40011000, 37, 0x44, 4),
    "usart2": (0x40004400, 38, 0x40, 17),
    "usart3": (0x40004800, 39, 0x40, 18),
    "uart4": (0x40004C00, 52, 0x40, 19),
    "uart5": (0x40005000, 53, 0x40, 20),
    "usart6": (0x40011400, 71, 0x44, 5),
    "uart7": (0x40007800, 82, 0x40, 30),
    "uart8": (0x40007C00, 83, 0x40, 31),
}
CR1, CR3, BRR, ISR, TDR = 0x00, 0x08, 0x0C, 0x1C, 0x28
UE_RE_TE, CR1_TXEIE = 0x0D, 1 << 7
CR3_DMAT = 1 << 7
ISR_TXE = 1 << 7
CFGR, APB1RSTR, APB2RSTR, DCKCFGR2 = 0x08, 0x20, 0x24, 0x90
AHB1ENR = 0x30


def _rig(console: int = 3) -> tuple[ServicesDouble, Rcc, dict[str, Usart]]:
    sv = ServicesDouble()
    rcc = Rcc()
    uarts = build(console, pty=False)
    sv.add(rcc, *uarts)
    return sv, rcc, {u.name: u for u in uarts}


def _clock(rcc: Rcc, name: str) -> None:
    _, _, enr, bit = RM0410[name]
    rcc.write(enr, 4, rcc.read(enr, 4) | 1 << bit)


def _send(sv: ServicesDouble, u: Usart, text: bytes) -> int:
    """Polled transmit; the virtual cycles it took."""
    t0 = sv.now_cycles()
    for ch in text:
        while not u.read(ISR, 4) & ISR_TXE:
            sv.advance(50)
        u.write(TDR, 4, ch)
    while not u.read(ISR, 4) & (1 << 6):  # TC
        sv.advance(50)
    return sv.now_cycles() - t0


def test_every_instance_at_its_address_irq_and_clock() -> None:
    sv, rcc, uarts = _rig()
    assert set(uarts) == set(RM0410)
    for name, (base, irq, _enr, _bit) in RM0410.items():
        u = uarts[name]
        assert (u.base, u.irq) == (base, irq), name
        u.write(CR1, 4, UE_RE_TE)
        assert u.read(CR1, 4) == 0, f"{name}: configured with its RCC clock off"
        _clock(rcc, name)
        u.write(BRR, 4, 139)
        u.write(CR1, 4, UE_RE_TE | CR1_TXEIE)
        assert u.read(CR1, 4) == UE_RE_TE | CR1_TXEIE, name
        assert sv.irqs.get(irq), f"{name}: TXEIE with TXE set raises IRQ {irq}"
        _send(sv, u, b"hi")
        assert bytes(u.tx_log) == b"hi", name


def test_an_apb2_uart_counts_its_bits_on_pclk2() -> None:
    sv, rcc, uarts = _rig()
    for name in ("usart1", "usart3"):
        _clock(rcc, name)
        uarts[name].write(BRR, 4, 139)
        uarts[name].write(CR1, 4, UE_RE_TE)
    even = _send(sv, uarts["usart1"], b"x"), _send(sv, uarts["usart3"], b"x")
    assert abs(even[0] - even[1]) < 100  # both buses at the core clock
    rcc.write(CFGR, 4, rcc.read(CFGR, 4) | 4 << 13)  # PPRE2 = /2: APB2 at half the core clock
    apb2, apb1 = _send(sv, uarts["usart1"], b"x"), _send(sv, uarts["usart3"], b"x")
    assert apb2 > 1.8 * apb1, (apb2, apb1)  # the same BRR on a clock half as fast


def test_dckcfgr2_moves_a_uart_onto_the_hsi() -> None:
    sv, rcc, uarts = _rig()
    u = uarts["uart7"]
    _clock(rcc, "uart7")
    u.write(BRR, 4, 139)  # 115 200 baud from 16 MHz
    u.write(CR1, 4, UE_RE_TE)
    sv.set_core_hz(48_000_000)  # the core on a PLL: PCLK1 follows it ...
    rcc.write(DCKCFGR2, 4, 2 << 12)  # ... UART7SEL = HSI: the baud rate does not
    cycles = _send(sv, u, b"abcd")
    assert cycles == pytest.approx(4 * 10 * 139 * 3, rel=0.05)  # 4 frames of 139 HSI ticks x 10


@pytest.mark.parametrize(
    ("dma_cls", "name", "stream", "channel"),
    [
        (Dma1, "uart7", 1, 5),
        (Dma1, "usart2", 6, 4),
        (Dma1, "uart5", 7, 4),
        (Dma2, "usart6", 6, 5),
        (Dma2, "usart1", 7, 4),
    ],
)
def test_transmit_by_dma_on_rm0410s_stream(dma_cls, name: str, stream: int, channel: int) -> None:
    sv, rcc, uarts = _rig()
    u = uarts[name]
    base = RM0410[name][0]
    dma = dma_cls()
    sv.add(dma)
    sv._port = _UartPort(sv.ram, u, base)
    _clock(rcc, name)
    rcc.write(AHB1ENR, 4, rcc.read(AHB1ENR, 4) | 1 << (21 if dma_cls is Dma1 else 22))
    sv.ram[0:5] = b"hello"
    u.write(BRR, 4, 139)
    u.write(CR1, 4, UE_RE_TE)
    s = 0x10 + stream * 0x18
    dma.write(s + 0x08, 4, base + TDR)  # PAR
    dma.write(s + 0x0C, 4, RAM_BASE)  # M0AR
    dma.write(s + 0x04, 4, 5)  # NDTR
    cr = channel << 25 | 1 << 10 | 1 << 6  # CHSEL, MINC, memory to peripheral
    dma.write(s, 4, cr)
    u.write(CR3, 4, CR3_DMAT)
    dma.write(s, 4, cr | 1)
    sv.pump(lambda: len(u.tx_log) >= 5, timeout=5)
    assert bytes(u.tx_log) == b"hello"


class _UartPort(RamPort):
    def __init__(self, ram: bytearray, u: Usart, base: int) -> None:
        super().__init__(ram)
        self.u, self.uart_base = u, base  # RamPort's own ``base`` is the RAM's

    def read_io(self, address: int, size: int) -> int:
        return self.u.read(address - self.uart_base, size)

    def write_io(self, address: int, size: int, value: int) -> None:
        self.u.write(address - self.uart_base, size, value)


def test_a_uart_that_is_not_the_console_is_named_once_with_the_fix() -> None:
    sv, rcc, uarts = _rig(console=3)
    u = uarts["usart6"]
    _clock(rcc, "usart6")
    u.write(BRR, 4, 139)
    u.write(CR1, 4, UE_RE_TE)
    _send(sv, u, b"\r\n")  # a bare line end first: nothing worth quoting yet
    assert not [line for line in sv.logs if "USART6 transmitted" in line]
    _send(sv, u, b"BL 1.0 boot\r\nmore lines\r\n")
    said = [line for line in sv.logs if "USART6 transmitted" in line]
    assert len(said) == 1, sv.logs
    assert "BL 1.0 boot" in said[0]
    assert "the console (the PTY) is USART3" in said[0]
    assert "(board file: console: {uart: 6})" in said[0]
    console = uarts["usart3"]
    _clock(rcc, "usart3")
    console.write(BRR, 4, 139)
    console.write(CR1, 4, UE_RE_TE)
    _send(sv, console, b"console line\r\n")
    assert not [line for line in sv.logs if "USART3 transmitted" in line]


def test_rcc_reset_bits_reset_their_uart() -> None:
    _sv, rcc, uarts = _rig()
    for name, reg, bit in (("usart6", APB2RSTR, 5), ("uart8", APB1RSTR, 31)):
        _clock(rcc, name)
        uarts[name].write(BRR, 4, 0x1234)
        rcc.write(reg, 4, 1 << bit)
        rcc.write(reg, 4, 0)
        assert uarts[name].read(BRR, 4) == 0, name


def test_the_board_puts_the_pty_on_the_console_it_is_given() -> None:
    board = Board(BoardOptions(console_uart=6))
    try:
        assert board.usart.name == "usart6" and board.usart.slave_path
        others = [d for d in board.uarts if d is not board.usart]
        assert len(others) == 7 and not any(d.slave_path for d in others)
        assert board.machine.devices["usart3"].base == 0x40004800
    finally:
        board.close()


def test_console_uart_values() -> None:
    assert parse_console("6") == 6 and parse_console("usart6") == 6 and parse_console("UART4") == 4
    for bad in ("9", "0", "UART6", "usart4"):
        with pytest.raises(ValueError, match="1 \\(USART1\\)"):
            parse_console(bad)
    run = subprocess.run(
        [sys.executable, "-m", "twin", "--console-uart", "USART9"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "--console-uart" in run.stderr and "6 (USART6)" in run.stderr
    assert parse_pins("tx=pc6, rx=PC7, af=8") == (("gpioc", 6), ("gpioc", 7), 8)
    for bad in ("tx=PC6,rx=PC7", "tx=PC16,rx=PC7,af=8", "tx=PC6,rx=PC7,af=16", "tx=PC6,rx=PC7,af=8,cts=PC8"):
        with pytest.raises(ValueError, match="tx=PIN,rx=PIN,af=N"):
            parse_pins(bad)
    run = subprocess.run(
        [sys.executable, "-m", "twin", "--console-pins", "tx=PC6"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "tx=PIN,rx=PIN,af=N" in run.stderr


def _read_pty(fd: int) -> bytes:
    import os
    import select

    out = b""
    while select.select([fd], [], [], 0.05)[0]:
        out += os.read(fd, 4096)
    return out


@pytest.mark.parametrize(
    ("console", "port", "tx", "rx", "af", "given"),
    [(3, "d", 8, 9, 7, None), (6, "g", 14, 9, 8, None), (7, "e", 8, 7, 8, "tx=PE8,rx=PE7,af=8")],
)
def test_the_console_pins_must_be_routed_to_the_usart(
    console: int, port: str, tx: int, rx: int, af: int, given: str | None
) -> None:
    """PD8/PD9 AF7 (the NUCLEO's ST-LINK VCP) or PG14/PG9 AF8 (Arduino D1/D0) for USART6, or
    the pins ``--console-pins`` gives (the board file's): a pin in another mode or alternate
    function cuts the host's line, as on the board."""
    from twin.periph.gpio import Gpio

    sv = ServicesDouble()
    rcc = Rcc()
    uarts = {u.name: u for u in build(console, pty=True, pins=parse_pins(given) if given else None)}
    name = {3: "usart3", 6: "usart6", 7: "uart7"}[console]
    u, gpio = uarts[name], Gpio(port)
    sv.add(rcc, gpio, *uarts.values())
    try:
        _clock(rcc, name)
        rcc.write(AHB1ENR, 4, rcc.read(AHB1ENR, 4) | 1 << "abcdefghijk".index(port))
        u.write(BRR, 4, 139)
        u.write(CR1, 4, UE_RE_TE)
        _send(sv, u, b"lost\n")  # pins still inputs: the USART sends, nothing reaches the host
        assert bytes(u.tx_log) == b"lost\n" and _read_pty(u.slave_fd) == b""
        said = [line for line in sv.logs if f"TX is P{port.upper()}{tx}" in line]
        assert len(said) == 1 and f"not alternate function {af}" in said[0] and f"AF{af}" in said[0], sv.logs
        gpio.write(0x00, 4, 1 << (2 * tx))  # TX pin an output: still not the USART's
        _send(sv, u, b"still lost\n")
        assert _read_pty(u.slave_fd) == b""
        afr = 0x20 + 4 * (tx // 8)
        gpio.write(0x00, 4, 2 << (2 * tx))
        gpio.write(afr, 4, (af ^ 1) << (4 * (tx % 8)))  # the wrong alternate function
        _send(sv, u, b"wrong af\n")
        assert _read_pty(u.slave_fd) == b""
        gpio.write(afr, 4, af << (4 * (tx % 8)))
        _send(sv, u, b"hello\n")
        assert _read_pty(u.slave_fd) == b"hello\n"
        u.inject_rx(b"x")  # RX pin still an input: the host's byte never reaches RDR
        sv.advance(20 * u.frame_cycles())
        assert not u.read(ISR, 4) & (1 << 5) and u.rx_dropped == 1
        assert any(f"RX is P{port.upper()}{rx}" in line for line in sv.logs)
        gpio.write(0x00, 4, gpio.read(0x00, 4) | 2 << (2 * rx))
        gpio.write(0x20 + 4 * (rx // 8), 4, gpio.read(0x20 + 4 * (rx // 8), 4) | af << (4 * (rx % 8)))
        u.inject_rx(b"y")
        sv.advance(20 * u.frame_cycles())
        assert u.read(ISR, 4) & (1 << 5) and u.read(0x24, 4) == ord("y")
    finally:
        for dev in uarts.values():
            dev.close()
