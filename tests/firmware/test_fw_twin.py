"""The reference firmware on the virtual board: boot messages, direct boot, full OTA
over Ethernet and WiFi, and the jump/boot-check variants (tests/firmware)."""

from __future__ import annotations

import re

import pytest
from fw_build import make
from fw_twin import APP_BASE, CONFIG_BASE, board, config_for_app, image

BOOT_TIMEOUT = 60.0
OTA_TIMEOUT = 240.0


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    """Make sure firmware/build is up to date."""
    make("all", timeout=1200)


def installed(app: str, version: int, **kw: object) -> list[tuple[bytes, int]]:
    """Loads that put ``app`` in the slot with a config record saying it is installed."""
    data = image(app).read_bytes()
    return [(data, APP_BASE), (config_for_app(data, version=version, **kw), CONFIG_BASE)]


def test_bootloader_without_app_says_why_and_asks_for_an_update() -> None:
    with board() as b:
        b.console.expect(r"BL: ota-rig bootloader \(correct\)", timeout=BOOT_TIMEOUT)
        b.console.expect(r"BL: config: no valid record at 0x08020000", timeout=BOOT_TIMEOUT)
        b.console.expect(r"BL: no valid app: no application recorded", timeout=BOOT_TIMEOUT)
        b.console.expect(r"BL: OTA over eth to 192\.168\.1\.10:5000 \(attempt 1\)", timeout=BOOT_TIMEOUT)
        b.console.expect(r"OTA: connect failed", timeout=BOOT_TIMEOUT)
        assert "APP v" not in b.console.text()


def test_app_boots_directly_and_checks_its_entry_state() -> None:
    with board(loads=installed("app-v4-64k", 4)) as b:
        b.console.expect(r"BL: jumping to app v4 at 0x08040000", timeout=BOOT_TIMEOUT)
        b.console.expect(r"APP v4 build [0-9a-f]{8}", timeout=BOOT_TIMEOUT)
        b.console.expect(r"APP READY", timeout=BOOT_TIMEOUT)
        text = b.console.text()
        for line in ("VTOR OK", "STACK OK", "MODE OK", "PRIMASK OK", "MPU OK"):
            assert line in text
        mark = b.console.mark()
        b.console.send("version\n")
        b.console.expect(r"APP v4 build", timeout=BOOT_TIMEOUT, since=mark)


@pytest.mark.parametrize(
    "why,loads,pattern",
    [
        (
            "crc",
            lambda: installed("app-v1-16k", 1, crc=0x12345678),
            r"CRC mismatch: computed [0-9a-f]{8}, recorded 12345678",
        ),
        (
            "sp",
            lambda: [(b"\xff" * 64, APP_BASE), *installed("app-v1-16k", 1)[1:]],
            r"initial SP 0xffffffff is not in RAM",
        ),
    ],
)
def test_invalid_app_is_never_entered(why: str, loads, pattern: str) -> None:
    with board(loads=loads()) as b:
        b.console.expect(r"BL: no valid app: " + pattern, timeout=BOOT_TIMEOUT)
        b.console.expect(r"BL: OTA over eth", timeout=BOOT_TIMEOUT)
        assert "APP v" not in b.console.text()


@pytest.mark.parametrize("net", ["eth", "wifi"])
@pytest.mark.parametrize("app,version", [("app-v1-16k", 1), ("app-v2-300k", 2), ("app-v3-512k", 3)])
def test_ota_installs_and_jumps(net: str, app: str, version: int) -> None:
    cfg = config_for_app(b"", update=True, transport=net)
    with board(loads=[(cfg, CONFIG_BASE)], ota_image=image(app)) as b:
        b.console.expect(rf"BL: OTA over {net}", timeout=BOOT_TIMEOUT)
        b.console.expect(rf"APP v{version} build", timeout=OTA_TIMEOUT)
        b.console.expect(r"APP READY", timeout=BOOT_TIMEOUT)
        text = b.console.text()
        assert "VTOR OK" in text and "STACK OK" in text and "MODE OK" in text
        assert re.search(rf"OTA: erasing app: {1 if version == 1 else 2} sector", text)
        res = b.server.wait_session(10)
        assert res.outcome == "ack", res.to_text()
