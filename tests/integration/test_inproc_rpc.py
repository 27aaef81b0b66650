"""RpcHelper over the real RPC between in-process nodes (testing/inproc.py): calls by node
id, quorum calls with a failing node, writes to several sets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pygarage.net.peer import IncomingRequest, RpcError
from pygarage.testing.inproc import InprocCluster
from pygarage.util.errors import QuorumError


async def test_calls_and_quorums(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        seen: dict[str, list[Any]] = {nd.id: [] for nd in c.nodes}
        for nd in c.nodes:
            async def echo(req: IncomingRequest, me: str = nd.id) -> Any:
                if req.body == "fail" and me == c.nodes[2].id:
                    raise RpcError("refused")
                seen[me].append(req.body)
                return [me, req.peer.hex()]
            nd.garage.rpc.register("test/echo", echo)
        h1 = c.nodes[0].garage.rpc
        ids = [nd.id for nd in c.nodes]
        # Local and remote calls; the callee sees the caller's id.
        for target in ids:
            assert await h1.call_body(target, "test/echo", 1) == [target, ids[0]]
        # This node is asked first: a quorum of 1 is answered locally.
        assert await h1.try_call_many(ids, "test/echo", 2, 1) == [(ids[0], [ids[0], ids[0]])]
        # Node 3 refuses: a quorum of 2 is still reached, 3 is not.
        ok = await h1.try_call_many(ids, "test/echo", "fail", 2, send_all=True)
        assert {n for n, _ in ok} <= set(ids[:2]) and len(ok) == 2
        with pytest.raises(QuorumError, match="refused"):
            await h1.try_call_many(ids, "test/echo", "fail", 3)
        # Sets: {1,2} and {2,3} at quorum 2 need node 3, which refuses.
        await h1.try_write_many_sets([ids[:2], ids[:2]], "test/echo", "x", 2)
        with pytest.raises(QuorumError):
            await h1.try_write_many_sets([ids[:2], ids[1:]], "test/echo", "fail", 2)
        # One request per node even when it is in several sets.
        n2 = len(seen[ids[1]])
        await h1.try_write_many_sets([ids[:2], ids[1:]], "test/echo", "y", 2)
        assert seen[ids[1]][n2:].count("y") == 1

        # A stopped node: calls fail with an error, quorums of the others still work.
        await c.nodes[2].stop()
        with pytest.raises(RpcError):
            await h1.call_body(ids[2], "test/echo", 1, timeout_s=2)
        ok = await h1.try_call_many(ids, "test/echo", 3, 2)
        assert {n for n, _ in ok} == set(ids[:2])
        assert h1.request_order(ids)[0] == ids[0]
        assert h1.request_order(ids)[-1] == ids[2]  # down nodes last


async def test_failed_resyncs_are_retried_when_a_node_comes_back(tmp_path: Path) -> None:
    """A block whose fetch failed while a node was away waits for its backoff (up to an
    hour); a node reconnecting makes its errors due at once."""
    from pygarage.block.resync import ERR_TREE, ErrorRecord
    from pygarage.util.clock import now_msec
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        bm = c.nodes[0].garage.block_manager
        h = bytes(range(32))
        later = now_msec() + 3_600_000
        await bm.db.write(lambda tx: tx.insert(ERR_TREE, h, ErrorRecord(3, 0, later).encode()))
        await c.nodes[2].stop()
        bm._last_peer_up = {}

        async def retried() -> bool:
            for _ in range(100):
                rec = bm.resync.error_of(h)
                if rec is not None and rec.next_try_ms < later:
                    break
                await asyncio.sleep(0.05)
            rec = bm.resync.error_of(h)
            return rec is not None and rec.next_try_ms <= now_msec()
        await c.restart(2)
        assert await retried()
        # Nodes come back one by one after a partition: the next one, seconds later,
        # retries again (a retry made with only the first back may have needed it).
        await bm.db.write(lambda tx: tx.insert(ERR_TREE, h, ErrorRecord(4, 0, later).encode()))
        await c.nodes[1].stop()
        await c.restart(1)
        assert await retried()
