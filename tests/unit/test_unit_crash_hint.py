"""rig/crash_hint.py: a board that went silent is found in its fault handler, and the
faulting instruction is the stacked PC, also when the handler called a function."""

from __future__ import annotations

import struct

from rig.crash_hint import CRASH_POLLS, DHCSR, ICSR, CrashWatch, crashed

CFSR, HFSR = 0xE000ED28, 0xE000ED2C
MSP = 0x2007FF00


class FakeProbe:
    """Memory words, core registers and the halt state of a board (no pyOCD)."""

    def __init__(self, regs: dict[str, int], words: dict[int, int], stack: bytes = b"") -> None:
        self.regs, self.words, self.stack = regs, words, stack
        self.halted = False
        self.resumed = 0

    def is_halted(self) -> bool:
        return self.halted

    def halt(self) -> None:
        self.halted = True

    def resume(self) -> None:
        self.halted = False
        self.resumed += 1

    def registers(self, names):
        return {n: self.regs.get(n, 0) for n in names}

    def read32(self, address: int) -> int:
        return self.words.get(address, 0)

    def read(self, address: int, length: int) -> bytes:
        if MSP <= address < MSP + len(self.stack):
            return self.stack[address - MSP : address - MSP + length].ljust(length, b"\0")
        return bytes(length)


def frame(pc: int) -> bytes:
    """An exception frame: r0-r3, r12, lr, pc, xpsr (Thumb bit set)."""
    return struct.pack("<8I", 1, 2, 3, 4, 12, 0x08000101, pc, 0x01000000)


def test_a_handler_that_called_a_function_still_gives_the_faulting_instruction() -> None:
    # board_unhandled_exception's frame: r4, r5 and the pushed EXC_RETURN, then the exception frame
    stack = struct.pack("<3I", 0x44, 0x55, 0xFFFFFFF9) + frame(0x0800041C)
    probe = FakeProbe(
        {"xpsr": 0x01000003, "pc": 0x08001234, "lr": 0x08001001, "msp": MSP},
        {CFSR: 1 << 24, HFSR: 1 << 30},
        stack,
    )
    found = crashed(probe)
    assert found is not None
    text, info = found
    assert "in HardFault" in text and "UFSR.UNALIGNED" in text and "HFSR.FORCED" in text
    assert "the faulting instruction is at 0x0800041C" in text
    assert info.registers["crash_pc"] == 0x0800041C
    assert probe.halted  # left stopped where it crashed


def test_a_handler_with_exc_return_in_lr_reads_the_frame_at_sp() -> None:
    probe = FakeProbe(
        {"xpsr": 0x01000006, "pc": 0x08000200, "lr": 0xFFFFFFF9, "msp": MSP},
        {CFSR: 1 << 25},
        frame(0x08000300),
    )
    text, _ = crashed(probe)
    assert "in UsageFault" in text and "UFSR.DIVBYZERO" in text and "0x08000300" in text


def test_a_board_that_did_not_crash_is_resumed_and_nothing_is_said() -> None:
    probe = FakeProbe({"xpsr": 0x01000000, "pc": 0x08000200}, {})
    assert crashed(probe) is None
    assert not probe.halted and probe.resumed == 1


def test_lockup_is_a_crash_without_a_frame() -> None:
    probe = FakeProbe({"xpsr": 0x01000003, "pc": 0xFFFFFFFE}, {DHCSR: 1 << 19})
    text, _ = crashed(probe)
    assert "locked up" in text and "faulting instruction" not in text


def test_the_watch_fires_only_after_polls_in_a_row() -> None:
    words = {ICSR: 0}
    watch = CrashWatch(lambda a: words.get(a, 0))
    assert not watch()
    words[ICSR] = 3  # HardFault active
    results = [watch() for _ in range(CRASH_POLLS)]
    assert results == [False] * (CRASH_POLLS - 1) + [True] and watch.fired
    words[ICSR] = 0x2F  # an interrupt handler (IRQ 31) is not a crash
    assert not CrashWatch(lambda a: words.get(a, 0))()


def test_the_watch_gives_up_the_wait_for_a_board_that_crashed_before_it_connected() -> None:
    words = {ICSR: 0}
    watch = CrashWatch(lambda a: words.get(a, 0))
    assert watch.before_connect() is None
    words[ICSR] = 6  # UsageFault active
    reasons = [watch.before_connect() for _ in range(CRASH_POLLS)]
    assert reasons[:-1] == [None] * (CRASH_POLLS - 1)
    assert reasons[-1] is not None and "fault handler before it connected" in reasons[-1]


def test_an_unaligned_fault_with_unalign_trp_set_names_the_build_flag() -> None:
    def probe(ccr: int) -> FakeProbe:
        return FakeProbe(
            {"xpsr": 0x01000006, "pc": 0x08000200, "lr": 0xFFFFFFF9, "msp": MSP},
            {CFSR: 1 << 24, 0xE000ED14: ccr},
            frame(0x08000300),
        )

    text, _ = crashed(probe(0x00040208))  # STKALIGN, BP, UNALIGN_TRP
    assert "CCR.UNALIGN_TRP is set" in text and "-mno-unaligned-access" in text
    text, _ = crashed(probe(0x00040200))  # the bit clear: an LDRD/LDM... of its own
    assert "-mno-unaligned-access" not in text


def test_a_stack_near_the_top_of_ram_is_scanned_up_to_its_end() -> None:
    """MSP 232 bytes below the end of SRAM: a 256-byte read would fail on the board (and did
    on the twin: no faulting instruction was named)."""
    sp = 0x2007FF18
    stack = struct.pack("<2I", 0x40023C00, 0xFFFFFFF9) + frame(0x08000764)

    class NearTop(FakeProbe):
        def read(self, address: int, length: int) -> bytes:
            assert address + length <= 0x20080000, "read past the end of SRAM"
            return (stack[address - sp :] if address >= sp else b"").ljust(length, b"\0")[:length]

    probe = NearTop({"xpsr": 0x01000003, "pc": 0x080016C0, "lr": 0x080016B7, "msp": sp}, {0xE000ED28: 1 << 8})
    text, _ = crashed(probe)
    assert "the faulting instruction is at 0x08000764" in text
