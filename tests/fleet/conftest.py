"""Fixtures only: the fleet on five network namespaces (tests/support/fleet.py),
started once for the module and checked healthy before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fleet import Fleet, fleet_healthy, running_fleet
from tests.support.netns import can_make_namespaces


@pytest.fixture(scope="module")
async def fleet_once(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    if not can_make_namespaces():
        pytest.skip(
            "the multi-host tests make network namespaces, which needs root "
            "(CI runs them as root: .ci/run)"
        )
    async with running_fleet(tmp_path_factory.mktemp("fleet")) as fleet:
        yield fleet


@pytest.fixture
async def fleet(fleet_once: Fleet) -> AsyncIterator[Fleet]:
    """The module's fleet, whole again whatever the test before did."""
    await fleet_healthy(fleet_once)
    yield fleet_once
