"""The ``rig`` command line.

Subcommands: ``rig diff`` (compare a flash readback with an image and diagnose), ``rig ota``
(the host OTA server, registered by ``rig.ota.cli.register``), ``rig restore`` (put a
board's flash backup back, see :mod:`rig.backup`) and ``rig doctor`` (is this host ready
for a real board, :mod:`rig.doctor`) and ``rig summary`` (a CI job summary from the
HIL suite's JUnit XML, :mod:`rig.job_summary`); ``rig campaign power-cut`` cuts power at
every flash operation of an update on the twin (:mod:`rig.campaign`).
Exit codes: 0 success / no difference, 1 differences found, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rig.errors import RigError

EXIT_OK, EXIT_DIFF, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message (its default, made explicit)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (use e.g. 0x08040000)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"address out of 32-bit range: {text}")
    return value


def build_parser(only_diff: bool = False) -> argparse.ArgumentParser:
    """The full parser (``only_diff``: just ``rig diff``, whose start-up should not pay for
    importing the probe, OTA, campaign and lab modules: ``rig diff`` runs in scripts)."""
    parser = _Parser(prog="rig", description="ota-rig: test OTA bootloaders on the STM32F767.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_diff(sub)
    if only_diff:
        return parser
    from rig import campaign, doctor, job_summary
    from rig.ota import cli as ota_cli

    ota_cli.register(sub)
    _add_restore(sub)
    doctor.register(sub)
    campaign.register(sub)
    job_summary.register(sub)
    return parser


def _add_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare a flash readback with the expected image and diagnose",
        description="Compare ACTUAL (a raw readback starting at --base) with EXPECTED "
        "(.bin/.hex/.elf) and print the differences and their likely causes.",
    )
    p.add_argument("expected", type=Path, help="expected image (.bin needs --base; .hex/.elf carry it)")
    p.add_argument("actual", type=Path, help="raw flash readback (.bin) starting at --base")
    p.add_argument(
        "--base", type=_address, help="address of the first byte of ACTUAL (and of a .bin EXPECTED)"
    )
    p.add_argument("--previous", type=Path, help="image flash held before the update (confirms never_erased)")
    p.add_argument("--board", type=Path, help="board file (default: boards/stm32f767.yaml)")
    p.add_argument(
        "--bank-mode", choices=("single", "dual"), help="sector layout (default: the board's nDBANK)"
    )
    p.add_argument("--json", action="store_true", help="print JSON: ranges, sectors, diagnoses")
    p.set_defaults(func=_cmd_diff)


def _cmd_diff(args: argparse.Namespace) -> int:
    # imports kept to what two matching images need (no numpy, no board schema): rig diff runs in scripts
    from rig import diff_board
    from rig.diff import analyze
    from rig.diff_base import equal_prefix
    from rig.image import Image, load_image, require_flash

    dual = None if args.bank_mode is None else args.bank_mode == "dual"
    lite = diff_board.cached(args.board)
    if lite is not None and dual not in lite.layouts:
        lite = None
    spec = diff_board.full_spec(args.board) if lite is None else None

    def flash_image(path: Path, base: int | None) -> Image:
        # every file is a flash image: each byte must lie in the board's flash
        nonlocal spec
        image = load_image(path, base=base, spec=spec)
        if spec is None and lite is not None and not lite.in_flash(image.base, image.size):
            spec = diff_board.full_spec(args.board)
            require_flash(image, spec)  # raises, naming where the image is
        return image

    expected = flash_image(args.expected, args.base if args.expected.suffix.lower() == ".bin" else None)
    base = args.base if args.base is not None else expected.base
    actual = flash_image(args.actual, base) if args.actual.suffix.lower() == ".bin" else None
    if actual is None:
        raise RigError(f"{args.actual}: the readback must be a raw .bin", hint="save the readback as .bin")
    if base != expected.base:
        raise RigError(
            f"--base 0x{base:08X} differs from the image base 0x{expected.base:08X}",
            hint="give the readback's start address, the same as the image's",
        )
    previous = flash_image(args.previous, base).data if args.previous else None
    if spec is None and equal_prefix(expected.data, actual.data) is None:
        spec = diff_board.full_spec(args.board)  # differences: the diagnosis needs the regions
    layout: Any = spec.layout(dual) if spec is not None else lite.layouts[dual]  # type: ignore[union-attr]
    result = analyze(expected.data, actual.data, base, layout, previous=previous)
    if args.json:
        doc = result.to_dict()
        source = spec.source if spec is not None else lite.source  # type: ignore[union-attr]
        doc.update(expected=str(args.expected), actual=str(args.actual), board=source, bank_mode=layout.mode)
        print(json.dumps(doc, indent=2))
    else:
        print(result.summary())
    return EXIT_OK if result.ok else EXIT_DIFF


def _add_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="put a board's flash backup (taken by a --board nucleo run) back and verify it",
        description="Write BACKUP (the folder a real-board run saved under reports/backups/, or its "
        "flash.bin / backup.json) back onto the board it was taken from: the option bytes if they "
        "changed (never RDP), then the flash (sectors that already match are skipped), then a "
        "readback of the whole flash compared with the backup's SHA-256. Exit 0 when verified, "
        "1 when the flash differs afterwards, 2 on a usage or probe error.",
    )
    p.add_argument("backup", type=Path, help="the backup folder (or its flash.bin / backup.json)")
    p.add_argument(
        "--probe-uid",
        help="the probe to use (default: the one the backup was taken through, from backup.json)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write it even if the chip's unique ID is not the backup's (another board)",
    )
    add_lock_timeout(p)
    p.set_defaults(func=_cmd_restore)


def add_lock_timeout(p: argparse.ArgumentParser) -> None:
    """``--lock-timeout S``: how long to wait for a board another job holds (rig.probe_lock)."""
    p.add_argument(
        "--lock-timeout",
        type=float,
        metavar="S",
        help="wait at most S seconds for a board another job holds (default: $OTA_RIG_LOCK_TIMEOUT or 600)",
    )


def _cmd_restore(args: argparse.Namespace) -> int:
    from rig import probe_lock, progress
    from rig.backup import Backup, RestoreMismatch, restore_backup
    from rig.probe import TARGET, Probe

    backup = Backup.load(args.backup)
    uid = probe_lock.resolved_uid(args.probe_uid or backup.meta.get("probe_uid"))
    bars = progress.for_run()
    try:
        with (
            probe_lock.board_lock(uid, timeout=args.lock_timeout),
            Probe(uid, target=str(backup.meta.get("pyocd_target") or TARGET)) as probe,
        ):
            if bars is not None:
                probe.progress = bars.probe_callback()
            try:
                result = restore_backup(probe, backup, force=args.force)
            except RestoreMismatch as exc:
                print(f"rig restore: {exc}", file=sys.stderr)
                return EXIT_DIFF
    finally:
        if bars is not None:
            bars.close()
    print(result.summary())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rig`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only_diff=argv[:1] == ["diff"])
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except RigError as exc:
        from rig.ota.cli import visible

        print(f"rig {args.command}: error: {visible(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
