"""OTA updates of every size over each transport, each ending in a checked jump.

Each test first puts a *different* image in the app slot through the probe, as on a board
that has lived, so an update that forgets to erase shows up (the thread's "works twice,
then never again" and "over 256 KiB never starts"). With ``--app PATH`` the same scenario
also updates to that image (test ids ``...-user``), checked the same way.
"""

from __future__ import annotations

import pytest

from rig.hil import previous_for

#: the reference apps every run updates to (tests_hil/conftest.py REFERENCE_APPS)
SIZES = ["16k", "300k", pytest.param("512k", marks=pytest.mark.slow)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``size``: the reference apps, and ``user`` (the ``--app`` image) when --app is given."""
    if "size" in metafunc.fixturenames:
        user = ["user"] if metafunc.config.getoption("app") else []
        metafunc.parametrize("size", [*SIZES, *user])


def test_update_jumps_into_new_app(flashed_bench, apps, transport, size, evidence) -> None:
    image = apps[size]
    evidence.scenario.update(scenario=f"update {size}")
    flashed_bench.update(
        image, evidence, transport=transport, previous=previous_for(list(apps.values()), image)
    )
