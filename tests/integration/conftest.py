"""Integration fixtures: a hand-made request client and a second access key."""

from __future__ import annotations

from typing import Any

import pytest
from s3helpers import RawClient

from pygarage.testing.node import GarageNode


@pytest.fixture
def raw(node: GarageNode, creds: tuple[str, str]) -> RawClient:
    return RawClient(node, creds)


@pytest.fixture(scope="session")
def other_creds(node: GarageNode) -> tuple[str, str]:
    """A second key: no permission on the test buckets."""
    return node.create_key("other")


@pytest.fixture
def other_s3(node: GarageNode, other_creds: tuple[str, str]) -> Any:
    return node.s3(*other_creds)
