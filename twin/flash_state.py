"""The flash's persistent state on disk (``python -m twin --state DIR``).

``flash.bin`` holds the 2 MiB array, ``option-bytes.json`` the option bytes (OPTCR,
OPTCR1). Both are written atomically (a temporary file, then a rename), at exit and on
each ``power_cycle``.

Owns: the file names and formats. Must not touch: the controller's registers (it hands
the option bytes back to :meth:`twin.flash.FlashController.load_state`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from twin.memory import FLASH_SIZE


def save(directory: str | os.PathLike, array: memoryview, optcr: int, optcr1: int) -> None:
    """Write flash.bin and option-bytes.json into ``directory`` (atomically)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "flash.bin.tmp"
    tmp.write_bytes(array.tobytes())
    os.replace(tmp, d / "flash.bin")
    tmp = d / "option-bytes.json.tmp"
    tmp.write_text(json.dumps({"optcr": optcr, "optcr1": optcr1}))
    os.replace(tmp, d / "option-bytes.json")


def load(directory: str | os.PathLike, array: memoryview) -> tuple[bool, tuple[int, int] | None]:
    """Fill ``array`` from flash.bin if present; return (anything loaded, (OPTCR, OPTCR1)
    from option-bytes.json or None). ValueError if flash.bin has the wrong size."""
    d = Path(directory)
    loaded = False
    fb = d / "flash.bin"
    if fb.is_file():
        data = fb.read_bytes()
        if len(data) != FLASH_SIZE:
            raise ValueError(f"{fb}: size {len(data)} is not {FLASH_SIZE} bytes")
        array[:] = data
        loaded = True
    options = None
    ob = d / "option-bytes.json"
    if ob.is_file():
        doc = json.loads(ob.read_text())
        options = (int(doc["optcr"]), int(doc["optcr1"]))
        loaded = True
    return loaded, options
