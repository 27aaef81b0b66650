"""EntryCache: one database read per entry until the table's next write, then fresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pygarage.db.base import Db
from pygarage.db.open import open_db
from pygarage.model.key_table import Key, KeySchema
from pygarage.table.cache import EntryCache
from pygarage.table.data import TableData


class CountingDb:
    """A Db that counts point reads (everything else passes through)."""

    def __init__(self, db: Db):
        self.db = db
        self.gets = 0

    def get(self, tree: str, key: bytes) -> bytes | None:
        self.gets += 1
        return self.db.get(tree, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.fixture(params=["lmdb", "sqlite"])
def keys(request: pytest.FixtureRequest, tmp_path: Path
         ) -> Iterator[tuple[CountingDb, TableData[Key], EntryCache[Key]]]:
    db = CountingDb(open_db(request.param, tmp_path / "db", lmdb_map_size=1 << 26))
    data: TableData[Key] = TableData(db, KeySchema())  # type: ignore[arg-type]
    cache: EntryCache[Key] = EntryCache(SimpleNamespace(data=data))  # type: ignore[arg-type]
    db.gets = 0  # count only the cache's reads (not the table's own start-up checks)
    yield db, data, cache
    db.close()


def test_reads_once_until_a_write(keys: tuple[CountingDb, TableData[Key], EntryCache[Key]]
                                  ) -> None:
    db, data, cache = keys
    data.update_entry(Key("GKa", "s1", created=1))
    for _ in range(5):
        k = cache.get(b"GKa")
        assert k is not None and k.secret == "s1"
    assert cache.get(b"GKnone") is None
    assert cache.get(b"GKnone") is None
    assert db.gets == 2  # one per name, the unknown one included

    data.update_entry(Key("GKa", "s1", created=1, deleted=True))  # any write: fresh reads
    k = cache.get(b"GKa")
    assert k is not None and k.deleted
    data.update_entry(Key("GKnone", "s2", created=1))
    k = cache.get(b"GKnone")
    assert k is not None and k.secret == "s2"
    assert db.gets == 4


def test_bounded(keys: tuple[CountingDb, TableData[Key], EntryCache[Key]]) -> None:
    db, _, cache = keys
    cache.max_entries = 3
    for i in range(10):
        assert cache.get(f"GK{i}".encode()) is None
    for i in range(10):
        cache.get(f"GK{i}".encode())
    assert db.gets == 3 + 2 * 7  # the first 3 stay cached, the others are read every time


async def test_a_read_during_an_uncommitted_write_is_not_kept(
        keys: tuple[CountingDb, TableData[Key], EntryCache[Key]]) -> None:
    # The writer thread bumps the generation before it commits: a lookup in that window
    # reads (and caches) the old value. The bump after the commit must drop it.
    import threading
    db, data, cache = keys
    data.update_entry(Key("GKa", "s1", created=1))
    seen: list[Key | None] = []

    def write(tx: Any) -> None:
        data.update_entry_tx(tx, Key("GKa", "s1", created=1, deleted=True))
        reader = threading.Thread(target=lambda: seen.append(cache.get(b"GKa")))
        reader.start()
        reader.join()
    await db.write(write)
    assert seen[0] is not None and not seen[0].deleted  # the window really was hit
    k = cache.get(b"GKa")
    assert k is not None and k.deleted
    db.stop_writer()
