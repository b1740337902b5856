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


def test_nucleo_without_probes_fails_every_worker_with_its_uid(tmp_path: Path) -> None:
    """With -n 2 and one board per worker, each worker's tests error with its own UID (an
    xdist worker cannot stop the whole run cleanly), never a green run."""
    from rig.probe import list_probes

    if list_probes():
        pytest.skip("a debug probe is attached to this machine")
    import yaml

    from rig.board import default_board_path

    # two boards, each with its own OTA address (two on one address stop the run at start-up)
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["targets"]["nucleo"]["boards"] = [
        {"probe_uid": "AAA111"},
        {"probe_uid": "BBB222", "host": "192.168.1.10:5001"},
    ]
    board_file = tmp_path / "two-boards.yaml"
    board_file.write_text(yaml.safe_dump(doc))
    args = ["tests_hil/test_ota_update.py", "-k", "16k or 300k", "--transport", "eth", "-n", "2"]
    args += ["--board-file", str(board_file)]
    proc = _pytest([*args, "--board", "nucleo", "--probe-uid", "AAA111,BBB222"], tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "2 errors" in proc.stdout and "INTERNALERROR" not in proc.stdout + proc.stderr
    for uid in ("AAA111", "BBB222"):
        assert f"no debug probe is connected to this host (wanted {uid}, from --probe-uid)" in proc.stdout


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


MARKED_TESTS = """
import pytest


@pytest.mark.twin_only
def test_twin_only():
    pass


@pytest.mark.destructive
def test_destructive():
    pass


@pytest.mark.destructive
@pytest.mark.twin_only
def test_destructive_and_twin_only():
    pass


def test_plain():
    pass
"""


def _outcomes(junit: Path) -> dict[str, str]:
    """test name -> "PASSED" or the skip reason, from the run's JUnit XML."""
    import xml.etree.ElementTree as ET

    out: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        skipped = case.find("skipped")
        failed = case.find("failure") is not None or case.find("error") is not None
        out[case.get("name", "")] = (
            "FAILED" if failed else (skipped.get("message", "") if skipped is not None else "PASSED")
        )
    return out


MARKED_NAMES = ("test_twin_only", "test_destructive", "test_destructive_and_twin_only", "test_plain")


@pytest.mark.parametrize(
    "args",
    [["--board", "nucleo"], ["--board", "nucleo", "--allow-destructive"], ["--board", "twin"], []],
    ids=["nucleo", "nucleo-allow-destructive", "twin", "default"],
)
def test_board_markers_are_enforced(tmp_path: Path, args: list[str]) -> None:
    """On a real board twin_only tests skip (the twin's control interface), destructive ones
    skip unless --allow-destructive; on the twin both run. The tests use no board fixture, so
    no probe is needed to see it."""
    test_file = tmp_path / "test_marked.py"
    test_file.write_text(MARKED_TESTS)
    junit = tmp_path / "junit.xml"
    proc = _pytest([str(test_file), "-rs", f"--junitxml={junit}", *args], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    got = _outcomes(junit)
    assert set(got) == set(MARKED_NAMES), got
    if "nucleo" not in args:
        assert got == dict.fromkeys(MARKED_NAMES, "PASSED")
        return
    twin_only = "twin_only: needs the twin's control interface (power switch, fault injection)"
    assert got["test_plain"] == "PASSED"
    assert got["test_twin_only"].startswith(twin_only), got
    assert got["test_destructive_and_twin_only"].startswith(twin_only), got  # even when allowed
    if "--allow-destructive" in args:
        assert got["test_destructive"] == "PASSED", got
    else:
        assert "destructive" in got["test_destructive"] and "--allow-destructive" in got["test_destructive"]


def test_power_cuts_skip_on_a_real_board_by_their_markers(tmp_path: Path) -> None:
    """test_power_cut.py has no skip logic of its own: on --board nucleo the plugin skips it
    before any fixture looks for a board (so no probe is needed, and none is touched)."""
    proc = _pytest(
        ["tests_hil/test_power_cut.py", "--board", "nucleo", "--allow-destructive", "-rs"],
        tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "12 skipped" in proc.stdout and "passed" not in proc.stdout, proc.stdout[-3000:]
    assert proc.stdout.count("twin_only: needs the twin's control interface") == 1  # -rs groups them
    assert "SKIPPED [12]" in proc.stdout, proc.stdout[-3000:]


def test_app_option_is_the_image_the_update_serves(tmp_path: Path) -> None:
    """--app PATH adds the scenario "update to the user's image" (ids ...-user), checked like
    the reference updates: flash read back equal to that file, jump contract, its banner. The
    image is a reference app with its build id changed, so it differs from every reference
    image and the banner it prints (from its own header) proves it is the one running."""
    from rig.hil import APP_HEADER_OFFSET

    data = bytearray((REPO / "firmware" / "build" / "app-v1-16k.bin").read_bytes())
    build_id = APP_HEADER_OFFSET + 20  # app_header_t.build_id (firmware/include/app_header.h)
    data[build_id : build_id + 12] = b"usr0cafe\0\0\0\0"
    app = tmp_path / "my-app.bin"
    app.write_bytes(bytes(data))

    plain = _pytest(["tests_hil/test_ota_update.py", "--collect-only", "-q"], tmp_path, timeout=120)
    assert "user" not in plain.stdout and "eth-16k" in plain.stdout, plain.stdout[-2000:]  # only with --app

    junit = tmp_path / "junit.xml"
    proc = _pytest(
        ["tests_hil", "-k", "user", "--app", str(app), "--transport", "eth", f"--junitxml={junit}"],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _outcomes(junit) == {"test_update_jumps_into_new_app[eth-user]": "PASSED"}
    (art,) = (tmp_path / "reports" / "artifacts").glob("*test_update_jumps_into_new_app*eth-user*")
    readback = (art / "app_slot-readback.bin").read_bytes()
    assert readback[: len(data)] == bytes(data)
    assert "APP v1 build usr0cafe" in (art / "console.log").read_text()


PARKED_TESTS = """
def test_leaves_the_bootloader_running(flashed_bench, evidence):
    flashed_bench.probe.reset()
    assert not flashed_bench.probe.is_halted()


def test_finds_the_board_parked(flashed_bench, evidence):
    probe = flashed_bench.probe
    assert probe.is_halted(), "the board ran on between the tests"
    entry = int.from_bytes(probe.read(0x08000004, 4), "little") & ~1
    assert probe.registers(["pc"])["pc"] == entry, "not at the reset vector"
"""


def test_the_board_is_parked_between_tests(tmp_path: Path) -> None:
    """Nothing left running between tests: after each test the plugin holds the core at its
    reset vector (a bootloader dialling a server that is gone, an app's loop, a twin's host
    CPU), and the next test finds it there."""
    test_file = tmp_path / "test_parked.py"
    test_file.write_text(PARKED_TESTS)
    bootloader = REPO / "firmware" / "build" / "bootloader.bin"
    proc = _pytest([str(test_file), "-q", "--bootloader", str(bootloader)], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout, proc.stdout[-2000:]
