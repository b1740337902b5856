"""The reference bootloader with its Ethernet TXD1 on PG14 (ST's EVAL and Discovery boards'
wiring; eth_stm32.c ETH_TXD1_PG14=1) on a NUCLEO-F767ZI, whose PHY takes TXD1 from PB13: no
frame it sends reaches the network, so the update never connects, as on the board. The
registers show a valid RMII pin set (PG14 is an F767 TXD1 pin), so the rig's register hint
says nothing; the twin, which knows the NUCLEO's wiring, names the pin, and the rig's failure
hint carries that."""

from __future__ import annotations

import pytest
from fw_build import make
from fw_twin import CONFIG_BASE, board, config_for_app, image

from rig.hil_failure import eth_said, no_connection_hint


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


def test_txd1_on_a_pin_the_nucleo_does_not_wire_sends_nothing_and_the_twin_names_pb13() -> None:
    cfg = config_for_app(b"", update=True, transport="eth")
    with board("bootloader-eth-txd1-pg14", loads=[(cfg, CONFIG_BASE)], ota_image=image("app-v1-16k")) as b:
        b.console.expect(r"BL: update failed: connect failed", timeout=120)
        assert "APP v1" not in b.console.text()
        assert b.server is not None and b.server.sessions_started == 0
        said = eth_said(b.target)
        assert said is not None and "PB13 not in alternate function 11" in said, b.target.log_tail(200)
        # the rig's failure hint (through pyOCD on a board; the control port's reads here)
        hint = no_connection_hint(ControlReads(b.target), "eth", b.target)  # type: ignore[arg-type]
        assert hint == f"; the twin says: {said}", hint
