"""Exception entry, return and tail-chaining (ARMv7-M B1.5.6-B1.5.8).

:class:`EntryReturn` is the part of :class:`twin.exception_model.ExceptionModel` that moves
the core: stacking the basic or extended frame on MSP/PSP (8-byte alignment recorded in
xPSR bit 9), the vector fetch through VTOR, IPSR/LR/CONTROL on entry; EXC_RETURN checks,
unstacking and restoring CONTROL on return, then tail-chaining to a pending exception
that can preempt. Stacking and unstacking ask the machine's MPU (``cpu.mpu_allows``) and
raise MSTKERR/MUNSTKERR, STKERR/UNSTKERR through twin/faults.py.

Owns: nothing persistent beyond ``history`` (entries kept for tests) and ``fpcar``.
Must not touch: priorities or fault status directly (it asks twin/nvic.py and raises
through twin/faults.py), memory other than through ``cpu.read_mem``/``cpu.write_mem``.
"""

from __future__ import annotations

import struct

from twin.device import Cpu, Services
from twin.faults import HFSR_VECTTBL
from twin.nvic import FIRST_IRQ, NMI

EXC_RETURN_BASE = 0xFFFFFFE1
#: what exception entry reads, then stacks (one engine call where the CPU offers read_regs)
_ENTRY_REGS = ("control", "xpsr", "r0", "r1", "r2", "r3", "r12", "lr", "pc", "sp")
#: the integer frame registers exception return restores before xPSR, SP and PC
_FRAME_REGS = ("r0", "r1", "r2", "r3", "r12", "lr")


def _read(cpu: Cpu, names: tuple[str, ...]) -> list[int]:
    read = getattr(cpu, "read_regs", None)
    return read(names) if read is not None else [cpu.reg(n) for n in names]


def _write(cpu: Cpu, names: tuple[str, ...], values: list[int]) -> None:
    """Write ``names`` in order: one engine call where the CPU offers ``write_context``."""
    write = getattr(cpu, "write_context", None)
    if write is not None:
        write(names, values)
    else:
        for name, value in zip(names, values, strict=True):
            cpu.set_reg(name, value)


def _u32(data: bytes, i: int) -> int:
    return struct.unpack_from("<I", data, 4 * i)[0]


class EntryReturn:
    """Exception entry (stacking, vector fetch) and return (unstacking, tail-chaining);
    a mixin of ExceptionModel."""

    cpu: Cpu
    services: Services

    def enter(self) -> bool:
        """Take the highest-priority pending exception if it can preempt; True if one was."""
        exc = self.takeable()
        if exc is None:
            return False
        self._take_at_once(exc)
        return True

    def _take_at_once(self, exc: int) -> None:
        """Take ``exc``; a fault its entry raised (stacking, the vector fetch, a vector without
        the Thumb bit) is taken as well before any instruction runs, as on silicon (else
        a slice ran at a stale PC in handler mode first). Simplified: such a fault stacks a
        frame of its own and ``exc`` stays active (the core takes a derived exception over
        the same frame and leaves ``exc`` pending)."""
        while self._take(exc) and self.wants_entry():
            exc = self.highest_pending()  # type: ignore[assignment]

    def _take(self, exc: int) -> bool:
        """Stack, then enter ``exc``'s handler; True if that raised a fault."""
        cpu = self.cpu
        self.pending.discard(exc)
        fast = getattr(cpu, "exc_fast", None)
        allows = getattr(cpu, "mpu_allows", None) if self.mpu_ctrl & 1 else None
        if fast is not None and fast.enter(exc, self.vtor, self.ccr, allows):
            self.active.append(exc)  # the plain case, in C (twin/exc_fast.c)
            if self.keep_history:
                self.history.append((self.services.now_cycles(), exc))
                del self.history[: -self.keep_history]
            return False
        # sp: the stack in use is the one stacked on (thread: PSP if CONTROL.SPSEL, handler:
        # MSP), so the plain SP serves without the privileged look at MSP/PSP by name
        control, xpsr, r0, r1, r2, r3, r12, lr, pc, sp = _read(cpu, _ENTRY_REGS)
        thread = (xpsr & 0x1FF) == 0
        use_psp = thread and bool(control & 2)
        fpca = bool(control & 4)
        size = 0x68 if fpca else 0x20
        frame_ptr = (sp - size) & 0xFFFFFFFF
        if self.ccr & (1 << 9) and frame_ptr & 4:
            frame_ptr &= ~7
            xpsr |= 1 << 9
        else:
            xpsr &= ~(1 << 9)
        frame = [r0, r1, r2, r3, r12, lr, pc & ~1, xpsr]
        if fpca:
            frame += [cpu.reg(f"s{i}") for i in range(16)] + [cpu.reg("fpscr"), 0]
            self.fpcar = (frame_ptr + 0x20) & 0xFFFFFFFF
        stack_error = mpu_error = False
        # stacking is done at the privilege of the interrupted code (thread: CONTROL.nPRIV)
        allows = getattr(cpu, "mpu_allows", None)
        if allows is not None and not allows(frame_ptr, 4 * len(frame), True, not thread or not control & 1):
            mpu_error = True  # the MPU refuses the frame: nothing is written
        else:
            try:
                cpu.write_mem(frame_ptr, struct.pack(f"<{len(frame)}I", *[v & 0xFFFFFFFF for v in frame]))
            except ValueError:
                stack_error = True
        exc_return = (
            EXC_RETURN_BASE | (0 if fpca else 0x10) | (0x8 if thread else 0) | (0x4 if use_psp else 0)
        )
        faulted = self._enter_handler(exc, exc_return, control, frame_ptr)
        if stack_error:
            self.services.log(f"stacking at 0x{frame_ptr:08X} failed (STKERR)")
            self._raise_fault("bus", "stkerr", None)
        elif mpu_error:
            self.services.log(f"stacking at 0x{frame_ptr:08X} refused by the MPU (MSTKERR)")
            self._raise_fault("memmanage", "mstkerr", None)
        return faulted or stack_error or mpu_error

    def _enter_handler(self, exc: int, exc_return: int, control: int, frame_ptr: int) -> bool:
        """SP (the stack stacked on), then handler mode, CONTROL, LR and the vector's PC:
        one engine call where the CPU offers ``write_context``. True if the vector fetch
        faulted (unreadable: VECTTBL; no Thumb bit: EPSR.T = 0, INVSTATE)."""
        self.active.append(exc)
        if self.keep_history:
            self.history.append((self.services.now_cycles(), exc))
            del self.history[: -self.keep_history]
        try:
            vector = _u32(self.cpu.read_mem((self.vtor + 4 * exc) & 0xFFFFFFFF, 4), 0)
        except ValueError:
            vector = None
        # SP first (the stack in use), then the mode (SP is now MSP), CONTROL in handler mode
        # EPSR.T from bit 0 of the vector (unicorn takes it from bit 0 of the PC write)
        thumb = 0x01000000 if vector is None or vector & 1 else 0
        names: tuple[str, ...] = ("sp", "xpsr", "control") if control & 0x6 else ("sp", "xpsr")
        values = [frame_ptr, thumb | exc, control & ~0x6][: len(names)]
        names += ("lr",) if vector is None else ("lr", "pc")
        values += [exc_return] if vector is None else [exc_return, vector]
        _write(self.cpu, names, values)
        if vector is None:
            self.services.log(f"vector {exc} at VTOR 0x{self.vtor:08X} unreadable")
            self.hfsr |= HFSR_VECTTBL
            self._escalate_to_hard()
            return True
        if not thumb:
            self.services.log(f"vector {exc} = 0x{vector:08X} has no Thumb bit (INVSTATE)")
            self._raise_fault("usage", "invstate", None)
            return True
        return False

    # ------------------------------------------------------------------ return
    def exception_return(self, exc_return: int) -> None:
        """Handle a branch to an EXC_RETURN value (bit 0 may be cleared by the CPU)."""
        cpu = self.cpu
        value = (exc_return | 1) & 0xFFFFFFFF
        if self._return_plain(value):
            return
        xpsr, control, sp = _read(cpu, ("xpsr", "control", "sp"))
        ipsr = xpsr & 0x1FF
        if ipsr == 0 or not self.active:
            # Thread mode: a branch into the XN system region → instruction access fault.
            cpu.set_reg("pc", value & ~1)
            self._raise_fault("memmanage", "iaccviol", None)
            return
        to_thread = bool(value & 0x8)
        if (value & 0xFFFFFFE0) != 0xFFFFFFE0 or (value & 0xF) not in (0x1, 0x9, 0xD):
            bad = f"EXC_RETURN 0x{value:08X} is not a valid value"
        elif ipsr not in self.active:
            bad = f"returning from exception {ipsr}, which is not active"
        elif to_thread and len(self.active) > 1 and not self.ccr & 1:
            bad = "returning to thread mode with other exceptions active (CCR.NONBASETHRDENA = 0)"
        else:
            bad = ""
        if ipsr in self.active:
            self.active.remove(ipsr)
        if ipsr >= FIRST_IRQ and self.levels >> (ipsr - FIRST_IRQ) & 1:
            self.pending.add(ipsr)  # level still asserted: pends again
        if bad:
            self._invpc_on_return(value, sp, ipsr != NMI, bad)
            return
        # FAULTMASK clears as the exception deactivates (NMI's return leaves it): written
        # with the unstacked registers, or before the fault if unstacking fails
        self._unstack(value, to_thread, control, sp, ipsr != NMI)
        if self.wants_entry():  # tail-chain (equivalent to unstack + restack)
            self._take_at_once(self.highest_pending())  # type: ignore[arg-type]

    def _return_plain(self, value: int) -> bool:
        """The return of the plain case in C (twin/exc_fast.c): from the innermost active
        exception, a basic frame; False: the long way (nothing was changed)."""
        fast = getattr(self.cpu, "exc_fast", None)
        active = self.active
        if fast is None or not active:
            return False
        nonbase_ok = len(active) == 1 or bool(self.ccr & 1)
        # off the active list while the MPU is asked, as the long way does (it decides the
        # default map); back on if the long way is taken after all
        ipsr = active.pop()
        allows = getattr(self.cpu, "mpu_allows", None) if self.mpu_ctrl & 1 else None
        if not fast.exception_return(value, ipsr, nonbase_ok, ipsr != NMI, allows):
            active.append(ipsr)
            return False
        if ipsr >= FIRST_IRQ and self.levels >> (ipsr - FIRST_IRQ) & 1:
            self.pending.add(ipsr)  # level still asserted: pends again
        exc = self.takeable(check_fp=False)  # a basic frame's return cleared CONTROL.FPCA
        if exc is not None:  # tail-chain
            self._take_at_once(exc)
        return True

    def _unstack(self, value: int, to_thread: bool, control: int, sp: int, clear_fm: bool) -> None:
        cpu = self.cpu
        use_psp = bool(value & 0x4)
        fp_frame = not value & 0x10
        frame_ptr = cpu.reg("psp") if use_psp else sp  # handler mode: SP is MSP
        size = 0x68 if fp_frame else 0x20
        allows = getattr(cpu, "mpu_allows", None)
        # chosen: unstacking at the privilege of the context returned to (handler: privileged)
        target_priv = not to_thread or not control & 1
        if allows is not None and not allows(frame_ptr, size, False, target_priv):
            msg = f"unstacking at 0x{frame_ptr:08X} refused by the MPU (MUNSTKERR)"
            self._unstack_failed("memmanage", "munstkerr", msg, clear_fm)
            return
        try:
            data = cpu.read_mem(frame_ptr, size)
        except ValueError:
            self._unstack_failed(
                "bus", "unstkerr", f"unstacking at 0x{frame_ptr:08X} failed (UNSTKERR)", clear_fm
            )
            return
        words = struct.unpack(f"<{size // 4}I", data)
        xpsr = words[7]
        new_sp = frame_ptr + size + (4 if xpsr & (1 << 9) else 0)
        if to_thread != ((xpsr & 0x1FF) == 0):
            self._invpc_on_return(value, sp, clear_fm, "the stacked IPSR contradicts EXC_RETURN")
            return
        thumb = xpsr >> 24 & 1
        control = (control & ~0x6) | (2 if to_thread and use_psp else 0) | (4 if fp_frame else 0)
        if fp_frame:
            for i in range(16):
                cpu.set_reg(f"s{i}", words[8 + i])
            cpu.set_reg("fpscr", words[24])
        # FAULTMASK and CONTROL first, still in handler mode (privileged: a thread-mode write
        # with nPRIV set is ignored, and the thread went on on MSP), then the mode (banks SP
        # by CONTROL.SPSEL), then the stack pointer (the one in use now is the one returned
        # to), the frame, the PC
        head = (("faultmask", 0),) if clear_fm else ()
        regs = (
            *head,
            ("control", control),
            ("xpsr", xpsr & ~(1 << 9) & 0xFFFFFFFF),  # EPSR.T as stacked
            ("sp", new_sp & 0xFFFFFFFF),
            *zip(_FRAME_REGS, words[:6], strict=True),
            ("pc", (words[6] & ~1) | thumb),  # unicorn takes EPSR.T from bit 0 of a PC write
        )
        names, values = zip(*regs, strict=True)
        _write(cpu, names, values)
        if not thumb:
            # a frame whose xPSR lacks EPSR.T (a hand-built frame without 0x01000000): the
            # first instruction returned to raises INVSTATE, stacking PC and that xPSR
            self.services.log(f"exception return to 0x{words[6] & ~1:08X} with EPSR.T = 0 (INVSTATE)")
            self._raise_fault("usage", "invstate", None)

    def _unstack_failed(self, kind: str, sub: str, text: str, clear_fm: bool) -> None:
        """Unstacking faulted: FAULTMASK clears anyway (the exception deactivated), then the fault."""
        if clear_fm:
            self.cpu.set_reg("faultmask", 0)
        self.services.log(text)
        self._raise_fault(kind, sub, None)

    def _invpc_on_return(self, value: int, sp: int, clear_fm: bool, why: str) -> None:
        """ARMv7-M ExceptionReturn's INVPC cases (an invalid EXC_RETURN, an inactive
        exception, a return to thread mode with others active, a stacked IPSR that
        contradicts EXC_RETURN): the returning exception is deactivated, nothing is
        (un)stacked (a popped frame is pushed back: registers and SP as they were) and
        UsageFault is taken without stacking, LR = EXC_RETURN; escalated to HardFault if
        it cannot preempt."""
        self.services.log(f"exception return: {why} (INVPC)")
        if clear_fm:
            self.cpu.set_reg("faultmask", 0)
        self._raise_fault("usage", "invpc", None)
        if not self.wants_entry():  # locked up
            return
        exc = self.highest_pending()
        assert exc is not None
        self.pending.discard(exc)
        if self._enter_handler(exc, value, self.cpu.reg("control"), sp) and self.wants_entry():
            self._take_at_once(self.highest_pending())  # type: ignore[arg-type]
