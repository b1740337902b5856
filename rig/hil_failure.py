"""Why an OTA session did not end in ACK, in one failure message: what the board said
(after ``NACK:flash`` or ``NACK:crc`` the staging region read back and diagnosed, every CRC
it reported explained: rig/crc_diagnosis.py), whether it crashed (rig/crash_hint.py: the
fault and the faulting instruction) and, when it never connected over Ethernet, what its
registers tell (rig/eth_hint.py); when the console stayed silent, which U(S)ART the firmware
drives (rig/console_hint.py) and what the twin saw.

Owns: the wording of those failures. Must not touch: the session, the flash (reads only).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rig.board_spec import NUCLEO_HSE_HZ, EthSpec, WincSpec
from rig.errors import PhaseFailure, ProbeError
from rig.evidence import Evidence
from rig.hil_evidence import crc_sentences
from rig.image import Image
from rig.ota.transcript import SessionResult
from rig.probe import Probe

if TYPE_CHECKING:
    from rig.hil import Bench


def session_failure(
    bench: Bench,
    image: Image,
    ev: Evidence,
    result: SessionResult,
    staged_before: Image | None = None,
    *,
    rig_ended: bool = False,
) -> PhaseFailure:
    """The failure (phase ``boot`` if the board never connected, else ``transfer``);
    ``rig_ended``: the rig ended the session because the board's core stopped in a fault
    handler (rig/crash_hint.py CrashWatch)."""
    if rig_ended and result.phase == "connect":
        ended = (
            "the rig stopped waiting for the board: its core stopped in a fault handler before it connected"
        )
    elif rig_ended:
        ended = "the rig ended the OTA session: the board's core stopped in a fault handler"
    else:
        ended = f"the OTA session ended with {result.outcome}: {result.reason}"
    message = (
        f"{ended} (protocol phase {result.phase}, {result.bytes_sent} of {image.size} "
        f"bytes sent, policy {result.policy})"
    )
    readbacks: dict[str, tuple[int, bytes]] = {}
    bench.console.wait_quiet()  # the board logs why before it sends the NACK: let that arrive
    if (result.nack_reason or "").startswith(("flash", "crc")):  # the board's data is in flash
        staging = bench.spec.ota.staging_region
        prev = staged_before.data[: image.size].ljust(image.size, b"\xff") if staged_before else None
        check = bench.check_region(ev, staging, image.data, previous=prev, phase="write")
        readbacks[staging] = (check.base, check.actual)
        message += f"; {staging} read back: " + (
            "it holds the image exactly (the board stored it right; its own check disagrees)"
            if check.analysis.ok
            else check.analysis.summary()
        )
    message += "".join(f"; {s}" for s in crc_sentences(bench, image, ev, result, readbacks))
    if result.outcome not in ("ack", "nack"):  # the board went silent: did it crash?
        message += crash_hint(bench.probe, ev, bench.spec.hse_hz)
    if result.phase == "connect" and not rig_ended:  # a crash is the reason
        message += bench.no_connection_hint(ev.scenario.get("transport", ""))
    return bench._fail(ev, "boot" if result.phase == "connect" else "transfer", message)


def crash_hint(probe: Probe, ev: Evidence, hse_hz: int = NUCLEO_HSE_HZ) -> str:
    """ "; the board crashed: ..." when its core sits in a fault handler (the fault evidence
    then goes into the report), else ""."""
    from rig.crash_hint import crashed

    try:
        found = crashed(probe, hse_hz)
    except ProbeError:
        return ""
    if found is None:
        return ""
    text, ev.fault = found
    return f"; {text}"


def no_connection_hint(
    probe: Probe,
    transport: str,
    target: object = None,
    winc: WincSpec | None = None,
    hse_hz: int = NUCLEO_HSE_HZ,
    eth: EthSpec | None = None,
) -> str:
    """Why a board never connected over ``transport``, as far as its registers tell
    (rig/eth_bringup.py: the Ethernet MAC's clocks, RMII selection and pins as the board
    file's ``eth:`` wires them, the NUCLEO's without it, reset, MDC and start; then
    rig/eth_hint.py: Ethernet with the D-cache on; on the twin also its last word on the
    MAC; rig/wifi_hint.py: the SPI, its pins and its clock (from ``hse_hz``, the board's HSE)
    against the board file's ``winc:``) or, over WiFi on the twin, what the twin said about
    the module's wiring (its log); "" if they do not say, else "; " and the sentence."""
    if transport == "wifi":
        from rig.wifi_hint import wiring_mismatch

        try:
            seen = wiring_mismatch(probe.read32, winc, hse_hz)
        except ProbeError:
            seen = None
        said = wiring_said(target)
        return (f"; {seen}" if seen else "") + (f"; the twin says: {said}" if said else "")
    if transport != "eth":
        return ""
    from rig.eth_bringup import bringup_mismatch
    from rig.eth_hint import cached_descriptors

    try:
        hint = bringup_mismatch(probe.read32, hse_hz, eth) or cached_descriptors(probe.read32)
    except ProbeError:
        hint = None
    said = eth_said(target)
    return (f"; {hint}" if hint else "") + (f"; the twin says: {said}" if said else "")


def eth_said(target: object) -> str | None:
    """The twin's last warning about its Ethernet MAC and PHY (RMII pins on the NUCLEO's
    wiring, a MAC reset that cannot complete, MACCR.FES against the PHY's speed, MDC, frames
    sent without a link ...), without the device's name, or None (a real board, or nothing
    said). The PHY's own link and cable events are news, not warnings: left out."""
    said = twin_said(target, "ethmac: ", skip=("ethmac: PHY: link", "ethmac: PHY: cable"))
    return said.split("ethmac: ", 1)[-1] if said is not None else None


def wiring_said(target: object) -> str | None:
    """The twin's last word on the WiFi module's wiring (a log line naming the board file's
    ``winc:`` key: frames on an SPI with nothing on it, or past the module's CS), or None
    (a real board, or nothing said)."""
    return twin_said(target, "(board file: winc.")


def console_said(target: object) -> str | None:
    """The twin's last word on the console's U(S)ART (a log line naming the board file's
    ``console:`` key: bytes sent on a U(S)ART that is not the console, with nothing on its
    pins), or None (a real board, or nothing said). The device's name the twin's log puts
    before it ("usart6: USART6 transmitted ...") is left out."""
    said = twin_said(target, "(board file: console:")
    return re.sub(r"^u(?:s)?art\d: ", "", said) if said is not None else None


def twin_said(target: object, marker: str, skip: tuple[str, ...] = ()) -> str | None:
    """The last line of the twin's log containing ``marker`` and none of ``skip``, without
    its ``[twin t ms]`` stamp, or None (a target without a log, a real board, or no such
    line)."""
    tail = getattr(target, "log_tail", None)
    if tail is None:
        return None
    said = [line for line in tail(400).splitlines() if marker in line and not any(s in line for s in skip)]
    if not said:
        return None
    return said[-1].split("] ", 1)[-1]


def console_silence_hint(
    probe: Probe,
    target: object,
    console_uart: int,
    heard: str = "",
    tx_pin: tuple[str, int, int] | None = None,
    host_baud: int = 115200,
    hse_hz: int = NUCLEO_HSE_HZ,
) -> str:
    """Why the console did not show what the rig waited for, as far as the registers tell
    (rig/console_hint.py, against the board file's ``console:``) and, on the twin, what it
    said about bytes sent on another U(S)ART (its log): "" if neither says anything, else
    "; " and each sentence. First: the console's U(S)ART at another baud rate than the
    host's line (``host_baud``), whatever came. Then, for a console that showed nothing
    (``heard``), why: one that showed anything works (a bootloader that printed and never
    jumped does not need its U(S)ART named)."""
    from rig.console_hint import baud_mismatch, console_mismatch

    try:
        rate = baud_mismatch(probe.read32, console_uart, host_baud, hse_hz)
    except ProbeError:
        rate = None
    if rate:  # (the registers say it on a board as on the twin: the twin's line adds nothing)
        return f"; {rate}"
    if heard.strip():
        return ""

    try:
        seen = console_mismatch(probe.read32, console_uart, tx_pin)
    except ProbeError:
        seen = None
    said = console_said(target)
    return (f"; {seen}" if seen else "") + (f"; the twin says: {said}" if said else "")
