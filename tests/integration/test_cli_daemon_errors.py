"""CLI commands for parts the daemon does not implement yet, run against the real daemon:
each must fail with the daemon's own message and a non-zero exit, never print a success."""

from __future__ import annotations

import pytest

from pygarage.testing.node import GarageNode

HASH = "ab" * 32


@pytest.mark.parametrize(
    "args",
    [
        ["repair", "--yes", "tables"],
        ["repair", "-a", "--yes", "blocks"],
        ["repair", "--yes", "scrub", "start"],
        ["block", "retry-now", "--all"],
        ["block", "purge", "--yes", HASH],
        ["meta", "snapshot"],
        ["worker", "set", "resync-worker-count", "4"],
        ["node", "connect", "86f0f26ae4afbd59" + "0" * 48 + "@127.0.0.1:1"],
    ],
)
def test_not_implemented_commands_fail_plainly(node: GarageNode, args: list[str]) -> None:
    r = node.cli(*args, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "not implemented in pygarage yet" in r.stderr
    assert "Traceback" not in r.stderr
    assert "launched" not in r.stdout.lower() and "purged" not in r.stdout.lower()
