"""Suite-level fixtures: the reference application images the scenarios update to."""

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
