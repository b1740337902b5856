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


def _pytest(
    args: list[str], tmp_path: Path, timeout: float = 600, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST") and k != "OTA_RIG_PROBE_UID"
    }
    env.update(env_extra or {})
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
        check=False,
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


def _board_file_with_uid(tmp_path: Path, uid: str) -> Path:
    import yaml

    from rig.board import default_board_path

    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["targets"]["nucleo"]["probe_uid"] = uid
    path = tmp_path / "lab-board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


UID = "066DFF485151717867114355"


@pytest.mark.parametrize("source", ["none", "--probe-uid", "OTA_RIG_PROBE_UID", "board file"])
def test_nucleo_without_a_probe_is_an_error_not_a_skip(tmp_path: Path, source: str) -> None:
    """A dead ST-LINK on a CI runner must turn the hardware job red, whether a UID was given
    (command line, environment, board file) or not."""
    from rig.probe import list_probes

    if list_probes():
        pytest.skip("a debug probe is attached to this machine")
    args = ["tests_hil/test_ota_update.py", "--board", "nucleo", "--transport", "eth", "-rs"]
    env: dict[str, str] = {}
    if source == "--probe-uid":
        args += ["--probe-uid", UID]
    elif source == "OTA_RIG_PROBE_UID":
        env["OTA_RIG_PROBE_UID"] = UID
    elif source == "board file":
        board_file = _board_file_with_uid(tmp_path, UID)
        args += ["--board-file", str(board_file)]
        source = f"targets.nucleo.probe_uid in {board_file}"
    proc = _pytest(args, tmp_path, timeout=120, env_extra=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]  # pytest's usage-error code: never 0
    assert "passed" not in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-3000:]
    assert "--board nucleo: no debug probe is connected to this host" in out, out[-3000:]
    assert "pyocd list" in out and "--board twin" in out  # the fix
    if source != "none":
        assert f"(wanted {UID}, from {source})" in out, out[-3000:]


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
