"""Build and load the twin's C hooks: the D-cache model's memory hooks (twin/dcache_hooks.c),
the one code hook (twin/code_hook.c: instruction count, UsageFault sites), the plain
exception entry and return (twin/exc_fast.c) and the FLASH registers' plain accesses
(twin/flash_fast.c), one library.

The sources ship with the package; the first twin that needs them compiles them with the host C
compiler (``cc``, or ``$CC``; `make setup` installs gcc) into a shared library in
``$XDG_CACHE_HOME/ota-rig/native`` (default ``~/.cache/ota-rig/native``), named by a hash of
the sources and the interpreter's platform, and every later twin loads that file. The build
writes a temporary file and renames it, so parallel twins (pytest-xdist) never load half a
library. Where no compiler works the twin runs the same hooks in Python (twin/dcache_lines.py,
twin/code_hook.py), slower, and says so once in the twin's log. ``OTA_TWIN_NATIVE=python``
chooses the Python hooks for both, ``OTA_TWIN_DCACHE=python`` for the D-cache's (the tests
run both).

Owns: the build and the ctypes library. Must not touch: the cache state (twin/dcache.py), the
sites (twin/usage_checks.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sysconfig
import tempfile
from functools import cache
from pathlib import Path

from unicorn.arm_const import UC_ARM_REG_EPSR
from unicorn.unicorn_py3.unicorn import uclib

SOURCES = tuple(
    Path(__file__).with_name(n) for n in ("dcache_hooks.c", "code_hook.c", "exc_fast.c", "flash_fast.c")
)
FUNCTIONS = (
    "dc_init",
    "dc_read",
    "dc_write_back",
    "dc_write_allocate",
    "dc_write_through",
    "ch_code",
    "ef_enter",
    "ef_return",
    "ff_read",
    "ff_write",
)


class NativeUnavailable(RuntimeError):
    """The C hooks could not be built or loaded (the reason is the message)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ota-rig" / "native"


def library_path() -> Path:
    src = b"".join(p.read_bytes() for p in SOURCES)
    key = hashlib.sha256(src + (sysconfig.get_platform() or "").encode()).hexdigest()[:16]
    return cache_dir() / f"twin_hooks-{key}.so"


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise NativeUnavailable("no C compiler (cc/gcc) on PATH: install gcc (make setup does)")
    return cc


def build(path: Path) -> None:
    """Compile SOURCES into ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        cmd = [_compiler(), "-O2", "-shared", "-fPIC", "-std=c99", "-o", tmp, *map(str, SOURCES)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise NativeUnavailable(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:500]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def library() -> ctypes.CDLL:
    """The loaded C hooks (built first if needed); NativeUnavailable says why not."""
    if os.environ.get("OTA_TWIN_NATIVE", "").lower() == "python":
        raise NativeUnavailable("OTA_TWIN_NATIVE=python")
    return _load(library_path())


@cache
def _load(path: Path) -> ctypes.CDLL:
    try:
        if not path.is_file():
            build(path)
        lib = ctypes.CDLL(str(path))
        for name in FUNCTIONS:
            getattr(lib, name)
        # the hooks fix the ITSTATE unicorn leaves behind (twin/dcache_hooks.c) with its own
        # register functions
        lib.dc_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.dc_init(
            ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p),
            ctypes.cast(uclib.uc_reg_write, ctypes.c_void_p),
            UC_ARM_REG_EPSR,
        )
    except (OSError, AttributeError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"{path}: {e}") from e
    return lib
