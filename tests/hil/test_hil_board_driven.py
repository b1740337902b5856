"""What the board file decides for a HIL run, without a board (issue 15): the transports a
bootloader lacks are skipped with the board file's reason, the protocol comes from the board
file or ``--ota-protocol`` and a bad one stops the run before any board is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rig.board import default_board_path

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "tests_hil"),
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--report-dir",
        str(tmp_path / "reports"),
        "--html",
        str(tmp_path / "r.html"),
        *args,
    ]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def eth_only_board(tmp_path: Path, protocol: str = "reference") -> Path:
    text = default_board_path().read_text().replace("transports: [eth, wifi]", "transports: [eth]")
    text = text.replace("  protocol: reference", f"  protocol: {protocol}", 1)
    if protocol != "reference":
        text = text.replace("  protocol_options: {crc: true}\n", "")
    path = tmp_path / "eth-only.yaml"
    path.write_text(text)
    return path


def test_a_transport_the_bootloader_lacks_is_skipped_with_the_board_files_reason(tmp_path: Path) -> None:
    board = eth_only_board(tmp_path)
    proc = run(
        tmp_path, "--board-file", str(board), "--transport", "wifi", "-k", "bootloader_boots or edge", "-rs"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" not in proc.stdout.splitlines()[-1]
    assert "eth-only.yaml: ota.transports is [eth]: the bootloader does not update over wifi" in proc.stdout


def test_ota_protocol_errors_are_usage_errors(tmp_path: Path) -> None:
    proc = run(tmp_path, "--ota-protocol", "carrier-pigeon", "--collect-only", "-q")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--ota-protocol: " in proc.stderr and "unknown OTA protocol 'carrier-pigeon'" in proc.stderr
    board = eth_only_board(tmp_path, protocol="no_such_module:Proto")
    proc = run(tmp_path, "--board-file", str(board), "--collect-only", "-q")
    assert proc.returncode == 4 and "ota.protocol in" in proc.stderr and "cannot import" in proc.stderr


def test_ota_protocol_from_the_command_line(tmp_path: Path) -> None:
    from rig.board import load_board
    from rig.fixtures.options import protocol_for

    spec = load_board()
    assert protocol_for(spec, None).describe() == "reference(crc=on)"
    assert (
        protocol_for(spec, "thread").describe() == "thread(pause=50ms)"
    )  # the board's options are the reference's
    proc = run(tmp_path, "--ota-protocol", "thread", "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
