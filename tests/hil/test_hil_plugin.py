"""The pytest plugin as a user meets it: option errors, a real board that is absent,
interruption, parallel workers. Each case runs pytest in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]


def _pytest(args: list[str], tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--report-dir",
            str(tmp_path / "reports"),
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _twins(parent: int | None = None) -> list[psutil.Process]:
    """Running twins; with ``parent``, only those that process started (other tests of a
    parallel run start twins of their own meanwhile)."""
    out = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = p.info["cmdline"] or []
        if len(cmd) >= 3 and cmd[1:3] == ["-m", "twin"] and parent in (None, p.info["ppid"]):
            out.append(p)
    return out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--board", "stm32"], ["--board 'stm32'", "twin, nucleo"]),
        (["--transport", "lora"], ["--transport 'lora'", "eth, wifi, both"]),
        (["--bootloader", "/nonexistent.bin"], ["--bootloader /nonexistent.bin: no such file"]),
        (["--ota-bind", "nohostport"], ["expected HOST:PORT"]),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], words: list[str]) -> None:
    proc = _pytest(["tests_hil", *args], tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage-error exit code
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_nucleo_without_a_board_skips_with_the_reason(tmp_path: Path) -> None:
    from rig.probe import list_probes

    if list_probes():
        pytest.skip("a debug probe is attached to this machine")
    proc = _pytest(["tests_hil/test_bootloader.py", "--board", "nucleo", "-rs"], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "no debug probe is connected" in proc.stdout and "skipped" in proc.stdout


def test_interrupted_run_leaves_no_twin_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "tests_hil",
            "-k",
            "update and 300k",
            "--transport",
            "eth",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _twins(proc.pid):
            time.sleep(0.2)
        started = {p.pid for p in _twins(proc.pid)}
        assert started, "the run never started a twin"
        time.sleep(3)  # in the middle of flashing/updating
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and started & {p.pid for p in _twins()}:
        time.sleep(0.2)
    assert not started & {p.pid for p in _twins()}, "a twin survived Ctrl-C"


@pytest.mark.slow
def test_two_workers_run_two_twins(tmp_path: Path) -> None:
    proc = _pytest(["tests_hil", "-n", "2", "-k", "16k and update", "-q"], tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 passed" in proc.stdout
    logs = sorted((tmp_path / "reports" / "artifacts").glob("gw*/twin.log"))
    assert len(logs) == 2, "each worker must start its own twin"
