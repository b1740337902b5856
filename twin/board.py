"""Assembles a virtual NUCLEO-F767ZI: machine, debug logic, flash, USART3, the exception
model, peripherals and network, and the servers.

Every part is required: a part that does not import is a crash naming it, never a quieter
twin (one without exceptions would lock up where the board takes a fault; one without
peripherals would read their registers as plain storage).

Owns: which parts make a board and their control commands (flash.cut, power.cut, probe).
Must not touch: the machine's internals (it uses Machine's public methods and the devices'
own APIs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from twin import flash_record, uarts
from twin import memory as mm
from twin.clock_limits import ClockLimits
from twin.control import ControlServer
from twin.debugport import DebugServer
from twin.device import Device, ResetKind
from twin.flash import FlashController
from twin.loader import Chunk
from twin.machine import Machine
from twin.periph.rcc import HSE_HZ
from twin.scs import DebugUnit, PpbStub

try:
    from twin import net, periph
    from twin.exception_model import ExceptionModel
except ImportError as exc:
    raise ImportError(
        f"the twin is incomplete: {exc}. The exception model (twin.exception_model), the "
        "peripherals (twin.periph) and the network (twin.net) are all required; "
        "reinstall ota-rig (`make setup`)",
        name=exc.name,
        path=exc.path,
    ) from exc

#: Peripheral bus ranges where an address no model claims reads/writes as plain storage
#: (logged once) rather than a bus fault: APB1, APB2, AHB1, AHB2, FMC/QSPI registers.
PERIPHERAL_RANGES = [
    (0x40000000, 0x8000),
    (0x40010000, 0x6C00),
    (0x40020000, 0x60000),
    (0x50000000, 0x61000),
    (0xA0000000, 0x2000),
]


@dataclass
class BoardOptions:
    """What ``python -m twin`` was asked for."""

    core_hz: int = 16_000_000
    timing: str = "fast"
    dual_bank: bool = False
    idle: str = "realtime"
    state_dir: str | None = None
    pty: bool = True
    net_args: argparse.Namespace | None = None
    storage_fallback: bool = True
    #: the U(S)ART on the PTY (1..8; the NUCLEO's virtual COM port is USART3)
    console_uart: int = 3
    #: its TX/RX pins and alternate function (twin.uarts.parse_pins); None: CONSOLE_PINS'
    console_pins: tuple[tuple[str, int], tuple[str, int], int] | None = None
    #: NRST held low after power-on until a pin reset (control ``reset``) or the probe lets go
    hold_reset: bool = False
    #: the HSE's frequency (the NUCLEO's: 8 MHz from the ST-LINK's MCO)
    hse_hz: int = HSE_HZ
    extras: dict[str, Any] = field(default_factory=dict)


class Board:
    """One virtual NUCLEO-F767ZI."""

    def __init__(self, opts: BoardOptions | None = None) -> None:
        self.opts = opts = opts or BoardOptions()
        self.machine = m = Machine(core_hz=opts.core_hz, idle=opts.idle)
        self.debug = DebugUnit(m)
        m.debug = self.debug
        for blk in self.debug.blocks:
            m.add_device(blk, first=True)
        self.flash = FlashController(m.flash_buf, timing=opts.timing, dual_bank=opts.dual_bank)
        m.flash = self.flash
        m.add_device(self.flash)
        if opts.state_dir:
            self.flash.load_state(opts.state_dir)
        self.uarts = uarts.build(opts.console_uart, pty=opts.pty, pins=opts.console_pins)
        self.usart = self.uarts[0]  # the console
        m.console = self.usart.name  # the control port's uart_log reads it by default
        for dev in self.uarts:
            m.add_device(dev)
        self._net_devs: list[Device] = []
        self._timed_cut: object | None = None
        self._exception_unit()
        self._peripherals()
        self._network()
        m.add_device(PpbStub("ppb", 0xE0000000, 0x100000))
        if opts.storage_fallback:
            for base, size in PERIPHERAL_RANGES:
                m.add_storage_range(base, size)
        self.debug_server: DebugServer | None = None
        self.control: ControlServer | None = None

    # ------------------------------------------------------------------ parts
    def _exception_unit(self) -> None:
        m = self.machine
        unit = ExceptionModel(m, _services_for(m, "exceptions"))
        unit.on_lockup = lambda: m.log("exception model: LOCKUP")
        m.set_exception_unit(unit)

    def _peripherals(self) -> None:
        m = self.machine
        for d in periph.all_devices(hse_hz=self.opts.hse_hz):
            m.add_device(d)
        self.clock_limits = ClockLimits(
            m.bus.device("rcc"),
            m.bus.device("pwr"),
            self.flash,
            _services_for(m, "clock"),
            fault=m.bus.device_fault,
        )

    def _network(self) -> None:
        args = self.opts.net_args or _default_net_args()
        # The ETH MAC's cable (issue 16): libslirp behind a twin.net.frames.FrameNetwork. Built
        # here (a missing libslirp is an error at twin start), started in start().
        self.frames = net.cable.build(args, log=lambda message: self.machine.log(message, "net"))
        self._net_devs = list(net.devices(args, self.machine, frames=self.frames))
        for d in self._net_devs:
            self.machine.add_device(d)

    # ------------------------------------------------------------------ life cycle
    def load(self, chunks: list[Chunk]) -> None:
        """Place image chunks as if programmed at the factory (flash) or by a debugger (RAM)."""
        m = self.machine
        for c in chunks:
            reg = m.region_at(c.address, len(c.data))
            if reg is None:
                raise ValueError(f"0x{c.address:08X}: not loadable memory")
            reg.write(c.address, c.data)
        m.flush_code_cache()

    def power_on(self, chunks: list[Chunk] | None = None) -> None:
        """Power-on reset, load images, then boot (vector fetch from BOOT_ADD0)."""
        m = self.machine
        chunks = chunks or []
        flash = [c for c in chunks if m.flash_region.contains(c.address, len(c.data))]
        ram = [c for c in chunks if c not in flash]
        self.load(flash)  # flash survives the power-on reset
        m.reset(ResetKind.POWER, "power")
        if ram:  # RAM is cleared by it: load afterwards
            self.load(ram)
            m.reset(ResetKind.CORE, "power")
            m.reset_history.pop()
        if self.opts.hold_reset:  # nothing runs (or prints) before the host lets NRST go
            m.reset_held = True

    def start(self, probe_port: int = 0, control_port: int = 0) -> None:
        """Start the CPU thread, the PTY reader and the servers."""
        m = self.machine
        self.debug_server = DebugServer(m, probe_port)
        self.control = ControlServer(m, control_port)
        self._register_commands()
        self.frames.start()  # binds the --hostfwd ports (OSError if one is taken)
        self.usart.start()
        m.start()
        self.debug_server.start()
        self.control.start()

    def _register_commands(self) -> None:
        assert self.control is not None
        ctl = self.control
        for name, fn in (net.commands(self._net_devs, self.frames) | net.cable.commands(self.frames)).items():
            ctl.register_command(name, lambda m, req, f=fn: f(req))
        for name, fn in periph.commands(self.machine).items():
            ctl.register_command(name, lambda m, req, f=fn: f(req))
        ctl.register_command("flash", lambda m, req: self.flash.snapshot())
        ctl.register_command("flash.cut", self._flash_cut)
        for name, cmd in flash_record.commands(self.flash).items():  # the power-cut campaign
            ctl.register_command(name, cmd)
        ctl.register_command("power.cut", self._power_cut_at)
        ctl.register_command(
            "probe",
            lambda m, req: {
                "requests": self.debug_server.requests if self.debug_server else 0,
                "by_request": dict(self.debug_server.by_request) if self.debug_server else {},
            },
        )
        if self.opts.state_dir:
            ctl.on_power_cycle.append(lambda: self.flash.save_state(self.opts.state_dir))

    def _flash_cut(self, m: Machine, req: dict[str, Any]) -> dict[str, Any]:
        """{"nth": N, "mode": "half"|"abort"|"torn", "kind": "erase"|"program",
        "address": A, "length": L} arms a power cut at the Nth matching flash operation from
        now (kind/address/length optional filters); {"cancel": true} disarms."""
        if req.get("cancel"):
            self.flash.cancel_power_cut()
        else:
            self.flash.arm_power_cut(
                int(req.get("nth", 1)),
                str(req.get("mode", "half")),
                req.get("kind"),
                req.get("address"),
                req.get("length"),
            )
        return self.flash.snapshot()

    def _power_cut_at(self, m: Machine, req: dict[str, Any]) -> dict[str, Any]:
        """{"after_ms": T} cuts power T ms of virtual time from now (power returns at once,
        SRAM lost, like a relay pulse); {"cancel": true} disarms."""
        if self._timed_cut is not None:
            m.cancel(self._timed_cut)
            self._timed_cut = None
        if req.get("cancel"):
            return {"armed": False}
        after_ms = float(req.get("after_ms", 0))
        if after_ms < 0:
            raise ValueError("after_ms must be >= 0")
        at = m.now_ns() + int(after_ms * 1e6)

        def cut() -> None:
            # the event counts core cycles: a clock change since arming moves it, so it
            # re-arms for what is left of the virtual time (a faster clock fired it early)
            left = at - m.now_ns()
            if left > 0:
                self._timed_cut = m.schedule(max(1, -(-left * m.core_hz // 1_000_000_000)), cut)
                return
            self._timed_cut = None
            self.flash.cuts.append(
                {
                    "op": None,
                    "kind": "time",
                    "address": 0,
                    "length": 0,
                    "mode": "power",
                    "time_ns": m.now_ns(),
                }
            )
            m.log(f"POWER CUT at {m.now_ns() / 1e6:.3f} ms (armed for {at / 1e6:.3f} ms)")
            m.request_reset(ResetKind.POWER, "power")

        if after_ms == 0:  # now, whatever the core does (halted by a debugger too: a relay)
            cut()
            m.wake()
            return {"armed": False, "at_ns": at}
        self._timed_cut = m.schedule(max(1, int(after_ms * m.core_hz / 1000)), cut)
        return {"armed": True, "at_ns": at}

    def announce(self) -> dict[str, Any]:
        """The start-up line's content."""
        import os

        assert self.debug_server is not None and self.control is not None
        return {
            "probe": f"remote:127.0.0.1:{self.debug_server.port}",
            "serial": self.usart.slave_path,
            "control": f"127.0.0.1:{self.control.port}",
            "pid": os.getpid(),
            "hostfwd": [h.announce() for h in self.frames.bound],
        }

    def close(self) -> None:
        """Stop everything; save state if asked. Safe to call twice."""
        m = self.machine
        for srv in (self.debug_server, self.control):
            if srv is not None:
                srv.close()
        self.debug_server = self.control = None
        m.stop()
        if self._net_devs:
            try:
                net.shutdown(self._net_devs)
            except Exception as e:
                print(f"twin: network shutdown: {e}", file=sys.stderr)
            self._net_devs = []
        self.frames.close()
        for dev in self.uarts:
            dev.close()
        if self.opts.state_dir:
            self.flash.save_state(self.opts.state_dir)


def _services_for(m: Machine, name: str):
    from twin.machine import DeviceServices

    return DeviceServices(m, name)


def _default_net_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    net.add_arguments(p)
    return p.parse_args([])


__all__ = ["Board", "BoardOptions", "mm"]
