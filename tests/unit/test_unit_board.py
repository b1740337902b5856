"""Board file loading, both sector layouts, lookups and every kind of bad input."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.board import BoardSpec, JumpContract, default_board_path, load_board, parse_board
from rig.errors import ConfigError

K = 1024


@pytest.fixture(scope="module")
def spec() -> BoardSpec:
    return load_board()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_board_path().read_text())


def write(tmp_path: Path, doc: Any, name: str = "board.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def test_default_path_is_repo_board() -> None:
    path = default_board_path()
    assert path.name == "stm32f767.yaml" and path.parent.name == "boards" and path.is_file()


def test_memory_map(spec: BoardSpec) -> None:
    assert spec.flash.base == 0x08000000 and spec.flash.size == 2 * K * K
    assert spec.memory["flash_itcm"].base == 0x00200000
    assert spec.memory["unique_id"].base == 0x1FF0F420
    assert spec.memory["flash_size"].base == 0x1FF0F442
    assert spec.in_ram(0x20080000)  # initial SP at the top of RAM
    assert not spec.in_ram(0x20080004)
    assert not spec.in_ram(0x20000000)  # an SP at the very bottom would push below RAM
    assert spec.in_ram(0x2007C000, 16 * K)  # SRAM2 is contiguous with SRAM1
    assert spec.to_flash_address(0x00240000) == 0x08040000
    assert spec.memory_at(0x1FF0F000).kind == "otp"


def test_single_bank_layout(spec: BoardSpec) -> None:
    lay = spec.layout(False)
    assert [s.size // K for s in lay.sectors] == [32] * 4 + [128] + [256] * 7
    assert [s.snb for s in lay.sectors] == list(range(12))
    assert {s.bank for s in lay.sectors} == {1}
    assert lay.sectors[5].base == 0x08040000 and lay.sectors[10].base == 0x08180000


def test_dual_bank_layout_and_snb(spec: BoardSpec) -> None:
    lay = spec.layout(True)
    assert len(lay.sectors) == 24
    assert [s.size // K for s in lay.sectors[:12]] == [16] * 4 + [64] + [128] * 7
    assert lay.sectors[12].base == 0x08100000 and lay.sectors[12].bank == 2
    assert [s.snb for s in lay.sectors[12:]] == [0x10 | n for n in range(12)]
    assert lay.sectors[23].end == 0x08200000


def test_regions_in_both_modes(spec: BoardSpec) -> None:
    single = spec.layout(False).regions
    assert single["bootloader"].sectors == (0, 1, 2, 3)
    assert single["config"].sectors == (4,)
    assert single["app_slot"].sectors == (5, 6, 7, 8, 9)
    assert single["scratch"].sectors == (10, 11)
    dual = spec.layout(True).regions
    assert dual["bootloader"].sectors == (0, 1, 2, 3, 4)
    assert dual["config"].sectors == (5,)
    assert dual["app_slot"].sectors == tuple(range(6, 20))
    assert dual["scratch"].sectors == (20, 21, 22, 23)
    assert spec.regions is spec.layout().regions and not spec.dual_bank
    assert spec.max_image_size == 512 * K


@pytest.mark.parametrize(
    "dual,addr,bank,sector,snb,region",
    [
        (False, 0x08000000, 1, 0, 0, "bootloader"),
        (False, 0x0801FFFF, 1, 3, 3, "bootloader"),
        (False, 0x08020000, 1, 4, 4, "config"),
        (False, 0x08090000, 1, 6, 6, "app_slot"),
        (False, 0x081FFFFF, 1, 11, 11, "scratch"),
        (True, 0x0801C000, 1, 4, 4, "bootloader"),
        (True, 0x08100000, 2, 12, 0x10, "app_slot"),
        (True, 0x08180000, 2, 20, 0x18, "scratch"),
    ],
)
def test_locate(
    spec: BoardSpec, dual: bool, addr: int, bank: int, sector: int, snb: int, region: str
) -> None:
    loc = spec.layout(dual).locate(addr)
    assert (loc.bank, loc.sector, loc.snb, loc.region) == (bank, sector, snb, region)
    assert loc.sector_base + loc.offset == addr


def test_locate_outside_flash_names_fix(spec: BoardSpec) -> None:
    with pytest.raises(ConfigError, match=r"outside the flash.*AXIM"):
        spec.layout().locate(0x00240000)


def test_sectors_for_span(spec: BoardSpec) -> None:
    single, dual = spec.layout(False), spec.layout(True)
    assert [s.index for s in single.sectors_for_span(0x08040000, 300 * K)] == [5, 6]
    assert [s.index for s in single.sectors_for_span(0x0803FFFF, 2)] == [4, 5]
    assert single.sectors_for_span(0x08040000, 0) == []
    assert [s.index for s in dual.sectors_for_span(0x08040000, 300 * K)] == [6, 7, 8]


def test_sectors_needed(spec: BoardSpec) -> None:
    assert [s.index for s in spec.sectors_needed("app_slot", 256 * K)] == [5]
    assert [s.index for s in spec.sectors_needed("app_slot", 256 * K + 1)] == [5, 6]
    assert [s.index for s in spec.sectors_needed("scratch", 512 * K)] == [10, 11]
    assert [s.index for s in spec.sectors_needed("app_slot", 300 * K, dual_bank=True)] == [6, 7, 8]
    with pytest.raises(ConfigError, match="do not fit region 'scratch'"):
        spec.sectors_needed("scratch", 512 * K + 1)
    with pytest.raises(ConfigError, match="no region 'nope'"):
        spec.sectors_needed("nope", 1)


def test_targets_ota_contract(spec: BoardSpec) -> None:
    assert str(spec.ota.server) == "192.168.1.10:5000"
    assert str(spec.targets["twin"].forward) == "192.168.1.10:5000"
    nucleo = spec.targets["nucleo"]
    assert nucleo.pyocd_target == "stm32f767zi" and nucleo.probe_uid is None and nucleo.baudrate == 115200
    assert spec.option_bytes == {"nDBANK": 1, "BOOT_ADD0": 0x80}
    assert spec.contract.enabled("vtor") and "bootloader" in spec.contract.reason("vtor")
    assert not spec.contract.enabled("icache")
    assert spec.ota_writable() == [(0x08020000, 128 * K), (0x08040000, 1280 * K), (0x08180000, 512 * K)]
    assert all(JumpContract.all_enabled().enabled(n) for n in spec.contract.items)


def test_debug_section_defaults_to_freezing_watchdogs(tmp_path: Path, raw: dict[str, Any]) -> None:
    assert load_board().debug.freeze_watchdogs is True
    doc = copy.deepcopy(raw)
    doc.pop("debug")
    assert load_board(write(tmp_path, doc)).debug.freeze_watchdogs is True
    doc["debug"] = {"freeze_watchdogs": False}
    assert load_board(write(tmp_path, doc, "b2.yaml")).debug.freeze_watchdogs is False


def test_dual_bank_active(tmp_path: Path, raw: dict[str, Any]) -> None:
    doc = copy.deepcopy(raw)
    doc["option_bytes"]["nDBANK"] = 0
    spec = load_board(write(tmp_path, doc))
    assert spec.dual_bank and spec.regions["scratch"].sectors == (20, 21, 22, 23)


# ----------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read board file") as err:
        load_board(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nmemory: [1, 2\n")
    with pytest.raises(ConfigError, match=r"malformed YAML: line \d+") as err:
        load_board(path)
    assert str(path) in str(err.value)


def _mutated(raw: dict[str, Any], tmp_path: Path, fn: Any) -> ConfigError:
    doc = copy.deepcopy(raw)
    fn(doc)
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_board(path)
    assert str(path) in str(err.value)
    return err.value


@pytest.mark.parametrize(
    "mutate,key_path,text",
    [
        (lambda d: d.__setitem__("colour", "red"), "colour", "unknown key"),
        (lambda d: d["regions"]["app_slot"].__setitem__("sise", 1), "regions.app_slot.sise", "unknown key"),
        # a region of the user's own is allowed (issue 15), but checked like the others
        (
            lambda d: d["regions"].__setitem__("extra", {"base": 0, "size": 1}),
            "regions.extra",
            "is outside flash",
        ),
        (lambda d: d["contract"]["vtor"].pop("reason"), "contract.vtor.reason", "missing key"),
        (
            lambda d: d["contract"].__setitem__("vtr", {"enabled": True, "reason": "x"}),
            "contract.vtr",
            "unknown key",
        ),
        (
            lambda d: d["regions"]["config"].__setitem__("base", 0x08010000),
            "regions.config",
            "overlaps regions.bootloader",
        ),
        (
            lambda d: d["regions"]["scratch"].update(base=0x08190000, size="256K"),
            "regions.scratch.base",
            "not on a single_bank sector boundary",
        ),
        (
            lambda d: d["regions"]["app_slot"].__setitem__("size", "1000K"),
            "regions.app_slot.size",
            "not on a single_bank sector boundary",
        ),
        (lambda d: d["regions"]["scratch"].__setitem__("size", "1M"), "regions.scratch", "outside flash"),
        (
            lambda d: d["memory"]["flash"].__setitem__("size", "12 parsecs"),
            "memory.flash.size",
            "expected a size",
        ),
        (lambda d: d["memory"]["dtcm"].__setitem__("kind", "sram"), "memory.dtcm.kind", "got 'sram'"),
        (lambda d: d["flash"]["single_bank"][0]["sectors"].pop(), "flash.single_bank", "cover flash exactly"),
        (lambda d: d["ota"].__setitem__("server", "192.168.1.300:5000"), "ota.server", "bad IPv4"),
        (
            lambda d: d["ota"].__setitem__("server", {"ip": "10.0.0.1", "port": 70000}),
            "ota.server.port",
            "1..65535",
        ),
        (
            lambda d: d["targets"]["nucleo"].__setitem__("forward", "1.2.3.4:5"),
            "targets.nucleo.forward",
            "unknown key",
        ),
        (
            lambda d: d["contract"]["msp"].__setitem__("enabled", "yes"),
            "contract.msp.enabled",
            "true or false",
        ),
        (lambda d: d.pop("targets"), "targets", "missing key"),
        (lambda d: d["option_bytes"].__setitem__("nDBANK", 2), "option_bytes.nDBANK", "0..1"),
        (
            lambda d: d["debug"].__setitem__("freeze_watchdogs", "yes"),
            "debug.freeze_watchdogs",
            "true or false",
        ),
        (lambda d: d["debug"].__setitem__("freeze_iwdg", True), "debug.freeze_iwdg", "unknown key"),
    ],
)
def test_bad_board_names_key_path(
    raw: dict[str, Any], tmp_path: Path, mutate: Any, key_path: str, text: str
) -> None:
    err = _mutated(raw, tmp_path, mutate)
    assert err.key_path == key_path
    assert text in str(err)


def test_region_off_boundary_in_inactive_layout_only_fails_on_use(
    raw: dict[str, Any], tmp_path: Path
) -> None:
    doc = copy.deepcopy(raw)
    # a 32K config in single-bank S2 (0x08010000) ends in the middle of dual-bank S4 (64K)
    doc["regions"] = {
        "bootloader": {"base": 0x08000000, "size": "32K"},
        "config": {"base": 0x08010000, "size": "32K"},
        "app_slot": {"base": 0x08040000, "size": "1280K"},
        "scratch": {"base": 0x08180000, "size": "512K"},
    }
    spec = load_board(write(tmp_path, doc))
    assert spec.regions["config"].sectors == (2,)
    with pytest.raises(ConfigError, match=r"regions\.config\.size.*dual_bank sector boundary"):
        spec.layout(True)


def test_parse_board_top_level_not_mapping() -> None:
    with pytest.raises(ConfigError, match="<string>: <top>: got list"):
        parse_board("- 1\n- 2\n")


def test_addresses_as_hex_strings_and_sizes_with_suffixes(tmp_path: Path, raw: dict[str, Any]) -> None:
    doc = copy.deepcopy(raw)
    doc["memory"]["dtcm"].update(base="0x20000000", size="0x20000")
    doc["regions"]["scratch"].update(base="0x08180000", size="0.5M")
    spec = load_board(write(tmp_path, doc))
    assert (spec.memory["dtcm"].base, spec.memory["dtcm"].size) == (0x20000000, 128 * K)
    assert spec.regions["scratch"].size == 512 * K


def test_every_problem_is_listed_and_the_first_explained() -> None:
    doc = yaml.safe_load(default_board_path().read_text())
    doc["option_bytes"]["nDBANK"] = "two"
    doc["contract"]["msp"]["enabled"] = "yes"
    with pytest.raises(ConfigError) as err:
        parse_board(yaml.safe_dump(doc), "b.yaml")
    assert err.value.key_path == "option_bytes.nDBANK"
    assert "got 'two' (expected an integer (decimal or 0x hex))" in str(err.value)
    assert "(fix: see docs/board-file.md; 1 more key(s) to fix: contract.msp.enabled)" in str(err.value)
    # an unknown key is named first: a misspelt key is why the right one is missing
    doc["targets"]["twin"]["colour"] = "red"
    with pytest.raises(ConfigError) as err:
        parse_board(yaml.safe_dump(doc), "b.yaml")
    assert err.value.key_path == "targets.twin.colour" and "unknown key" in str(err.value)
    assert "2 more key(s) to fix: option_bytes.nDBANK, contract.msp.enabled" in str(err.value)


def test_strict_types_nothing_coerced(raw: dict[str, Any]) -> None:
    for mutate, key_path, text in [
        (lambda d: d["memory"]["dtcm"].__setitem__("base", True), "memory.dtcm.base", "got True"),
        (lambda d: d["memory"]["dtcm"].__setitem__("base", 1.5), "memory.dtcm.base", "expected an integer"),
        (
            lambda d: d["regions"]["config"].__setitem__("ota_writable", 1),
            "regions.config.ota_writable",
            "true or false",
        ),
        (lambda d: d.__setitem__("name", ""), "name", "non-empty string"),
        (lambda d: d.__setitem__("memory", {}), "memory", "a non-empty mapping"),
        (
            lambda d: d["flash"]["single_bank"][0].__setitem__("sectors", []),
            "flash.single_bank[0].sectors",
            "non-empty list",
        ),
        (lambda d: d["memory"]["dtcm"].__setitem__("kind", "sram"), "memory.dtcm.kind", "'ram'"),
        (
            lambda d: d["ota"].__setitem__("server", {"ip": "10.0.0.1", "prot": 1}),
            "ota.server.prot",
            "one of ip, port",
        ),
    ]:
        doc = copy.deepcopy(raw)
        mutate(doc)
        with pytest.raises(ConfigError) as err:
            parse_board(yaml.safe_dump(doc))
        assert err.value.key_path == key_path and text in str(err.value), str(err.value)


def test_snb_must_fit_five_bits(raw: dict[str, Any]) -> None:
    doc = copy.deepcopy(raw)
    doc["flash"]["dual_bank"][1]["snb"] = 0x18
    with pytest.raises(ConfigError, match=r"12 sectors need SNB 0x18\.\.0x23.*expected snb <= 0x14") as err:
        parse_board(yaml.safe_dump(doc))
    assert err.value.key_path == "flash.dual_bank[1].snb"


def test_swd_frequency(raw: dict[str, Any]) -> None:
    assert load_board().targets["nucleo"].swd_frequency is None
    doc = copy.deepcopy(raw)
    doc["targets"]["nucleo"]["swd_frequency"] = 4_000_000
    assert parse_board(yaml.safe_dump(doc)).targets["nucleo"].swd_frequency == 4_000_000
    doc["targets"]["nucleo"]["swd_frequency"] = 10
    with pytest.raises(ConfigError, match=r"got 10 \(expected an integer in 1000\.\.100000000\)"):
        parse_board(yaml.safe_dump(doc))


def test_empty_target_is_every_default_and_null_is_refused(raw: dict[str, Any]) -> None:
    doc = copy.deepcopy(raw)
    doc["targets"] = {"twin": {}}
    spec = parse_board(yaml.safe_dump(doc))
    assert set(spec.targets) == {"twin"} and spec.targets["twin"].pyocd_target == "stm32f767zi"
    doc["targets"] = {"twin": None}
    with pytest.raises(ConfigError, match=r"targets\.twin: got null \(expected the target's keys, or \{\}"):
        parse_board(yaml.safe_dump(doc))
