"""rig/targets/twin.py free_port: the OTA server's port is free and outside the range the
kernel hands to outgoing connections (one such connection once took it between two tests)."""

from __future__ import annotations

import os
import random
import socket

from rig.targets import twin


def test_port_is_free_and_below_the_ephemeral_range(tmp_path, monkeypatch) -> None:
    ranges = tmp_path / "range"
    ranges.write_text("32768\t60999\n")
    monkeypatch.setattr(twin, "EPHEMERAL_RANGE", ranges)
    ports = {twin.free_port(rng=random.Random(seed)) for seed in range(20)}
    assert all(10000 <= p < 32768 for p in ports)
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # free


def test_a_taken_port_is_skipped(tmp_path, monkeypatch) -> None:
    ranges = tmp_path / "range"
    ranges.write_text("32768 60999")
    monkeypatch.setattr(twin, "EPHEMERAL_RANGE", ranges)
    first = twin.free_port(rng=random.Random(7))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        again = twin.free_port(rng=random.Random(7))  # the same first pick, now taken
    assert again != first and 10000 <= again < 32768


def test_without_a_known_range_the_kernel_chooses(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(twin, "EPHEMERAL_RANGE", tmp_path / "absent")
    port = twin.free_port()
    assert 0 < port < 65536


def test_two_twins_starting_at_once_never_get_the_same_port(tmp_path, monkeypatch) -> None:
    """A free port is not enough: the OTA server listens on it only while a test runs, so
    two processes picking at once could both find it free (two twins got 30956 in a CI
    run). The lease (a lock file per port) makes the second pick another port until the
    first is given back."""
    ranges = tmp_path / "range"
    ranges.write_text("32768 60999")
    monkeypatch.setattr(twin, "EPHEMERAL_RANGE", ranges)
    monkeypatch.setattr(twin, "PORT_LOCKS", tmp_path / "locks")
    first = twin.free_port(rng=random.Random(7))
    holder = twin._LEASES.pop(first)  # from here on "another process" holds that lease
    try:
        again = twin.free_port(rng=random.Random(7))  # the same first pick, nothing bound on it
        assert again != first
        twin.release_port(again)
    finally:
        os.close(holder)  # the holder stops: its lock goes with its descriptor
    assert twin.free_port(rng=random.Random(7)) == first
    twin.release_port(first)
