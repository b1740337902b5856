"""The mismatch table: one row per 16-byte flash line that holds differing bytes.

A row spans the first to the last differing byte of its line (bytes in between that happen
to match show XOR ``00``), so 2 MiB of scattered errors give at most 131 072 rows. The first
rows go inline; :func:`write_mismatch_files` writes every row as CSV and JSON.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup

from rig.report._html import num, render

if TYPE_CHECKING:
    from rig.board import FlashLayout
    from rig.evidence import RegionCheck

LINE = 16
#: Rows shown inline in the HTML (the files hold all of them).
INLINE_ROWS = 100
#: Of those, rows shown unfolded (the others sit in a closed <details>).
VISIBLE_ROWS = 20
COLUMNS = ("address", "length", "differing", "bank", "sector", "region", "check", "expected", "actual", "xor")


@dataclass
class CheckArrays:
    """One :class:`RegionCheck` as numpy arrays (compared part only) and its differing offsets."""

    check: RegionCheck
    a: np.ndarray
    b: np.ndarray
    idx: np.ndarray  #: offsets of differing bytes
    missing: int  #: expected bytes with no readback

    @classmethod
    def of(cls, check: RegionCheck) -> CheckArrays:
        a = np.frombuffer(bytes(check.expected), dtype=np.uint8)
        b = np.frombuffer(bytes(check.actual), dtype=np.uint8)
        n = min(a.size, b.size)
        a, b = a[:n], b[:n]
        return cls(check, a, b, np.flatnonzero(a != b), int(len(check.expected) - n))

    @property
    def base(self) -> int:
        return self.check.base

    @property
    def length(self) -> int:
        return int(self.a.size)


def arrays_for(checks: Sequence[RegionCheck]) -> list[CheckArrays]:
    """Arrays for every check, in address order."""
    return sorted((CheckArrays.of(c) for c in checks), key=lambda c: c.base)


@dataclass
class LineRows:
    """The mismatch rows of one check: first/last differing offset and count per line."""

    arrays: CheckArrays
    first: np.ndarray
    last: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, arr: CheckArrays) -> LineRows:
        idx = arr.idx
        if idx.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(arr, empty, empty, empty)
        line = (idx + arr.base) // LINE
        brk = np.flatnonzero(np.diff(line)) + 1
        starts = np.concatenate(([0], brk))
        ends = np.concatenate((brk, [idx.size]))
        return cls(arr, idx[starts], idx[ends - 1], ends - starts)

    def __len__(self) -> int:
        return int(self.first.size)


class Locator:
    """Bank, sector and OTA region of addresses, vectorised over a layout."""

    def __init__(self, layout: FlashLayout | None) -> None:
        self.layout = layout
        if layout is not None:
            self.bases = np.array([s.base for s in layout.sectors], dtype=np.int64)
            self.ends = np.array([s.end for s in layout.sectors], dtype=np.int64)

    def sectors(self, addrs: np.ndarray) -> tuple[list[str], list[str]]:
        """(bank, sector) labels per address ('' outside the flash or without a layout)."""
        if self.layout is None or addrs.size == 0:
            return [""] * int(addrs.size), [""] * int(addrs.size)
        pos = np.searchsorted(self.bases, addrs, side="right") - 1
        inside = (pos >= 0) & (addrs < self.ends[np.clip(pos, 0, None)])
        secs = self.layout.sectors
        banks = [str(secs[p].bank) if ok else "" for p, ok in zip(pos.tolist(), inside.tolist(), strict=True)]
        names = [
            str(secs[p].index) if ok else "" for p, ok in zip(pos.tolist(), inside.tolist(), strict=True)
        ]
        return banks, names

    def regions(self, addrs: np.ndarray, fallback: str) -> list[str]:
        """OTA region name per address (``fallback`` where no region holds it)."""
        out = np.full(addrs.size, -1)
        regs = list(self.layout.regions.values()) if self.layout is not None else []
        for k, reg in enumerate(regs):
            out[(addrs >= reg.base) & (addrs < reg.end)] = k
        return [regs[k].name if k >= 0 else fallback for k in out.tolist()]


def iter_rows(
    rows: Sequence[LineRows], locator: Locator, limit: int | None = None, chunk: int = 4096
) -> Iterator[tuple[Any, ...]]:
    """Yield row tuples in :data:`COLUMNS` order (hex strings with spaces), at most ``limit``."""
    left = limit if limit is not None else sum(len(r) for r in rows)
    for lr in rows:
        arr = lr.arrays
        a_bytes, b_bytes = arr.a.tobytes(), arr.b.tobytes()
        x_bytes = (arr.a ^ arr.b).tobytes()
        for lo in range(0, len(lr), chunk):
            if left <= 0:
                return
            hi = min(len(lr), lo + chunk, lo + left)
            first, last, count = lr.first[lo:hi], lr.last[lo:hi], lr.count[lo:hi]
            addrs = first + arr.base
            banks, secs = locator.sectors(addrs)
            regs = locator.regions(addrs, arr.check.name)
            for i, (f, e, c) in enumerate(
                zip(first.tolist(), (last + 1).tolist(), count.tolist(), strict=True)
            ):
                yield (
                    arr.base + f,
                    e - f,
                    c,
                    banks[i],
                    secs[i],
                    regs[i],
                    arr.check.name,
                    a_bytes[f:e].hex(" "),
                    b_bytes[f:e].hex(" "),
                    x_bytes[f:e].hex(" "),
                )
            left -= hi - lo


def write_mismatch_files(
    rows: Sequence[LineRows], locator: Locator, directory: Path, stem: str = "mismatches"
) -> tuple[Path, Path]:
    """Write every row as ``<stem>.csv`` and ``<stem>.json`` in ``directory``; return both paths.

    The JSON is ``{"columns": [...], "total_rows": N, "checks": [...], "rows": [[...], ...]}``
    (rows as arrays in column order, addresses as integers).
    """
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = directory / f"{stem}.csv", directory / f"{stem}.json"
    total = sum(len(r) for r in rows)
    with (
        csv_path.open("w", newline="", encoding="utf-8") as fh_csv,
        json_path.open("w", encoding="utf-8") as fh_json,
    ):
        w = csv.writer(fh_csv)
        w.writerow(COLUMNS)
        checks = [
            {
                "check": r.arrays.check.name,
                "base": r.arrays.base,
                "length": r.arrays.length,
                "differing": int(r.arrays.idx.size),
                "missing": r.arrays.missing,
                "rows": len(r),
            }
            for r in rows
        ]
        fh_json.write(
            '{"columns": '
            + json.dumps(list(COLUMNS))
            + f', "total_rows": {total}, "checks": '
            + json.dumps(checks)
            + ', "rows": ['
        )
        sep = "\n"
        for row in iter_rows(rows, locator):
            w.writerow((f"0x{row[0]:08X}", *row[1:]))
            fh_json.write(sep + json.dumps(row))
            sep = ",\n"
        fh_json.write("\n]}\n")
    return csv_path, json_path


#: one byte of a hex cell: its two hex digits and whether it is highlighted
ByteCell = tuple[str, bool]


def _bytes_cells(exp: str, act: str, xor: str) -> tuple[list[ByteCell], list[ByteCell], list[ByteCell]]:
    """Expected/actual/XOR bytes of one row; differing bytes are hot (XOR: matching ones are muted)."""
    e_out, a_out, x_out = [], [], []
    for e, a, x in zip(exp.split(" "), act.split(" "), xor.split(" "), strict=True):
        hot = x != "00"
        e_out.append((e, hot))
        a_out.append((a, hot))
        x_out.append((x, not hot))
    return e_out, a_out, x_out


def mismatch_table(
    rows: Sequence[LineRows],
    locator: Locator,
    files: Sequence[tuple[str, str]] = (),
    limit: int = INLINE_ROWS,
    visible: int = VISIBLE_ROWS,
) -> Markup:
    """The inline table (first ``limit`` rows, the first ``visible`` unfolded) and the full-list links.

    Args:
        files: (label, href) of the full CSV/JSON files.
    """
    total = sum(len(r) for r in rows)
    body = []
    for row in iter_rows(rows, locator, limit):
        addr, length, count, bank, sec, reg, _check, exp, act, xor = row
        where = f"{bank} / {sec}" if sec != "" else "—"
        body.append((addr, count, length, where, reg, *_bytes_cells(exp, act, xor)))
    shown = len(body)
    note = (
        f"{num(sum(int(r.arrays.idx.size) for r in rows))} differing byte(s) on {num(total)} flash line(s) "
        f"of {LINE} bytes; {num(min(visible, shown))} shown, {num(shown)} inline"
        + (", the rest only in the files below." if total > shown else ".")
    )
    return render(
        "mismatches.html",
        total=total,
        first=body[:visible],
        more=body[visible:],
        visible=visible,
        shown=shown,
        note=note,
        missing=sum(r.arrays.missing for r in rows),
        files=files,
    )


def sector_table(arrays: Sequence[CheckArrays], layout: FlashLayout | None = None) -> Markup:
    """Per-sector counts of every check (compared bytes, differing bytes, first/last offset)."""
    rows = []
    for arr in arrays:
        for s in arr.check.analysis.diff.sectors:
            first = "" if s.first_offset is None else f"+0x{s.first_offset:X}"
            last = "" if s.last_offset is None else f"+0x{s.last_offset:X}"
            rows.append((arr.check.name, s, first, last))
    return render("sectors.html", rows=rows)


__all__ = [
    "COLUMNS",
    "INLINE_ROWS",
    "CheckArrays",
    "LineRows",
    "Locator",
    "arrays_for",
    "iter_rows",
    "mismatch_table",
    "sector_table",
    "write_mismatch_files",
]
