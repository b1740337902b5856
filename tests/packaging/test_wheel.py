"""``pip install .`` (a normal, non-editable install) gives a working ``rig`` command and
pytest plugin, used from directories outside the repository (issue 13).

The wheel is built offline from a copy of the sources (``python -m build --no-isolation``:
setuptools and build come from the running environment, the ``dev`` extra). It is installed
with ``--no-deps`` into a new venv whose dependencies come from the running environment's
site-packages through a ``.pth`` file. A directory listed in a ``.pth`` file is added to
``sys.path`` but its own ``.pth`` files are not processed, so the checkout's editable install
(a finder registered by a ``.pth``) cannot leak into the new venv: ``rig``, ``twin`` and the
plugin import from the wheel's files or not at all, which every test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOTLOADER = REPO / "firmware" / "build" / "bootloader.bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    python: Path
    site: Path
    env: dict[str, str] = field(repr=False)

    def run(self, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


def _package_dirs(pyproject: dict) -> dict[str, Path]:
    """Each package pyproject.toml lists and its folder in the repository (``rig.fixtures``
    lives in ``fixtures/``, ``rig.boards`` in ``boards/``)."""
    setup = pyproject["tool"]["setuptools"]
    mapping: dict[str, str] = setup.get("package-dir", {})
    dirs = {}
    for pkg in setup["packages"]:
        parts = pkg.split(".")
        for i in range(len(parts), 0, -1):
            prefix = ".".join(parts[:i])
            if prefix in mapping:
                dirs[pkg] = Path(mapping[prefix], *parts[i:])
                break
        else:
            dirs[pkg] = Path(*parts)
    return dirs


def _source_dirs(pyproject: dict) -> set[str]:
    """The top-level folders of the repository that hold packages."""
    return {d.parts[0] for d in _package_dirs(pyproject).values()}


def _is_source_file(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"


def _run(args: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _clean_env(venv: Path) -> dict[str, str]:
    """A user's shell in the new venv: its bin first, no user site, nothing of this run."""
    drop = ("PYTHON", "PYTEST_", "VIRTUAL_ENV", "PIP_USER", "COV_CORE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PATH=f"{venv / 'bin'}:{SYSTEM_PATH}", PYTHONNOUSERSITE="1", VIRTUAL_ENV=str(venv))
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a copy of the sources (the checkout stays untouched:
    no build/ or egg-info written into it while other runs use it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shutil.copy2(REPO / "pyproject.toml", src)
    shutil.copy2(REPO / pyproject["project"]["readme"], src)
    for name in _source_dirs(pyproject):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    copied = sorted(
        p for name in _source_dirs(pyproject) for p in (src / name).rglob("*") if _is_source_file(p)
    )
    (tmp / "sources.txt").write_text("".join(f"{p.relative_to(src).as_posix()}\n" for p in copied))
    dist = tmp / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
        cwd=tmp,
        timeout=600,
    )
    (whl,) = dist.glob("ota_rig-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A new venv with the wheel installed (``--no-deps``); the dependencies are this
    environment's, reached through a .pth file added after the install."""
    venv = tmp_path_factory.mktemp("newvenv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=300)
    python = venv / "bin" / "python"
    # pip of this environment installs into the new one (which has no pip of its own)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=60
        ).stdout.strip()
    )
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz-ota-rig-test-deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return Installed(wheel=wheel, venv=venv, python=python, site=site, env=_clean_env(venv))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the repository."""
    assert REPO not in tmp_path.parents
    return tmp_path


# --------------------------------------------------------------------------- the wheel itself
def test_wheel_ships_board_file_and_plugin_but_no_top_level_fixtures(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        eps = zf.read(entry_points).decode()
    tops = {n.split("/")[0] for n in names}
    assert "fixtures" not in tops, sorted(tops)  # the name belongs to testtools' `fixtures` on PyPI
    assert "boards" not in tops, sorted(tops)
    assert "rig/boards/stm32f767.yaml" in names
    assert {"rig/fixtures/plugin.py", "rig/fixtures/options.py", "rig/cli.py", "twin/__main__.py"} <= set(
        names
    )
    assert "[pytest11]\nota_rig = rig.fixtures.plugin" in eps
    assert "rig = rig.cli:main" in eps


def test_imports_come_from_the_new_venv(installed: Installed, outside: Path) -> None:
    code = textwrap.dedent(
        """
        import importlib.util, json, sys
        import rig, twin, rig.fixtures.plugin
        from rig.board import default_board_path
        from rig.targets.twin import twin_home
        spec = importlib.util.find_spec("fixtures")
        print(json.dumps({
            "prefix": sys.prefix,
            "rig": rig.__file__,
            "twin": twin.__file__,
            "plugin": rig.fixtures.plugin.__file__,
            "board": str(default_board_path()),
            "twin_home": str(twin_home()),
            "fixtures": spec.origin if spec else None,
        }))
        """
    )
    proc = installed.run([str(installed.python), "-c", code], cwd=outside)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    site = installed.site.resolve()
    assert Path(got["prefix"]) == installed.venv
    for key in ("rig", "twin", "plugin", "board"):
        assert site in Path(got[key]).resolve().parents, (key, got[key])
    assert Path(got["board"]).resolve() == site / "rig" / "boards" / "stm32f767.yaml"
    assert Path(got["twin_home"]) == site
    assert got["fixtures"] is None or site not in Path(got["fixtures"]).resolve().parents


def test_wheel_ships_every_file_of_its_packages(wheel: Path) -> None:
    """Whatever the rig reads at run time (board files, report templates, py.typed ...) is in
    the wheel: every file under a package's folder, at its installed path. A file that is
    missing here is missing for every `pip install ota-rig` user."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    owner_of = {d: pkg for pkg, d in _package_dirs(pyproject).items()}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    sources = (wheel.parents[1] / "sources.txt").read_text().split()
    assert "rig/cli.py" in sources and "boards/stm32f767.yaml" in sources
    missing = []
    for rel in map(Path, sources):
        # the nearest enclosing folder that is a listed package owns the file
        folder = next((d for d in rel.parents if d in owner_of), None)
        assert folder is not None, f"{rel} is under no package of pyproject.toml"
        installed = Path(*owner_of[folder].split("."), rel.relative_to(folder)).as_posix()
        if installed not in names:
            missing.append(f"{rel} (as {installed})")
    assert not missing, "not in the wheel (add the package or its package-data in pyproject.toml):\n" + (
        "\n".join(missing)
    )


# --------------------------------------------------------------------------- `rig` command
def test_rig_diff_command(installed: Installed, outside: Path) -> None:
    rig = installed.venv / "bin" / "rig"
    assert rig.is_file()
    image = bytes(range(256)) * 16  # 4 KiB
    (outside / "app.bin").write_bytes(image)
    (outside / "same.bin").write_bytes(image)
    broken = bytearray(image)
    broken[100:108] = b"\xff" * 8
    (outside / "broken.bin").write_bytes(bytes(broken))

    same = installed.run([str(rig), "diff", "app.bin", "same.bin", "--base", "0x08040000"], cwd=outside)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "all 4 096 bytes match" in same.stdout

    diff = installed.run(
        [str(rig), "diff", "app.bin", "broken.bin", "--base", "0x08040000", "--json"], cwd=outside
    )
    assert diff.returncode == 1, diff.stdout + diff.stderr
    doc = json.loads(diff.stdout)
    assert Path(doc["board"]).resolve() == installed.site.resolve() / "rig" / "boards" / "stm32f767.yaml"
    assert doc["ok"] is False and doc["differing"] == 8
    assert doc["ranges"] == [{"address": 0x08040064, "length": 8, "end": 0x0804006C}]

    missing = installed.run([str(rig), "diff", "app.bin", "nope.bin", "--base", "0x08040000"], cwd=outside)
    assert missing.returncode == 2 and "nope.bin" in missing.stderr


# --------------------------------------------------------------------------- pytest plugin
USER_TEST = '''
"""A user's own test file in their own project, using the installed ota-rig fixtures."""
import os
import sys
from pathlib import Path

import rig
from rig.targets.twin import twin_home


def test_options_and_board_file(rig_options, board_spec, pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("ota_rig")
    assert rig_options.board == "twin" and rig_options.is_twin
    packaged = Path(rig.__file__).parent / "boards" / "stm32f767.yaml"
    assert rig_options.board_file.resolve() == packaged.resolve()
    assert board_spec.region("bootloader").base == 0x08000000
    assert Path(sys.prefix).resolve() in packaged.resolve().parents


def test_flashed_bench_runs_the_installed_twin(flashed_bench, bootloader_image):
    proc = flashed_bench.target.proc
    assert proc.args[:3] == [sys.executable, "-m", "twin"]
    # `python -m twin` ran beside the installed package: that is the twin it imported
    assert Path(os.readlink(f"/proc/{proc.pid}/cwd")) == twin_home()
    assert Path(sys.prefix).resolve() in twin_home().parents
    data = flashed_bench.readback(0x08000000, len(bootloader_image.data))
    assert data == bootloader_image.data
'''

UNRELATED_TEST = """
def test_unrelated(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("ota_rig")  # auto-loaded, and harmless
    assert sum([1, 2, 3]) == 6
"""


def _user_project(root: Path, name: str, test: str) -> Path:
    proj = root / name
    proj.mkdir()
    (proj / "pytest.ini").write_text("[pytest]\n")
    (proj / f"test_{name}.py").write_text(test)
    return proj


def _pytest(installed: Installed, proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return installed.run(
        [str(installed.python), "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=proj, timeout=600
    )


def test_user_test_file_uses_the_fixtures(installed: Installed, outside: Path) -> None:
    if not BOOTLOADER.is_file():
        _run(["make", "-s", "-C", str(REPO / "firmware"), f"PYTHON={sys.executable}", "build/bootloader.bin"])
    proj = _user_project(outside, "user", USER_TEST)
    # `--bootloader=PATH`, one word: pytest picks its rootdir (and config file) from the
    # positional-looking words of the command line before plugins add their options, so
    # `--bootloader PATH` would make this checkout the rootdir of the user's run
    proc = _pytest(installed, proj, f"--bootloader={BOOTLOADER}", "-rA")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 passed" in out and f"rootdir: {proj}" in out, out
    assert (proj / "reports" / "artifacts").is_dir()  # the rig's artifacts land in the user's project


def test_unrelated_test_file_with_the_plugin_loaded(installed: Installed, outside: Path) -> None:
    proj = _user_project(outside, "plain", UNRELATED_TEST)
    proc = _pytest(installed, proj)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed" in out, out
