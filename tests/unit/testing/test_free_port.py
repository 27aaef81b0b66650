"""free_port: a node's ports are all picked before any is bound, so picks never repeat."""

from __future__ import annotations

import pygarage.testing.node as node_mod


def test_picks_never_repeat_a_port_not_yet_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A narrow range makes a repeat near certain without the record of issued ports.
    monkeypatch.setattr(node_mod, "_ephemeral_range", lambda: (11_064, 60_999))
    monkeypatch.setattr(node_mod, "_issued", {})
    ports = [node_mod.free_port() for _ in range(400)]
    assert len(set(ports)) == 400
