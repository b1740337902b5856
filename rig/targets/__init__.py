"""Targets: one connected board = probe + console + network endpoint.

``twin`` starts the virtual board and reads its start-up line; ``nucleo`` finds a real
NUCLEO-F767ZI by probe UID and its virtual COM port by USB serial number. Everything
above this layer sees only :class:`rig.targets.base.Target`.
"""

from __future__ import annotations

from rig.targets.base import Target

__all__ = ["Target"]
