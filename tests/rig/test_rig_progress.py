"""Progress on the terminal (issue 15: 13): flash, readback and OTA transfer bars drawn on the
run's terminal when a person watches, nothing in CI, without a terminal or in an xdist
worker. The HIL plugin runs in a subprocess on a pseudo-terminal of its own (its controlling
terminal, as a shell gives it) against a twin."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from rig.board import load_board
from rig.hil import Bench
from rig.progress import Bars, wanted
from rig.targets.base import Target

REPO = Path(__file__).resolve().parents[2]

TEST_FILE = """
def test_flash_and_read_back(bench):
    data = bytes(range(256)) * 2048  # 512 KiB
    bench.probe.reset(halt=True)
    bench.probe.flash(0x08040000, data)
    assert bench.readback(0x08040000, len(data)) == data
"""


def test_nobody_watches_in_ci_or_in_a_worker() -> None:
    assert wanted({}) and wanted({"CI": "false"})
    assert not wanted({"CI": "true"}) and not wanted({"CI": "1"})
    assert not wanted({"PYTEST_XDIST_WORKER": "gw0"})


def test_bars_come_and_go() -> None:
    out = io.StringIO()
    bars = Bars(out)
    flash = bars.probe_callback()
    flash(0, 1000, "flash 0x08040000")
    flash(500, 1000, "flash 0x08040000")
    assert bars._running
    flash(1000, 1000, "flash 0x08040000")
    assert not bars._running and not bars._tasks  # done: the bar is gone
    ota = bars.ota_callback("OTA transfer to 192.168.1.10:5000")
    ota("data", 4096, 16384)
    ota("end", 16384, 16384)
    assert not bars._tasks
    text = out.getvalue()
    assert "flashing 0x08040000" in text and "OTA transfer to 192.168.1.10:5000" in text


def test_the_ota_server_of_a_watched_bench_reports_progress(tmp_path: Path) -> None:
    target = Target("nucleo", "X", "/dev/null", ("127.0.0.1", 0))
    bench = Bench(load_board(), target, probe=None, console=None, artifacts=tmp_path)  # type: ignore[arg-type]
    with bench.ota_server(bytes(64)) as server:
        assert server.on_progress is None  # nobody watches
    bench.progress = Bars(io.StringIO())
    with bench.ota_server(bytes(64)) as server:
        assert server.on_progress is not None


#: opens the terminal by name as a session leader (so it becomes the controlling terminal,
#: as a shell's is), makes it stdin/stdout/stderr and runs the command
TAKE_TERMINAL = (
    "import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
    "[os.dup2(fd, n) for n in (0, 1, 2)]; os.execv(sys.argv[2], sys.argv[2:])"
)


def _run_on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run ``args`` with a new pseudo-terminal as its controlling terminal; (exit code, what
    the terminal showed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", TAKE_TERMINAL, os.ttyname(slave), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:  # the slave stays open here until the end: no EIO while the child takes it over
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                shown += os.read(master, 65536)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(slave)
        os.close(master)
    return proc.returncode, shown.decode(errors="replace")


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST")
    }
    env.update(extra, COLUMNS="120")
    return env


def _args(tmp_path: Path) -> list[str]:
    (tmp_path / "test_progress.py").write_text(TEST_FILE)
    return [
        *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path / "test_progress.py")),
        *("--rootdir", str(REPO), "--report-dir", str(tmp_path / "r"), "--twin-timing", "fast", "-q"),
    ]


def test_a_watched_run_shows_flash_and_readback_progress(tmp_path: Path) -> None:
    code, shown = _run_on_a_terminal(_args(tmp_path), _env())
    assert code == 0, shown[-3000:]
    assert "flashing 0x08040000" in shown and "reading back 0x08040000" in shown, shown[-3000:]
    assert "KiB" in shown  # the bar's byte counts


def test_ci_and_runs_without_a_terminal_stay_quiet(tmp_path: Path) -> None:
    code, shown = _run_on_a_terminal(_args(tmp_path), _env(CI="true"))
    assert code == 0 and "flashing" not in shown and "reading back" not in shown, shown[-3000:]
    proc = subprocess.run(
        _args(tmp_path),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert proc.returncode == 0 and "flashing" not in proc.stdout + proc.stderr, proc.stdout[-3000:]
