"""Acceptance: the report that `pytest tests_hil` writes, rendered by headless Chromium.

Two real runs of the HIL suite on the twin, through the installed ota-rig plugin exactly as a
user runs it (the page lands at ``<report-dir>/hil-report.html``, the plugin's default):

1. the thread's "app sectors not erased" bootloader (``bootloader-no-app-erase.bin``) updated to
   the 300 KiB app over Ethernet fails in phase ``copy``; the bootloader's own test passes;
2. a bootloader image too big for its region: the session fixture ``flashed_bench`` fails in
   phase ``flash``, so every selected test errors in *setup*, and each must still show the
   flash evidence.

Chromium renders each page (pytest-html builds its rows with JavaScript from a JSON blob); a
probe copy of the page (the same file plus a script) reports from inside the browser whether
the evidence sections are present, rendered and visible, and how colourful the screenshot is.
The screenshots are kept under ``reports/screenshots/`` for CI artifacts and the README.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"
SHOTS = REPO / "reports" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/setup installs it)"
)

UPDATE_300K = "tests_hil/test_ota_update.py::test_update_jumps_into_new_app[eth-300k]"
UPDATE_16K = "tests_hil/test_ota_update.py::test_update_jumps_into_new_app[eth-16k]"
#: the tests of tests_hil/test_bootloader.py (they pass with this broken bootloader)
BOOTLOADER_TESTS = "test_bootloader.py"

PROBE = """
<pre id="rig-probe">pending</pre>
<script>
(function () {
  const SELECTORS = __SELECTORS__;
  function visible(sel) {
    const all = document.querySelectorAll(sel);
    const el = all[0];
    if (!el) return {present: false, count: 0};
    const r = el.getBoundingClientRect();
    let hidden = false;
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || e.classList.contains('hidden')) hidden = true;
    }
    return {present: true, count: all.length, width: r.width, height: r.height, top: r.top + window.scrollY,
            hidden: hidden,
            check: el.checkVisibility ? el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}) : null,
            text: el.textContent.slice(0, 600)};
  }
  function run() {
    const out = {};
    for (const [name, sel] of Object.entries(SELECTORS)) out[name] = visible(sel);
    const img = new Image();
    img.onload = function () {
      const c = document.createElement('canvas');
      c.width = img.width; c.height = img.height;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let nonwhite = 0, red = 0, green = 0;
      const colours = new Set();
      for (let i = 0; i < d.length; i += 4) {
        const r = d[i], g = d[i + 1], b = d[i + 2];
        if (r < 245 || g < 245 || b < 245) nonwhite++;
        if (Math.abs(r - 0xcf) < 12 && Math.abs(g - 0x22) < 12 && Math.abs(b - 0x2e) < 12) red++;
        if (Math.abs(r - 0x2d) < 12 && Math.abs(g - 0xa4) < 12 && Math.abs(b - 0x4e) < 12) green++;
        if ((i >> 2) % 7 === 0) colours.add((r >> 4) << 8 | (g >> 4) << 4 | (b >> 4));
      }
      out.pixels = {width: c.width, height: c.height, nonwhite: nonwhite / (c.width * c.height),
                    red: red, green: green, colours: colours.size};
      document.getElementById('rig-probe').textContent = JSON.stringify(out);
    };
    img.onerror = function () { out.pixels = null; document.getElementById('rig-probe').textContent = JSON.stringify(out); };
    img.src = 'data:image/png;base64,__PNG__';
  }
  window.addEventListener('load', function () { setTimeout(run, 200); });
})();
</script>
"""


# ------------------------------------------------------------------------------------ helpers
def _chromium(tmp: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with its own profile directory, no network services."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    # its own process group, so the renderer/zygote children go too if it has to be killed
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp,
        env={**os.environ, "HOME": str(tmp)},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"chromium did not finish within {timeout} s: {err[-2000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of this run only
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _screenshot(tmp: Path, url: str, out: Path, size: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    res = _chromium(tmp, f"--window-size={size}", "--hide-scrollbars", f"--screenshot={out}", url)
    assert out.is_file() and out.stat().st_size > 0, res.stderr[-2000:]
    return out


def _probe(report: Path, selectors: dict[str, str], shot: Path) -> dict:
    """Load a copy of ``report`` with the probe script; return what it saw (and the screenshot's pixels)."""
    probe = report.with_name("probe.html")
    script = PROBE.replace("__SELECTORS__", json.dumps(selectors))
    script = script.replace("__PNG__", base64.b64encode(shot.read_bytes()).decode())
    probe.write_text(report.read_text().replace("</body>", script + "</body>"))
    out = _chromium(report.parent, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()).stdout
    m = re.search(r'<pre id="rig-probe">(.*?)</pre>', out, re.S)
    assert m, out[-2000:]
    return json.loads(html.unescape(m.group(1)))


def _rendered(item: dict, key: str) -> None:
    assert item["present"], key
    assert not item["hidden"] and item["check"] is not False, key
    assert item["width"] > 100 and item["height"] > 20, (key, item)


def _run_hil(
    tmp: Path, bootloader: Path, selection: str, *extra: str, env_add: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`pytest tests_hil` on the twin as a user runs it; return the run and the report it wrote."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")} | (env_add or {})
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests_hil",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--transport",
        "eth",
        "--bootloader",
        str(bootloader),
        "-k",
        selection,
        "--report-dir",
        str(tmp / "reports"),
        *extra,
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env, check=False)
    report = tmp / "reports" / "hil-report.html"  # the plugin's default for `pytest tests_hil`
    assert report.is_file(), res.stdout[-3000:] + res.stderr[-3000:]
    return res, report


def _page_data(report: Path) -> dict:
    """pytest-html's JSON blob: the rows and extras the page's script renders."""
    m = re.search(r'data-jsonblob="([^"]*)"', report.read_text())
    assert m, "no pytest-html data in the report"
    return json.loads(html.unescape(m.group(1)))


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def copy_failure(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broken bootloader updated to 300 KiB over Ethernet (fails in copy) + the bootloader's test."""
    bootloader = BUILD / "bootloader-no-app-erase.bin"
    assert bootloader.is_file(), f"{bootloader} missing: run make -C firmware"
    res, report = _run_hil(
        tmp_path_factory.mktemp("copy"), bootloader, "(update and 300k) or test_bootloader"
    )
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert re.search(r"\b1 failed, [1-9]\d* passed", res.stdout), res.stdout[-3000:]
    return report


#: a plugin for the run below: before the bootloader is flashed, sector 0 is write-protected
#: through the probe (FLASH_OPTCR nWRP0 cleared, as a user's own bootloader may have left it)
WRP_PLUGIN = """
import time
import pytest

OPTKEYR, SR, OPTCR = 0x40023C08, 0x40023C0C, 0x40023C14


@pytest.fixture(scope="session", autouse=True)
def protect_sector0(probe):
    probe.reset(halt=True)
    probe.write32(OPTKEYR, 0x08192A3B)
    probe.write32(OPTKEYR, 0x4C5D6E7F)
    probe.write32(OPTCR, (probe.read32(OPTCR) & ~(1 << 16)) | 2)  # nWRP0 = 0, OPTSTRT
    deadline = time.monotonic() + 10
    while probe.read32(SR) & (1 << 16) and time.monotonic() < deadline:
        time.sleep(0.01)
    probe.reset(halt=True)
"""


@pytest.fixture(scope="module")
def flash_failure(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sector 0 write-protected: flashed_bench fails (phase flash) in every test's setup."""
    tmp = tmp_path_factory.mktemp("flash")
    (tmp / "wrp_sector0.py").write_text(WRP_PLUGIN)
    res, report = _run_hil(
        tmp,
        BUILD / "bootloader.bin",
        "(update and 16k) or test_bootloader",
        "-p",
        "wrp_sector0",
        env_add={"PYTHONPATH": str(tmp)},
    )
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert re.search(r"\b[2-9]\d* errors", res.stdout) and "[flash]" in res.stdout, res.stdout[-3000:]
    return report


# -------------------------------------------------------------------------------------- tests
def test_report_files_and_links(copy_failure: Path) -> None:
    text = copy_failure.read_text()
    adir = copy_failure.parent / "artifacts"
    failing = next(adir.glob("*test_update_jumps_into_new_app*300k*"))
    for name in ("mismatches.csv", "mismatches.json", "evidence.json", "serial.log", "console.log"):
        assert (failing / name).is_file(), name
    assert json.loads((failing / "evidence.json").read_text())["phase"] == "copy"
    # the board's own frames (the twin's cable), attached to the test: the update's TCP segments
    # as lwIP on the board sent and received them
    board_pcap = failing / "board-frames.pcap"
    assert json.loads((failing / "evidence.json").read_text())["artifacts"]["pcap (board's cable)"]
    from scapy.all import rdpcap
    from scapy.layers.inet import TCP

    segments = [p for p in rdpcap(str(board_pcap)) if TCP in p and 5000 in (p[TCP].sport, p[TCP].dport)]
    to_board = [p for p in segments if p[TCP].sport == 5000 and len(p[TCP].payload) > 0]
    assert sum(len(p[TCP].payload) for p in to_board) >= 300 * 1024, len(to_board)
    # links in the report are relative to the report's directory and resolve
    hrefs = set(re.findall(r'href=\\?(?:&#34;|&quot;|")(artifacts/[^"&\\]+)', text))
    assert hrefs and all((copy_failure.parent / h).exists() for h in hrefs)
    tests = _page_data(copy_failure)["tests"]
    assert [e["format_type"] for e in tests[UPDATE_300K][0]["extras"]][:2] == ["html", "json"]
    passed = [n for n in tests if BOOTLOADER_TESTS in n]
    assert passed and all(tests[n][0]["extras"][0]["format_type"] == "html" for n in passed)  # evidence too


def test_failing_update_renders_in_chromium(copy_failure: Path) -> None:
    tmp = copy_failure.parent
    shot = _screenshot(tmp, copy_failure.as_uri(), SHOTS / "failing.png", "1400,3600")
    _screenshot(tmp, copy_failure.as_uri() + "?collapsed=failed", SHOTS / "passing.png", "1400,1700")

    dom = _chromium(tmp, "--virtual-time-budget=10000", "--dump-dom", copy_failure.as_uri()).stdout
    assert 'class="otarig"' in dom and "was never erased" in dom
    assert '<svg class="flashmap"' in dom and 'class="mismatches"' in dom and 'class="hex mono"' in dom

    failed = "tbody.failed .otarig"
    sections = ("verdict", "mismatches", "flashmap", "hexdump", "jump", "artifacts", "timings", "serial")
    selectors = {name: f"{failed} [data-section={name}]" for name in (*sections, "transcript")}
    selectors |= {
        "table": f"{failed} table.mismatches",
        "svg": f"{failed} svg.flashmap",
        "summary": ".otarig[data-section=summary]",
        "passed": "tbody.passed .otarig",
    }
    result = _probe(copy_failure, selectors, shot)
    for key in (*sections, "table", "svg", "summary"):
        _rendered(result[key], key)
    verdict = result["verdict"]["text"]
    assert "copy" in verdict and "never_erased" in verdict and "sector 5 was never erased" in verdict
    assert re.search(r"0x0804[0-9A-F]{4}", result["table"]["text"])  # rows in sector 5, the app slot's start
    assert "The jump was not reached" in result["jump"]["text"]  # the copy broke first
    assert "failed [copy]" in result["summary"]["text"] and "passed" in result["summary"]["text"]
    assert result["svg"]["top"] > result["verdict"]["top"]
    assert result["passed"]["present"] and result["passed"]["hidden"] is True  # passing tests stay collapsed
    px = result["pixels"]
    assert px and px["width"] == 1400
    assert px["nonwhite"] > 0.05 and px["colours"] > 20
    assert px["red"] > 500 and px["green"] > 300  # the map's mismatch and match sectors are drawn


def test_failed_setup_carries_the_flash_evidence(flash_failure: Path) -> None:
    tests = _page_data(flash_failure)["tests"]
    assert UPDATE_16K in tests and any(BOOTLOADER_TESTS in n for n in tests)
    for nodeid in tests:
        (row,) = tests[nodeid]
        assert 'col-result">Error' in row["resultsTableRow"][0]
        assert [e["format_type"] for e in row["extras"]][:2] == ["html", "json"], nodeid
        data = row["extras"][1]["content"]  # the evidence as JSON, inlined as a data: URL
        assert json.loads(base64.b64decode(data.split(",", 1)[1]))["phase"] == "flash", nodeid

    shot = _screenshot(flash_failure.parent, flash_failure.as_uri(), SHOTS / "setup-error.png", "1400,2400")
    selectors = {
        "verdict": "tbody.error .otarig [data-section=verdict]",
        "serial": "tbody.error .otarig [data-section=serial]",
        "artifacts": "tbody.error .otarig [data-section=artifacts]",
        "summary": ".otarig[data-section=summary]",
    }
    result = _probe(flash_failure, selectors, shot)
    for key in selectors:
        _rendered(result[key], key)
    assert result["verdict"]["count"] == len(tests)  # every test that errored in setup shows it
    verdict = result["verdict"]["text"]
    assert "flash" in verdict and "sector 0 (0x08000000)" in verdict and "write-protected" in verdict
    assert "session: flash bootloader" in verdict
    assert "error [flash]" in result["summary"]["text"]
    assert result["pixels"]["red"] > 50  # the red phase badge of the verdict is drawn
