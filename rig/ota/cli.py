"""``rig ota`` subcommands: ``serve`` an image to a board, list ``policies``.

``rig.cli`` calls :func:`register`; ``python -m rig.ota.cli`` runs it standalone.
Exit codes: 0 every session ACKed, 1 a session ended otherwise, 2 usage/configuration
error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.errors import ConfigError, RigError
from rig.ota.connection import Timeouts

if TYPE_CHECKING:
    from rig.ota.transcript import SessionResult

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _size(text: str) -> int:
    """``786432``, ``0xC0000``, ``768K`` or ``1M``."""
    t = text.strip().upper()
    mult = 1
    if t.endswith(("K", "KB", "KIB")):
        mult, t = 1024, t.rstrip("IB").rstrip("K")
    elif t.endswith(("M", "MB", "MIB")):
        mult, t = 1 << 20, t.rstrip("IB").rstrip("M")
    try:
        value = int(t, 0) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 786432, 0xC0000 or 768K)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be >= 1: {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0..65535 (0 = any free port)")
    return value


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``ota`` (with ``serve`` and ``policies``) to a ``rig`` subparsers object."""
    ota = subparsers.add_parser(
        "ota",
        help="host OTA server: serve an image to a board",
        description="Host side of the OTA update (docs/ota-server.md).",
    )
    sub = ota.add_subparsers(dest="ota_command", metavar="SUBCOMMAND", parser_class=type(ota))
    ota.set_defaults(func=lambda args: _usage(ota))

    serve = sub.add_parser(
        "serve",
        help="serve IMAGE to the next board(s) that connect",
        description="Listen for a board, send IMAGE with an OTA protocol (the reference one of "
        "docs/protocol.md by default) through a link policy, print a summary.",
    )
    _serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    pol = sub.add_parser("policies", help="list the link policies and their parameters")
    pol.set_defaults(func=cmd_policies)
    return ota


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    """The options of ``rig ota serve``."""
    serve.add_argument("image", type=Path, help="the application image (.bin)")
    serve.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; a lab board needs the lab "
        "interface's own address; all-interfaces is refused)",
    )
    serve.add_argument("--port", type=_port, default=5000, help="TCP port (default 5000; 0 = any free)")
    serve.add_argument(
        "--policy",
        action="append",
        metavar="SPEC",
        help="link policy, e.g. split-tokens, 'random:seed=7+pause:ms=5', "
        "drop-at:byte=4096; repeat for successive sessions (see `rig ota policies`)",
    )
    serve.add_argument(
        "--max-size",
        type=_size,
        metavar="N",
        help="the board's app slot size; a larger image is refused before serving",
    )
    crc = serve.add_mutually_exclusive_group()
    crc.add_argument(
        "--crc", dest="crc", action="store_true", default=True, help="announce FILE_CRC (default)"
    )
    crc.add_argument("--no-crc", dest="crc", action="store_false", help="do not announce FILE_CRC")
    serve.add_argument(
        "--protocol",
        default="reference",
        metavar="NAME",
        help="reference (docs/protocol.md, default), thread (the forum thread's own: no "
        "terminators, no FILE_CRC), or module:Class / file.py:Class (your Protocol)",
    )
    serve.add_argument(
        "--protocol-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the protocol's constructor (repeatable), e.g. pause_ms=100; "
        "--crc/--no-crc is the reference protocol's crc option",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for a board to connect, per session (default 60); with "
        "--sessions 0 the server waits for boards until Ctrl-C instead",
    )
    serve.add_argument(
        "--sessions",
        type=int,
        default=1,
        metavar="N",
        help="sessions to serve before exiting (default 1); 0 = serve every board that "
        "connects until Ctrl-C (never exits on its own, whatever --timeout says)",
    )
    serve.add_argument(
        "--session-limit",
        type=float,
        default=Timeouts.session,
        metavar="S",
        help=f"longest one session may last, connect to end (default {Timeouts.session:g} s): a board "
        "that reads very slowly or never finishes cannot hold the server for ever",
    )
    serve.add_argument("--capture", type=Path, metavar="DIR", help="write one pcap per session into DIR")
    serve.add_argument(
        "--capture-iface", metavar="IFACE", help="interface to sniff (default: the bind address's)"
    )
    serve.add_argument(
        "--json", type=Path, metavar="PATH", help="write the session results (with transcripts) as JSON"
    )
    serve.add_argument("--transcript", action="store_true", help="print each session's transcript")
    serve.add_argument("--no-progress", action="store_true", help="no progress bar")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


POLICY_HELP = {
    "natural": "no constraint: one write per control message, data in 16 KiB writes",
    "per-message[:chunk=1024]": "each control message alone in a segment; data in chunk-byte segments",
    "glued[:chunk=1024]": "control messages share segments with each other and with data",
    "split-tokens[:at=N,chunk=1024]": "every control message split over two segments",
    "tiny[:size=7]": "every segment at most size bytes",
    "random:seed=S[,min=1,max=1400]": "random segment sizes, reproducible from the seed",
    "pause:ms=M": "sleep M ms between writes (combine with a segmenter)",
    "drop-at:byte=N": "close (FIN) once N image bytes were sent",
    "rst-at:byte=N": "reset (RST) once N image bytes were sent",
    "stall:after=N[,ms=M|,wait=S]": "stop after N image bytes; resume after M ms, or wait S s for the board",
    "corrupt:offsets=A,B[,xor=0xFF]": "flip image bytes (size and CRC of the original)",
    "wrong-size:delta=D | size=N": "announce a wrong FILE_SIZE",
    "truncate:bytes=N": "send the image without its last N bytes",
    "wrong-crc[:value=V]": "announce a wrong FILE_CRC",
}


def cmd_policies(args: argparse.Namespace) -> int:
    """Print the policy catalogue."""
    width = max(len(k) for k in POLICY_HELP)
    for k, v in POLICY_HELP.items():
        print(f"{k:<{width}}  {v}")
    print("\ncompose with '+', e.g. 'split-tokens+pause:ms=20' or 'per-message+drop-at:byte=4096'")
    return EXIT_OK


def _option_value(text: str) -> object:
    """``--protocol-option`` values: true/false, integers, numbers, else the text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _protocol(args: argparse.Namespace):  # -> rig.ota.protocol.Protocol
    """The protocol of ``--protocol`` with its ``--protocol-option`` items (and ``--crc``
    for the reference protocol); ConfigError naming what is allowed."""
    from rig.ota.protocol import load_protocol

    options: dict[str, object] = {"crc": args.crc} if args.protocol == "reference" else {}
    for item in args.protocol_option:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"--protocol-option {item!r}",
                source="--protocol-option",
                expected="KEY=VALUE, e.g. pause_ms=100",
            )
        options[key] = _option_value(value)
    return load_protocol(args.protocol, options)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until ``--sessions`` sessions ended; print a summary."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
    from rich.text import Text

    from rig.ota.server import OtaServer

    if args.sessions < 0:
        raise ConfigError("--sessions must be >= 0", source="--sessions", hint="0 serves until Ctrl-C")
    # markup and emoji codes off: every text printed here may quote what a board sent
    out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
    err = Console(stderr=True, highlight=False, markup=False, emoji=False)
    image = _read_image(args.image)
    _check_json_path(args.json)
    protocol = _protocol(args)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
        disable=args.no_progress or not err.is_terminal,
    )
    task_ref: dict[str, Any] = {}

    def on_progress(phase: str, sent: int, total: int) -> None:
        if phase == "end":
            if "id" in task_ref:
                progress.remove_task(task_ref.pop("id"))
            return
        if "id" not in task_ref:
            task_ref["id"] = progress.add_task("sending", total=total)
        progress.update(task_ref["id"], completed=sent, total=total)

    results: list[SessionResult] = []
    server = OtaServer(
        image,
        bind=args.bind,
        port=args.port,
        policy=args.policy or None,
        protocol=protocol,
        max_size=args.max_size,
        timeouts=Timeouts(connect=args.timeout, session=args.session_limit),
        capture=args.capture,
        capture_iface=args.capture_iface,
        on_progress=on_progress,
    )
    try:
        with server, progress:
            host, port = server.address
            print(
                f"OTA server listening on {host}:{port} image={args.image} ({len(image)} bytes, "
                f"CRC-32 {zlib.crc32(image):08X}) policy={server.policies[0].describe()}",
                flush=True,
            )
            if server.capture_error:
                err.print(Text("capture off: ", style="yellow") + Text(visible(server.capture_error)))
            forever = args.sessions == 0
            while forever or len(results) < args.sessions:
                res = server.wait_session(args.timeout)
                if res.phase == "connect" and forever and server.serving:
                    continue  # --sessions 0: no board yet is no reason to stop; Ctrl-C is
                results.append(res)
                _print_result(out, res, args.transcript)
                _write_json(args.json, results, server)  # each session's result is kept at once
                if res.phase == "connect":
                    break
    except KeyboardInterrupt:
        server.close()
        err.print("interrupted: server closed")
        try:
            _write_json(args.json, results, server)
        except RigError as exc:
            err.print(Text(f"rig ota: error: {visible(exc)}"))
        return EXIT_INTERRUPTED
    _write_json(args.json, results, server)
    return EXIT_OK if results and all(r.ok for r in results) else EXIT_FAIL


def visible(text: object) -> str:
    """``text`` with every character a terminal would act on (ESC, CR, BEL, NUL, bidi
    overrides...) shown as an escape (``\\x1b``, ``\\u202e``), so nothing a board sent can
    move the cursor, clear the screen or hide text; line breaks are kept."""
    return "\n".join(
        "".join(c if c.isprintable() else _escape_char(c) for c in line) for line in str(text).split("\n")
    )


def _escape_char(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _read_image(path: Path) -> bytes:
    """The image's bytes; ConfigError (exit 2) for anything but a readable regular file of
    at most :data:`rig.image.MAX_BIN` bytes (a FIFO or a device would block or never end)."""
    from rig.errors import ImageError
    from rig.image import MAX_BIN, read_image_file

    try:
        return read_image_file(path, MAX_BIN)
    except ImageError as exc:
        raise ConfigError(
            exc.message,
            source="IMAGE",
            hint="build the application first (make -C firmware) and pass its .bin",
        ) from None


def _print_result(out: Any, res: Any, transcript: bool) -> None:
    """One session's summary. Nothing from the session (the reason quotes the board's bytes,
    the peer, the pcap path) is ever read as rich markup, an emoji code or an escape sequence:
    it goes in as plain :class:`rich.text.Text`, control characters made visible."""
    from rich.text import Text

    line = Text(res.outcome.upper(), style="green" if res.ok else "red")
    line.append(" " + visible(res.reason))
    out.print(line)
    out.print(
        Text(
            visible(
                f"  phase={res.phase} sent={res.bytes_sent} acked={res.bytes_acked} "
                f"time={res.duration:.3f}s throughput={res.throughput / 1024:.1f} KiB/s "
                f"policy={res.policy} peer={res.peer}"
                + (f" pcap={res.pcap}" if res.pcap else "")
                + (f" refused={','.join(res.refused)}" if res.refused else "")
            )
        )
    )
    if transcript:
        out.print(Text(visible(res.transcript.to_text())))


def _check_json_path(path: Path | None) -> None:
    """``--json PATH`` must be writable as a file: refused before anything listens."""
    if path is None:
        return
    if path.is_dir() or not path.parent.is_dir():
        raise ConfigError(
            f"--json {path}: {'a directory' if path.is_dir() else 'its directory does not exist'}",
            source="--json",
            hint="pass the path of the JSON file to write, in an existing directory",
        )


def _write_json(path: Path | None, results: list, server: Any) -> None:
    if path is None:
        return
    try:
        address: list | None = list(server.address)
    except RigError:
        address = None
    doc = {
        "address": address,
        "capture_error": server.capture_error,
        "sessions": [r.to_dict() for r in results],
    }
    try:
        path.write_text(json.dumps(doc, indent=2))
    except OSError as exc:
        raise ConfigError(
            f"cannot write --json {path}: {exc.strerror or exc}", source="--json", hint="pass a writable path"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m rig.ota.cli serve IMAGE ...``."""
    parser = argparse.ArgumentParser(prog="rig")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["ota", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except RigError as exc:
        print(f"rig ota: error: {visible(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
