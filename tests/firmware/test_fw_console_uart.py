"""The reference firmware with its console on another U(S)ART: ``make -C firmware`` builds
bootloader-usart6 and app-usart6-v1-16k (the correct bootloader and app v1, common/board.c
built with -DCONSOLE_UART=6: USART6 on PG14/PG9, AF8, the NUCLEO-144's Arduino D1/D0).

On a twin whose console is USART6 (``python -m twin --console-uart 6``, what the board file's
``console: {uart: 6}`` starts) the bootloader's banner is on the PTY and an update over
Ethernet ends in the app's banner and answers; on a twin whose console is the NUCLEO's
USART3 nothing comes on the PTY and the twin's log names USART6 and the board file's fix.
The default build stays on USART3 (the same check the other way round)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from fw_build import make
from fw_twin import CONFIG_BASE, board, config_for_app, image

from rig.board import default_board_path, parse_board
from rig.hil_failure import console_silence_hint
from rig.probe import Probe
from rig.targets.twin import board_args

BOOT_TIMEOUT = 60.0
OTA_TIMEOUT = 240.0
QUIET = "with nothing on its pins"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    make("build/bootloader-usart6.bin", "build/app-usart6-v1-16k.bin", "build/bootloader.bin", timeout=1200)


def _quiet_lines(log: Path) -> list[str]:
    """The twin's notices of a U(S)ART that transmitted with nothing on its pins."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line.split("] ", 1)[-1] for line in text.splitlines() if QUIET in line]


def _wait_quiet_line(log: Path, name: str, timeout: float = BOOT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        said = [line for line in _quiet_lines(log) if f"{name} transmitted" in line]
        if said:
            return said[0]
        time.sleep(0.1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else "(no log)"
    raise AssertionError(f"the twin never said that {name} transmitted into nothing; its log:\n{tail}")


def _board_file_args(console: dict[str, object] | None) -> list[str]:
    """How the rig starts the twin for the default board file with ``console`` as its
    ``console:`` (None: the key absent)."""
    doc = yaml.safe_load(default_board_path().read_text())
    if console is not None:
        doc["console"] = console
    return board_args(parse_board(yaml.safe_dump(doc)))


def test_on_a_usart6_console_the_banner_and_an_update_come_through(tmp_path: Path) -> None:
    cfg = config_for_app(b"", update=True, transport="eth")
    args = _board_file_args({"uart": 6})
    assert args[args.index("--console-uart") + 1] == "6"
    with board(
        "bootloader-usart6",
        loads=[(cfg, CONFIG_BASE)],
        ota_image=image("app-usart6-v1-16k"),
        extra_args=args,
        log_dir=tmp_path,
    ) as b:
        b.console.expect(r"BL: ota-rig bootloader \(correct\), reset flags", timeout=BOOT_TIMEOUT)
        b.console.expect(r"BL: OTA over eth", timeout=BOOT_TIMEOUT)
        b.console.expect(r"APP v1 build [0-9a-f]{8}", timeout=OTA_TIMEOUT)
        b.console.expect(r"APP READY", timeout=BOOT_TIMEOUT)
        assert b.server is not None and b.server.wait_session(10).outcome == "ack"
        text = b.console.text()
        for line in ("VTOR OK", "STACK OK", "MODE OK", "PRIMASK OK", "MPU OK"):
            assert line in text
        # the app reads USART6 too (PG9 = RX)
        mark = b.console.mark()
        b.console.send("version\n")
        b.console.expect(r"APP v1 build", timeout=BOOT_TIMEOUT, since=mark)
        # nothing went to a U(S)ART with nothing on its pins (USART3 stays off)
        assert _quiet_lines(tmp_path / "twin.log") == []


def test_on_the_nucleos_usart3_console_nothing_comes_and_the_twin_names_usart6(tmp_path: Path) -> None:
    log = tmp_path / "twin.log"
    with board("bootloader-usart6", log_dir=tmp_path) as b:
        said = _wait_quiet_line(log, "USART6")
        assert "the console (the PTY) is USART3" in said, said
        assert "(board file: console: {uart: 6})" in said, said
        assert "BL: ota-rig" in said, said  # what it sent: the banner
        # the bootloader goes on logging (config, no app, OTA over eth...): still one line
        time.sleep(2.0)
        assert [line for line in _quiet_lines(log) if "USART6 transmitted" in line] == [said]
        text = b.console.text()
        assert "BL:" not in text and "ota-rig bootloader" not in text, text
        # what the rig adds to a banner that never came: the registers through the probe
        # (USART6 set up to transmit, the board file's USART3 not) and the twin's line
        with Probe(b.target.probe_uid, connect_mode="attach") as probe:  # the core left running
            hint = console_silence_hint(probe, b.target, 3)
        assert "USART6 is set up to transmit" in hint and "console: {uart: 6}" in hint, hint
        assert "the twin says:" in hint and "USART6 transmitted" in hint, hint


def test_the_default_build_stays_on_usart3(tmp_path: Path) -> None:
    log = tmp_path / "twin.log"
    with board("bootloader", extra_args=_board_file_args({"uart": 6}), log_dir=tmp_path) as b:
        said = _wait_quiet_line(log, "USART3")
        assert "the console (the PTY) is USART6" in said, said
        assert "(board file: console: {uart: 3})" in said, said
        assert "BL:" not in b.console.text()
