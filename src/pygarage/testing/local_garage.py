"""One Garage in the test's own process and without sockets: a single node (replication
factor 1) that, once given its layout, owns every partition. For the tests of the model
layers (tables and their hooks, the deletion cascade, blocks, admin calls on "self") that
want a real Garage but no cluster; InprocCluster (inproc.py) is for several nodes talking
over real RPC. Never imported by production code.

    g = local_garage(tmp_path, buckets=[b"B" * 32], db_engine="sqlite")
    await g.object_table.insert(...)
    await drain(g)  # what the hooks queued, done

    async with running_local_garage(tmp_path, block_size=4096) as g:
        ...  # shut down on the way out
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..api.admin.cluster import ensure_single_node_layout
from ..model.bucket_table import Bucket
from ..model.garage import Garage
from ..table.queue import InsertQueueWorker
from ..util.config import Config, config_from_dict


def local_config(root: Path, **extra: Any) -> Config:
    """Metadata in root/m, data in root/d, RF 1, an RPC address never listened on; `extra`
    adds config keys or overrides these (e.g. db_engine="sqlite", block_size=4096)."""
    return config_from_dict({"metadata_dir": str(root / "m"), "data_dir": str(root / "d"),
                             "rpc_bind_addr": "127.0.0.1:1", "rpc_secret": "33" * 32,
                             "replication_factor": 1, **extra})


def _prepare(g: Garage, layout: bool, buckets: Iterable[bytes]) -> None:
    if layout:
        ensure_single_node_layout(g)
    for bucket in buckets:  # objects are only written into existing buckets
        g.bucket_table.data.update_entry(Bucket(bucket))


def local_garage(root: Path, *, layout: bool = True, buckets: Iterable[bytes] = (),
                 **extra: Any) -> Garage:
    """A Garage on local_config(root, **extra), given its single-node layout (unless
    layout=False), then the (empty) buckets listed. The caller closes it (g.shutdown(), or
    g.db.close() where no event loop runs)."""
    g = Garage(local_config(root, **extra))
    _prepare(g, layout, buckets)
    return g


@asynccontextmanager
async def running_local_garage(root: Path, *, layout: bool = True, buckets: Iterable[bytes] = (),
                               **extra: Any) -> AsyncIterator[Garage]:
    """local_garage(), shut down on the way out (a failed set-up included)."""
    g = Garage(local_config(root, **extra))
    try:
        _prepare(g, layout, buckets)
        yield g
    finally:
        await g.shutdown()


async def drain(g: Garage, passes: int = 5) -> None:
    """Run every table's insert queue until it is empty, `passes` times over the tables:
    hooks queue inserts into other tables, whose hooks queue more; a few passes settle it."""
    for _ in range(passes):
        for t in g.tables:
            w = InsertQueueWorker(t)
            while t.data.queued(1):
                await w.work()
