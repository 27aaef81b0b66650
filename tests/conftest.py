"""Shared fixtures: a real garage server process per test session (fresh bucket per test),
and helpers to start private nodes for restart / kill -9 tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pygarage.testing.node import GarageNode

# The machines set AWS_CA_BUNDLE and friends; tests talk plain HTTP on loopback.
for _var in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarageNode]:
    n = GarageNode(tmp_path_factory.mktemp("node"))
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="session")
def creds(node: GarageNode) -> tuple[str, str]:
    return node.create_key("session-key")


@pytest.fixture
def bucket(node: GarageNode, creds: tuple[str, str]) -> str:
    name = "b-" + secrets.token_hex(6)
    node.create_bucket(name, creds[0])
    return name


@pytest.fixture
def s3(node: GarageNode, creds: tuple[str, str]) -> Any:
    return node.s3(*creds)


@pytest.fixture
def private_node(tmp_path: Path) -> Iterator[GarageNode]:
    n = GarageNode(tmp_path / "private")
    yield n
    n.stop()
