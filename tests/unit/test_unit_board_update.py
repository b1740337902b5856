"""The board file's ``update:`` section, ``ota.protocol``/``transports`` and ``preserve``d
regions of the user's own (issue 15: 1, 2, 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rig.board import default_board_path, load_board, parse_board
from rig.errors import ConfigError

REFERENCE = default_board_path().read_text()


def board(update: str | None = None, *, ota: str = "", regions: str = "") -> str:
    """The reference board file with another update: section, ota keys and regions added."""
    text = REFERENCE
    if update is not None:
        text = text.replace("update:\n  method: config_record\n", update)
    if ota:
        text = text.replace("  staging_region: scratch", "  staging_region: scratch\n" + ota, 1)
    if regions:
        text = text.replace("\nota:\n", "\n" + regions + "\nota:\n", 1)
    return text


def test_reference_board_file_asks_through_its_config_record() -> None:
    spec = load_board()
    assert spec.update.method == "config_record" and spec.update.install == "probe"
    assert spec.ota.protocol == "reference" and spec.ota.protocol_options == {"crc": True}
    assert spec.ota.transports == ("eth", "wifi")
    assert [(r.name, r.preserve) for r in spec.preserved()] == [("config", "append")]


def test_update_is_required() -> None:
    with pytest.raises(ConfigError) as err:
        parse_board(board(""))
    assert err.value.key_path == "update" and "missing key" in str(err.value)


@pytest.mark.parametrize(
    "section, expect",
    [
        ("update:\n  method: always\n", {"method": "always", "install": "ota"}),
        (
            "update:\n  method: backup_register\n  register: 0\n  value: 0xB00710AD\n",
            {"register": 0, "values": {"eth": 0xB00710AD, "wifi": 0xB00710AD}, "idle": 0},
        ),
        (
            "update:\n  method: backup_register\n  register: 31\n  value: {eth: 1, wifi: 2}\n  idle: 7\n",
            {"register": 31, "values": {"eth": 1, "wifi": 2}, "idle": 7},
        ),
        (
            "update:\n  method: ram_magic\n  address: 0x2007FFF0\n  value: 0xDEADBEEF\n  install: probe\n",
            {"address": 0x2007FFF0, "install": "probe"},
        ),
        (
            "update:\n  method: button\n  pin: PC13\n  hold_ms: 1500\n  press: relay on\n  release: relay off\n",
            {"pin": "PC13", "active": "high", "hold_ms": 1500, "press": "relay on"},
        ),
        (
            "update:\n  method: console\n  line: 'update {transport}'\n  after: 'BL: ready'\n",
            {"line": "update {transport}"},
        ),
        (
            "update:\n  method: command\n  run: ./ask.sh {transport}\n  timeout: 5\n",
            {"run": "./ask.sh {transport}"},
        ),
    ],
)
def test_update_methods(section: str, expect: dict) -> None:
    spec = parse_board(board(section))
    for key, value in expect.items():
        assert getattr(spec.update, key) == value, key


@pytest.mark.parametrize(
    "section, key_path, words",
    [
        ("update:\n  method: fax\n", "update.method", "'config_record'"),
        ("update:\n  method: backup_register\n  value: 1\n", "update.register", "needs register, value"),
        ("update:\n  method: backup_register\n  register: 32\n  value: 1\n", "update.register", "0..31"),
        ("update:\n  method: always\n  pin: PC13\n", "update.pin", "always takes no pin"),
        ("update:\n  method: button\n  pin: C13\n", "update.pin", "PC13"),
        (
            "update:\n  method: ram_magic\n  address: 0x20000002\n  value: 1\n",
            "update.address",
            "word-aligned",
        ),
        (
            "update:\n  method: ram_magic\n  address: 0x08000000\n  value: 1\n",
            "update.address",
            "not in a ram entry",
        ),
        ("update:\n  method: console\n  line: x\n  after: '('\n", "update.after", "regular expression"),
        ("update:\n  method: config_record\n  install: ota\n", "update.install", "probe"),
        ("update:\n  method: backup_register\n  register: 1\n  value: {eth: 1}\n", "update.value", "wifi"),
    ],
)
def test_update_errors(section: str, key_path: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_board(board(section))
    assert err.value.key_path == key_path, str(err.value)
    assert words in str(err.value)


def test_config_record_needs_a_config_region() -> None:
    raw = yaml.safe_load(REFERENCE)
    del raw["regions"]["config"]
    with pytest.raises(ConfigError, match="config_record writes the reference config record"):
        parse_board(yaml.safe_dump(raw))


def test_protocol_and_transports() -> None:
    text = (
        REFERENCE.replace("  protocol: reference", "  protocol: thread", 1)
        .replace("protocol_options: {crc: true}", "protocol_options: {pause_ms: 80}", 1)
        .replace("transports: [eth, wifi]", "transports: [eth]", 1)
    )
    spec = parse_board(text)
    assert spec.ota.protocol == "thread" and spec.ota.protocol_options == {"pause_ms": 80}
    assert spec.ota.transports == ("eth",)
    with pytest.raises(ConfigError, match="each transport once"):
        parse_board(REFERENCE.replace("transports: [eth, wifi]", "transports: [eth, eth]"))
    with pytest.raises(ConfigError) as err:
        parse_board(REFERENCE.replace("transports: [eth, wifi]", "transports: [usb]"))
    assert err.value.key_path == "ota.transports[0]"


def test_ask_within() -> None:
    """How long after a power cut the rig waits for the bootloader to ask again."""
    assert parse_board(REFERENCE).ota.ask_within == 20.0
    assert parse_board(REFERENCE.replace("ask_within: 20 ", "ask_within: 45.5 ", 1)).ota.ask_within == 45.5
    raw = yaml.safe_load(REFERENCE)
    del raw["ota"]["ask_within"]
    assert parse_board(yaml.safe_dump(raw)).ota.ask_within == 20.0  # the default
    for bad in ("0", "-1", "7200", "soon"):
        with pytest.raises(ConfigError) as err:
            parse_board(REFERENCE.replace("ask_within: 20 ", f"ask_within: {bad} ", 1))
        assert err.value.key_path == "ota.ask_within", bad


def test_user_regions_and_preserve() -> None:
    spec = parse_board(
        board(regions="  settings: {base: 0x08020000, size: 128K, ota_writable: false, preserve: exact}\n")
        .replace(
            "  config:     {base: 0x08020000, size: 128K,  ota_writable: true,  preserve: append, "
            'description: "config record log (settings + boot state), sector 4"}\n',
            "",
        )
        .replace("update:\n  method: config_record\n", "update:\n  method: always\n")
    )
    settings = spec.region("settings")
    assert settings.preserve == "exact" and not settings.ota_writable and settings.sectors == (4,)
    with pytest.raises(ConfigError) as err:
        parse_board(board(regions="  Settings: {base: 0x08020000, size: 128K}\n"))
    assert err.value.key_path == "regions.Settings" and "lowercase" in str(err.value)
    with pytest.raises(ConfigError) as err:  # overlaps config
        parse_board(board(regions="  settings: {base: 0x08020000, size: 128K}\n"))
    assert "overlaps" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_board(
            REFERENCE.replace(
                'ota_writable: true,  description: "application',
                'ota_writable: true,  preserve: exact, description: "application',
            )
        )
    assert err.value.key_path == "regions.app_slot.preserve"


def test_relative_scripts_start_in_the_board_files_folder(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(board("update:\n  method: command\n  run: ./ask.sh\n"))
    assert load_board(path).update.base_dir == str(tmp_path.resolve())
