"""Every link policy of the OTA server against the bootloader, over each transport.

Segmentation policies must not matter to a correct bootloader (TCP is a byte stream);
fault policies must never leave a half-written app that gets started: the old app stays
intact and bootable, or the bootloader keeps waiting.
"""

from __future__ import annotations

import pytest

SEGMENTATION = [
    "natural",
    "per-message",
    "glued",
    "split-tokens",
    "tiny:size=7",
    "random:seed=7,max=300",
    "pause:ms=20",
]
FAULTS = {
    "drop-at:byte=4096": "connection dropped mid-image",
    "rst-at:byte=8192": "connection reset mid-image",
    "corrupt:offsets=100,5000": "two bytes corrupted on the way",
    "wrong-crc": "FILE_CRC does not match the image",
    "truncate:bytes=1000": "image cut short",
    "wrong-size:delta=-10": "FILE_SIZE smaller than the image",
    "wrong-size:size=0": "FILE_SIZE:0, as when the size was never parsed",
    "stall:after=2048": "server stalls mid-image",
}


@pytest.mark.parametrize("policy", SEGMENTATION)
def test_segmentation_does_not_matter(flashed_bench, apps, transport, policy, evidence) -> None:
    evidence.scenario.update(scenario=f"policy {policy}")
    flashed_bench.update(
        apps["16k"], evidence, transport=transport, policy=policy, previous=apps["64k"], capture=True
    )
    cap = evidence.capture
    if cap is None:  # the update passed, but what this test is about needs the capture
        why = next((n for n in evidence.notes if n.startswith("no packet capture")), "no packet capture")
        pytest.skip(
            f"{why}: the update passed but the policy's segment boundaries were not checked "
            "on the wire (needs root or CAP_NET_RAW)"
        )
    assert "analysis" in cap, cap.get("error")
    sizes = cap["analysis"]["sizes_down"]
    assert sum(sizes) >= apps["16k"].size, cap["summary"]
    if policy.startswith("tiny"):  # the policy really happened on the wire
        assert max(sizes) <= 7, cap["summary"]
    if policy == "split-tokens":
        assert all(t["segments"] >= 2 for t in cap["analysis"]["tokens"] if t["dir"] == "down"), cap[
            "summary"
        ]


#: faults a protocol can only notice with a CRC of the image, or with one or something after the data
NEEDS_CRC = {"corrupt:offsets=100,5000", "wrong-crc"}
NEEDS_CRC_OR_END = {"wrong-size:delta=-10"}


def undetectable(protocol, policy: str) -> str | None:
    """Why the protocol cannot let any board notice this fault (a skip reason), or None."""
    what = protocol.describe()
    if policy in NEEDS_CRC and not protocol.crc:
        return f"the {what} protocol announces no CRC of the image: no board can notice {FAULTS[policy]}"
    if policy in NEEDS_CRC_OR_END and not (protocol.crc or protocol.end_marker):
        return (
            f"the {what} protocol has no CRC and nothing after the data: a board that counts "
            f"FILE_SIZE bytes cannot notice {FAULTS[policy]}"
        )
    return None


@pytest.mark.parametrize("policy", list(FAULTS), ids=list(FAULTS))
def test_faulty_link_keeps_old_app(flashed_bench, apps, transport, policy, evidence) -> None:
    why = undetectable(flashed_bench.protocol, policy)
    if why:
        pytest.skip(f"{why} (a limit of the protocol, not of the bootloader)")
    evidence.scenario.update(scenario=f"fault {policy}", fault=FAULTS[policy])
    old, new = apps["64k"], apps["16k"]
    flashed_bench.install_app_direct(old, transport)
    result = flashed_bench.run_update(
        new, evidence, transport=transport, policy=policy, expect="any", timeout=90
    )
    flashed_bench.expect_refused(result, evidence, FAULTS[policy])
    flashed_bench.old_app_survives(old, evidence, transport=transport)
