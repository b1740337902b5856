"""One pcap per OTA session: the server's packet capture, kept out of the server's way.

:class:`SessionPcaps` runs a :class:`rig.capture.Sniffer` on the server's port, writes the
packets of each finished session to ``<dir>/ota-<port>-session<i>-<client port>.pcap`` once
the sniffer has seen every byte the session sent and received (bounded wait), and rewrites
them when the server closes (packets that arrived late). Capture that is not possible here
(no root / CAP_NET_RAW, no such interface) turns it off with the reason in :attr:`error`;
it never fails a session.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.capture import Sniffer
    from rig.ota.session import Session
    from rig.ota.transcript import SessionResult

LOG = logging.getLogger(__name__)


class SessionPcaps:
    """Capture into ``directory`` on ``iface`` (default: the interface owning the bind address)."""

    def __init__(self, directory: Path, iface: str | None = None) -> None:
        self.directory = directory
        self.iface = iface
        #: why capture is off (None while it runs)
        self.error: str | None = None
        self._sniffer: Sniffer | None = None
        self._port = 0

    @property
    def active(self) -> bool:
        """True while the sniffer runs."""
        return self._sniffer is not None

    def start(self, bind: str, port: int) -> None:
        """Sniff the server's ``port``; on failure :attr:`error` says why."""
        from rig.capture import CaptureUnavailable, Sniffer, iface_for_address

        self._port = port
        try:
            iface = self.iface or iface_for_address(bind)
            self._sniffer = Sniffer(port, iface).start()
        except CaptureUnavailable as exc:
            self.error = str(exc)
            self._sniffer = None
            LOG.warning("OTA capture off: %s", exc)

    def path(self, index: int, client_port: int) -> Path:
        """The pcap of session ``index`` from the board's ``client_port``."""
        return self.directory / f"ota-{self._port}-session{index}-{client_port}.pcap"

    def write(self, result: SessionResult, client_port: int, session: Session | None) -> str | None:
        """Write the session's pcap once the sniffer saw its bytes; its path, or None (noted)."""
        from rig.capture import wait_covered

        sniffer = self._sniffer
        if sniffer is None:
            return None
        try:
            down, up = (session.wire_tx, session.wire_rx) if session else (0, 0)
            budget = min(120.0, 5.0 + 0.01 * (session.writes if session else 0))
            if not wait_covered(sniffer, client_port, down, up, timeout=budget):
                result.transcript.note(
                    f"capture incomplete: the sniffer did not see all {down} "
                    f"bytes sent and {up} received within {budget:g} s"
                )
            return str(sniffer.write(self.path(result.index, client_port), client_port))
        except Exception as exc:
            result.transcript.note(f"capture not written: {exc}")
            return None

    def close(self, results: list[SessionResult]) -> None:
        """Stop sniffing and rewrite every session's pcap with the packets seen since."""
        sniffer = self._sniffer
        if sniffer is None:
            return
        sniffer.stop()
        for r in results:
            if r.pcap and r.peer:
                try:
                    sniffer.write(r.pcap, int(r.peer.rsplit(":", 1)[1]))
                except Exception:
                    pass
