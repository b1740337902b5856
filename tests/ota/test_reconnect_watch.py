"""After an ACK the rig watches whether the board dials the OTA server again (its install
failed): rig/ota/reconnect_watch.py on real sockets."""

from __future__ import annotations

import socket
import time

from rig.ota.reconnect_watch import ReconnectWatch, wait_entry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_board_dialling_again_ends_the_wait_at_once() -> None:
    port = _free_port()
    watch = ReconnectWatch("127.0.0.1", port, allow=["127.0.0.1"]).start()
    assert watch.active and not watch.asked_again()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.settimeout(5)
        assert c.recv(1) == b""  # answered with nothing: closed
    t0 = time.monotonic()
    halted, note = wait_entry(lambda: False, 30.0, watch)
    assert not halted and time.monotonic() - t0 < 5
    assert note is not None and "dialled the OTA server again" in note and "127.0.0.1" in note
    assert not watch.active  # closed by wait_entry: the port is free for the next server
    with socket.socket() as s:  # the next OTA server (SO_REUSEADDR, as rig.ota.server sets) binds
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)


def test_peers_outside_the_allow_list_do_not_count() -> None:
    port = _free_port()
    with ReconnectWatch("127.0.0.1", port, allow=["192.168.1.100"]) as watch:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        time.sleep(0.3)
        assert not watch.asked_again()


def test_a_halted_core_or_a_timeout_ends_the_wait_without_a_note() -> None:
    halted, note = wait_entry(lambda: True, 5.0, None)
    assert (halted, note) == (True, None)
    t0 = time.monotonic()
    with ReconnectWatch("127.0.0.1", _free_port()) as watch:
        halted, note = wait_entry(lambda: False, 0.3, watch)
    assert (halted, note) == (False, None) and 0.3 <= time.monotonic() - t0 < 3


def test_an_address_in_use_leaves_the_watch_inactive() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        watch = ReconnectWatch("127.0.0.1", busy.getsockname()[1]).start()
        assert not watch.active
        assert wait_entry(lambda: False, 0.1, watch) == (False, None)
