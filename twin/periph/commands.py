"""Control-interface commands of the peripherals (registered by twin/board.py).

Each command is ``fn(request: dict) -> dict`` and runs with the machine held (the control
server takes ``machine.host()``), so it may touch device state directly.

* ``leds`` → ``{"ld1": bool, "ld2": bool, "ld3": bool}``
* ``button`` ``{"action": "press"|"release"|"click"}`` → ``{"pressed": bool}``
* ``gpio`` ``{"port": "b", "pin": 1, ["drive": true|false|null]}`` → pin state
* ``reset_cause`` → ``{"last": cause, "csr": RCC_CSR, "history": [...]}``
* ``exceptions`` → NVIC/SCB state (pending, active, VTOR, lockup, CFSR/HFSR, MPU, SysTick)
* ``clocks`` → SYSCLK/HCLK/PCLK1/PCLK2 in Hz

Owns: the peripheral control commands. Must not touch: anything but the devices they name
and the exception model's snapshot (the control server holds the machine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin.periph.gpio import PORTS

Command = Callable[[dict[str, Any]], dict[str, Any]]


def commands(machine: Any) -> dict[str, Command]:
    """The peripheral commands for one machine (devices looked up by name)."""
    dev = machine.device

    def leds(req: dict[str, Any]) -> dict[str, Any]:
        from twin.periph import led_states

        return led_states(dev)

    def button(req: dict[str, Any]) -> dict[str, Any]:
        action = req.get("action", "press")
        gpioc = dev("gpioc")
        if action == "press":
            gpioc.drive_input(13, True)
        elif action == "release":
            gpioc.drive_input(13, False)
        elif action == "click":
            gpioc.drive_input(13, True)
            gpioc.drive_input(13, False)
        else:
            raise ValueError(f"action must be press, release or click, not {action!r}")
        return {"pressed": gpioc.input_level(13)}

    def gpio(req: dict[str, Any]) -> dict[str, Any]:
        port = str(req.get("port", "")).lower().removeprefix("gpio")
        if port not in PORTS:
            raise ValueError(f"port must be one of a..k, not {req.get('port')!r}")
        pin = req.get("pin")
        if not isinstance(pin, int) or not 0 <= pin < 16:
            raise ValueError("pin must be an integer 0..15")
        g = dev(f"gpio{port}")
        if "drive" in req:
            level = req["drive"]
            if level is not None and not isinstance(level, bool):
                raise ValueError("drive must be true, false or null")
            g.drive_input(pin, level)
        return {
            "port": port,
            "pin": pin,
            "input": g.input_level(pin),
            "output": g.output_level(pin),
            "mode": g.read(0, 4) >> (2 * pin) & 3,
        }

    def reset_cause(req: dict[str, Any]) -> dict[str, Any]:
        rcc = dev("rcc")
        return {"last": rcc.last_reset_cause(), "csr": rcc.read(0x74, 4), "history": list(rcc.reset_history)}

    def exceptions(req: dict[str, Any]) -> dict[str, Any]:
        exc = getattr(machine, "exc", None)
        if exc is None or not hasattr(exc, "snapshot"):
            raise KeyError("no exception model installed")
        return exc.snapshot()

    def clocks(req: dict[str, Any]) -> dict[str, Any]:
        rcc = dev("rcc")
        return {
            "sysclk_hz": rcc.sysclk_hz(),
            "hclk_hz": rcc.hclk_hz(),
            "pclk1_hz": rcc.pclk1_hz(),
            "pclk2_hz": rcc.pclk2_hz(),
        }

    return {
        "leds": leds,
        "button": button,
        "gpio": gpio,
        "reset_cause": reset_cause,
        "exceptions": exceptions,
        "clocks": clocks,
    }
