"""Settings for every test under tests/.

Tests run longest first (:func:`pytest_collection_modifyitems`): pytest-xdist hands the
first tests out round robin, so the long ones start at once on every worker and the short
ones fill in after them, instead of a long test starting last and holding the run alone.

The user cache (``$XDG_CACHE_HOME``, where ``rig diff`` keeps its board snapshot:
rig/diff_board.py) points into the session's temporary directory, so tests neither read
a developer's cache nor leave files in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


#: the cost of a ``slow`` test that does not say its own (``@pytest.mark.slow(seconds=N)``)
SLOW_SECONDS = 20


def cost(item: pytest.Item) -> float:
    """Seconds a test is expected to take alone, for ordering: its ``slow`` marker's
    ``seconds``, SLOW_SECONDS for a ``slow`` marker without, 0 for the rest."""
    mark = item.get_closest_marker("slow")
    return 0.0 if mark is None else float(mark.kwargs.get("seconds", SLOW_SECONDS))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first (stable: equal costs keep their order, the HIL suite's own included)."""
    items.sort(key=lambda item: -cost(item))
