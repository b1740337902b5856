"""End to end: a tiny HAL-style Ethernet bring-up on the in-process twin, over the board's
real cable (libslirp): RMII select, MAC reset polled with a tick timeout, MDIO scan of
addresses 0-31 (register 18), LAN8742 link through register 31, DMA start, an ARP request
out and the host's ARP reply in. Then, with the core halted, a debugger's MAC reset and
MDIO read complete. Register addresses and bits are RM0410's, written out in the C."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from twin_core_util import build

from twin.board import Board, BoardOptions
from twin.loader import read_image

RESULT = 0x20008000
DONE = 0xE7E7E7E7

BODY = """
    .thumb_func
    .global reset
reset:
    bl main
1:  wfi
    b 1b
"""

C_SOURCE = r"""
#include <stdint.h>
#define REG(a) (*(volatile uint32_t *)(a))
#define RCC_AHB1ENR REG(0x40023830)
#define RCC_APB2ENR REG(0x40023844)
#define SYSCFG_PMC REG(0x40013804)
#define ETH 0x40028000u
#define MACCR REG(ETH + 0x00)
#define MACFFR REG(ETH + 0x04)
#define MACMIIAR REG(ETH + 0x10)
#define MACMIIDR REG(ETH + 0x14)
#define MACA0HR REG(ETH + 0x40)
#define MACA0LR REG(ETH + 0x44)
#define DMABMR REG(ETH + 0x1000)
#define DMATPDR REG(ETH + 0x1004)
#define DMARDLAR REG(ETH + 0x100C)
#define DMATDLAR REG(ETH + 0x1010)
#define DMAOMR REG(ETH + 0x1018)
#define RESULT ((volatile uint32_t *)0x20008000)

static volatile uint32_t ms;
static uint32_t vtable[128] __attribute__((aligned(512)));
static volatile uint32_t txd[8] __attribute__((aligned(8)));
static volatile uint32_t rxd[2][8] __attribute__((aligned(8)));
static uint8_t txbuf[64] __attribute__((aligned(4)));
static uint8_t rxbuf[2][1536] __attribute__((aligned(4)));

void systick(void) { ms++; }

static void pin_af11(uint32_t port, uint32_t pin) {
    REG(port + 0x00) = (REG(port + 0x00) & ~(3u << (2 * pin))) | (2u << (2 * pin));
    uint32_t afr = port + 0x20 + 4 * (pin / 8);
    REG(afr) = (REG(afr) & ~(0xFu << (4 * (pin % 8)))) | (11u << (4 * (pin % 8)));
}

static int mdio_read(uint32_t phy, uint32_t reg, uint32_t *value) {
    uint32_t t = MACMIIAR & (7u << 2);                   /* keep CR */
    t |= (phy << 11) | (reg << 6) | 1u;                  /* PA, MR, MB (read) */
    MACMIIAR = t;
    uint32_t t0 = ms;
    while (MACMIIAR & 1u)
        if (ms - t0 > 2) return -1;                      /* PHY_READ_TO-like */
    *value = MACMIIDR & 0xFFFF;
    return 0;
}

static void fail(uint32_t step) { RESULT[1] = step; RESULT[0] = 0xBAD0BAD0; for (;;) __asm volatile("wfi"); }

int main(void) {
    for (int i = 0; i < 16; i++) vtable[i] = REG(0x08000000 + 4 * i);
    vtable[15] = (uint32_t)systick | 1u;
    REG(0xE000ED08) = (uint32_t)vtable;                  /* VTOR */
    REG(0xE000E014) = 16000 - 1;                         /* SysTick 1 kHz at 16 MHz */
    REG(0xE000E018) = 0;
    REG(0xE000E010) = 7;

    RCC_AHB1ENR |= (1u << 0) | (1u << 1) | (1u << 2) | (1u << 6);      /* GPIOA, B, C, G */
    RCC_AHB1ENR |= (1u << 25) | (1u << 26) | (1u << 27);              /* ETHMAC, TX, RX */
    RCC_APB2ENR |= 1u << 14;                                          /* SYSCFG */
    pin_af11(0x40020000, 1); pin_af11(0x40020000, 2); pin_af11(0x40020000, 7);
    pin_af11(0x40020800, 1); pin_af11(0x40020800, 4); pin_af11(0x40020800, 5);
    pin_af11(0x40021800, 11); pin_af11(0x40021800, 13); pin_af11(0x40020400, 13);
    SYSCFG_PMC |= 1u << 23;                                           /* RMII */
    (void)SYSCFG_PMC;

    DMABMR |= 1u;                                                     /* MAC software reset */
    uint32_t t0 = ms;
    while (DMABMR & 1u)
        if (ms - t0 > 500) fail(1);
    RESULT[2] = DMABMR;

    MACMIIAR = 2u << 2;                                               /* CR: HCLK/16 (< 35 MHz) */
    uint32_t addr, v;
    for (addr = 0; addr < 32; addr++)
        if (mdio_read(addr, 18, &v) == 0 && (v & 0x1F) == addr) break;
    if (addr == 32) fail(2);
    RESULT[3] = addr;
    if (mdio_read(addr, 2, &v)) fail(3);
    RESULT[4] = v;
    if (mdio_read(addr, 3, &v)) fail(3);
    RESULT[5] = v;

    t0 = ms;
    uint32_t bsr = 0, scsr = 0;
    for (;;) {                                                        /* link + autonegotiation */
        if (mdio_read(addr, 1, &bsr) || mdio_read(addr, 1, &bsr) || mdio_read(addr, 31, &scsr)) fail(4);
        if ((bsr & 4u) && (scsr & 0x1000u)) break;
        if (ms - t0 > 3000) fail(5);
        uint32_t d = ms;
        while (ms - d < 10) __asm volatile("wfi");                     /* HAL_Delay(10) */
    }
    RESULT[6] = scsr;
    RESULT[7] = ms;
    uint32_t maccr = (1u << 3) | (1u << 2);
    if ((scsr & 0x1C) == 0x18 || (scsr & 0x1C) == 0x08) maccr |= 1u << 14;   /* 100 Mbit/s */
    if ((scsr & 0x1C) == 0x18 || (scsr & 0x1C) == 0x14) maccr |= 1u << 11;   /* full duplex */
    MACA0HR = 0x0100;                                                 /* 02:00:00:00:00:01 */
    MACA0LR = 0x00000002;
    MACFFR = 0;

    DMABMR = 1u << 7;                                                 /* enhanced descriptors */
    txd[0] = (1u << 20); txd[3] = (uint32_t)txd;                      /* TCH, chained to itself */
    for (int i = 0; i < 2; i++) {
        rxd[i][0] = 1u << 31;                                         /* OWN */
        rxd[i][1] = (1u << 14) | 1536;                                /* RCH, RBS1 */
        rxd[i][2] = (uint32_t)rxbuf[i];
        rxd[i][3] = (uint32_t)rxd[(i + 1) % 2];
    }
    DMATDLAR = (uint32_t)txd;
    DMARDLAR = (uint32_t)rxd;
    MACCR = maccr;
    DMAOMR = (1u << 21) | (1u << 25) | (1u << 20);                    /* TSF, RSF, FTF */
    while (DMAOMR & (1u << 20)) {}
    DMAOMR |= (1u << 13) | (1u << 1);                                 /* ST, SR */

    static const uint8_t arp[42] = {
        0xff,0xff,0xff,0xff,0xff,0xff, 0x02,0,0,0,0,0x01, 0x08,0x06,
        0,1, 0x08,0, 6, 4, 0,1, 0x02,0,0,0,0,0x01, 192,168,1,100,
        0,0,0,0,0,0, 192,168,1,10 };
    for (int i = 0; i < 42; i++) txbuf[i] = arp[i];
    txd[2] = (uint32_t)txbuf;
    txd[1] = 42;
    txd[0] = (1u << 31) | (1u << 30) | (1u << 29) | (1u << 28) | (1u << 20);   /* OWN IC LS FS TCH */
    DMATPDR = 0;
    t0 = ms;
    while (txd[0] & (1u << 31))
        if (ms - t0 > 100) fail(6);
    RESULT[8] = txd[0];
    t0 = ms;
    int got = -1;
    while (got < 0) {
        for (int i = 0; i < 2 && got < 0; i++)
            if (!(rxd[i][0] & (1u << 31)) && rxbuf[i][12] == 0x08 && rxbuf[i][13] == 0x06 && rxbuf[i][21] == 2)
                got = i;
        if (ms - t0 > 1000) fail(7);
    }
    RESULT[9] = rxd[got][0];
    RESULT[10] = (rxbuf[got][28] << 24) | (rxbuf[got][29] << 16) | (rxbuf[got][30] << 8) | rxbuf[got][31];
    RESULT[11] = ms;
    RESULT[0] = 0xE7E7E7E7;
    for (;;) __asm volatile("wfi");
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    elf, _ = build(tmp_path_factory.mktemp("ethmac"), BODY, name="ethinit", c_source=C_SOURCE)
    return elf


def _results(board: Board) -> list[int]:
    with board.machine.host():
        return list(struct.unpack("<16I", board.machine.read_mem(RESULT, 64)))


def test_hal_style_bring_up_sends_arp_and_gets_the_reply_in_under_a_second_of_board_time(
    program: Path,
) -> None:
    board = Board(BoardOptions(pty=False))
    try:
        board.power_on(read_image(str(program)))
        board.frames.start()
        t0 = time.monotonic()
        board.machine.start()
        res = _results(board)
        while res[0] not in (DONE, 0xBAD0BAD0) and time.monotonic() - t0 < 10:
            time.sleep(0.01)
            res = _results(board)
        with board.machine.host():
            board_s = board.machine.now_ns() / 1e9
        assert res[0] == DONE, f"failed at step {res[1]}: {res}\n{board.frames.snapshot()}"
        assert res[2] == 0x00000100 | 1 << 17  # DMABMR after the reset: PBL 1, RDP 1, SR clear
        assert res[3:6] == [0, 0x0007, 0xC130]  # PHY at address 0, LAN8742A ID
        assert res[6] == 0x1058  # AUTODONE, 100BASE-TX full duplex
        assert 200 <= res[7] < 400  # ms of the board's tick: the PHY's auto-negotiation time
        assert res[8] == 1 << 30 | 1 << 29 | 1 << 28 | 1 << 20  # TDES0 handed back, no error
        assert res[9] & (1 << 9 | 1 << 8 | 1 << 15) == 1 << 9 | 1 << 8  # FS, LS, no error
        assert res[10] == 0xC0A8010A  # the reply is from 192.168.1.10
        # board time, not wall time: a loaded host slows the twin, never the board's clock
        # (the poll above adds at most its own sleep to the figure)
        assert board_s < 1.0, f"bring-up took {board_s:.2f} s of the board's time"

        # a debugger halts the core, resets the MAC and reads a PHY register
        m, mac = board.machine, board.machine.device("ethmac")
        with m.host():
            m.halt("debugger")
            m.bus_write(0x40029000, struct.pack("<I", 1))
        time.sleep(0.05)
        with m.host():
            assert struct.unpack("<I", m.bus_read(0x40029000, 4))[0] & 1 == 0
            m.bus_write(0x40028010, struct.pack("<I", 2 << 2 | 2 << 6 | 1))  # PHYID1
        deadline = time.monotonic() + 1.0
        while True:
            with m.host():
                miiar = struct.unpack("<I", m.bus_read(0x40028010, 4))[0]
                miidr = struct.unpack("<I", m.bus_read(0x40028014, 4))[0]
            if not miiar & 1 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert (miiar & 1, miidr) == (0, 0x0007)
        assert mac.frames_out == 1 and mac.frames_in >= 1
    finally:
        board.close()
