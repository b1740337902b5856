"""Acceptance: a failing OTA scenario's pytest-html report, rendered by headless Chromium.

A subprocess ``pytest`` run of a small test file produces a real pytest-html report through
:mod:`rig.report.pytest_hooks` (one test fails with a never-erased sector and a faulted jump,
one passes). Chromium renders it; a probe copy of the report (the same file plus a script)
reports from inside the browser whether the diagnosis, the mismatch table, the SVG flash map
and the jump table are present and visible, and how colourful the screenshot is. The
screenshots are kept under ``reports/screenshots/`` for CI artifacts and the README.
"""

from __future__ import annotations

import base64
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
SHOTS = REPO / "reports" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/setup installs it)"
)

TEST_FILE = """
import sys
sys.path.insert(0, {samples!r})
from report_samples import never_erased_evidence, passing_evidence
from rig.errors import PhaseFailure
from rig.report.pytest_hooks import EVIDENCE_KEY


def test_update_broken_bootloader(tmp_path):
    ev = never_erased_evidence(tmp_path)
    raise PhaseFailure(ev.phase, ev.message, evidence=ev)


def test_update_ok(request):
    request.node.stash[EVIDENCE_KEY] = passing_evidence()
"""

CONFTEST = """
import pytest
from rig.report import pytest_hooks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    pytest_hooks.on_makereport(item, report, pytest_hooks.find_evidence(item, call),
                               report_dir=item.config.rootpath / "report")


def pytest_html_results_summary(prefix, summary, postfix, session):
    pytest_hooks.results_summary(prefix, session.config)
"""

PROBE = """
<pre id="rig-probe">pending</pre>
<script>
(function () {
  function visible(sel) {
    const el = document.querySelector(sel);
    if (!el) return {present: false};
    const r = el.getBoundingClientRect();
    let hidden = false;
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || e.classList.contains('hidden')) hidden = true;
    }
    return {present: true, width: r.width, height: r.height, top: r.top + window.scrollY, hidden: hidden,
            check: el.checkVisibility ? el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}) : null,
            text: el.textContent.slice(0, 400)};
  }
  function run() {
    const out = {
      verdict: visible('tbody.failed .otarig [data-section=verdict]'),
      mismatches: visible('tbody.failed .otarig table.mismatches'),
      flashmap: visible('tbody.failed .otarig svg.flashmap'),
      jump: visible('tbody.failed .otarig table.jump'),
      summary: visible('.otarig[data-section=summary]'),
      passed_extras_hidden: visible('tbody.passed .otarig').hidden,
    };
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


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the two-test file under pytest-html; return the report path."""
    tmp = tmp_path_factory.mktemp("htmlrun")
    (tmp / "pytest.ini").write_text("[pytest]\n")
    (tmp / "conftest.py").write_text(CONFTEST)
    (tmp / "test_broken_bootloader.py").write_text(TEST_FILE.format(samples=str(Path(__file__).parent)))
    report = tmp / "report" / "report.html"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:ota_rig",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--html={report}",
            "--self-contained-html",
            "test_broken_bootloader.py",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "1 failed, 1 passed" in res.stdout
    assert report.is_file()
    return report


def test_report_files_and_links(html_report: Path) -> None:
    text = html_report.read_text()
    adir = html_report.parent / "artifacts"
    failing = next(adir.glob("*broken_bootloader*"))
    for name in ("mismatches.csv", "mismatches.json", "evidence.json", "serial.log", "app_slot-readback.bin"):
        assert (failing / name).is_file(), name
    # links in the report are relative to the report's directory and resolve
    hrefs = set(re.findall(r'href=\\?(?:&#34;|&quot;|")(artifacts/[^"&\\]+)', text))
    assert hrefs and all((html_report.parent / h).exists() for h in hrefs)
    assert "<script>alert" not in text


def test_failing_report_renders_in_chromium(html_report: Path) -> None:
    tmp = html_report.parent.parent
    shot = _screenshot(tmp, html_report.as_uri(), SHOTS / "failing.png", "1400,3600")
    _screenshot(tmp, html_report.as_uri() + "?collapsed=failed", SHOTS / "passing.png", "1400,1700")

    dom = _chromium(tmp, "--virtual-time-budget=10000", "--dump-dom", html_report.as_uri()).stdout
    assert 'class="otarig"' in dom and "sector 6 was programmed without an erase" in dom
    assert '<svg class="flashmap"' in dom and 'class="mismatches"' in dom and 'class="jump"' in dom
    assert "<script>alert" not in dom

    probe = html_report.with_name("probe.html")
    png64 = base64.b64encode(shot.read_bytes()).decode()
    probe.write_text(html_report.read_text().replace("</body>", PROBE.replace("__PNG__", png64) + "</body>"))
    out = _chromium(tmp, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()).stdout
    m = re.search(r'<pre id="rig-probe">(.*?)</pre>', out, re.S)
    assert m, out[-2000:]
    result = json.loads(
        m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
    for key in ("verdict", "mismatches", "flashmap", "jump", "summary"):
        item = result[key]
        assert item["present"], key
        assert not item["hidden"] and item["check"] is not False, key
        assert item["width"] > 100 and item["height"] > 20, (key, item)
    assert "sector 6 was programmed without an erase" in result["verdict"]["text"]
    assert "0x08080000" in result["mismatches"]["text"]
    assert "vtor" in result["jump"]["text"] and "FAIL" in result["jump"]["text"]
    assert result["flashmap"]["top"] > result["verdict"]["top"]
    assert result["passed_extras_hidden"] is True  # passing tests stay collapsed
    px = result["pixels"]
    assert px and px["width"] == 1400
    assert px["nonwhite"] > 0.05 and px["colours"] > 20
    assert px["red"] > 500 and px["green"] > 300  # the map's mismatch and match sectors are drawn
