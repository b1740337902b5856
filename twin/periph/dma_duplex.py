"""DMA2 serving a full-duplex peripheral's RX/TX stream pair in blocks (SPI1 by DMA).

Item by item, a TX stream writing SPI1_DR clocks one frame, which raises SPI1_RX, and
the RX stream (when it wins the arbitration) reads it back before the next TX item: TX,
RX, TX, RX ... Each item is a register access through the bus-master port in Python
(about 25 µs a byte in all). :func:`duplex_segment` moves ``m`` such pairs at once when
the outcome is provably the same as ``m`` single items:

* the peripheral registered the pair (:meth:`DmaController.duplex`) and its ``exchange(tx)``
  accepts the block (it returns None when its state would make items behave otherwise:
  frames not 8 bits, a FIFO not empty, interrupts enabled, ...);
* exactly one enabled stream answers each line, both byte-wide (PSIZE = MSIZE = byte),
  SxPAR on the register, no PINC, empty stream FIFOs; no other stream is requested;
* the RX stream wins the arbitration against the TX stream (else TX items come first
  and the FIFO overruns, which the item path models);
* the TX source and the RX destination do not overlap (item order would matter).

``m`` = min(both NDTRs, half the item budget left), so a segment never passes a
transfer-complete: circular reload, double-buffer switch, TCIF/HTIF and EN come from the
same counting code as single items (:meth:`DmaController.count` with ``n``). The TX block is one
bus read (a BusError there: nothing happened, the item path takes over and raises it at
its item); the RX block is one bus write. A write the port refuses is replayed byte by
byte: the RX stream stops with TEIF at the failing item, and the frames after it go
into the peripheral's RX FIFO (``unread``) as they would with the RX stream gone.

Owns: the block transfer of a registered pair. Must not touch: the streams' registers
beyond what the counting code does, the peripheral's state (its callables do that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twin.device import BusError
from twin.periph.dma_stream import M2P, MINC, P2M, PINC, Stream

if TYPE_CHECKING:
    from twin.periph.dma import DmaController


class DuplexPair:
    """A peripheral's register whose TX item produces the RX item at once (SPI DR)."""

    __slots__ = ("address", "exchange", "rx_line", "tx_line", "unread")

    def __init__(
        self,
        rx_line: str,
        tx_line: str,
        address: int,
        exchange: Callable[[bytes], bytes | None],
        unread: Callable[[bytes], None],
    ) -> None:
        self.rx_line, self.tx_line, self.address = rx_line, tx_line, address
        self.exchange, self.unread = exchange, unread


def _byte_stream(s: Stream, address: int) -> bool:
    cr = s.cr
    return (
        s.pptr == address
        and not cr & PINC
        and (cr >> 11) & 3 == 0  # PSIZE byte
        and s.msize == 1
        and not s.fifo
    )


def _pick(dma: DmaController, s: Stream) -> tuple[DuplexPair, Stream] | None:
    """The pair ``s`` is the TX stream of, and its RX stream, when a block may run."""
    for pair in dma.pairs:
        if s.direction != M2P or not _byte_stream(s, pair.address):
            continue
        if dma.lines.get(pair.rx_line, False) or not dma.lines.get(pair.tx_line, False):
            continue
        if not dma.line_serves(pair.tx_line, s):
            continue
        rx = None
        for other in dma.streams:
            if other is s or not other.enabled:
                continue
            if dma.line_serves(pair.rx_line, other):
                if rx is not None:
                    return None  # two streams on the RX line: the item path arbitrates
                rx = other
            elif dma.line_serves(pair.tx_line, other) or dma.requested(other):
                return None
        if rx is None or rx.direction != P2M or not _byte_stream(rx, pair.address):
            return None
        if (rx.priority, -rx.index) < (s.priority, -s.index):
            return None  # TX items win: the RX FIFO overruns (item path)
        return pair, rx
    return None


def duplex_segment(dma: DmaController, s: Stream, budget: int) -> int:
    """Serve up to ``budget`` items of the pair ``s`` transmits for; the items served
    (0: nothing done, serve ``s`` by single items)."""
    found = _pick(dma, s)
    if found is None:
        return 0
    pair, rx = found
    m = min(rx.ndtr, s.ndtr, budget // 2)
    if m <= 0:
        return 0
    tx_minc, rx_minc = s.cr & MINC, rx.cr & MINC
    src_end = s.mptr + (m if tx_minc else 1)
    dst_end = rx.mptr + (m if rx_minc else 1)
    if s.mptr < dst_end and rx.mptr < src_end:
        return 0  # the TX source overlaps the RX destination: item order matters
    port = dma.port()
    try:
        data = port.read(s.mptr, m) if tx_minc else port.read(s.mptr, 1) * m
    except BusError:
        return 0
    got = pair.exchange(data)
    if got is None:
        return 0
    if tx_minc:
        s.mptr += m
    dma.count(s, m)
    return _store(dma, pair, rx, got, m, port)


def _store(dma: DmaController, pair: DuplexPair, rx: Stream, got: bytes, m: int, port) -> int:
    """Write the received block as the RX items would; returns the items served."""
    try:
        if rx.cr & MINC:
            port.write(rx.mptr, got)
            rx.mptr += m
        else:
            port.write(rx.mptr, got[-1:])
        dma.count(rx, m)
        return 2 * m
    except BusError:
        pass
    # replay: item k's write fails, the RX stream stops there (TEIF); frames k+1.. stay
    # in the peripheral (its FIFO, then overrun), as with the RX stream disabled
    for k in range(m):
        try:
            port.write(rx.mptr, got[k : k + 1])
        except BusError as exc:
            if k:
                dma.count(rx, k)
            dma.transfer_error(rx, exc)
            pair.unread(got[k + 1 :])
            return m + k + 1
        if rx.cr & MINC:
            rx.mptr += 1
    dma.count(rx, m)  # pragma: no cover - the block write failed, single bytes did not
    return 2 * m
