"""Fixtures shared by the block tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pygarage.model.garage import Garage
from pygarage.testing.local_garage import running_local_garage


@pytest.fixture
async def garage(tmp_path: Path) -> AsyncIterator[Garage]:
    """A running single-node Garage (layout applied), shut down afterwards."""
    async with running_local_garage(tmp_path) as g:
        yield g
