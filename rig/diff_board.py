"""The board as ``rig diff`` needs it when the two images match, without importing the board
file's schema (pydantic and the validated spec cost ``rig diff`` a tenth of a second).

The first ``rig diff`` with a board file parses it with :func:`rig.board.load_board` and keeps
what a clean comparison uses (the board's name, the flash span, each bank mode's sector table)
in ``$XDG_CACHE_HOME/ota-rig`` (default ``~/.cache/ota-rig``), keyed by a SHA-256 of the
file's bytes, its path and the board code's files (their size and mtime). Later runs read that
snapshot; anything unusual (no snapshot, a file that changed, an unwritable cache) takes the
full path. Set ``OTA_RIG_NO_CACHE=1`` to never read or write it. Images that differ always
get the validated spec (:func:`full_spec`): the diagnosis uses regions and more.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.board_sector import Sector
from rig.errors import RigError

if TYPE_CHECKING:
    from rig.board import BoardSpec

#: bump when the snapshot's content changes
VERSION = 1
_CODE = (
    "board.py",
    "board_spec.py",
    "board_schema.py",
    "board_schema_wiring.py",
    "board_types.py",
    "board_update.py",
    "board_yaml.py",
)


@dataclass(frozen=True)
class LiteLayout:
    """A bank mode's sector table (``mode`` as :attr:`rig.board.FlashLayout.mode`)."""

    mode: str
    sectors: tuple[Sector, ...]


@dataclass(frozen=True)
class LiteBoard:
    """The snapshot: ``source`` as :attr:`rig.board.BoardSpec.source`, the flash span and the
    layouts by ``dual_bank`` argument (``None``: the board's own mode)."""

    source: str
    flash_base: int
    flash_size: int
    layouts: dict[bool | None, LiteLayout]

    def in_flash(self, base: int, size: int) -> bool:
        """True if ``[base, base+size)`` lies in the flash (else the full check names why not)."""
        return self.flash_base <= base and base + size <= self.flash_base + self.flash_size


def board_path(path: Path | None) -> Path:
    """The board file ``rig diff`` reads (:func:`rig.board.default_board_path` without its imports)."""
    if path is not None:
        return path
    from importlib.resources import files

    return Path(str(files("rig.boards").joinpath("stm32f767.yaml")))


def _cache_file(path: Path) -> Path | None:
    """Where the snapshot of ``path`` in its current content lives, or None (cache off, unreadable)."""
    if os.environ.get("OTA_RIG_NO_CACHE"):
        return None
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        key = hashlib.sha256(f"v{VERSION}\0{path}\0".encode())
        key.update(path.read_bytes())
        here = Path(__file__).resolve().parent
        for name in _CODE:
            st = (here / name).stat()
            key.update(f"\0{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    except OSError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ota-rig"
    return root / f"diff-board-{key.hexdigest()[:32]}.json"


def cached(path: Path | None) -> LiteBoard | None:
    """The snapshot of the board file, or None if there is none for its current content."""
    file = _cache_file(board_path(path))
    if file is None:
        return None
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        layouts = {
            _mode_key(k): LiteLayout(v["mode"], tuple(Sector(*s) for s in v["sectors"]))
            for k, v in doc["layouts"].items()
        }
        return LiteBoard(str(doc["source"]), int(doc["flash"][0]), int(doc["flash"][1]), layouts)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def full_spec(path: Path | None) -> BoardSpec:
    """The validated board (:func:`rig.board.load_board`); its snapshot saved for the next run."""
    from rig.board import load_board

    spec = load_board(path)
    try:
        _save(board_path(path), spec)
    except OSError:  # a cache that cannot be written is no error of the diff
        pass
    return spec


def _mode_key(key: str) -> bool | None:
    return {"board": None, "single": False, "dual": True}[key]


def _save(path: Path, spec: BoardSpec) -> None:
    file = _cache_file(path)
    if file is None or spec.source != str(path):
        return
    layouts: dict[str, Any] = {}
    for key, dual in (("board", None), ("single", False), ("dual", True)):
        try:
            lay = spec.layout(dual)
        except RigError:  # a mode the board does not have: not in the snapshot
            continue
        layouts[key] = {
            "mode": lay.mode,
            "sectors": [[s.index, s.bank, s.snb, s.base, s.size] for s in lay.sectors],
        }
    doc = {"source": spec.source, "flash": [spec.flash.base, spec.flash.size], "layouts": layouts}
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, file)
