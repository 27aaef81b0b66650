"""Offline check of a stopped node's database: every table's stored Merkle tree is complete
and equal, node for node, to one built from scratch from the table's entries."""

from __future__ import annotations

from pathlib import Path

from ..db.open import open_db
from ..table.merkle_tree import STATE_TREE, TableMerkle

TABLES = ["bucket", "bucket_alias", "key", "object", "version", "block_ref", "multipart_upload"]


def check_merkle(metadata_dir: Path, engine: str) -> dict[str, str]:
    """Table name -> problem, for each table whose tree is not right (empty: all good).
    Opens the db itself (the node must be stopped) and never repairs anything."""
    db = open_db(engine, metadata_dir)
    try:
        problems: dict[str, str] = {}
        db.open_tree(STATE_TREE)
        for name in TABLES:
            store = f"{name}:table"
            db.open_tree(store)
            tm = TableMerkle(db, name, store)
            if not tm.is_complete():
                problems[name] = "no complete Merkle tree"
                continue
            bad = tm.matches_entries()
            if bad:
                problems[name] = f"partitions differ from a rebuild: {bad}"
        return problems
    finally:
        db.close()
