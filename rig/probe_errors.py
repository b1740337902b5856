"""Probe access errors that say what the rig was doing: the access, its address and the
core's state in words (held in reset, locked up, sleeping, halted, running) from DHCSR."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.errors import ProbeError

if TYPE_CHECKING:
    from rig.probe import Probe

DHCSR = 0xE000EDF0
DHCSR_S_RESET_ST = 1 << 25
DHCSR_S_LOCKUP = 1 << 19
DHCSR_S_SLEEP = 1 << 18
DHCSR_S_HALT = 1 << 17


def describe_dhcsr(dhcsr: int) -> str:
    """The core's state in words, from DHCSR's status bits (ARMv7-M C1.6.2)."""
    if dhcsr & DHCSR_S_RESET_ST:
        return f"the core is held in reset or was just reset (DHCSR=0x{dhcsr:08X}, S_RESET_ST)"
    if dhcsr & DHCSR_S_LOCKUP:
        return f"the core is locked up (DHCSR=0x{dhcsr:08X}, S_LOCKUP: a fault it could not take)"
    if dhcsr & DHCSR_S_HALT:
        return f"the core is halted (DHCSR=0x{dhcsr:08X})"
    if dhcsr & DHCSR_S_SLEEP:
        return f"the core is sleeping (DHCSR=0x{dhcsr:08X}, S_SLEEP: WFI/WFE)"
    return f"the core is running (DHCSR=0x{dhcsr:08X})"


#: what to do about a failed access, by the core's state
_STATE_HINTS = (
    (
        "held in reset",
        "something holds NRST (the probe's reset line, a button, a supervisor) or the board lost power",
    ),
    (
        "locked up",
        "the firmware faulted with faults escalated (a fault in the HardFault handler, a bad vector table)",
    ),
    (
        "sleeping",
        (
            "the core sleeps in WFI/WFE with DBGMCU_CR.DBG_SLEEP clear (in Stop mode, SCB_SCR.SLEEPDEEP "
            "set: DBG_STOP): some debug accesses stall; halt it first, or set DBG_SLEEP/DBG_STOP in the "
            "firmware (pyOCD sets both at connect; a firmware that clears DBGMCU_CR undoes it)"
        ),
    ),
    ("cannot be read", "the probe lost the target: check power, the SWD cable and the probe"),
)


class ProbeAccessError(ProbeError):
    """One debug access failed: ``operation`` (``reading``, ``programming``...) at
    ``address`` (None for core control), and the core's ``state`` at that moment in words."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        address: int | None = None,
        length: int | None = None,
        state: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.operation = operation
        self.address = address
        self.length = length
        self.state = state

    @classmethod
    def of(
        cls, probe: Probe, what: str, exc: BaseException, *, address: int | None, length: int | None
    ) -> ProbeAccessError:
        state, _ = probe.core_state()
        where = "" if address is None else f" 0x{address:08X}" + (f"+{length}" if length else "")
        return cls(
            f"{what}{where} failed: {type(exc).__name__}: {exc}; {state}",
            operation=what,
            address=address,
            length=length,
            state=state,
            hint=state_hint(state, "see the pyOCD log; check the probe"),
        )


def state_hint(state: str, default: str) -> str:
    """What to do about a failed access, from the core's state in words."""
    return next((h for key, h in _STATE_HINTS if key in state), default)


def is_probe_failure(exc: BaseException) -> bool:
    """pyOCD's own errors, and the socket/OS errors of a remote or USB probe."""
    from pyocd.core.exceptions import Error as PyocdError

    return isinstance(exc, (PyocdError, OSError, TimeoutError))
