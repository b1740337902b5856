"""twin/core_regs.py: registers read and written together (one unicorn call) agree with the
one-by-one accessors, and a name that needs the one-by-one rules is refused."""

from __future__ import annotations

import pytest
import unicorn
import unicorn.arm_const as A

from twin.core_regs import CoreRegs


@pytest.fixture()
def regs() -> CoreRegs:
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(unicorn.arm_const.UC_CPU_ARM_CORTEX_M7)
    return CoreRegs(uc)


def test_read_regs_matches_reg(regs: CoreRegs) -> None:
    names = ("r0", "r1", "r2", "r3", "r12", "lr", "pc", "xpsr", "control")
    for i, name in enumerate(names[:6]):
        regs.set_reg(name, 0x11111111 * (i + 1) + 0x80000000)
    regs.set_reg("pc", 0x08000124)
    assert regs.read_regs(names) == [regs.reg(n) for n in names]
    assert regs.read_regs(names)[0] == 0x91111111


def test_write_context_sets_each(regs: CoreRegs) -> None:
    names = ("r0", "r1", "r2", "r3", "r12", "lr")
    values = [0xFFFFFFFF, 0, 0x12345678, 0x80000000, 7, 0xFFFFFFF9]
    regs.write_context(names, values)
    assert [regs.reg(n) for n in names] == values


def test_masks_see_through_unprivileged_thread_mode(regs: CoreRegs) -> None:
    regs.set_reg("primask", 1)
    regs.set_reg("basepri", 0x40)
    assert regs.masks() == (1, 0x40, 0)
    regs.set_reg("control", 1)  # thread mode, unprivileged: unicorn's MRS would read 0
    assert regs.uc.reg_read(A.UC_ARM_REG_PRIMASK) == 0
    assert regs.masks() == (1, 0x40, 0)


@pytest.mark.parametrize("name", ["msp", "primask", "s0"])
def test_a_banked_or_hidden_register_is_not_read_together(regs: CoreRegs, name: str) -> None:
    with pytest.raises(ValueError, match="not readable together"):
        regs.read_regs(("r0", name))


def test_control_written_in_unprivileged_thread_mode_takes_and_banks_sp(regs: CoreRegs) -> None:
    """A debugger (DCRSR) or the model writing CONTROL while the core is an unprivileged
    thread: unicorn's own write has MSR semantics and ignored it (nPRIV stayed set)."""
    regs.set_reg("msp", 0x20010000)
    regs.set_reg("psp", 0x20008000)
    regs.set_reg("control", 3)  # unprivileged, on PSP
    assert (regs.reg("control"), regs.reg("sp")) == (3, 0x20008000)
    regs.set_reg("control", 0)
    assert (regs.reg("control"), regs.reg("sp")) == (0, 0x20010000)
    assert (regs.reg("msp"), regs.reg("psp")) == (0x20010000, 0x20008000)
    regs.set_reg("control", 3)
    regs.set_reg("control", 1)  # still unprivileged, back on MSP
    assert (regs.reg("control"), regs.reg("sp")) == (1, 0x20010000)


def test_write_context_switches_mode_then_banks_sp_in_order(regs: CoreRegs) -> None:
    """Exception return's registers in one call: CONTROL while still in handler mode, the
    mode, then SP (now PSP: CONTROL.SPSEL), the frame and the PC with its Thumb bit."""
    regs.set_reg("msp", 0x20010000)
    regs.set_reg("psp", 0x20008000)
    regs.set_reg("xpsr", 0x01000000 | 15)  # handler mode (SysTick)
    names = ("faultmask", "control", "xpsr", "sp", "r0", "lr", "pc")
    regs.write_context(names, (0, 3, 0x01000000, 0x20007000, 5, 0x08000201, 0x08000101))
    assert (regs.reg("control"), regs.reg("xpsr") & 0x1FF) == (3, 0)  # unprivileged thread, PSP
    assert (regs.reg("sp"), regs.reg("psp"), regs.reg("msp")) == (0x20007000, 0x20007000, 0x20010000)
    assert (regs.reg("r0"), regs.reg("lr"), regs.reg("pc")) == (5, 0x08000201, 0x08000100)
    assert regs.reg("xpsr") & 0x01000000  # still Thumb


def test_write_context_refuses_fp_registers(regs: CoreRegs) -> None:
    with pytest.raises(ValueError, match="not writable in order together"):
        regs.write_context(("r0", "s0"), (1, 2))
