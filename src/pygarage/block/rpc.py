"""The block RPC between nodes: put a block (streamed), get a block (streamed back), "do you
need this block?", and "check your copy". Requests come from authenticated peers, but every
field is still validated: a buggy or hostile peer gets an error, never a stored bad block.

    block/put   {h, c, n} + stream of n bytes  -> None   (hash verified before it is kept)
    block/get   {h}                             -> {c, n} + stream of n bytes (the file as
                                                   is: the reader verifies it)
    block/need  {h}                             -> bool  (needed here and not present)
    block/check {h}                             -> bool  (local copy sound; a corrupt one
                                                   is moved aside and queued for resync)
    block/has   {h}                             -> bool  (a file for it is here; for
                                                   `block info`)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..net.conn import PRIO_BACKGROUND
from ..net.peer import IncomingRequest, Reply, RpcError
from ..util.clock import now_msec
from ..util.errors import CorruptData, GarageError, MissingBlock
from ..util.ids import HASH_LEN
from ..util.offload import offload
from .block import DataBlock, unpack_block_async

if TYPE_CHECKING:
    from .manager import BlockManager

PUT, GET, NEED, CHECK, HAS = ("block/put", "block/get", "block/need", "block/check",
                              "block/has")
# No block is larger than the largest block_size (1 GiB) plus zstd's worst-case overhead.
MAX_WIRE_BLOCK = (1 << 30) + (1 << 20)
# An RPC carrying a block that gets no answer in this time fails (Garage: 30 s); the
# next node is then tried (reads) or the write counts as failed.
BLOCK_RW_TIMEOUT_S = 30.0
# Asking the other nodes whether they need a block before deleting it (Garage: 5 s).
NEED_BLOCK_QUERY_TIMEOUT_S = 5.0


def _hash_of(body: Any) -> bytes:
    h = body.get("h") if isinstance(body, dict) else None
    if not isinstance(h, bytes) or len(h) != HASH_LEN:
        raise RpcError("invalid block request: h must be a 32-byte hash")
    return h


def _put_head(body: Any) -> tuple[bytes, bool, int]:
    h = _hash_of(body)
    c, n = body.get("c"), body.get("n")
    if not isinstance(c, bool) or not isinstance(n, int) or isinstance(n, bool) \
            or not 0 <= n <= MAX_WIRE_BLOCK:
        raise RpcError("invalid block/put: c must be a bool, n a size")
    return h, c, n


async def _whole(payload: bytes) -> AsyncIterator[bytes]:
    # One piece, no copy: the connection cuts it into frames as it sends.
    yield payload


def register_block_endpoints(bm: BlockManager) -> None:
    async def put(req: IncomingRequest) -> None:
        h, compressed, n = _put_head(req.body)
        if req.stream is None:
            raise RpcError("block/put carries the block as a stream")
        # Only a node that stores this partition, or still needs the block, takes it.
        if bm.node_id not in bm.storage_nodes(h) and \
                not bm.rc.get_entry(h).is_needed(now_msec()):
            raise RpcError(f"block {h.hex()[:16]} does not belong on this node")
        if n > bm.ram_buffer.capacity:
            raise RpcError("block larger than block_ram_buffer_max")
        async with bm.ram_buffer.hold(n):
            payload = await req.stream.read_all(limit=n)
            if len(payload) != n:
                raise RpcError(f"block/put: {len(payload)} bytes received, {n} announced")
            block = DataBlock(compressed, payload)
            try:
                await unpack_block_async(h, block)  # verified before kept
            except CorruptData as e:
                raise RpcError(str(e)) from None
            await bm.write_local(h, block)

    async def get(req: IncomingRequest) -> Reply:
        h = _hash_of(req.body)
        block = await bm.read_raw_local(h)
        if block is None:
            raise RpcError(f"block {h.hex()} not found on this node")
        return Reply({"c": block.compressed, "n": len(block.payload)},
                     _whole(block.payload))

    async def need(req: IncomingRequest) -> bool:
        h = _hash_of(req.body)
        if not bm.rc.get_entry(h).is_needed(now_msec()):
            return False
        return not await offload(bm.store.has, h)

    async def check(req: IncomingRequest) -> bool:
        h = _hash_of(req.body)
        try:
            await bm.read_local(h)  # a corrupt copy is moved aside and queued there
        except (MissingBlock, CorruptData):
            return False
        return True

    async def has(req: IncomingRequest) -> bool:
        return await offload(bm.store.has, _hash_of(req.body))

    for path, handler in ((PUT, put), (GET, get), (NEED, need), (CHECK, check), (HAS, has)):
        bm.rpc.register(path, _errors_as_rpc(handler))


def _errors_as_rpc(handler: Callable[[IncomingRequest], Awaitable[Any]]
                   ) -> Callable[[IncomingRequest], Awaitable[Any]]:
    """Expected failures (no layout yet, a disk error) go back to the caller as an error
    message, not as an internal error with a traceback in this node's log."""
    async def wrapped(req: IncomingRequest) -> Any:
        try:
            return await handler(req)
        except (GarageError, OSError) as e:
            raise RpcError(f"{type(e).__name__}: {e}") from None
    return wrapped


class BlockRpcClient:
    """Calls to the block endpoints of other nodes."""

    def __init__(self, bm: BlockManager):
        self.bm = bm

    async def put_to(self, node: str, h: bytes, block: DataBlock, prio: int) -> None:
        head = {"h": h, "c": block.compressed, "n": len(block.payload)}
        _, stream = await self.bm.rpc.call(node, PUT, head, prio=prio,
                                           timeout_s=BLOCK_RW_TIMEOUT_S,
                                           stream=block.payload)
        if stream is not None:
            async for _ in stream:
                pass

    async def get_from(self, node: str, h: bytes, prio: int) -> DataBlock:
        """The block as the node stores it (not verified yet: the caller decodes it)."""
        head, stream = await self.bm.rpc.call(node, GET, {"h": h}, prio=prio,
                                              timeout_s=BLOCK_RW_TIMEOUT_S)
        if stream is None or not isinstance(head, dict):
            raise RpcError(f"block/get: invalid answer from {node[:16]}")
        c, n = head.get("c"), head.get("n")
        if not isinstance(c, bool) or not isinstance(n, int) or not 0 <= n <= MAX_WIRE_BLOCK:
            raise RpcError(f"block/get: invalid answer from {node[:16]}")
        async with asyncio.timeout(BLOCK_RW_TIMEOUT_S):
            payload = await stream.read_all(limit=n)
        if len(payload) != n:
            raise RpcError(f"block/get: {len(payload)} bytes from {node[:16]}, {n} announced")
        return DataBlock(c, payload)

    async def need(self, node: str, h: bytes, prio: int) -> bool:
        res = await self.bm.rpc.call_body(node, NEED, {"h": h}, prio=prio,
                                          timeout_s=NEED_BLOCK_QUERY_TIMEOUT_S)
        if not isinstance(res, bool):
            raise RpcError(f"block/need: invalid answer from {node[:16]}")
        return res

    async def has(self, node: str, h: bytes) -> bool:
        res = await self.bm.rpc.call_body(node, HAS, {"h": h}, prio=PRIO_BACKGROUND,
                                          timeout_s=NEED_BLOCK_QUERY_TIMEOUT_S)
        if not isinstance(res, bool):
            raise RpcError(f"block/has: invalid answer from {node[:16]}")
        return res

    async def verify_on(self, node: str, h: bytes) -> None:
        await self.bm.rpc.call_body(node, CHECK, {"h": h}, prio=PRIO_BACKGROUND,
                                    timeout_s=30.0)

