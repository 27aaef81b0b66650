"""Turn what the user typed (id prefixes, names, patterns) into full ids.

Buckets and keys are resolved by the daemon (`search`); node ids are resolved here,
because the layout endpoints want full ids and Garage accepts any unique prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from pygarage.cli.state import client

__all__ = [
    "bucket_info",
    "find_node",
    "key_info",
    "known_node_ids",
]


def known_node_ids(status: dict[str, Any], layout: dict[str, Any]) -> list[str]:
    """Every node id the cluster knows about: connected peers, roles and staged roles."""
    ids: set[str] = {n["id"] for n in status.get("nodes", [])}
    ids.update(r["id"] for r in layout.get("roles", []))
    ids.update(r["id"] for r in layout.get("stagedRoleChanges", []))
    return sorted(ids)


def find_node(prefix: str, candidates: Iterable[str]) -> str:
    """The single candidate id starting with `prefix` (case-insensitive)."""
    want = prefix.strip().lower()
    if not want:
        raise click.ClickException("Empty node id")
    matches = sorted({c for c in candidates if c.lower().startswith(want)})
    if not matches:
        raise click.ClickException(f"No node found matching {prefix!r}")
    if len(matches) > 1:
        listed = ", ".join(matches)
        raise click.ClickException(
            f"{len(matches)} nodes match {prefix!r}: {listed}; please use a longer prefix"
        )
    return matches[0]


def bucket_info(ctx: click.Context, name: str) -> dict[str, Any]:
    """GetBucketInfo by global alias, full id or id prefix."""
    info: dict[str, Any] = client(ctx).call("GetBucketInfo", query={"search": name})
    return info


def key_info(ctx: click.Context, pattern: str, *, show_secret: bool = False) -> dict[str, Any]:
    """GetKeyInfo by key id, id prefix or name."""
    query = {"search": pattern, "showSecretKey": "true" if show_secret else "false"}
    info: dict[str, Any] = client(ctx).call("GetKeyInfo", query=query)
    return info
