"""Image sizes at the edges, where sector counts, tails and length checks go wrong.

Sizes on a sector boundary and one byte either side, tails that are not whole words (nor
half-words, double words, 16-byte flash words, 1024-byte receives, 1400-byte WINC chunks),
the largest image the slot takes and one byte more (refused before anything is erased),
a 1-byte image. Every image is the 16 KiB reference app padded deterministically
(:func:`rig.image.make_padded_app`), so it boots and prints the same banner whatever its
size.

Each size runs over one transport (the classes do not depend on it; tails that meet the
WINC's 1400-byte chunks run over WiFi), so the whole set covers both without the full
product; with ``--transport eth`` or ``wifi`` every case runs over that one. Which class
each case covers: docs/hil-suite.md. Before each update the board holds a *different*
image in the app slot and in the staging region, as after the OTA that brought it, so a
sector the bootloader forgets to erase still holds old data and shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rig.errors import PhaseFailure
from rig.image import Image, make_padded_app

KIB = 1024


@dataclass(frozen=True)
class Edge:
    """One edge case: its size from the app slot's sector size, the transport it runs over
    when both are chosen, and the classes it covers."""

    size: Callable[[int], int]
    links: tuple[str, ...]
    covers: str
    slow: bool = False


EDGES = {
    "1-sector": Edge(lambda s: s, ("eth",), "exactly one sector; ends on a sector boundary"),
    "1-sector-minus-1": Edge(
        lambda s: s - 1, ("eth",), "a sector boundary -1 byte; odd: a 3-byte tail (not a multiple of 2 or 4)"
    ),
    "1-sector-plus-1": Edge(
        lambda s: s + 1,
        ("wifi",),
        "a sector boundary +1 byte: the last byte alone in the next sector; a 1-byte tail",
    ),
    "2-sectors": Edge(
        lambda s: 2 * s, ("eth",), "exactly two sectors (the largest image on this board)", slow=True
    ),
    "tail-2": Edge(lambda s: 16 * KIB + 1026, ("wifi",), "a multiple of 2, not of 4: a 2-byte tail"),
    "tail-4": Edge(lambda s: 16 * KIB + 1028, ("eth",), "a multiple of 4, not of 8 (a 64-bit flash word)"),
    "tail-8": Edge(lambda s: 16 * KIB + 1032, ("wifi",), "a multiple of 8, not of 16 (a 128-bit flash word)"),
    "winc-chunks": Edge(
        lambda s: 12 * 1400,
        ("wifi",),
        "a whole number of 1400-byte WINC chunks; a multiple of 16, not of 1024",
    ),
}


def _links(config: pytest.Config) -> list[str]:
    """The chosen transports the bootloader has (board file ``ota.transports``); the size
    classes do not depend on the transport, so a case assigned to one it lacks runs over
    another."""
    from rig.fixtures.plugin import rig_options_of, transports_skipped

    skipped = transports_skipped(config)
    return [t for t in rig_options_of(config).transports if t not in skipped]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``link`` (the transport) and ``edge``: each edge over its own transport(s) when both
    are chosen, else over the chosen one; tests without ``edge`` run over every chosen one."""
    if "link" not in metafunc.fixturenames:
        return
    chosen = _links(metafunc.config)
    skip: list[pytest.MarkDecorator] = []
    if not chosen:  # every chosen transport is one the bootloader lacks
        from rig.fixtures.plugin import rig_options_of, transports_skipped

        skip = [pytest.mark.skip(reason="; ".join(transports_skipped(metafunc.config).values()))]
        chosen = list(rig_options_of(metafunc.config).transports)
    if "edge" not in metafunc.fixturenames:
        metafunc.parametrize("link", [pytest.param(t, id=t, marks=skip) for t in chosen])
        return
    params = []
    for name, edge in EDGES.items():
        links = [t for t in edge.links if t in chosen] or chosen[:1]
        marks = [*skip, pytest.mark.slow] if edge.slow else skip
        params += [pytest.param(t, name, id=f"{t}-{name}", marks=marks) for t in links]
    metafunc.parametrize("link,edge", params)


def _sector(spec) -> int:
    """Size of the app slot's first sector (on this board 256 KiB, as the staging region's)."""
    return spec.active_layout.sector(spec.region(spec.ota.app_region).sectors[0]).size


def _fail(bench, ev, phase: str, message: str) -> PhaseFailure:
    ev.phase, ev.message = phase, message
    ev.uart = bench.console.text()[-20000:]
    return PhaseFailure(phase, message, evidence=ev)


def test_edge_size_update(flashed_bench, apps, board_spec, link, edge, evidence) -> None:
    size = EDGES[edge].size(_sector(board_spec))
    image = make_padded_app(apps["16k"], size, seed=size % 9973)
    previous = apps["300k"] if size > 64 * KIB else apps["64k"]
    evidence.scenario.update(scenario=f"edge size {edge}", image_size=size, covers=EDGES[edge].covers)
    flashed_bench.install_app_direct(previous, link, staged=True)
    flashed_bench.update(image, evidence, transport=link)


def _refused_as(bench, result, reason: str) -> bool:
    """The NACK names ``reason`` — or the protocol's NACK carries no reason (the forum
    thread's bare ``NACK``): then any refusal counts."""
    if not getattr(bench.protocol, "nack_reasons", True):
        return True
    return (result.nack_reason or "").startswith(reason)


def _staging_marks(bench, spec) -> dict[int, bytes]:
    """Write a marker at the start of every staging sector; return address -> marker."""
    region = spec.region(spec.ota.staging_region)
    marks = {}
    for index in region.sectors:
        base = spec.active_layout.sector(index).base
        marks[base] = f"edge-mark {index:02d} ".encode().ljust(16, b".")
        bench.write_flash("staging mark", base, marks[base])
    return marks


def test_oversize_refused_before_erasing(flashed_bench, apps, board_spec, link, evidence) -> None:
    bench = flashed_bench
    largest = board_spec.max_image_size
    big = make_padded_app(apps["16k"], largest + 1, seed=11)
    evidence.scenario.update(scenario="oversize: the largest image + 1 byte", image_size=big.size)
    old = apps["64k"]
    bench.install_app_direct(old, link)
    marks = _staging_marks(bench, board_spec)
    # the host check is switched off so the *board* must refuse
    result = bench.run_update(big, evidence, transport=link, expect="any", server_max_size=None)
    if not (result.outcome == "nack" and _refused_as(bench, result, "too_large")):
        raise _fail(
            bench,
            evidence,
            "transfer",
            f"an image of {big.size} bytes, one more than the {largest} the slot takes, must be "
            f"refused with NACK:too_large; the session ended {result.outcome}: {result.reason}",
        )
    bench.probe.halt()
    erased = [f"0x{a:08X}" for a, m in marks.items() if bench.readback(a, len(m)) != m]
    if erased:
        raise _fail(
            bench,
            evidence,
            "write",
            f"the board refused the image (NACK:too_large) but only after erasing the staging "
            f"sector(s) at {', '.join(erased)}: an oversize image must be refused before "
            "anything is erased",
        )
    bench.old_app_survives(old, evidence, transport=link)


def test_one_byte_image(flashed_bench, apps, board_spec, link, evidence) -> None:
    """A 1-byte image is legal on the wire (FILE_SIZE >= 1) but holds no vector table: the
    board either refuses it before erasing (NACK:bad_size, the old app keeps running) or
    stores it byte-exact and then never enters it, asking for an update instead."""
    bench = flashed_bench
    app = board_spec.region(board_spec.ota.app_region)
    tiny = Image(b"\x5a", app.base)
    old = apps["64k"]
    evidence.scenario.update(scenario="edge size 1 byte", image_size=1)
    bench.install_app_direct(old, link, staged=True)
    result = bench.run_update(tiny, evidence, transport=link, expect="any")
    if result.outcome == "nack" and _refused_as(bench, result, "bad_size"):
        bench.old_app_survives(old, evidence, transport=link)
        return
    if not result.ok:
        raise bench.session_failure(tiny, evidence, result, old)
    # ACK: it installs the byte and resets by itself; then it must ask again, not jump
    again = bench.reset_and_refuse(evidence, wait=30.0, reset=False)
    bench.probe.halt()
    if again.phase in ("connect", "request"):
        raise _fail(
            bench,
            evidence,
            "boot",
            f"after installing a 1-byte image the bootloader never asked for an update again "
            f"({again.reason}): an image without a vector table must not be entered",
        )
    check = bench.check_region(evidence, board_spec.ota.app_region, tiny.data, phase="copy")
    bench.installed = None
    if not check.analysis.ok:
        raise _fail(bench, evidence, "copy", "the 1-byte image was not stored: " + check.analysis.summary())
    bench.probe.resume()
