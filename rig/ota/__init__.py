"""Host side of the OTA update: server, protocols, link policies, transcripts."""

from __future__ import annotations

from rig.ota.framing import Framing, LineFraming, TokenFraming
from rig.ota.policy import POLICY_NAMES, LinkPolicy, Offer, Piece, parse_policy
from rig.ota.protocol import (
    ForumThreadProtocol,
    Protocol,
    ReferenceProtocol,
    ThreadProtocol,
    Verdict,
    load_protocol,
)
from rig.ota.server import OtaServer
from rig.ota.session import Session, SessionEnd, Timeouts
from rig.ota.transcript import SessionResult, Transcript

__all__ = [
    "POLICY_NAMES",
    "ForumThreadProtocol",
    "Framing",
    "LineFraming",
    "LinkPolicy",
    "Offer",
    "OtaServer",
    "Piece",
    "Protocol",
    "ReferenceProtocol",
    "Session",
    "SessionEnd",
    "SessionResult",
    "ThreadProtocol",
    "Timeouts",
    "TokenFraming",
    "Transcript",
    "Verdict",
    "load_protocol",
    "parse_policy",
]
