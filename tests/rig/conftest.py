"""Fixtures shared by the rig's tests against a twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.targets.twin import TwinTarget, start_twin


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinTarget]:
    """A twin with empty flash, started for one test and stopped after it (a module that
    needs another one defines its own ``twin``)."""
    t = start_twin(log_path=tmp_path / "twin.log")
    try:
        yield t
    finally:
        t.stop()
