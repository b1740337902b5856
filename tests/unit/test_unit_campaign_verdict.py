"""A cut point's verdict (rig/campaign_run.py) against a scripted board: what the console
shows, whether the OTA server saw a session, what the probe reads from the slot."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest

from rig.board import load_board
from rig.campaign_points import Op, Point
from rig.campaign_run import Board, run_point
from rig.image import Image

APP = 0x08040000
NEW = Image(bytes(range(256)) * 64, APP)
OLD = Image(b"\x5a" * 8192, APP)


class Script:
    """The board after the restore: console lines, an OTA session or not, the slot's bytes."""

    def __init__(self, console: str, slot: bytes, asks: bool = False) -> None:
        self.console, self.slot, self.asks = console, slot, asks
        self.requests: list[tuple[str, dict]] = []
        self.restored = False

    # target
    def control(self, cmd: str, **args: object) -> dict:
        self.requests.append((cmd, args))
        if cmd == "snapshot.restore":
            self.restored = True
        return {"cuts": []}

    # console
    def mark(self) -> int:
        return 0

    def text(self, since: int = 0) -> str:
        return self.console if self.restored else ""

    # probe
    def read(self, base: int, length: int) -> bytes:
        assert base == APP
        return self.slot[:length].ljust(length, b"\xff")

    def core_state(self) -> tuple[str, int]:
        return "running", 0


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.results: list = []

    @property
    def sessions_started(self) -> int:
        return int(self.script.asks and self.script.restored)


def _board(script: Script, timeout: float = 0.3) -> Board:
    spec = load_board(None)
    bench = SimpleNamespace(spec=spec, layout=spec.active_layout, target=script, console=script, probe=script)
    ops = [Op(0, "erase", APP, 262144, "app_slot"), Op(1, "program", APP, 4, "app_slot")]
    server = Server(script)
    return Board(
        bench, server, NEW, OLD, r"APP v1 build x", r"APP v4 build y", 1, ops, timeout, lambda: server
    )  # type: ignore[arg-type]


def test_old_app_running_from_an_intact_slot_is_recovered_old() -> None:
    script = Script("BL: jumping\nAPP v4 build y\n", OLD.data)
    res = run_point(_board(script), Point(0, "half"))
    assert res.outcome == "recovered-old" and res.kind == "erase" and res.region == "app_slot"
    assert ("snapshot.restore", {"id": 1, "ops": 0, "cut": "half"}) in script.requests


def test_asking_again_then_the_new_app_is_re_asked() -> None:
    script = Script("OTA: connected\nAPP v1 build x\n", NEW.data, asks=True)
    assert run_point(_board(script), Point(1, "torn")).outcome == "re-asked"


def test_new_app_without_asking_is_recovered_new() -> None:
    script = Script("APP v1 build x\n", NEW.data)
    assert run_point(_board(script), Point(2, "before")).outcome == "recovered-new"


@pytest.mark.parametrize("banner", ["APP v1 build x", "APP v4 build y"])
def test_a_banner_over_a_slot_that_differs_is_bricked(banner: str) -> None:
    damaged = bytearray(NEW.data)
    damaged[-4:] = b"\xff" * 4
    script = Script(banner + "\n", bytes(damaged))
    res = run_point(_board(script), Point(1, "torn"))
    assert res.outcome == "bricked" and "CRC differs" in res.detail
    assert res.diagnosis is not None and not res.diagnosis["vs_new"]["ok"]
    assert zlib.crc32(bytes(damaged)) != zlib.crc32(NEW.data)


def test_nothing_within_the_timeout_is_bricked_with_the_console() -> None:
    script = Script("BL: update requested\nOTA: connect failed (-3)\n", OLD.data, asks=False)
    res = run_point(_board(script, timeout=0.2), Point(1, "before"))
    assert res.outcome == "bricked" and "neither an app nor a request" in res.detail
    assert "connect failed" in res.console and res.seconds >= 0.2
