"""Twin CPU speed with the exception model and peripherals busy. Prints figures only.

A small Thumb-2 program (assembled here with arm-none-eabi-as/ld) switches the clock tree
to 216 MHz (HSE bypass + PLL through the RCC model), starts SysTick at 1 kHz with its
interrupt, and loops over arithmetic while printing a character on USART3 every N
iterations (polling TXE). It runs on the free-running CPU thread of an in-process twin
(machine, flash, USART3, exception model, peripherals) for a few wall-clock seconds.

Printed per case: instructions per wall second (goal >= 20 M/s), virtual seconds per wall
second, SysTick interrupts taken, UART bytes sent. Cases: quiet (no SysTick, no UART),
SysTick 1 kHz, SysTick 1 kHz + UART printing driven by the TXE interrupt (as
HAL_UART_Transmit_IT), SysTick 1 kHz + UART printing by polling ISR.TXE (as
HAL_UART_Transmit), and the TXE-interrupt case again with the MPU enabled (a RAM region,
then also a 32-byte guard that cuts a page, which the machine checks per access).

Last: the host time of one exception entry and one return measured alone (best of five
rounds of 20 000; steadier than the instruction rate on a shared machine), beside what an
interrupt may cost in all for issue 18's goal.

Run: ``.venv/bin/python benchmarks/bench_periph.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

from twin.board import Board, BoardOptions
from twin.loader import Chunk

#: SystemClock_Config: HSE bypass (the ST-LINK's 8 MHz), PLL to 216 MHz, 7 flash wait
#: states, APB1 /4, APB2 /2, SYSCLK from the PLL; leaves r0 = RCC
CLOCK_216 = """
    ldr r0, =0x40023800          @ RCC
    ldr r1, [r0]
    orr r1, r1, #0x50000         @ HSEON | HSEBYP
    str r1, [r0]
1:  ldr r1, [r0]
    tst r1, #0x20000
    beq 1b
    ldr r1, =0x79403604          @ PLLM=4 N=216 P=/2 SRC=HSE Q=9 R=7
    str r1, [r0, #4]
    ldr r1, [r0]
    orr r1, r1, #0x1000000       @ PLLON
    str r1, [r0]
2:  ldr r1, [r0]
    tst r1, #0x2000000
    beq 2b
    ldr r1, =0x40023C00          @ FLASH_ACR: 7 wait states
    movs r2, #7
    str r2, [r1]
    ldr r1, =0x9402              @ PPRE1=/4, PPRE2=/2, SW=PLL
    str r1, [r0, #8]
3:  ldr r1, [r0, #8]
    and r1, r1, #0xC
    cmp r1, #8
    bne 3b"""


def vector_table(irq55: str = "hang") -> str:
    """The program's start: vector table (reset, SysTick, USART3's IRQ 39 = exception 55 ->
    ``irq55``, the rest ``hang``), ``hang`` and a SysTick handler counting at 0x20000000 (as
    HAL_IncTick counts uwTick)."""
    return f"""
.syntax unified
.cpu cortex-m7
.thumb
.text
.global _start
_start:
.word 0x20010000
.word reset
.rept 13
.word hang
.endr
.word systick
.rept 39
.word hang
.endr
.word {irq55}
.rept 70
.word hang
.endr
.thumb_func
hang: b hang
.thumb_func
systick:
    ldr r0, =0x20000000
    ldr r1, [r0]
    adds r1, #1
    str r1, [r0]
    bx lr
"""


PROGRAM = """
.thumb_func
uart_irq:                        @ TXE interrupt: send the next character
    ldr r0, =0x40004800
    ldr r1, =0x20000004
    ldr r2, [r1]
    adds r2, #1
    str r2, [r1]
    and r2, r2, #0x3F
    adds r2, #0x30
    str r2, [r0, #0x28]
    bx lr
.thumb_func
reset:
{clock}
    ldr r1, [r0, #0x40]          @ APB1ENR.USART3EN
    orr r1, r1, #0x40000
    str r1, [r0, #0x40]
    ldr r0, =0x40004800          @ USART3
    ldr r1, =469
    str r1, [r0, #0x0C]
    movs r1, #9                  @ TE | UE
    movs r2, #{txeie}
    orr r1, r1, r2
    str r1, [r0]
    ldr r0, =0xE000E104          @ NVIC ISER1 bit 7 = IRQ 39 (USART3)
    movs r1, #0x80
    str r1, [r0]
    ldr r0, =0xE000E010          @ SysTick 1 kHz at 216 MHz
    ldr r1, =215999
    str r1, [r0, #4]
    movs r1, #0
    str r1, [r0, #8]
    movs r1, #{ctrl}
    str r1, [r0]
{mpu}
    ldr r4, =0x40004800
    movs r5, #0
    ldr r6, =0x2545F491
loop:
    eor r6, r6, r6, lsl #13      @ xorshift32: some real work per iteration
    eor r6, r6, r6, lsr #17
    eor r6, r6, r6, lsl #5
    adds r5, #1
    ldr r7, ={every}
    ands r7, r5, r7
    bne loop
    movs r7, #{uart}
    cmp r7, #0
    beq loop
4:  ldr r7, [r4, #0x1C]          @ ISR.TXE
    tst r7, #0x80
    beq 4b
    and r7, r6, #0x3F
    adds r7, #0x30
    str r7, [r4, #0x28]          @ TDR
    b loop
.ltorg
"""


#: MPU set-ups (the machine enforces the MPU with page protections; these measure the cost)
MPU_RAM_XN = """
    ldr r0, =0xE000ED94          @ MPU_CTRL; RNR +4, RBAR +8, RASR +12
    movs r1, #0
    str r1, [r0, #4]
    ldr r1, =0x20000000          @ region 0: 1 MiB RAM, XN, full access, Normal WBWA (TEX=1
    str r1, [r0, #8]             @ C=B=1: the bootloader's; without them Strongly-ordered)
    ldr r1, =0x130B0027
    str r1, [r0, #12]
{guard}
    movs r1, #5                  @ ENABLE | PRIVDEFENA
    str r1, [r0]
    dsb
    isb
"""
MPU_GUARD = """
    movs r1, #1
    str r1, [r0, #4]
    ldr r1, =0x2000F000          @ region 1: a 32-byte no-access stack guard inside a page
    str r1, [r0, #8]
    ldr r1, =0x000B0009
    str r1, [r0, #12]
"""


def assemble(src: str) -> bytes:
    """Assemble and link at 0x08000000 with the Debian cross toolchain."""
    with tempfile.TemporaryDirectory() as d:
        s, o, e, b = (os.path.join(d, n) for n in ("p.s", "p.o", "p.elf", "p.bin"))
        with open(s, "w") as f:
            f.write(src)
        subprocess.run(["arm-none-eabi-as", "-o", o, s], check=True, timeout=60)
        subprocess.run(["arm-none-eabi-ld", "-Ttext=0x08000000", "-o", e, o], check=True, timeout=60)
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", e, b], check=True, timeout=60)
        with open(b, "rb") as f:
            return f.read()


#: issue 18's goal with SysTick and the UART busy: the silicon's rate (one instruction a cycle)
SILICON_RATE = 216e6


def run_case(name: str, systick: bool, uart: str | None, seconds: float, mpu: str = "") -> None:
    """Run one configuration and print its figures."""
    image = assemble(
        vector_table("uart_irq")
        + PROGRAM.format(
            clock=CLOCK_216,
            ctrl=7 if systick else 0,
            uart=1 if uart == "poll" else 0,
            txeie=0x80 if uart == "irq" else 0,
            every=0xFFF,
            mpu=mpu,
        )
    )
    board = Board(BoardOptions(pty=False))
    m = board.machine
    try:
        board.power_on([Chunk(0x08000000, image, "bench_periph")])
        m.start()
        time.sleep(0.3)  # clock switch, warm-up
        with m.host():
            i0, c0, hz0 = m.instructions, m.now_cycles(), m.core_hz
            ticks0 = int.from_bytes(m.bus_read(0x20000000, 4), "little")
            tx0 = len(board.usart.tx_log)
        w0 = time.perf_counter()
        time.sleep(seconds)
        with m.host():
            w1 = time.perf_counter()
            i1, c1 = m.instructions, m.now_cycles()
            ticks1 = int.from_bytes(m.bus_read(0x20000000, 4), "little")
            tx1 = len(board.usart.tx_log)
            hz = m.core_hz
        wall = w1 - w0
        rate = (i1 - i0) / wall
        goal = ""
        if systick and uart == "irq":  # issue 18: as fast as the silicon, interrupts and all
            goal = f"   [goal >= {SILICON_RATE / 1e6:.0f} M (issue 18): {'met' if rate >= SILICON_RATE else 'NOT met'}]"
        print(
            f"{name:28s} {rate / 1e6:8.1f} M instr/s   "
            f"{(c1 - c0) / hz / wall:6.3f} virtual s/wall s   core {hz / 1e6:.0f} MHz   "
            f"SysTick irqs {ticks1 - ticks0:6d}   UART bytes {tx1 - tx0:7d}{goal}"
        )
        if hz0 != 216_000_000:
            print(f"  (warning: core clock was {hz0} Hz after warm-up)")
    finally:
        board.close()


#: host time an interrupt may cost in all for the goal: (1/216e6 - 1/280e6) s an instruction
#: over the ~12 500 interrupts of a virtual second at 216 MHz (UART at 115 200 baud + SysTick)
IRQ_BUDGET_US = 19.0


def entry_return_cost(pairs: int = 20000, rounds: int = 5) -> tuple[float, float]:
    """Host time (us) of one exception entry (priorities, stacking, vector) and one return
    (USART3's IRQ, taken from and returned to thread code), outside any slice: best of ``rounds`` rounds of ``pairs``.
    Less noisy than the instruction rate on a shared machine."""
    image = assemble(
        vector_table("uart_irq")
        + PROGRAM.format(clock=CLOCK_216, ctrl=0, uart=0, txeie=0, every=0xFFF, mpu="")
    )
    board = Board(BoardOptions(pty=False))
    m = board.machine
    try:
        board.power_on([Chunk(0x08000000, image, "bench_periph")])
        m.start()
        time.sleep(0.2)
        with m.host():
            m.halt()
        with m.host():
            exc = m.exc
            take = ret = float("inf")
            for _ in range(rounds):
                t_take = t_ret = 0.0
                for _ in range(pairs):
                    m.pend_irq(39)  # USART3
                    t0 = time.perf_counter()
                    assert exc.enter()  # priorities, stacking, vector
                    t1 = time.perf_counter()
                    exc.exception_return(m.reg("lr"))
                    t2 = time.perf_counter()
                    t_take += t1 - t0
                    t_ret += t2 - t1
                take, ret = min(take, t_take / pairs), min(ret, t_ret / pairs)
        return take * 1e6, ret * 1e6
    finally:
        board.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="wall seconds per case")
    args = ap.parse_args()
    print("bench_periph: instructions per wall-clock second on the twin (goal >= 20 M/s)")
    run_case("quiet", False, None, args.seconds)
    run_case("SysTick 1 kHz", True, None, args.seconds)
    run_case("SysTick 1 kHz + UART (TXE irq)", True, "irq", args.seconds)
    run_case("SysTick 1 kHz + UART (polled)", True, "poll", args.seconds)
    run_case("... + MPU (RAM XN region)", True, "irq", args.seconds, MPU_RAM_XN.format(guard=""))
    run_case("... + MPU + 32 B stack guard", True, "irq", args.seconds, MPU_RAM_XN.format(guard=MPU_GUARD))
    take, ret = entry_return_cost()
    print(
        f"exception entry + return (host time, best of 5 x 20 000): {take:.1f} + {ret:.1f} us = "
        f"{take + ret:.1f} us   [all an interrupt may cost for the goal: <= {IRQ_BUDGET_US:.0f} us]"
    )


if __name__ == "__main__":
    main()
