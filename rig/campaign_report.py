"""The power-cut campaign's outputs: JSON, the HTML matrix, the progress bar, app banners.

``campaign.json`` holds everything (settings, seed, operation classes, counts, every point
with its verdict, the bricked ones with their diagnosis and console log); ``campaign.html``
shows the counts, a table per operation class × outcome, each bricked point with both flash
diffs and its console, and the matrix of every point (operation index × outcome). The HTML
goes through the report's jinja2 environment (rig/report/_html.py: everything escaped).

Owns: the outputs' formats. Must not touch: the board.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from rig.errors import RigError

if TYPE_CHECKING:
    from rig.campaign import Campaign
    from rig.image import Image

#: rows of the per-point matrix in the HTML (the JSON has them all)
MAX_ROWS = 5000


def banner_of(image: Image) -> str:
    """The regex of the banner ``image`` prints (the reference app header)."""
    from rig.hil import app_header

    hdr = app_header(image)
    if hdr is None:
        raise RigError(
            f"{image.path}: no reference app header (firmware/include/app_header.h): the campaign "
            "recognises a running application by the banner the header names",
            hint="build the apps with the reference header",
        )
    return hdr.banner


def write_reports(camp: Campaign, out_dir: Path) -> list[Path]:
    """Write campaign.json and campaign.html into ``out_dir``; return their paths."""
    from rig.report._html import render

    out_dir.mkdir(parents=True, exist_ok=True)
    doc = camp.to_dict()
    js = out_dir / "campaign.json"
    js.write_text(json.dumps(doc, indent=1))
    per_class: dict[str, Counter[str]] = {}
    ops = camp.ops
    for r in camp.results:
        name = ops[r.op].op_class if r.op < len(ops) else "after-last"
        per_class.setdefault(name, Counter())[r.outcome] += 1
    classes = [(name, n, dict(per_class.get(name, {}))) for name, n in camp.classes().items()]
    classes.append(("after-last", 0, dict(per_class.get("after-last", {}))))
    rows = [
        (r.op, r.mode, r.kind, f"0x{r.address:08X}", r.region, r.why, r.outcome, r.then)
        for r in sorted(camp.results, key=lambda r: (r.outcome != "bricked", r.op))[:MAX_ROWS]
    ]
    css = resources.files("rig.report").joinpath("templates/report.css").read_text()
    css += ".o-bricked{background:#f8c0c0}.o-re-asked{background:#fff0b0}"
    css += ".o-recovered-new{background:#c8f0c8}.o-recovered-old{background:#d0e0ff}"
    page = render("campaign.html", c=doc, classes=classes, rows=rows, outcomes=tuple(doc["counts"]), css=css)
    html = out_dir / "campaign.html"
    html.write_text(str(page))
    return [js, html]


@contextmanager
def progress_bar(total: int, *, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on the terminal (points done, points/s, bricked so far); the
    yielded function is called with each point's outcome. Nothing drawn without a terminal
    (rig.progress decides) or when not ``enabled``."""
    from rig import progress as prog

    stream = prog.open_terminal() if enabled and prog.wanted() else None
    if stream is None:
        yield lambda outcome: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    t0, bricked = time.monotonic(), [0]
    cols = (
        TextColumn("[bold]power-cut campaign"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} points/s, bricked {task.fields[bricked]}"),
        TimeRemainingColumn(),
    )
    with stream, Progress(*cols, console=Console(file=stream, force_terminal=True)) as bar:
        task = bar.add_task("campaign", total=total, rate="-", bricked=0)

        def advance(outcome: str) -> None:
            bricked[0] += outcome == "bricked"
            rate = f"{(bar.tasks[0].completed + 1) / max(1e-6, time.monotonic() - t0):.1f}"
            bar.update(task, advance=1, rate=rate, bricked=bricked[0])

        yield advance
