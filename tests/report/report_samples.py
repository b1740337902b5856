"""Evidence built from real parts for the report tests (rig.diff.analyze, rig.board.load_board, check_jump)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from rig.board import load_board
from rig.diff import analyze
from rig.evidence import Evidence, FaultInfo, RegionCheck
from rig.image import Image
from rig.jump import JumpState, check_jump

HOSTILE_UART = (
    "bootloader v1.2\r\nOTA_READY\r\n<script>alert('pwned')</script>\r\n"
    '<img src=x onerror=alert(2)> & "quotes"\r\njumping to app @0x08040000\r\n'
)
APP_BASE = 0x08040000
SP = 0x20080000


def app_image(size: int, seed: int) -> Image:
    """A pseudo-random app of ``size`` bytes at the app slot with a plausible vector table."""
    rng = np.random.default_rng(seed)
    data = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    struct.pack_into("<II", data, 0, SP, APP_BASE + 0x201)
    # a few real Thumb instructions at the reset handler: push {r7, lr}; movs r0, #1; bl ...; b .
    data[0x200:0x208] = bytes.fromhex("80b5 0120 fee7 7047".replace(" ", ""))
    return Image(bytes(data), APP_BASE)


def never_erased_evidence(tmp: Path | None = None, *, uart: str = HOSTILE_UART) -> Evidence:
    """Sector 6 programmed without an erase, the tail never written, and a jump that faulted."""
    spec = load_board()
    layout = spec.active_layout
    image = app_image(600 * 1024, seed=1)
    previous = app_image(600 * 1024, seed=2).data
    exp = np.frombuffer(image.data, dtype=np.uint8)
    act = exp.copy()
    s6 = layout.sector(6)
    lo, hi = s6.base - APP_BASE, s6.end - APP_BASE
    act[lo:hi] = exp[lo:hi] & np.frombuffer(previous, dtype=np.uint8)[lo:hi]
    act[-8192:] = 0xFF
    actual = act.tobytes()
    analysis = analyze(image.data, actual, APP_BASE, layout, previous=previous)
    check = RegionCheck("app_slot", APP_BASE, image.data, actual, analysis, previous=previous, phase="copy")

    pc = s6.base + 0x1234
    state = JumpState(
        vtor=0x08000000,
        msp=0x2007FF00,
        pc=pc,
        lr=0xFFFFFFF9,
        xpsr=0x01000003,
        nvic_iser=[0x80, 0, 0, 0, 0, 0, 0, 0],
        systick_ctrl=0x7,
        cfsr=0x00010000,
        hfsr=0x40000000,
    )
    verdict = check_jump(state, image, spec.contract, app_base=APP_BASE)
    code_base = (pc - 64) & ~1
    off = code_base - APP_BASE
    fault = FaultInfo(
        pc=pc,
        state="lockup",
        registers={
            "cfsr": 0x00010000,
            "hfsr": 0x40000000,
            "mmfar": 0xE000EDF8,
            "bfar": 0xE000EDF8,
            "xpsr": 0x01000003,
            "lr": 0xFFFFFFF9,
            "msp": 0x2007FFE0,
        },
        code_base=code_base,
        code=actual[off : off + 128],
    )
    ev = Evidence(
        test_id="tests_hil/test_ota.py::test_update[eth-600K-never_erased]",
        scenario={
            "transport": "eth",
            "image_size": len(image.data),
            "scenario": "update",
            "variant": "bl_no_erase",
        },
        layout=layout,
        phase="copy",
        message="app slot differs from the image: sector 6 was programmed without an erase",
        regions=[check],
        jump_state=state,
        jump=verdict,
        fault=fault,
        uart=uart,
        transcript={
            "outcome": "ack",
            "reason": "",
            "bytes_sent": len(image.data),
            "policy": "plain",
            "transcript": {
                "peer": "127.0.0.1:40000",
                "events": [
                    {"t": 0.0, "dir": "rx", "kind": "msg", "text": "REQ_FW", "nbytes": 7},
                    {"t": 0.01, "dir": "tx", "kind": "msg", "text": "FILE_SIZE:614400<b>", "nbytes": 18},
                    {"t": 0.02, "dir": "tx", "kind": "data", "text": "", "nbytes": 614400, "offset": 0},
                    {"t": 1.50, "dir": "rx", "kind": "msg", "text": "OTA_DONE", "nbytes": 9},
                ],
            },
        },
        capture={
            "pcap": str((tmp or Path("/nonexistent")) / "ota.pcap"),
            "analysis": {
                "port": 5000,
                "client_port": 40000,
                "retransmissions": 0,
                "sizes_down": [1460] * 100,
                "tokens": [{"dir": "down", "text": "FILE_SIZE:614400", "start": 0, "end": 17, "segments": 1}],
                "segments": [
                    {
                        "index": i,
                        "time": i * 0.001,
                        "dir": "down",
                        "offset": i * 1460,
                        "length": 1460,
                        "flags": "PA",
                        "retransmission": False,
                    }
                    for i in range(100)
                ],
            },
        },
        timings={"flash": 0.8, "boot": 0.3, "transfer": 1.5, "write": 0.9, "copy": 0.6, "jump": 0.1},
        notes=["bootloader variant: bl_no_erase (skips the sector erase before the copy)"],
    )
    return ev


def passing_evidence() -> Evidence:
    """An update where everything matches and the jump contract holds."""
    spec = load_board()
    layout = spec.active_layout
    image = app_image(200 * 1024, seed=3)
    analysis = analyze(image.data, image.data, APP_BASE, layout)
    state = JumpState(vtor=APP_BASE, msp=SP, pc=APP_BASE + 0x200, xpsr=0x01000000)
    return Evidence(
        test_id="tests_hil/test_ota.py::test_update[wifi-200K-plain]",
        scenario={"transport": "wifi", "image_size": len(image.data), "scenario": "update"},
        layout=layout,
        regions=[RegionCheck("app_slot", APP_BASE, image.data, image.data, analysis)],
        jump_state=state,
        jump=check_jump(state, image, spec.contract, app_base=APP_BASE),
        uart="boot ok\napp v2 running\n",
        timings={"transfer": 1.2, "copy": 0.4},
    )


def random_evidence(size: int = 2 * 1024 * 1024, seed: int = 5) -> Evidence:
    """2 MiB (default) of random expected vs random actual bytes over the whole flash."""
    spec = load_board()
    layout = spec.active_layout
    rng = np.random.default_rng(seed)
    exp = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    act = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    analysis = analyze(exp, act, layout.base, layout)
    return Evidence(
        test_id="random",
        layout=layout,
        phase="write",
        message="random flash",
        regions=[RegionCheck("flash", layout.base, exp, act, analysis)],
    )
