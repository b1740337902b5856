"""FLASH_SR and FLASH_CR answered in C (twin/flash_fast.c) do what the Python model does.

The same program runs twice on a twin stepped by hand (deterministic virtual time): once
with the C in front of the FLASH register page, once with it off (every access through the
bus's Python callbacks). It does what a flash algorithm does around every word (pyOCD's
STM32F7 algorithm's read-modify-write of CR, the BSY poll, the error check), and what the
C must hand back: key writes, an erase (STRT), CR writes that change the interrupt enables
(an EOP interrupt pends), errors (a store with PG clear, a PSIZE mismatch) and their
write-1-to-clear, a word programmed over a programmed one (a fix-up waits: SR then goes to
Python), byte and halfword accesses, relocking and writes while locked; RCC on the same
page. With the datasheet timing (BSY held in virtual time: those reads jump time), with the
MPU on granting the whole page (as CubeMX's background region leaves the peripherals: the C
still answers) and with an MPU region cutting the page (then the protection model is asked:
nothing is answered in C). Every value
the program read, the flash it wrote, the core registers, the virtual time, the
instruction count and the FLASH interrupt's state must come out the same, and the C must
have answered most accesses where it may.
"""

from __future__ import annotations

import pytest
from periph_exc_harness import assemble

from twin.board import Board, BoardOptions
from twin.loader import Chunk

LOG = 0x20000000
TARGET = 0x08008000  # sector 1
WORDS = 300

PROGRAM = f"""
.text
.global _start
_start:
.word 0x20010000
.word reset
.thumb_func
reset:
{{setup}}
    ldr r4, =0x40023C00          @ FLASH
    ldr r8, =0x{LOG:08X}
    ldr r0, =0x45670123          @ KEYR: unlock
    str r0, [r4, #4]
    ldr r0, =0xCDEF89AB
    str r0, [r4, #4]
    ldr r0, [r4, #0x10]
    str r0, [r8], #4             @ log: CR unlocked
    ldr r0, =0x0001020A          @ erase sector 1: SER | SNB=1 | PSIZE x32 | STRT
    str r0, [r4, #0x10]
1:  ldr r0, [r4, #0x0C]          @ wait for BSY to clear
    lsls r0, r0, #15
    bmi 1b
    ldr r0, [r4, #0x0C]
    str r0, [r8], #4             @ log: SR after the erase
    movs r0, #0
    str r0, [r4, #0x10]
    ldr r6, =0x{TARGET:08X}
    ldr r7, =0x2545F491
    movs r5, #0
2:  ldr r3, [r4, #0x10]          @ pyOCD's loop: CR |= PG | PSIZE x32
    ldr r2, =0x201
    orrs r3, r2
    str r3, [r4, #0x10]
    eor r7, r7, r7, lsl #13      @ the word: xorshift
    eor r7, r7, r7, lsr #17
    eor r7, r7, r7, lsl #5
    str r7, [r6], #4
    dsb
3:  ldr r3, [r4, #0x0C]          @ BSY
    lsls r3, r3, #15
    bmi 3b
    ldr r3, [r4, #0x10]          @ CR &= ~PG
    lsrs r3, r3, #1
    lsls r3, r3, #1
    str r3, [r4, #0x10]
    ldr r3, [r4, #0x0C]          @ errors
    lsls r3, r3, #24
    lsrs r3, r3, #28
    bne 9f
    adds r5, #1
    cmp r5, #{WORDS}
    blo 2b
    ldr r0, =0x01000201          @ EOPIE on (the C hands it to Python): EOP sets, IRQ 4 pends
    str r0, [r4, #0x10]
    str r7, [r6], #4
4:  ldr r0, [r4, #0x0C]
    lsls r0, r0, #15
    bmi 4b
    ldr r0, [r4, #0x0C]
    str r0, [r8], #4             @ log: SR with EOP
    ldr r0, =0x01000200          @ PG off, EOPIE still on (the C's)
    str r0, [r4, #0x10]
    ldr r0, =0x200               @ EOPIE off, EOP still set: the line drops (the Python's)
    str r0, [r4, #0x10]
    ldr r1, =0xE000E280          @ ICPR0: IRQ 4 no longer pending
    movs r0, #0x10
    str r0, [r1]
    ldr r0, [r1, #-0x80]         @ ISPR0
    str r0, [r8], #4             @ log: not pending again (the line is low)
    ldr r0, =0x01000200          @ EOPIE on, EOP still set: the line rises, IRQ 4 pends
    str r0, [r4, #0x10]
    ldr r0, [r1, #-0x80]
    str r0, [r8], #4             @ log: pending
    movs r0, #1                  @ clear EOP (write 1)
    str r0, [r4, #0x0C]
    movs r0, #0                  @ EOPIE off
    str r0, [r4, #0x10]
    str r7, [r6], #4             @ a store with PG clear: ERSERR, nothing written
    ldr r0, [r4, #0x0C]
    str r0, [r8], #4             @ log: SR with ERSERR
    movs r0, #0x80
    str r0, [r4, #0x0C]          @ clear it
    ldr r0, =0x001               @ PG with PSIZE x8, a word store: PGPERR
    str r0, [r4, #0x10]
    str r7, [r6], #4
    ldr r0, [r4, #0x0C]
    str r0, [r8], #4             @ log: SR with PGPERR
    movs r0, #0x40
    str r0, [r4, #0x0C]
    ldr r0, =0x02000201          @ ERRIE on: errors also set OPERR
    str r0, [r4, #0x10]
    strb r7, [r6], #1            @ PSIZE x32, a byte store: PGPERR | OPERR, IRQ 4
    ldr r0, [r4, #0x0C]
    str r0, [r8], #4             @ log
    movs r0, #0xC2
    str r0, [r4, #0x0C]
    movs r0, #0
    str r0, [r4, #0x10]
    movs r0, #0x02               @ byte and halfword writes of CR (the Python's)
    strb r0, [r4, #0x10]
    ldrh r0, [r4, #0x10]
    str r0, [r8], #4             @ log
    ldrb r0, [r4, #0x0E]         @ a byte of SR
    str r0, [r8], #4
    ldr r0, =0x201               @ PG, x32: a word over a programmed one (ANDs: unicorn's raw
    str r0, [r4, #0x10]          @ store differs, a fix-up waits), SR and the word read back
    ldr r6, =0x{TARGET:08X}      @ in the same block (the Python's while the fix-up waits)
    mov r0, #0xFFFFFFFF
    str r0, [r6]
    ldr r1, [r4, #0x0C]
    ldr r2, [r6]
    str r1, [r8], #4
    str r2, [r8], #4
    movs r0, #0
    str r0, [r4, #0x10]
    ldr r0, =0x40023800          @ RCC on the same page: CR, CFGR
    ldr r1, [r0]
    str r1, [r8], #4
    ldr r1, [r0, #8]
    str r1, [r8], #4
    ldr r0, =0x80000000          @ relock (the Python's)
    str r0, [r4, #0x10]
    ldr r0, =0x201               @ ignored while locked
    str r0, [r4, #0x10]
    ldr r0, [r4, #0x10]
    str r0, [r8], #4             @ log: CR locked
    ldr r0, [r4, #0x0C]
    str r0, [r8], #4             @ log: SR
9:  ldr r1, =0x{LOG + 0x80:08X}   @ words programmed
    str r5, [r1]
    ldr r0, =0xD0DE
    ldr r1, =0x{LOG + 0x100:08X}
    str r0, [r1]
5:  b 5b
.ltorg
"""

#: the MPU on, all of memory full access: the FLASH page is open, the C may answer
MPU_ON = """
    ldr r0, =0xE000ED9C
    ldr r1, =0x00000010
    str r1, [r0]
    ldr r1, =0x0300003F          @ 4 GiB, AP full, strongly ordered, enabled
    str r1, [r0, #4]
{guard}
    ldr r0, =0xE000ED94
    movs r1, #1
    str r1, [r0]
    dsb
    isb
"""
#: region 1: 32 bytes of no access over CRC_DR, on the FLASH registers' page: every access
#: to the page is asked of the protection model
GUARD = """
    ldr r1, =0x40023011          @ RBAR: 0x40023000, VALID, region 1
    str r1, [r0]
    ldr r1, =0x00000009          @ 32 bytes, no access, enabled
    str r1, [r0, #4]
"""
CASES = {
    "fast": ("fast", ""),
    "datasheet": ("datasheet", ""),
    "mpu-open": ("fast", MPU_ON.replace("{guard}", "")),
    "mpu-guard": ("fast", MPU_ON.replace("{guard}", GUARD)),
}
REGS = (*(f"r{i}" for i in range(13)), "sp", "lr", "pc", "xpsr")


def _run(c_on: bool, case: str) -> dict:
    timing, setup = CASES[case]
    board = Board(BoardOptions(pty=False, timing=timing))
    try:
        m = board.machine
        assert m.flash_fast is not None, "the machine has no C FLASH registers (no C compiler?)"
        m.flash_fast.enabled = c_on
        board.power_on([Chunk(0x08000000, assemble(PROGRAM.replace("{setup}", setup)), "flash-fast")])
        with m.host():
            for _ in range(20000):
                m.step_slice()
                if m.bus_read(LOG + 0x100, 4) == (0xD0DE).to_bytes(4, "little"):
                    break
            else:
                pytest.fail("the program did not finish")
            return {
                "log": m.bus_read(LOG, 0x84),
                "flash": m.bus_read(TARGET, 4 * WORDS + 64),
                "regs": [m.reg(n) for n in REGS],
                "cycles": m.now_cycles(),
                "instructions": m.instructions,
                "flash_regs": (m.flash.sr, m.flash.cr),
                "irq4": (m.flash._irq_level, sorted(m.exc.pending)),
                "served": m.flash_fast.served,
            }
    finally:
        board.close()


@pytest.fixture(scope="module", params=list(CASES))
def both(request) -> tuple[dict, dict, str]:
    return _run(True, request.param), _run(False, request.param), request.param


def test_the_program_programmed_every_word(both) -> None:
    fast, _, _ = both
    log = [int.from_bytes(fast["log"][i : i + 4], "little") for i in range(0, 0x84, 4)]
    assert log[-1] == WORDS  # no error stopped the loop
    assert log[2] == 1 and log[3:5] == [0, 0x10]  # EOP; IRQ 4 follows the line as EOPIE goes
    first = int.from_bytes(fast["flash"][:4], "little")
    assert log[10] == 0 and log[11] == first != 0xFFFFFFFF  # the AND, not the raw store
    assert fast["flash"][: 4 * WORDS] != b"\xff" * (4 * WORDS)


def test_c_and_python_agree(both) -> None:
    fast, slow, _ = both
    for key in ("log", "flash", "regs", "cycles", "instructions", "flash_regs", "irq4"):
        assert fast[key] == slow[key], key


def test_c_answers_what_it_may(both) -> None:
    fast, slow, case = both
    assert slow["served"] == 0
    if case == "mpu-guard":
        assert fast["served"] == 0  # the MPU restricts accesses: the protection model decides
    else:  # six of the seven accesses a word (the store is the model's)
        assert fast["served"] >= 5 * WORDS
