"""Runs last (file order): after every integration test, the shared server's log holds no
traceback and no secret."""

from __future__ import annotations

from s3helpers import assert_log_clean

from pygarage.testing.node import GarageNode


def test_server_log_clean_after_everything(node: GarageNode, creds: tuple[str, str],
                                           other_creds: tuple[str, str]) -> None:
    assert_log_clean(node, [creds[1], other_creds[1], node.admin_token])
