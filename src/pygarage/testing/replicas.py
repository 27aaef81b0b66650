"""Offline comparison of replicas after a fault scenario: the table entries of stopped nodes
(read from their databases, never written) and the block files in their data dirs.
Never imported by production code."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..db.open import open_db
from .merkle_check import TABLES

_BLOCK = re.compile(r"^([0-9a-f]{64})(\.zst)?$")


def dump_tables(metadata_dir: Path, engine: str = "lmdb",
                tables: list[str] | None = None) -> dict[str, dict[bytes, bytes]]:
    """Table name -> {stored key: stored entry} of a stopped node."""
    db = open_db(engine, metadata_dir)
    try:
        out: dict[str, dict[bytes, bytes]] = {}
        for name in tables or TABLES:
            tree = f"{name}:table"
            db.open_tree(tree)
            out[name] = dict(db.range(tree))
        return out
    finally:
        db.close()


def block_files(data_dir: Path) -> set[str]:
    """Hashes (hex) of the block files under a node's data dir."""
    found: set[str] = set()
    for _, _, files in os.walk(data_dir):
        for f in files:
            m = _BLOCK.match(f)
            if m:
                found.add(m.group(1))
    return found


def table_differences(dumps: dict[str, dict[str, dict[bytes, bytes]]]) -> list[str]:
    """Replicas holding every partition (RF = number of nodes) must hold the same entries:
    node -> dump_tables() in, one line per difference out (empty: identical)."""
    out: list[str] = []
    names = sorted(dumps)
    if not names:
        return out
    ref = names[0]
    for table in dumps[ref]:
        for other in names[1:]:
            a, b = dumps[ref][table], dumps[other].get(table, {})
            only_a = a.keys() - b.keys()
            only_b = b.keys() - a.keys()
            differ = [k for k in a.keys() & b.keys() if a[k] != b[k]]
            if only_a or only_b or differ:
                out.append(f"{table}: {ref} and {other} differ: {len(only_a)} entries only on "
                           f"{ref}, {len(only_b)} only on {other}, {len(differ)} with "
                           "different content")
    return out
