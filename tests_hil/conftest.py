"""Suite-level fixtures (the reference application images the scenarios update to) and the
order the scenarios run in."""

from __future__ import annotations

import pytest

#: name -> file in firmware/build (see firmware/README.md)
REFERENCE_APPS = {
    "16k": "app-v1-16k.bin",
    "300k": "app-v2-300k.bin",
    "512k": "app-v3-512k.bin",
    "64k": "app-v4-64k.bin",
}


@pytest.fixture(scope="session")
def apps(board_spec, rig_options):
    """Reference apps by size name, loaded at the app slot base (plus --app as "user")."""
    from rig.image import load_image

    base = board_spec.region(board_spec.ota.app_region).base
    images = {}
    for name, file in REFERENCE_APPS.items():
        path = rig_options.firmware_build / file
        if not path.is_file():
            pytest.exit(f"{path} is missing: build the firmware with `make -C firmware`", returncode=4)
        images[name] = load_image(path, base=base)
    if rig_options.app is not None:
        images["user"] = load_image(rig_options.app, base=base)
    return images


#: the order of the scenario files: quick, targeted scenarios first, so that with ``-x`` a
#: bug stops the run at the scenario that names it (a jump-contract item, an edge size, a
#: link policy), not at the long consecutive-updates run; unknown files go after these
MODULE_ORDER = (
    "test_bootloader.py",
    "test_boot_decision.py",
    "test_ota_update.py",
    "test_edge_sizes.py",
    "test_link_policies.py",
    "test_power_cut.py",
    "test_consecutive_updates.py",
)


def order_key(item: pytest.Item) -> tuple[int, int]:
    """(slow last, file rank): sorting is stable, so the order inside a file is kept."""
    name = item.path.name
    rank = MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)
    return (item.get_closest_marker("slow") is not None, rank)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=order_key)
