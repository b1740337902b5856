"""How the rig asks a bootloader for an update (board file ``update:``, rig/update.py), the
reference config log (rig/bootcfg.py) and preserved regions (rig/flash_guard.py) — issue 15.

The backup register, RAM word and button are exercised on a running twin through a stock
pyOCD probe and the twin's control interface, as the HIL suite does: the backup register's
write protection (PWR_CR1.DBP) holds for the debugger's bus accesses as for the CPU's, the
register and the RAM word survive a system reset, a power cycle clears them.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from rig.board import load_board
from rig.board_update import UpdateSpec
from rig.bootcfg import SLOT, BootConfig, current, log_end
from rig.errors import ConsoleError, PhaseFailure
from rig.flash_guard import PreservedRange, expected_after, preserved_changed, protected_ranges
from rig.update import (
    PWR_CR1,
    RTC_BKP0R,
    BackupRegister,
    Button,
    Command,
    ConfigRecord,
    ConsoleLine,
    RamMagic,
    make_trigger,
)

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"


# ------------------------------------------------------------------------------ config log
def _record(**kw) -> bytes:
    return BootConfig(**kw).pack().ljust(SLOT, b"\xff")


def test_config_log_record_in_force() -> None:
    region = bytearray(b"\xff" * (8 * SLOT))
    assert current(bytes(region)) == (None, None, []) and log_end(bytes(region)) == 0
    region[0:SLOT] = _record(transport="wifi")
    region[SLOT : 2 * SLOT] = _record(transport="wifi", app_size=5)
    region[2 * SLOT : 2 * SLOT + 4] = b"OTAC"  # torn: a power cut after its first word
    slot, cfg, skipped = current(bytes(region))
    assert slot == 1 and cfg is not None and cfg.app_size == 5 and skipped == [2]
    assert log_end(bytes(region)) == 3 * SLOT


# ------------------------------------------------------------------------------ preserve
def test_preserve_append_lets_erased_bytes_be_programmed_only() -> None:
    kept = PreservedRange("config", 0x08020000, "append", b"\x01\x02\xff\xff")
    assert expected_after(kept, b"\x01\x02\x33\xff") == b"\x01\x02\x33\xff"  # appended: fine
    assert expected_after(kept, b"\xff\xff\x33\xff") == b"\x01\x02\x33\xff"  # erased: differs
    text = preserved_changed(kept, b"\xff\x05\x33\xff", "summary")
    assert "preserve: append" in text and "1 of the 2 bytes programmed before read 0xFF" in text
    assert "1 hold another value" in text


def test_preserve_exact() -> None:
    kept = PreservedRange("settings", 0x08020000, "exact", b"\x01\xff")
    assert expected_after(kept, b"\x01\x07") == b"\x01\xff"
    assert "1 erased byte(s) were programmed" in preserved_changed(kept, b"\x01\x07", "s")


def test_a_preserved_region_is_not_guarded_twice() -> None:
    text = Path(load_board().source).read_text()
    text = text.replace(
        "  config:     {base: 0x08020000, size: 128K,  ota_writable: true,  preserve: append, ",
        "  config:     {base: 0x08020000, size: 128K,  ota_writable: false,  preserve: exact, ",
    )
    from rig.board import parse_board

    spec = parse_board(text)
    assert "config" not in [name for name, _, _ in protected_ranges(spec)]
    assert [r.name for r in spec.preserved()] == ["config"]


# ------------------------------------------------------------------------------ triggers, no board
class FakeConsole:
    def __init__(self, text: str = "") -> None:
        self.sent: list[str] = []
        self.text_ = text

    def mark(self) -> int:
        return 0

    def expect(self, pattern, *, timeout, since, what):
        import re

        m = re.search(pattern, self.text_)
        if m is None:
            raise ConsoleError(f"no {what} within {timeout:g} s")
        return m

    def send(self, text: str) -> None:
        self.sent.append(text)


def fake_bench(update: UpdateSpec, *, control: bool = True, console: FakeConsole | None = None):
    calls: list[tuple] = []
    target = SimpleNamespace(
        kind="twin" if control else "nucleo",
        has_control=control,
        control=lambda cmd, **a: calls.append((cmd, a)) or {},
        probe_uid="remote:127.0.0.1:1",
        serial_port="/dev/pts/9",
        info={"control": "127.0.0.1:4444"} if control else {},
        dial=("192.168.1.10", 5000),
    )
    spec = replace(load_board(), update=update)
    bench = SimpleNamespace(spec=spec, target=target, console=console or FakeConsole(), evidence=None)
    bench._fail = lambda ev, phase, msg, hint=None: PhaseFailure(phase, msg, hint=hint)
    bench.console_silence_hint = lambda since=None: ""  # Bench's: registers through the probe
    return bench, calls


def test_make_trigger_by_method() -> None:
    assert isinstance(make_trigger(UpdateSpec()), ConfigRecord)
    assert make_trigger(UpdateSpec()).writes_config
    assert isinstance(make_trigger(UpdateSpec(method="backup_register", register=3)), BackupRegister)
    assert make_trigger(UpdateSpec(method="always", install="ota")).install == "ota"


def test_button_on_the_twin_is_held_through_the_reset_then_released() -> None:
    spec = UpdateSpec(method="button", install="ota", pin="PG2", active="low", hold_ms=10)
    bench, calls = fake_bench(spec)
    trig = Button(spec)
    trig.request(bench, "eth")
    assert calls == [("gpio", {"port": "g", "pin": 2, "drive": False})] and trig.pressed
    trig.after_reset(bench)
    assert calls[-1] == ("gpio", {"port": "g", "pin": 2, "drive": None}) and not trig.pressed
    trig.after_reset(bench)  # nothing held: nothing to release
    assert len(calls) == 2


def test_button_is_released_once_the_bootloader_asked() -> None:
    """A bootloader that updates and restarts within the hold would see the button again
    and ask again: the release comes with its first session (even one that began during
    the reset itself), not only after hold_ms."""
    spec = UpdateSpec(method="button", install="ota", pin="PC13", hold_ms=5000)
    bench, calls = fake_bench(spec)
    bench.last_server = SimpleNamespace(sessions_started=3)
    bench.sessions_at_reset = 2  # the board connected while the reset was being done
    trig = Button(spec)
    trig.request(bench, "eth")
    t0 = time.monotonic()
    trig.after_reset(bench)
    assert time.monotonic() - t0 < 1.0 and not trig.pressed
    assert calls[-1] == ("gpio", {"port": "c", "pin": 13, "drive": None})
    bench.sessions_at_reset = 3  # no session yet: held for hold_ms
    spec_short = UpdateSpec(method="button", install="ota", pin="PC13", hold_ms=200)
    trig = Button(spec_short)
    trig.request(bench, "eth")
    t0 = time.monotonic()
    trig.after_reset(bench)
    assert time.monotonic() - t0 >= 0.19 and not trig.pressed


def test_button_on_a_lab_board_needs_its_relay_command() -> None:
    bench, _ = fake_bench(UpdateSpec(method="button", install="ota", pin="PC13"), control=False)
    with pytest.raises(PhaseFailure, match=r"update.press names no command"):
        Button(bench.spec.update).request(bench, "eth")


def test_button_relay_commands_run(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    spec = UpdateSpec(
        method="button",
        install="ota",
        pin="PC13",
        hold_ms=0,
        press=f"sh -c 'echo press >> {log}'",
        release=f"sh -c 'echo release >> {log}'",
    )
    bench, _ = fake_bench(spec, control=False)
    trig = Button(spec)
    trig.request(bench, "eth")
    trig.after_reset(bench)
    assert log.read_text().split() == ["press", "release"]


def test_console_line_after_the_prompt() -> None:
    spec = UpdateSpec(method="console", install="ota", line="update {transport}", after=r"BL: press")
    console = FakeConsole("BL: press u\n")
    bench, _ = fake_bench(spec, console=console)
    trig = ConsoleLine(spec)
    trig.request(bench, "wifi")
    assert console.sent == []  # nothing before the reset
    trig.after_reset(bench)
    assert console.sent == ["update wifi\n"]
    trig.after_reset(bench)  # once per request
    assert console.sent == ["update wifi\n"]
    bench.console.text_ = ""
    trig.request(bench, "eth")
    with pytest.raises(PhaseFailure, match=r"never printed what update\.after waits for"):
        trig.after_reset(bench)


def test_command_gets_the_board_in_its_environment(tmp_path: Path) -> None:
    script = tmp_path / "ask.sh"
    out = tmp_path / "env.json"
    script.write_text(
        "#!/bin/sh\n"
        f'printf \'{{"t": "%s", "arg": "%s", "server": "%s", "board": "%s", "ctl": "%s"}}\' '
        f'"$OTA_RIG_TRANSPORT" "$1" "$OTA_RIG_SERVER" "$OTA_RIG_BOARD" "$OTA_RIG_TWIN_CONTROL" > {out}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    spec = UpdateSpec(method="command", install="ota", run="./ask.sh {transport}", base_dir=str(tmp_path))
    bench, _ = fake_bench(spec)
    Command(spec).request(bench, "wifi")
    assert json.loads(out.read_text()) == {
        "t": "wifi",
        "arg": "wifi",
        "server": "192.168.1.10:5000",
        "board": "twin",
        "ctl": "127.0.0.1:4444",
    }
    failing = replace(spec, run="sh -c 'echo relay jammed; exit 3'")
    with pytest.raises(PhaseFailure, match=r"\[boot\].*exited with 3: relay jammed"):
        Command(failing).request(bench, "eth")
    with pytest.raises(PhaseFailure, match="cannot run"):
        Command(replace(spec, run="./no-such-script")).request(bench, "eth")


# ------------------------------------------------------------------------------ on the twin
@pytest.fixture(scope="module")
def twin_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from rig.probe import Probe
    from rig.targets.twin import start_twin

    image = BUILD / "haltest.bin"
    if not image.is_file():
        pytest.skip(f"{image} missing: run make -C firmware")
    log = tmp_path_factory.mktemp("twin") / "twin.log"
    target = start_twin(extra_args=["--load", f"{image}@0x08000000"], log_path=log)
    try:
        with Probe(target.probe_uid) as probe:
            yield SimpleNamespace(target=target, probe=probe, console=FakeConsole(), evidence=None)
    finally:
        target.stop()


def _bench_with(twin_bench: SimpleNamespace, update: UpdateSpec) -> SimpleNamespace:
    bench = SimpleNamespace(**vars(twin_bench), spec=replace(load_board(), update=update))
    bench._fail = lambda ev, phase, msg, hint=None: PhaseFailure(phase, msg, hint=hint)
    return bench


def test_backup_register_through_the_probe_behind_dbp(twin_bench: SimpleNamespace) -> None:
    spec = UpdateSpec(method="backup_register", install="ota", register=5, values={"eth": 0xB007B007}, idle=0)
    bench = _bench_with(twin_bench, spec)
    probe = bench.probe
    address = RTC_BKP0R + 4 * 5
    # a debugger write without backup-domain access is ignored, as the CPU's would be
    probe.reset(halt=True)
    probe.write32(PWR_CR1, probe.read32(PWR_CR1) & ~(1 << 8))
    probe.write32(address, 0x12345678)
    assert probe.read32(address) == 0
    BackupRegister(spec).request(bench, "eth")
    assert probe.read32(address) == 0xB007B007
    probe.reset(halt=True)  # a system reset keeps the backup domain
    assert probe.read32(address) == 0xB007B007
    assert probe.read32(PWR_CR1) & (1 << 8) == 0  # DBP is back at its reset value
    BackupRegister(spec).withdraw(bench, "eth", None)
    assert probe.read32(address) == 0
    BackupRegister(spec).request(bench, "eth")
    bench.target.power_cycle()  # VBAT from VDD on the NUCLEO: power off clears it
    probe.reconnect()
    probe.halt()
    assert probe.read32(address) == 0


def test_ram_magic_survives_a_system_reset(twin_bench: SimpleNamespace) -> None:
    spec = UpdateSpec(
        method="ram_magic", install="ota", address=0x2007FFF0, values={"eth": 0xC0FFEE00}, idle=1
    )
    bench = _bench_with(twin_bench, spec)
    RamMagic(spec).request(bench, "eth")
    bench.probe.reset(halt=True)
    assert bench.probe.read32(0x2007FFF0) == 0xC0FFEE00
    RamMagic(spec).withdraw(bench, "eth", None)
    assert bench.probe.read32(0x2007FFF0) == 1


def test_button_drives_the_twins_pin(twin_bench: SimpleNamespace) -> None:
    spec = UpdateSpec(method="button", install="ota", pin="PC13", hold_ms=0)
    bench = _bench_with(twin_bench, spec)
    trig = Button(spec)
    trig.request(bench, "eth")
    assert bench.target.control("gpio", port="c", pin=13)["input"] is True
    trig.after_reset(bench)
    assert bench.target.control("gpio", port="c", pin=13)["input"] is False  # PC13's pull-down
