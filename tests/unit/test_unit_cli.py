"""The ``rig`` command line: ``rig diff`` output, JSON and exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from intelhex import IntelHex

from rig.board import default_board_path
from rig.cli import build_parser, main
from rig.image import padding_pattern

APP = "0x08040000"
SIZE = 300 * 1024


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    exp = padding_pattern(0, SIZE, 8)
    old = padding_pattern(0, SIZE, 9)
    e, o = np.frombuffer(exp, np.uint8), np.frombuffer(old, np.uint8)
    never = e.copy()
    never[256 * 1024 :] &= o[256 * 1024 :]  # sector 6 programmed over the old image
    token = bytearray(exp)
    token[4096:4104] = b"OTA_DONE"
    out = {
        "expected": tmp_path / "app.bin",
        "same": tmp_path / "same.bin",
        "old": tmp_path / "old.bin",
        "never": tmp_path / "never.bin",
        "token": tmp_path / "token.bin",
    }
    out["expected"].write_bytes(exp)
    out["same"].write_bytes(exp)
    out["old"].write_bytes(old)
    out["never"].write_bytes(never.tobytes())
    out["token"].write_bytes(bytes(token))
    return out


def test_identical_exit_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(files["expected"]), str(files["same"]), "--base", APP]) == 0
    assert "all 307 200 bytes match" in capsys.readouterr().out


def test_difference_exit_1_with_diagnosis(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["diff", str(files["expected"]), str(files["never"]), "--base", APP, "--previous", str(files["old"])]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "never_erased: sector 6 was programmed without an erase" in out and "confirmed" in out


def test_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["diff", str(files["expected"]), str(files["token"]), "--base", APP, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1 and doc["ok"] is False and doc["differing"] == 8
    assert doc["ranges"] == [{"address": 0x08041000, "length": 8, "end": 0x08041008}]
    assert [d["kind"] for d in doc["diagnoses"]] == ["foreign_text"]
    assert {"kind", "address", "length", "detail"} <= set(doc["diagnoses"][0])
    assert doc["bank_mode"] == "single_bank" and any(s["index"] == 5 for s in doc["sectors"])


def test_dual_bank_option(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(
        ["diff", str(files["expected"]), str(files["token"]), "--base", APP, "--json", "--bank-mode", "dual"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["bank_mode"] == "dual_bank" and [s["index"] for s in doc["sectors"]] == [6, 7, 8]


def test_hex_expected_needs_no_base(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ih = IntelHex()
    ih.puts(0x08040000, files["expected"].read_bytes())
    hexfile = tmp_path / "app.hex"
    ih.write_hex_file(str(hexfile))
    assert main(["diff", str(hexfile), str(files["same"])]) == 0


@pytest.mark.parametrize(
    "argv,text",
    [
        (["diff", "{expected}", "{same}"], "--base"),
        (["diff", "{expected}", "{same}", "--base", "0xZZ"], "not an address"),
        (
            ["diff", "{expected}", "{same}", "--base", APP, "--board", "/nonexistent/board.yaml"],
            "cannot read board file",
        ),
        (["diff", "{expected}", "/nonexistent/readback.bin", "--base", APP], "no such file"),
        (["bogus"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], argv: list[str], text: str
) -> None:
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and text in err
    assert err.count("\n") <= 1 or "usage:" in err


def test_bad_board_file_exit_2(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(default_board_path().read_text())
    doc["regions"]["app_slot"]["base"] = 0x08041000
    board = tmp_path / "b.yaml"
    board.write_text(yaml.safe_dump(doc))
    rc = main(["diff", str(files["expected"]), str(files["same"]), "--base", APP, "--board", str(board)])
    err = capsys.readouterr().err
    assert rc == 2 and "regions.app_slot" in err and str(board) in err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "diff" in capsys.readouterr().err


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_subcommands_are_diff_ota_restore_doctor_and_summary() -> None:
    commands = _subcommands(build_parser())
    assert sorted(commands) == ["campaign", "diff", "doctor", "ota", "restore", "summary"]
    assert sorted(_subcommands(commands["ota"])) == ["policies", "serve"]
    assert sorted(_subcommands(commands["campaign"])) == ["power-cut"]
    args = build_parser().parse_args(["ota", "policies"])
    assert args.command == "ota" and args.ota_command == "policies" and callable(args.func)


def test_console_script_runs(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rig.cli", "diff", str(files["expected"]), str(files["token"]), "--base", APP],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "foreign_text" in proc.stdout
