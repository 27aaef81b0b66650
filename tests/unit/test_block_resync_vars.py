"""resync-worker-count and resync-tranquility: bounds checked, persisted in the db."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pygarage.model.garage import Garage
from pygarage.testing.local_garage import local_garage


class Registry:
    def __init__(self) -> None:
        self.vars: dict[str, tuple[Callable[[], object], Callable[[str], Awaitable[None]]]] = {}

    def register(self, name: str, get: Callable[[], object],
                 set: Callable[[str], Awaitable[None]]) -> None:
        self.vars[name] = (get, set)


def _garage(tmp_path: Path) -> Garage:
    return local_garage(tmp_path, layout=False)


async def test_resync_variables(tmp_path: Path) -> None:
    g = _garage(tmp_path)
    reg = Registry()
    g.block_manager.resync.register_vars(reg)
    get_n, set_n = reg.vars["resync-worker-count"]
    get_t, set_t = reg.vars["resync-tranquility"]
    assert (get_n(), get_t()) == (1, 2)  # Garage's defaults
    # The registry's error type (a 400 from the admin API), never a bare ValueError.
    from pygarage.util import background
    var_error = getattr(background, "VarError", ValueError)
    for bad, why in (("0", "between 1 and 8"), ("9", "between 1 and 8"), ("two", "integer")):
        with pytest.raises(var_error, match=why):
            await set_n(bad)
    with pytest.raises(var_error, match="non-negative"):
        await set_t("-1")
    await set_n("4")
    await set_t(" 0 ")
    assert (get_n(), get_t()) == (4, 0)
    await g.shutdown()
    g = _garage(tmp_path)  # persisted
    assert (g.block_manager.resync.n_workers, g.block_manager.resync.tranquility) == (4, 0)
    await g.shutdown()


async def test_former_gc_list_moves_to_the_resync_queue(tmp_path: Path) -> None:
    from pygarage.block.resync import QUEUE_TREE, split_queue_key
    from pygarage.db.open import open_db
    (tmp_path / "m").mkdir()
    db = open_db("lmdb", tmp_path / "m", lmdb_map_size=1 << 30)
    db.open_tree("block_gc_todo")
    h = b"\x42" * 32
    db.insert("block_gc_todo", (5000).to_bytes(8, "big") + h, b"")
    db.close()
    g = _garage(tmp_path)
    assert g.db.range("block_gc_todo") == []
    assert [split_queue_key(k) for k, _ in g.db.range(QUEUE_TREE)] == [(15_000, h)]
    await g.shutdown()
