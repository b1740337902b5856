"""A bootloader whose WiFi module is wired otherwise than the thread's shield (SPI3 on DMA1,
SCK/MISO/MOSI PC10/PC11/PC12 in AF6, CS PA4, IRQN PG2, RESET_N PG3, CHIP_EN PE2:
drivers/winc_port_stm32.c WINC_WIRING=2): with the board file saying so (``winc:``) the
twin is wired the same way and the update over WiFi works; on the shield's wiring the module
never answers, as on a board whose module sits elsewhere, and the twin says where the frames
went (the rig puts that in the failure). And the shield's bootloader with its MOSI pin (PB5)
left in SPI3's alternate function 6 (WINC_MOSI_AF=6): the module receives nothing, as on the
board, and both the twin and the rig's register reads say which pin."""

from __future__ import annotations

import copy

import pytest
import yaml
from fw_build import make
from fw_twin import CONFIG_BASE, board, config_for_app, image

from rig.board import default_board_path, parse_board
from rig.hil_failure import wiring_said
from rig.targets.twin import board_args
from rig.wifi_hint import wiring_mismatch

WIRING = {
    "spi": 3,
    "cs": "PA4",
    "irqn": "PG2",
    "reset_n": "PG3",
    "chip_en": "PE2",
    "sck": "PC10",
    "miso": "PC11",
    "mosi": "PC12",
    "af": 6,
}


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    make(
        "build/bootloader-winc-spi3.bin",
        "build/bootloader-winc-mosi-af6.bin",
        "build/app-v1-16k.bin",
        timeout=1200,
    )


def _args(winc: dict[str, object] | None) -> list[str]:
    doc = yaml.safe_load(default_board_path().read_text())
    doc = copy.deepcopy(doc)
    if winc is not None:
        doc["winc"] = winc
    return board_args(parse_board(yaml.safe_dump(doc)))


def _wifi_update(winc: dict[str, object] | None, bootloader: str = "bootloader-winc-spi3", log_dir=None):
    """The SPI3 bootloader (or ``bootloader``) asked for an update over WiFi, on a twin
    started the way the board file (with ``winc`` as its ``winc:``) says."""
    cfg = config_for_app(b"", update=True, transport="wifi")
    return board(
        bootloader,
        loads=[(cfg, CONFIG_BASE)],
        ota_image=image("app-v1-16k"),
        extra_args=_args(winc),
        log_dir=log_dir,  # its own log: the harness's shared one holds other twins' lines
    )


def test_the_board_files_wiring_lets_the_update_over_wifi_through() -> None:
    with _wifi_update(WIRING) as b:
        b.console.expect(r"WINC: chip 0x3400d2 .* SPI DMA", timeout=60)
        b.console.expect(r"APP v1 build", timeout=240)
        assert b.server.wait_session(10).outcome == "ack"


def test_on_the_shields_wiring_the_module_never_answers(tmp_path) -> None:
    with _wifi_update(None, log_dir=tmp_path) as b:
        b.console.expect(r"WINC: no answer on SPI", timeout=60)
        b.console.expect(r"BL: wifi init failed", timeout=10)
        assert "APP v1" not in b.console.text()
        # what the rig adds to the failure (rig/hil_failure.py): the twin saw SPI3 clock into nothing
        said = wiring_said(b.target)
        assert said is not None and "nothing wired to SPI3" in said and "winc.spi: 3" in said, said


def test_a_mosi_pin_in_spi3s_alternate_function_leaves_the_module_deaf(tmp_path) -> None:
    with _wifi_update(None, "bootloader-winc-mosi-af6", log_dir=tmp_path) as b:
        b.console.expect(r"WINC: no answer on SPI", timeout=60)
        assert "APP v1" not in b.console.text()
        said = wiring_said(b.target)
        assert said is not None, b.target.log_tail(400)
        assert "SPI1 MOSI is PB5, which is alternate function 6, not alternate function 5" in said, said
        assert "GPIO_AF5_SPI1" in said and "(board file: winc.mosi" in said, said

        # the rig's own reading of the registers (as through a board's probe) names the pin too
        def read32(address: int) -> int:
            reply = b.target.control("read", address=address, length=4)
            return int.from_bytes(bytes.fromhex(str(reply["hex"])), "little")

        seen = wiring_mismatch(read32, None)
        assert seen is not None and "MOSI PB5" in seen and "alternate function 6" in seen, seen
