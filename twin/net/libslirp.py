"""ctypes binding of libslirp (QEMU's user-mode network engine; Debian package libslirp0).

Written from the public header ``slirp/libslirp.h`` of libslirp 4.7 (SlirpConfig up to
version 4, SlirpCb with ``timer_new_opaque``). No compiled extension: the shared library
is opened with :func:`load`, which raises :class:`LibslirpMissing` naming the package to
install when it is absent.

Owns: the C structures, callback types and function prototypes. Must not touch: threads,
frames, the twin. Every call into the library must happen on one thread (libslirp is not
thread-safe); ``twin.net.slirp`` keeps that rule.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import sys

#: the Debian package that provides the library
PACKAGE = "libslirp0"
#: sonames tried in order
SONAMES = ("libslirp.so.0", "libslirp.so")

SLIRP_CONFIG_VERSION = 4
SLIRP_POLL_IN, SLIRP_POLL_OUT, SLIRP_POLL_PRI, SLIRP_POLL_ERR, SLIRP_POLL_HUP = 1, 2, 4, 8, 16


class LibslirpMissing(OSError):
    """libslirp cannot be loaded (not installed, or too old)."""


class InAddr(ctypes.Structure):
    """``struct in_addr``: an IPv4 address in network byte order."""

    _fields_ = [("s_addr", ctypes.c_uint32)]


class In6Addr(ctypes.Structure):
    """``struct in6_addr`` (16 bytes, 4-byte aligned)."""

    _fields_ = [("s6_addr32", ctypes.c_uint32 * 4)]


class SlirpConfig(ctypes.Structure):
    """``SlirpConfig`` of libslirp.h, fields of versions 1 to 4."""

    _fields_ = [
        ("version", ctypes.c_uint32),
        # version 1
        ("restricted", ctypes.c_int),
        ("in_enabled", ctypes.c_bool),
        ("vnetwork", InAddr),
        ("vnetmask", InAddr),
        ("vhost", InAddr),
        ("in6_enabled", ctypes.c_bool),
        ("vprefix_addr6", In6Addr),
        ("vprefix_len", ctypes.c_uint8),
        ("vhost6", In6Addr),
        ("vhostname", ctypes.c_char_p),
        ("tftp_server_name", ctypes.c_char_p),
        ("tftp_path", ctypes.c_char_p),
        ("bootfile", ctypes.c_char_p),
        ("vdhcp_start", InAddr),
        ("vnameserver", InAddr),
        ("vnameserver6", In6Addr),
        ("vdnssearch", ctypes.POINTER(ctypes.c_char_p)),
        ("vdomainname", ctypes.c_char_p),
        ("if_mtu", ctypes.c_size_t),
        ("if_mru", ctypes.c_size_t),
        ("disable_host_loopback", ctypes.c_bool),
        ("enable_emu", ctypes.c_bool),
        # version 2
        ("outbound_addr", ctypes.c_void_p),
        ("outbound_addr6", ctypes.c_void_p),
        # version 3
        ("disable_dns", ctypes.c_bool),
        # version 4
        ("disable_dhcp", ctypes.c_bool),
    ]


# typedef ssize_t (*SlirpWriteCb)(const void *buf, size_t len, void *opaque);
WRITE_CB = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
GUEST_ERROR_CB = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
CLOCK_GET_NS_CB = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
#: typedef void (*SlirpTimerCb)(void *opaque); handed to us by timer_new, called when due
TIMER_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
TIMER_NEW_CB = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
TIMER_FREE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
TIMER_MOD_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
POLL_FD_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
NOTIFY_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
INIT_COMPLETED_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
TIMER_NEW_OPAQUE_CB = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# typedef int (*SlirpAddPollCb)(int fd, int events, void *opaque);
ADD_POLL_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
# typedef int (*SlirpGetREventsCb)(int idx, void *opaque);
GET_REVENTS_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class SlirpCb(ctypes.Structure):
    """``SlirpCb`` of libslirp.h (with the version-4 fields)."""

    _fields_ = [
        ("send_packet", WRITE_CB),
        ("guest_error", GUEST_ERROR_CB),
        ("clock_get_ns", CLOCK_GET_NS_CB),
        ("timer_new", TIMER_NEW_CB),
        ("timer_free", TIMER_FREE_CB),
        ("timer_mod", TIMER_MOD_CB),
        ("register_poll_fd", POLL_FD_CB),
        ("unregister_poll_fd", POLL_FD_CB),
        ("notify", NOTIFY_CB),
        ("init_completed", INIT_COMPLETED_CB),
        ("timer_new_opaque", TIMER_NEW_OPAQUE_CB),
    ]


def in_addr(ip: str) -> InAddr:
    """``struct in_addr`` of a dotted quad."""
    return InAddr(int.from_bytes(socket.inet_aton(str(ipaddress.IPv4Address(ip))), sys.byteorder))


_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "slirp_new": (ctypes.c_void_p, [ctypes.POINTER(SlirpConfig), ctypes.POINTER(SlirpCb), ctypes.c_void_p]),
    "slirp_cleanup": (None, [ctypes.c_void_p]),
    "slirp_pollfds_fill": (
        None,
        [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ADD_POLL_CB, ctypes.c_void_p],
    ),
    "slirp_pollfds_poll": (None, [ctypes.c_void_p, ctypes.c_int, GET_REVENTS_CB, ctypes.c_void_p]),
    "slirp_input": (None, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]),
    "slirp_handle_timer": (None, [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]),
    "slirp_add_hostfwd": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_int, InAddr, ctypes.c_int, InAddr, ctypes.c_int],
    ),
    "slirp_remove_hostfwd": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, InAddr, ctypes.c_int]),
    "slirp_connection_info": (ctypes.c_void_p, [ctypes.c_void_p]),
    "slirp_version_string": (ctypes.c_char_p, []),
}

#: the loaded library, once :func:`load` succeeded
_cache: dict[str, ctypes.CDLL] = {}


def _open(names: tuple[str, ...]) -> ctypes.CDLL:
    """Open the first loadable soname (the seam tests replace)."""
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise OSError("; ".join(errors))


def load() -> ctypes.CDLL:
    """The library with its prototypes set (cached). Raises :class:`LibslirpMissing`."""
    if "lib" in _cache:
        return _cache["lib"]
    try:
        lib = _open(SONAMES)
    except OSError as exc:
        raise LibslirpMissing(
            f"libslirp, the twin's Ethernet network engine, is not installed ({exc}); "
            f"install the Debian package {PACKAGE} (apt-get install {PACKAGE}) or run scripts/setup"
        ) from exc
    try:
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
    except AttributeError as exc:
        raise LibslirpMissing(
            f"the installed libslirp is too old ({exc}); the twin needs libslirp 4.x: "
            f"install the Debian package {PACKAGE} (apt-get install {PACKAGE})"
        ) from exc
    _cache["lib"] = lib
    return lib


def version() -> str:
    """The loaded library's version string, e.g. ``4.7.0``."""
    return load().slirp_version_string().decode()


def take_string(lib: ctypes.CDLL, ptr: int | None) -> str:
    """Copy a string libslirp allocated with g_malloc, then free it (g_free is free())."""
    if not ptr:
        return ""
    text = ctypes.string_at(ptr).decode(errors="replace")
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(ptr)
    return text
