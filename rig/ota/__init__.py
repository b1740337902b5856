"""Host side of the OTA update: server, protocols, link policies, transcripts."""

from __future__ import annotations

from rig.ota.policy import POLICY_NAMES, LinkPolicy, Offer, Piece, parse_policy
from rig.ota.protocol import Protocol, ThreadProtocol, Verdict
from rig.ota.server import OtaServer
from rig.ota.session import Session, SessionEnd, Timeouts
from rig.ota.transcript import SessionResult, Transcript

__all__ = [
    "POLICY_NAMES",
    "LinkPolicy",
    "Offer",
    "OtaServer",
    "Piece",
    "Protocol",
    "Session",
    "SessionEnd",
    "SessionResult",
    "ThreadProtocol",
    "Timeouts",
    "Transcript",
    "Verdict",
    "parse_policy",
]
