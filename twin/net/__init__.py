"""The twin's two network paths: the STM32 ETH MAC + LAN8742A on the board's cable
(libslirp, twin/net/cable.py) and a WINC3400 WiFi module on SPI1 (through the NAT), or on
the SPI and pins ``--winc-wiring`` names (twin/net/winc_wiring.py).

Wiring into ``python -m twin`` (TWIN-CORE)::

    twin.net.add_arguments(parser)                 # --forward, --winc-seed, --winc-split, ...
    devs = twin.net.devices(args, machine, frames) # [Stm32Spi @0x40013000, EthMac @0x40028000]
    for name, fn in twin.net.commands(devs).items():
        control.register_command(name, fn)         # fn(args: dict) -> dict, CPU thread
    ...
    twin.net.shutdown(devs)                        # on exit: close sockets, join threads

Control commands (all take/return JSON objects): ``net.status``, ``net.link``
(``{"up": bool}``), ``net.fault`` (``{"kind": "bit_errors"|"drop"|"irq"|"module_reset"|
"clear", ...}``), ``net.log`` (``{"last": n}``). See docs/twin-network.md.

Owns: building the network devices from the command line and their control commands. Must
not touch: the machine beyond ``log`` while building (devices reach it through their
Services).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from twin.device import Device
from twin.net import cable
from twin.net.eth_wiring import parse_eth_wiring
from twin.net.ethmac import EthMac
from twin.net.frames import FrameNetwork
from twin.net.slirp import SlirpNetwork
from twin.net.spi import INSTANCES, Stm32Spi
from twin.net.spi_pins import SpiPins
from twin.net.stack import NetStack
from twin.net.winc3400 import Winc3400
from twin.net.winc_wiring import WincWiring, parse_wiring

__all__ = [
    "EthMac",
    "NetStack",
    "Stm32Spi",
    "Winc3400",
    "add_arguments",
    "commands",
    "devices",
    "shutdown",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the network options of ``python -m twin``."""
    g = parser.add_argument_group("network")
    g.add_argument(
        "--forward",
        action="append",
        default=[],
        metavar="IP:PORT=HOST:PORT",
        help="carry firmware TCP connections to IP:PORT to HOST:PORT on this machine "
        "(repeatable), e.g. 192.168.1.10:5000=127.0.0.1:40000",
    )
    g.add_argument(
        "--net-window",
        type=int,
        default=64 * 1024,
        metavar="BYTES",
        help="bytes read from a host socket ahead of the firmware (default 65536)",
    )
    g.add_argument(
        "--winc-seed", type=int, default=0, help="seed of the WiFi module's chunk splitting (default 0)"
    )
    g.add_argument(
        "--winc-split",
        type=float,
        default=0.25,
        metavar="P",
        help="probability that the WiFi module splits a receive event short "
        "of what is available (default 0.25; 0 = always deliver the maximum)",
    )
    g.add_argument(
        "--winc-protocol",
        choices=("microchip",),
        default="microchip",
        help="what the WiFi module on SPI1 speaks: Microchip's WINC3400 SPI/HIF protocol "
        "(twin/net/winc3400.py), the only one since the project's older framing was removed "
        "(the option stays for command lines that name it)",
    )
    g.add_argument(
        "--winc-ap",
        default=None,
        metavar="SSID[:PASSPHRASE]",
        help="the access point the microchip WiFi module can join (default: any SSID, any passphrase)",
    )
    g.add_argument(
        "--winc-wiring",
        type=parse_wiring,
        default=None,
        metavar="spi=N,cs=PXn,irqn=PXn,reset_n=PXn,chip_en=PXn[,sck=PXn,miso=PXn,mosi=PXn,af=N]",
        help="how the WiFi module is wired to the MCU (any subset; default: the thread's shield, "
        "spi=1,cs=PD14,irqn=PB1,reset_n=PF12,chip_en=PF13, SCK/MISO/MOSI PA5/PA6/PB5 in AF5); spi is "
        "SPI1..SPI6; sck, miso, mosi and af together (another SPI's pins are checked only if given)",
    )
    g.add_argument(
        "--eth-link", choices=("up", "down"), default="up", help="initial Ethernet link state (default up)"
    )
    g.add_argument(
        "--eth-wiring",
        type=parse_eth_wiring,
        default=None,
        metavar="tx_en=PXn,txd0=PXn,txd1=PXn,phy=N",
        help="the board's RMII transmit pins and PHY address (any subset; default: the NUCLEO-F767ZI's, "
        "tx_en=PG11,txd0=PG13,txd1=PB13,phy=0; the F767 has TX_EN on PB11/PG11, TXD0 on PB12/PG13, "
        "TXD1 on PB13/PG14)",
    )
    cable.add_arguments(g)  # --hostfwd, --pcap: the ETH MAC's cable (twin/net/cable.py)


def devices(
    args: argparse.Namespace, services_or_machine: Any = None, frames: FrameNetwork | None = None
) -> list[Device]:
    """Build the network devices from parsed ``args``.

    Returns SPI1 with the WINC module on it and, on the board's cable, the ETH MAC. The
    NAT host (the WiFi module's sockets) starts when the machine attaches the devices. If ``services_or_machine`` has
    ``register_command(name, fn)``, the control commands are registered on it too.
    ``frames`` is the board's Ethernet cable (``twin.board.Board.frames``, a SlirpNetwork):
    the ETH MAC model takes it (hook below).
    """
    forwards = list(getattr(args, "forward", None) or [])
    stack = NetStack(forwards, window=getattr(args, "net_window", 64 * 1024))
    wiring = getattr(args, "winc_wiring", None) or WincWiring()
    spi = Stm32Spi(number=wiring.spi)
    checked = wiring.checked_pins()  # the module behind the SPI's own pins (and its SCK rate)
    SpiPins(spi, _winc(args, stack, wiring.pins), *(checked or (None,)))
    # the other SPIs, with nothing on them (frames read 0xFF; said once, with where the module is)
    others = [
        Stm32Spi(number=n, unwired=f"the WINC3400 is on SPI{wiring.spi}")
        for n in INSTANCES
        if n != wiring.spi
    ]
    devs: list[Device] = [spi, *others]
    if frames is not None:  # the STM32 ETH MAC + LAN8742A (twin/net/ethmac*.py) on the board's cable
        devs.append(EthMac(frames, wiring=getattr(args, "eth_wiring", None)))
    machine_log = getattr(services_or_machine, "log", None)
    if callable(machine_log) and hasattr(services_or_machine, "add_device"):
        stack.log_sink = lambda message: machine_log(message, "net")  # "[twin t ms] net: ..."
    register = getattr(services_or_machine, "register_command", None)
    if callable(register):
        for name, fn in commands(devs, frames if isinstance(frames, SlirpNetwork) else None).items():
            register(name, fn)
    return devs


def _winc(args: argparse.Namespace, stack: NetStack, pins: dict[str, tuple[str, int]]) -> Winc3400:
    """The WINC3400 module (``--winc-seed``, ``--winc-split``, ``--winc-ap``) on ``pins``."""
    seed, split = getattr(args, "winc_seed", 0), getattr(args, "winc_split", 0.25)
    ap_spec = getattr(args, "winc_ap", None)
    ap = None
    if ap_spec:
        ssid, _, passphrase = ap_spec.partition(":")
        ap = (ssid, passphrase if ":" in ap_spec else None)
    return Winc3400(stack, seed=seed, split_prob=split, ap=ap, pins=pins)


def winc_of(dev: object) -> Winc3400 | None:
    """The WINC3400 on ``dev`` (an SPI; behind its pins' check, twin/net/spi_pins.py), or None."""
    slave = getattr(dev, "slave", None)
    slave = getattr(slave, "module", slave)
    return slave if isinstance(slave, Winc3400) else None


def _find(devs: list[Device]) -> tuple[Winc3400, NetStack]:
    winc = next(w for w in map(winc_of, devs) if w is not None)
    return winc, winc.stack


def commands(
    devs: list[Device], frames: SlirpNetwork | None = None
) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """Control commands for these devices (run them on the CPU thread); with the board's
    Ethernet cable ``frames``, ``net.status`` reports it and ``net.link`` pulls it too."""
    winc, stack = _find(devs)

    def status(_args: dict[str, Any]) -> dict[str, Any]:
        nat = stack.nat.snapshot() if stack.services is not None else {}
        out = {"nat": nat, "wifi": winc.snapshot()}
        if frames is not None:
            out["frames"] = frames.snapshot()
        for d in devs:
            if isinstance(d, EthMac):
                out["mac"] = d.snapshot()  # the ETH MAC, its DMA and the PHY
        return out

    def link(args: dict[str, Any]) -> dict[str, Any]:
        up = bool(args.get("up", True))
        if frames is not None:  # the cable: the PHY sees the link go and come
            frames.set_link(up)
            up = frames.link_up()
        return {"link": up}

    def fault(args: dict[str, Any]) -> dict[str, Any]:
        kind = args.get("kind")
        f = winc.faults
        if kind == "bit_errors":
            f.arm_bit_errors(
                float(args["rate"]),
                seed=int(args.get("seed", 1)),
                direction=str(args.get("direction", "miso")),
                scope=str(args.get("scope", "payload")),
            )
        elif kind == "drop":
            f.arm_drop(
                rate=float(args.get("rate", 0.0)),
                seed=int(args.get("seed", 1)),
                count=int(args.get("count", -1)),
                nth=int(args.get("nth", 0)),
            )
        elif kind == "irq":
            f.arm_irq(
                str(args.get("mode", "lost")),
                count=int(args.get("count", 1)),
                delay_us=int(args.get("delay_us", 0)),
            )
        elif kind == "module_reset":
            winc.fault_reset()
        elif kind == "clear":
            f.clear()
            if args.get("counters"):
                f.reset_counters()
        else:
            raise ValueError(f"unknown fault kind {kind!r}: use bit_errors, drop, irq, module_reset or clear")
        stack.log(f"fault armed: {args}")
        return f.snapshot()

    def log(args: dict[str, Any]) -> dict[str, Any]:
        last = int(args.get("last", 100))
        lines = list(stack.nat.events)[-last:] if stack.services is not None else []
        return {"lines": lines}

    return {"net.status": status, "net.link": link, "net.fault": fault, "net.log": log}


def shutdown(devs: list[Device]) -> None:
    """Close all host sockets and join the network threads (call on twin exit)."""
    for d in devs:
        winc = winc_of(d)
        if winc is not None:
            winc.stack.shutdown()
            return
