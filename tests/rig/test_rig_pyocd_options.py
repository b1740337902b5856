"""The user's pyOCD settings (issue 15: 9): a pyocd.yaml (``targets.nucleo.pyocd_config``), the
board file's ``pyocd_options`` and ``--pyocd-option`` reach the stock pyOCD session the rig
opens on a running twin, in the documented order (docs/board-file.md), and the rig's safety
options stay pinned whatever they say."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rig.board import default_board_path, load_board
from rig.errors import ConfigError, RigError
from rig.fixtures.plugin import probe_for
from rig.probe_options import check_pyocd_option
from rig.targets.base import Target
from rig.targets.twin import TwinTarget, start_twin

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinTarget]:
    t = start_twin(log_path=tmp_path_factory.mktemp("twin") / "twin.log")
    try:
        yield t
    finally:
        t.stop()


def test_values_are_converted_like_pyocds_own_command_line() -> None:
    assert check_pyocd_option("frequency", "4000000", source="x") == 4_000_000
    assert check_pyocd_option("frequency", 4_000_000, source="x") == 4_000_000
    assert check_pyocd_option("smart_flash", "false", source="x") is False
    assert check_pyocd_option("flash.timeout.erase_sector", 8, source="x") == 8.0
    assert check_pyocd_option("connect_mode", "under-reset", source="x") == "under-reset"


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("frequncy", "1", ["pyOCD has no session option 'frequncy'", "did you mean frequency"]),
        ("frequency", "fast", ["frequency='fast' is not a valid int"]),
        ("smart_flash", "maybe", ["smart_flash='maybe' is not a valid bool"]),
        ("frequency", True, ["is not a valid int"]),
        ("auto_unlock", "true", ["auto_unlock is pinned to False", "mass-erases"]),
        ("chip_erase", "chip", ["chip_erase is pinned to 'sector'"]),
        ("keep_unwritten", False, ["pinned"]),
        ("target_override", "stm32f746zg", ["use targets.<kind>.pyocd_target"]),
        ("config_file", "/x.yaml", ["use targets.nucleo.pyocd_config"]),
    ],
)
def test_bad_or_pinned_options_are_refused_with_the_source(key: str, value: object, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        check_pyocd_option(key, value, source="--pyocd-option")
    text = str(err.value)
    assert text.startswith("--pyocd-option: ") and all(w in text for w in words), text


def _spec(tmp_path: Path, **nucleo: object):
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["targets"]["nucleo"].update(nucleo)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_board(path)


def test_precedence_yaml_then_board_file_then_command_line_then_pins(
    twin: TwinTarget, tmp_path: Path
) -> None:
    (tmp_path / "pyocd.yaml").write_text(
        yaml.safe_dump(
            {
                "frequency": 500_000,  # overridden by the board file
                "smart_flash": False,  # the user's: over the rig's default (True)
                "auto_unlock": True,  # pinned: never
                "flash.timeout.erase_sector": 6.5,  # overridden on the command line
                "probes": {twin.probe_uid: {"cache.enable_memory": False}},  # this probe's section
            }
        )
    )
    spec = _spec(
        tmp_path,
        pyocd_config="pyocd.yaml",
        pyocd_options={"frequency": 2_000_000, "flash.timeout.erase_sector": 7},
    )
    # the twin reached the way a NUCLEO is: the nucleo entry of the board file applies
    board = Target(kind="nucleo", probe_uid=twin.probe_uid, serial_port=twin.serial_port, ota_bind=("h", 1))
    probe = probe_for(board, spec, [("flash.timeout.erase_sector", "9.5")])
    with probe as p:
        opts = p.session.options
        assert opts.get("frequency") == 2_000_000  # board file over pyocd.yaml
        assert opts.get("smart_flash") is False  # pyocd.yaml over the rig's default
        assert opts.get("cache.enable_memory") is False  # the probe's own section of pyocd.yaml
        assert opts.get("flash.timeout.erase_sector") == 9.5  # command line over both
        assert opts.get("auto_unlock") is False and opts.get("chip_erase") == "sector"
        assert opts.get("keep_unwritten") is True
        assert opts.get("target_override") == "stm32f767zi"
        assert p.read32(0xE0042000) & 0xFFF == 0x451  # and the session works


def test_without_a_config_file_none_is_read(twin: TwinTarget, tmp_path: Path, monkeypatch) -> None:
    # a stray pyocd.yaml in the working directory is never picked up
    (tmp_path / "pyocd.yaml").write_text("frequency: 123456\n")
    monkeypatch.chdir(tmp_path)
    board = Target(kind="nucleo", probe_uid=twin.probe_uid, serial_port=twin.serial_port, ota_bind=("h", 1))
    with probe_for(board, load_board()) as p:
        assert p.session.options.get("frequency") != 123456 and p.session.options.get("no_config") is True


def test_the_swd_clock_given_twice_in_the_board_file_is_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, swd_frequency=4_000_000, pyocd_options={"frequency": 1_000_000})
    board = Target(kind="nucleo", probe_uid="X", serial_port="/dev/null", ota_bind=("h", 1))
    with pytest.raises(RigError) as err:
        probe_for(board, spec)
    assert "swd_frequency" in str(err.value) and "pyocd_options.frequency" in str(err.value)


def test_a_bad_pyocd_option_stops_pytest_before_any_board(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--collect-only", "-q"),
            *("--report-dir", str(tmp_path), "--pyocd-option", "frequncy=4000000"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--pyocd-option: pyOCD has no session option 'frequncy'" in proc.stderr
