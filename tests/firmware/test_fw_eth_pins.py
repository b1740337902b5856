"""The reference bootloader with its Ethernet TXD1 on PG14 (ST's EVAL and Discovery boards'
wiring; eth_stm32.c ETH_TXD1_PG14=1). On a NUCLEO-F767ZI, whose PHY takes TXD1 from PB13, no
frame it sends reaches the network, so the update never connects, as on the board; the twin
names the pin and the rig's failure hint carries that (the registers show nothing by then:
the bootloader switches its MAC off after the failure). With the board file saying that the
board wires TXD1 to PG14 (``eth: {txd1: PG14}``), the twin is wired the same way and the
update over Ethernet goes through."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fw_build import make
from fw_twin import CONFIG_BASE, board, config_for_app, image

from rig.board import default_board_path, parse_board
from rig.hil_failure import eth_said, no_connection_hint
from rig.targets.twin import board_args


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    make("build/bootloader-eth-txd1-pg14.bin", "build/app-v1-16k.bin", timeout=1200)


class ControlReads:
    """read32 through the twin's control port (what the probe would read)."""

    def __init__(self, target) -> None:
        self.target = target

    def read32(self, address: int) -> int:
        reply = self.target.control("read", address=address, length=4)
        return int.from_bytes(bytes.fromhex(str(reply["hex"])), "little")


def test_txd1_on_a_pin_the_nucleo_does_not_wire_sends_nothing_and_the_twin_names_pb13(tmp_path: Path) -> None:
    cfg = config_for_app(b"", update=True, transport="eth")
    app = image("app-v1-16k")
    # a log of its own (the harness's shared one holds other twins' lines)
    with board("bootloader-eth-txd1-pg14", loads=[(cfg, CONFIG_BASE)], ota_image=app, log_dir=tmp_path) as b:
        b.console.expect(r"BL: update failed: connect failed", timeout=120)
        assert "APP v1" not in b.console.text()
        assert b.server is not None and b.server.sessions_started == 0
        said = eth_said(b.target)
        assert said is not None and "PB13 not in alternate function 11" in said, b.target.log_tail(200)
        # the rig's failure hint (through pyOCD on a board; the control port's reads here)
        hint = no_connection_hint(ControlReads(b.target), "eth", b.target)  # type: ignore[arg-type]
        assert hint == f"; the twin says: {said}", hint


def test_with_the_board_files_eth_wiring_the_update_goes_through(tmp_path: Path) -> None:
    doc = yaml.safe_load(default_board_path().read_text())
    doc["eth"] = {"txd1": "PG14"}
    args = board_args(parse_board(yaml.safe_dump(doc)))
    assert "--eth-wiring" in args
    cfg = config_for_app(b"", update=True, transport="eth")
    app = image("app-v1-16k")
    loads = [(cfg, CONFIG_BASE)]
    with board(
        "bootloader-eth-txd1-pg14", loads=loads, ota_image=app, extra_args=args, log_dir=tmp_path
    ) as b:
        b.console.expect(r"APP v1 build", timeout=240)
        assert b.server is not None and b.server.wait_session(10).outcome == "ack"
        assert eth_said(b.target) is None, b.target.log_tail(200)
