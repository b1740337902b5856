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


def apps_dir(build, base: int):
    """Where the reference apps linked at ``base`` are: ``firmware/build`` for the reference
    app slot (0x08040000), ``firmware/build/apps-0x<BASE>`` for any other app base (built by
    ``make -C firmware apps-at APP_BASE=0x<BASE>``)."""
    other = build / f"apps-0x{base:08X}"
    return other if other.is_dir() else build


@pytest.fixture(scope="session")
def apps(board_spec, rig_options):
    """Reference apps by size name, loaded at the app slot base (plus --app as "user"). The
    app slot may be anywhere (board file): the apps must be linked there, their reset
    handler inside the slot."""
    from rig.image import load_image

    slot = board_spec.region(board_spec.ota.app_region)
    base = slot.base
    where = apps_dir(rig_options.firmware_build, base)
    make = "make -C firmware" if base == 0x08040000 else f"make -C firmware apps-at APP_BASE=0x{base:08X}"
    images = {}
    for name, file in REFERENCE_APPS.items():
        path = where / file
        if not path.is_file():
            pytest.exit(f"{path} is missing: build the reference apps with `{make}`", returncode=4)
        images[name] = load_image(path, base=base)
        if not slot.contains(images[name].reset_handler & ~1):
            pytest.exit(
                f"{path} is not linked at the app slot 0x{base:08X} of {board_spec.source} (its reset "
                f"handler is 0x{images[name].reset_handler:08X}): build the apps for it with `{make}`",
                returncode=4,
            )
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
    """Collected beside tests/ (`make test`) this orders those too: their slow tests (whole
    suites in child pytests) go last with the suite's. Measured on 2 cores, four workers:
    longest first, handed out one at a time, made `make test` slower (781-912 s against
    606-648 s): the twins, wall-paced, all ran at once and starved each other."""
    items.sort(key=order_key)
