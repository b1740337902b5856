"""``python -m twin``: start one virtual NUCLEO-F767ZI and print its ports as one JSON line.

Owns: the command line, signal handling, the parent watch and state saving at exit. Must
not touch: the machine's parts (it builds a twin/board.py Board and starts it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading

from twin.loader import LoadError, read_image, validate


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m twin",
        description="A virtual NUCLEO-F767ZI reached through a pyOCD remote probe, a PTY and TCP.",
    )
    p.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="FILE[@ADDR]",
        help="image to place before boot (.bin needs @ADDR; .hex/.elf carry addresses); repeatable",
    )
    p.add_argument(
        "--dual-bank",
        action="store_true",
        help="factory option bytes with nDBANK=0 (2 x 1 MiB banks, 24 sectors)",
    )
    p.add_argument(
        "--timing",
        choices=("fast", "datasheet"),
        default="fast",
        help="flash erase/program durations: instant, or datasheet-like BSY in virtual time",
    )
    p.add_argument("--state", metavar="DIR", help="keep flash and option bytes in DIR across runs")
    p.add_argument(
        "--core-hz",
        type=int,
        default=16_000_000,
        metavar="N",
        help="core clock after reset (default 16000000, HSI)",
    )
    p.add_argument(
        "--idle",
        choices=("realtime", "skip"),
        default="realtime",
        help="WFI: sleep in wall time until the next event (realtime, default) or "
        "jump straight to it (skip). Host waits (idle_wait: the firmware waits "
        "for network data) always follow wall time",
    )
    p.add_argument(
        "--outlive-parent",
        action="store_true",
        help="keep running when the process that started the twin exits "
        "(default: exit, so a killed test run leaves no twin behind)",
    )
    _board_arguments(p)
    p.add_argument("--probe-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--control-port", type=int, default=0, help=argparse.SUPPRESS)
    try:
        importlib.import_module("twin.net").add_arguments(p)
    except (ImportError, AttributeError):
        pass
    return p


class _CliError(Exception):
    pass


def _board_arguments(p: argparse.ArgumentParser) -> None:
    """The board's own hardware, as its board file describes it: the console's U(S)ART and
    pins, the HSE, NRST."""
    p.add_argument(
        "--console-uart",
        type=_console_uart,
        default=3,
        metavar="N",
        help="the U(S)ART on the serial PTY, 1..8 or a name such as USART6 (default 3: the "
        "NUCLEO's ST-LINK virtual COM port; the board file's console: {uart: N})",
    )
    p.add_argument(
        "--hse-hz",
        type=_hse_hz,
        default=8_000_000,
        metavar="HZ",
        help="the HSE's frequency (default 8000000: the NUCLEO's 8 MHz from the ST-LINK; the "
        "board file's hse_hz: a board with its own crystal)",
    )
    p.add_argument(
        "--console-pins",
        type=_console_pins,
        default=None,
        metavar="tx=PIN,rx=PIN,af=N",
        help="the console's TX/RX pins and their alternate function, which must be set for the "
        "PTY to carry its bytes (default: PD8/PD9 AF7 for USART3, PG14/PG9 AF8 for USART6, "
        "others unchecked; the board file's console: {tx, rx, af})",
    )
    p.add_argument(
        "--hold-reset",
        action="store_true",
        help="power on with NRST held low: the core runs (and prints) only after a pin reset "
        "(the control port's reset) or the probe releases it, as a board whose reset button is "
        "held while the host opens its console",
    )


def _console_pins(value: str):
    from twin.uarts import parse_pins

    try:
        return parse_pins(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _hse_hz(value: str) -> int:
    try:
        hz = int(value, 0)
    except ValueError:
        hz = 0
    if not 1_000_000 <= hz <= 50_000_000:
        raise argparse.ArgumentTypeError(
            f"{value!r}: the HSE runs at 4-26 MHz from a crystal, 1-50 MHz from an external clock "
            "(DS11532); give it in Hz, e.g. 25000000"
        )
    return hz


def _console_uart(value: str) -> int:
    from twin.uarts import parse_console

    try:
        return parse_console(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """Run one board until SIGINT/SIGTERM. Exit 2 on bad input."""
    # The starter may say who it is (TWIN_PARENT_PID): if it died while this process was
    # still importing, getppid() already names a reaper and the twin would never notice.
    try:
        parent = int(os.environ.get("TWIN_PARENT_PID", "") or os.getppid())
    except ValueError:
        parent = os.getppid()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if args.core_hz <= 0:
            raise _CliError("--core-hz must be a positive frequency in Hz, e.g. 16000000")
        chunks = []
        for spec in args.load:
            chunks += read_image(spec)
        chunks = validate(chunks)
    except (LoadError, _CliError) as e:
        print(f"twin: error: {e}", file=sys.stderr)
        return 2

    from twin.board import Board, BoardOptions

    opts = BoardOptions(
        core_hz=args.core_hz,
        timing=args.timing,
        dual_bank=args.dual_bank,
        idle=args.idle,
        state_dir=args.state,
        net_args=args,
        console_uart=args.console_uart,
        console_pins=args.console_pins,
        hold_reset=args.hold_reset,
        hse_hz=args.hse_hz,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        board = Board(opts)
    except (ValueError, OSError) as e:
        print(f"twin: error: {e}", file=sys.stderr)
        return 2
    try:
        board.power_on(chunks)
        try:
            board.start(args.probe_port, args.control_port)
        except OSError as e:  # a --hostfwd port that cannot be bound, a server port in use
            print(f"twin: error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(board.announce()), flush=True)
        while not stop.wait(0.5):
            if not args.outlive_parent and os.getppid() != parent:
                print("twin: parent process exited; stopping", file=sys.stderr)
                break
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
