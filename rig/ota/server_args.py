"""The OTA server's checks of its arguments (the image it may serve, the address it may
listen on) and its listening socket (:class:`rig.ota.server.OtaServer`)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from rig.errors import ConfigError, ImageError, OtaError


def load_image_arg(image: bytes | str | Path, max_size: int | None) -> bytes:
    """The image bytes (read from a path); OtaError if unreadable, empty or over ``max_size``."""
    if isinstance(image, (str, Path)):
        from rig.image import MAX_BIN, read_image_file

        try:  # a regular file only (a FIFO would block), at most MAX_BIN bytes
            image = read_image_file(image, MAX_BIN)
        except ImageError as exc:
            raise OtaError(f"cannot read image: {exc.message}", reason="image", hint=exc.hint) from None
    data = bytes(image)
    if not data:
        raise OtaError(
            "the image is empty; FILE_SIZE must be >= 1",
            reason="image",
            hint="build the application .bin first",
        )
    if max_size is not None and len(data) > max_size:
        raise OtaError(
            f"image is {len(data)} bytes, larger than the board's slot "
            f"({max_size} bytes, {len(data) - max_size} too many)",
            reason="too_large",
            hint="shrink the application or serve it to a "
            "board with a larger app slot (boards/*.yaml regions)",
        )
    return data


def check_bind(bind: str) -> str:
    """``bind`` as a numeric address; ConfigError for all interfaces or a name."""
    if bind in ("", "0.0.0.0", "::", "*"):
        raise ConfigError(
            f"refusing to listen on all interfaces ({bind!r})",
            source="bind",
            hint="bind 127.0.0.1 (twin) or the lab interface's own address, e.g. 192.168.1.10",
        )
    try:
        return str(ipaddress.ip_address(bind))
    except ValueError:
        if bind == "localhost":
            return "127.0.0.1"
        raise ConfigError(
            f"bind address {bind!r} is not an IP address",
            source="bind",
            hint="pass the numeric address of the lab interface, e.g. 192.168.1.10",
        ) from None


def open_listener(bind: str, port: int) -> socket.socket:
    """A non-blocking TCP listener on ``bind``:``port`` (SO_REUSEADDR); OtaError naming the
    fix if the address is taken or not this host's."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        lsock.bind((bind, port))
    except OSError as exc:
        lsock.close()
        raise OtaError(
            f"cannot listen on {bind}:{port}: {exc.strerror}",
            reason="bind",
            hint="another OTA server (or process) uses that port: stop it, or pass "
            "port=0 for a free one; a lab address must belong to this host",
        ) from None
    lsock.listen(4)
    lsock.setblocking(False)
    return lsock
