"""A twin reached like a lab board, for the tests of the ``nucleo`` path: its board file (the
lab address it dials carried to a host port, ``listen``; its own address; a relay script as
its ``power: command``, cutting the twin's power through its control port as a lab's script
drives a relay) and the SHA-256 of its whole flash read through its probe."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import yaml

from rig.board import default_board_path
from rig.probe import Probe
from rig.targets.twin import TwinTarget

LAB_IP = "127.0.0.1"  # the host address the lab network carries the board's connections to

#: the lab's relay script: cuts the board's power (here the twin's, through its control port
#: named in $TWIN_CONTROL)
RELAY = """#!{python}
import os, socket, sys
if sys.argv[1] == "off":
    host, port = os.environ["TWIN_CONTROL"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b'{{"cmd": "power.cut", "after_ms": 0}}\\n')
        s.makefile().readline()
"""


def lab_board_file(tmp_path: Path, port: int, *, off_time: float | None = 0.5) -> Path:
    """The shipped board file with the lab's ``listen`` (``LAB_IP:port``), ``board_ip`` and
    banner, and the relay script (``relay.py`` in ``tmp_path``) as its power switch with
    ``off_time`` s off (None: no power switch)."""
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    # the board dials ota.server (192.168.1.10:5000, as shipped); the lab carries it to listen
    doc["targets"]["nucleo"].update(listen=f"{LAB_IP}:{port}", board_ip=LAB_IP, banner=r"BL: [^\r\n]+")
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY.format(python=sys.executable))
    relay.chmod(0o755)
    if off_time is not None:
        doc["power"] = {"command": {"off": "./relay.py off", "on": "./relay.py on"}, "off_time": off_time}
    path = tmp_path / "lab-board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def flash_sha(twin: TwinTarget) -> str:
    """SHA-256 of the twin's 2 MiB of flash, read through its probe."""
    with Probe(twin.probe_uid) as p:
        return hashlib.sha256(p.read(0x08000000, 2 * 1024 * 1024)).hexdigest()
