"""The board lock (rig.probe_lock) between real processes: one job per probe UID, released by
the kernel whatever ends the holder (SIGKILL too), a waiting job told who holds the board and
giving up with the holder in its error, a dead holder's record reported as recovered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import probe_lock
from rig.probe_lock import BoardBusy

UID = "066DFF485550755187121723"

HOLD = """
import sys, time
from rig import probe_lock
probe_lock.acquire(sys.argv[1], timeout=float(sys.argv[2]))
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OTA_RIG_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("OTA_RIG_LOCK_TIMEOUT", raising=False)
    return tmp_path / "locks"


def _start(uid: str, *, timeout: float = 0, hold: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, uid, str(timeout), str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[str]]:
    proc = _start(UID)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read() if proc.stderr else line
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_second_process_times_out_naming_the_holder(holder: subprocess.Popen[str]) -> None:
    waiter = _start(UID, timeout=1.0, hold=0)
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode != 0 and "held" not in out
    assert "BoardBusy" in err and f"pid {holder.pid}" in err, err
    assert "is in use by" in err and "gave up after waiting 1 s" in err
    assert "waiting (up to" in err  # the progress line while it waited


def test_in_this_process_the_error_carries_the_holder(holder: subprocess.Popen[str]) -> None:
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(BoardBusy) as info:
        probe_lock.acquire(UID, timeout=0.5, say=said.append)
    assert time.monotonic() - started < 5
    assert info.value.holder is not None and info.value.holder.pid == holder.pid
    assert f"kill {holder.pid}" in str(info.value) and "since" in str(info.value)
    assert said and f"pid {holder.pid}" in said[0]
    assert probe_lock.current_holder(UID).pid == holder.pid  # type: ignore[union-attr]
    assert not probe_lock.holds(UID)


def test_sigkill_frees_the_board_and_the_record_is_recovered(holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    said: list[str] = []
    path = probe_lock.acquire(UID, timeout=5, say=said.append)
    try:
        assert probe_lock.holds(UID)
        assert any("recovered" in s and f"pid {holder.pid}" in s and "gone" in s for s in said), said
        record = probe_lock.read_holder(path)
        assert record is not None and record.pid == os.getpid() and record.uid == UID
    finally:
        probe_lock.release(UID)
    assert probe_lock.read_holder(path) is None  # a clean release leaves no record
    assert probe_lock.current_holder(UID) is None


def test_a_waiter_gets_the_board_when_the_holder_ends() -> None:
    first = _start(UID, hold=1.5)
    assert first.stdout is not None and first.stdout.readline().strip() == "held"
    said: list[str] = []
    started = time.monotonic()
    probe_lock.acquire(UID, timeout=30, say=said.append)
    try:
        assert time.monotonic() - started < 25
        assert said and "in use by" in said[0] and f"pid {first.pid}" in said[0]
        assert not any("recovered" in s for s in said)  # a normal exit clears its record
    finally:
        probe_lock.release(UID)
        first.wait(10)


def test_re_entrant_in_one_process_and_case_insensitive() -> None:
    with probe_lock.board_lock(UID, timeout=0):
        with probe_lock.board_lock(UID.lower(), timeout=0):
            assert probe_lock.holds(UID)
        assert probe_lock.holds(UID)  # the outer hold is still there
        proc = _start(UID, timeout=0, hold=0)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0 and f"pid {os.getpid()}" in err
    assert not probe_lock.holds(UID)
    with probe_lock.board_lock(None) as nothing:
        assert nothing is None


def test_each_uid_has_its_own_lock(holder: subprocess.Popen[str]) -> None:
    with probe_lock.board_lock("remote:127.0.0.1:5555", timeout=0) as path:
        assert path is not None and path.name.startswith("remote_127.0.0.1_5555-")
    assert probe_lock.lock_path(UID).name == f"{UID.lower()}.lock"


def test_the_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe_lock.default_timeout() == probe_lock.DEFAULT_TIMEOUT
    monkeypatch.setenv("OTA_RIG_LOCK_TIMEOUT", "12.5")
    assert probe_lock.default_timeout() == 12.5
    monkeypatch.setenv("OTA_RIG_LOCK_TIMEOUT", "soon")
    with pytest.raises(probe_lock.ProbeError, match="OTA_RIG_LOCK_TIMEOUT"):
        probe_lock.default_timeout()


def test_an_unwritable_lock_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("OTA_RIG_LOCK_DIR", str(blocker / "locks"))
    with pytest.raises(probe_lock.ProbeError, match="OTA_RIG_LOCK_DIR"):
        probe_lock.acquire(UID, timeout=0)


def test_ctrl_c_releases_the_board_and_clears_the_record(holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGINT)  # KeyboardInterrupt in the holder
    holder.wait(10)
    assert holder.returncode != 0
    said: list[str] = []
    path = probe_lock.acquire(UID, timeout=0, say=said.append)
    probe_lock.release(UID)
    assert said == [] and probe_lock.read_holder(path) is None  # nothing to recover
