"""Phase `flash`/`boot`: the programmed bootloader is what the core runs from reset, and it runs.

The ``probe`` fixture already enforced the option bytes (nDBANK, BOOT_ADD0, RDP) and the
``flashed_bench`` fixture the readback of the image; this test checks what they do not: the
image is a bootloader for this board (vector table), the core really starts it from reset,
it comes up and asks for an update, and running it changes neither its own flash (the whole
region, compared with a readback taken before) nor the option bytes.
"""

from __future__ import annotations

from rig.image import validate_for_slot

#: seconds a bootloader may take from reset to its first REQ_FW (transport bring-up included)
ASK_TIMEOUT = 15.0
#: FLASH_OPTCR bits that are not option bytes: OPTLOCK (bit 0), OPTSTRT (bit 1) (RM0410 3.7.6 FLASH_OPTCR)
OPTCR_CONTROL_BITS = 0b11


def test_bootloader_boots_from_reset_and_asks_for_update(
    flashed_bench, bootloader_image, transport, evidence
) -> None:
    bench, image = flashed_bench, bootloader_image
    evidence.scenario.update(scenario="bootloader from reset", image_size=image.size)

    problems = validate_for_slot(image, bench.spec, "bootloader")
    assert not problems, "; ".join(p.message for p in problems)
    before = bench.probe.option_bytes()
    bench.guard_flash()  # every byte outside the OTA-writable regions, the whole bootloader region included

    # reset and halt before the first instruction: the core took its vectors from this image
    bench.probe.reset(halt=True)
    regs = bench.probe.registers(["pc", "msp"])
    assert regs["pc"] == image.reset_handler & ~1, (
        f"after reset the core is at 0x{regs['pc']:08X}, not at the bootloader's reset "
        f"handler 0x{image.reset_handler & ~1:08X}"
    )
    assert regs["msp"] == image.initial_sp, (
        f"after reset MSP=0x{regs['msp']:08X}, not the bootloader's initial SP 0x{image.initial_sp:08X}"
    )

    # it runs: asked to update, it connects and sends REQ_FW (the server refuses the image)
    bench.request_update(transport)
    session = bench.reset_and_refuse(evidence, wait=ASK_TIMEOUT)
    if session.phase in ("connect", "request"):
        hint = bench.no_connection_hint(transport) if session.phase == "connect" else ""
        raise bench._fail(
            evidence,
            "boot",
            f"the bootloader never asked for an update over {transport} within {ASK_TIMEOUT:g} s: "
            f"{session.reason}{hint}\n{session.to_text()}",
        )
    assert not session.ok, session.to_text()

    # running it wrote neither its own region (nor any flash outside the OTA regions) nor the option bytes
    bench.probe.halt()
    bench.check_guarded(evidence)
    after = bench.probe.option_bytes()
    assert (after.optcr & ~OPTCR_CONTROL_BITS, after.optcr1) == (
        before.optcr & ~OPTCR_CONTROL_BITS,
        before.optcr1,
    ), (
        f"option bytes changed: OPTCR 0x{before.optcr:08X} -> 0x{after.optcr:08X}, OPTCR1 0x{before.optcr1:08X} -> 0x{after.optcr1:08X}"
    )
    bench.probe.resume()
