"""PutObject, and the block writer shared by UploadPart and copies.

Flow: read the first block; under INLINE_THRESHOLD it goes inside the object entry. Otherwise
the object gets an Uploading version, then each block_size chunk is checksummed (MD5 for the
ETag, plus what the client asked) in order in the upload's own worker thread, while chunks are
hashed, compressed and stored concurrently (at most MAX_IN_FLIGHT). Stored blocks are listed in
the version entry VERSION_BATCH at a time. The version becomes Complete only after every block
is stored and listed and every checksum verified; any failure marks it Aborted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from ...block.block import INLINE_MAX, DataBlock
from ...model.garage import Garage
from ...model.s3.block_ref_table import BlockRef
from ...model.s3.local_put import owns_all, write_one_block_put
from ...model.s3.object_table import (
    ABORTED,
    COMPLETE,
    FIRST_BLOCK,
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from ...model.s3.version_table import Version, VersionBlock
from ...util.clock import SYSTEM_CLOCK, next_timestamp
from ...util.ids import gen_uuid
from ...util.offload import offload
from ...util.tasks import drop
from ..common import errors
from ..common.signature import checksum as ck
from .context import ReqCtx
from .meta import headers_to_store
from .names import check_object_key
from .quotas import check_quotas

log = logging.getLogger(__name__)

INLINE_THRESHOLD = 3072
MAX_IN_FLIGHT = 3
# With other nodes to write to, each block waits for network round trips rather than the
# disk: more of them in flight (all bounded together by block_ram_buffer_max).
MAX_IN_FLIGHT_CLUSTER = 8
# The version entry holds every block of the object and each write of it re-encodes it all:
# listing blocks one by one would cost O(blocks^2) for a large object.
VERSION_BATCH = 8

Reader = Callable[[int], Awaitable[bytes]]


@dataclass
class Written:
    size: int
    checksums: ck.Checksums
    first_block: bytes | None  # None when inline
    inline: bytes | None


def new_checksummer(ctx: ReqCtx, algo: str | None) -> ck.Checksummer:
    body_sha = ctx.auth.content_sha256
    want_sha = len(body_sha) == 64 and not body_sha.startswith("STREAMING")
    return ck.Checksummer([algo] if algo else [], md5=True, sha256_hex=want_sha)


async def write_blocks(garage: Garage, version: bytes, part: int, read: Reader,
                       summer: ck.Checksummer, first: bytes,
                       pack: Callable[[bytes], tuple[bytes, DataBlock]] | None = None
                       ) -> tuple[int, bytes | None]:
    """Store blocks of (first + the rest of read()) for `version`; -> (size, first hash).
    `pack` turns plain data into a block (SSE-C encrypts there); the block manager's by
    default."""
    bs = garage.config.block_size
    bm = garage.block_manager
    packer = pack or bm.pack
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(max_in_flight(garage))
    tasks: list[asyncio.Task[bytes]] = []
    offset = 0
    # Checksums must see the blocks in order: a worker thread of this upload's own takes them
    # in turn, so hashing overlaps reading and storing instead of gating them.
    hasher: ThreadPoolExecutor | None = None
    summing: deque[asyncio.Future[None]] = deque()
    unlisted: dict[tuple[int, int], VersionBlock] = {}  # hashed, not yet in the version
    packed: list[asyncio.Future[None]] = []  # per block: its hash is known (and queued)
    listing: list[asyncio.Task[None]] = []  # version inserts under way

    def flush() -> None:
        """List the queued blocks in the version, concurrently with their writes: the
        version is read by nobody before the object is Complete, and an aborted upload's
        version frees whatever it lists (a listed block never written included)."""
        if unlisted:
            blocks = dict(unlisted)
            unlisted.clear()
            listing.append(asyncio.ensure_future(
                garage.version_table.insert(Version(version, blocks=blocks))))

    async def store(data: bytes, off: int, held: int, hashed: asyncio.Future[None]) -> bytes:
        try:
            h, block = (packer(data) if len(data) <= INLINE_MAX
                        else await offload(packer, data))
            unlisted[(part, off)] = VersionBlock(h, len(data))
            hashed.set_result(None)
            if len(unlisted) >= VERSION_BATCH:
                flush()
            try:
                await store_and_reference(garage, version, h, block)
            except Referenced as e:  # already listed: the abort frees its reference
                raise e.error from None
            return h
        finally:
            if not hashed.done():
                hashed.set_result(None)
            sem.release()
            bm.ram_buffer.release(held)

    try:
        async with asyncio.TaskGroup() as tg:
            data = first
            while data:
                if hasher is None and len(data) <= INLINE_MAX:
                    summer.update(data)
                else:
                    if hasher is None:
                        hasher = ThreadPoolExecutor(1, thread_name_prefix="put-checksum")
                    summing.append(loop.run_in_executor(hasher, summer.update, data))
                    if len(summing) > MAX_IN_FLIGHT:
                        await summing.popleft()
                # block_ram_buffer_max: room for this block from now until it is stored.
                held = await bm.ram_buffer.acquire(len(data))
                try:
                    await sem.acquire()
                    hashed = loop.create_future()
                    packed.append(hashed)
                    tasks.append(tg.create_task(store(data, offset, held, hashed)))
                except BaseException:
                    bm.ram_buffer.release(held)
                    raise
                offset += len(data)
                data = await read(bs)
            # The whole body is read: once the last blocks are hashed, list them while
            # they are being written, so no round trip is left for after the last write.
            await asyncio.gather(*packed)
            flush()
            while summing:
                await summing.popleft()
        await asyncio.gather(*listing)  # every block listed before the object completes
    except BaseExceptionGroup as group:
        # The TaskGroup wraps the body's own error (a bad chunk signature or a cut body,
        # raised by read()) and its tasks' errors: the client gets the S3 error they carry.
        raise _first_error(group) from None
    finally:
        if hasher is not None:
            hasher.shutdown(wait=False, cancel_futures=True)
        flush()  # on failure too: aborting the version frees what it lists
        await asyncio.gather(*listing, return_exceptions=True)
    return offset, (tasks[0].result() if tasks else None)


def max_in_flight(g: Garage) -> int:
    return MAX_IN_FLIGHT if len(g.system.layout.all_storage_nodes()) <= 1 \
        else MAX_IN_FLIGHT_CLUSTER


class Referenced(Exception):
    """A block write failed after its reference was written (`error` is why)."""

    def __init__(self, block: bytes, error: BaseException):
        super().__init__(str(error))
        self.block = block
        self.error = error


async def store_and_reference(g: Garage, version: bytes, h: bytes, block: DataBlock) -> None:
    """The block_ref entry and the block itself, written concurrently (one round trip, not
    two). Safe for the GC: a block stored before its reference arrives is young, and resync
    never deletes a block file written less than the GC delay ago; a reference stored before
    its block makes the block needed, fetched by resync if its write failed. Raises
    Referenced when the reference was written but the block was not, so the caller lists it
    in the version and the version's abort frees it."""
    ref = asyncio.ensure_future(g.block_ref_table.insert(BlockRef(h, version)))
    try:
        await g.block_manager.put_block(h, block)
    except BaseException as e:
        try:
            await asyncio.shield(ref)
        except Exception:
            raise e from None
        raise Referenced(h, e) from None
    await ref


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a TaskGroup failure stands for: its first S3 error, else its first leaf."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        e = pending.pop(0)
        if isinstance(e, BaseExceptionGroup):
            pending[:0] = e.exceptions
        else:
            leaves.append(e)
    return next((e for e in leaves if isinstance(e, errors.S3Error)), leaves[0])


def verify_body_checksums(ctx: ReqCtx, w: Written, trailers: dict[str, str],
                          declared: tuple[str, str] | None) -> tuple[str, str] | None:
    """Compare what we computed with what the client declared; -> the checksum to store."""
    if ctx.auth.content_sha256 and len(ctx.auth.content_sha256) == 64 and \
            w.checksums.sha256_hex != ctx.auth.content_sha256.lower():
        raise errors.XAmzContentSHA256Mismatch()
    md5_hdr = ctx.headers.get("content-md5")
    if md5_hdr is not None and w.checksums.md5 is not None and \
            not ck.content_md5_matches(md5_hdr, w.checksums.md5):
        raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
    if declared is None:
        for name, value in trailers.items():
            if name.startswith("x-amz-checksum-"):
                declared = (name[len("x-amz-checksum-"):], value)
    if declared is not None:
        ck.verify(declared[1], declared[0], w.checksums)
        return declared
    algo = next(iter(w.checksums.extra), None)
    return (algo, w.checksums.extra[algo]) if algo else None


def checksum_algo_for(ctx: ReqCtx) -> tuple[str | None, tuple[str, str] | None]:
    lower = {k.lower(): v for k, v in ctx.headers.items()}
    declared = ck.parse_checksum_headers(lower)
    algo = declared[0] if declared else ck.requested_algorithm(lower)
    return algo, declared


async def handle_put_object(ctx: ReqCtx, read: Reader,
                            trailers: Callable[[], dict[str, str]]) -> web.StreamResponse:
    g = ctx.garage
    check_object_key(ctx.key)
    stored = headers_to_store(ctx.headers, list(ctx.headers.items()))
    algo, declared = checksum_algo_for(ctx)
    vid = gen_uuid()
    summer = new_checksummer(ctx, algo)
    bs = g.config.block_size
    # The key's current entry, read while the body arrives: a small object is then written
    # in the same round trip (put_inline), larger ones wait for it before their first write.
    lookup = asyncio.ensure_future(g.object_table.get(ctx.bucket_id, ctx.key.encode()))
    try:
        first = await read(bs)
        if len(first) < INLINE_THRESHOLD:
            rest = await read(bs)
            if not rest:  # small object: one metadata write, no blocks
                # Under INLINE_MAX: hashed here (a thread hop would cost ten times more).
                summer.update(first)
                w = Written(len(first), summer.result(), None, first)
                checksum = verify_body_checksums(ctx, w, trailers(), declared)
                meta = ObjectMeta(w.size, _etag(w), stored, checksum)
                await put_inline(ctx, ctx.key, vid, meta, first, lookup)
                return _put_response(vid, meta)
            first += rest
        existing = await lookup
    finally:
        drop(lookup)
    ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)

    if len(first) <= bs:
        more = await read(bs)
        if not more:
            async with g.block_manager.ram_buffer.hold(len(first)):  # block_ram_buffer_max
                return await _put_one_block(ctx, vid, ts, stored, summer, first,
                                            trailers, declared, existing)
        read = _prepend(more, read)

    uploading = ObjectVersion(vid, ts, UPLOADING, upload_headers=stored,
                              upload_checksum_algo=algo)
    # Both entries at once (one round trip): a version alone, with no block, frees nothing
    # and is visible nowhere if the object write is refused.
    results = await asyncio.gather(
        g.object_table.insert(Object(ctx.bucket_id, ctx.key, [uploading])),
        g.version_table.insert(Version(vid, backlink=("object", ctx.bucket_id, ctx.key))),
        return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        if not isinstance(results[0], BaseException):
            await _abort(g, ctx.bucket_id, ctx.key, uploading)
        raise failed[0]
    try:
        size, first_hash = await write_blocks(g, vid, 0, read, summer, first)
        w = Written(size, summer.result(), first_hash, None)
        checksum = verify_body_checksums(ctx, w, trailers(), declared)
        await check_quotas(ctx, w.size, existing)
    except BaseException:
        await _abort(g, ctx.bucket_id, ctx.key, uploading)
        raise
    meta = ObjectMeta(w.size, _etag(w), stored, checksum)
    done = ObjectVersion(vid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=first_hash)
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [done]))
    return _put_response(vid, meta)


async def put_inline(ctx: ReqCtx, key: str, vid: bytes, meta: ObjectMeta, data: bytes,
                     lookup: asyncio.Future[Object | None]) -> None:
    """Store a small object (its bytes in the object entry) in one round trip: the entry is
    written with the time now while `lookup` (the key's current entry) is still in flight.
    Only if that entry holds a version as new or newer (a clock ahead elsewhere) is the
    same version written again with a later timestamp (a version's timestamp only moves
    forward in a merge), so the new object still wins. A bucket with quotas needs the
    current entry before writing: one round trip more."""
    g = ctx.garage
    assert ctx.bucket is not None
    quotas = ctx.bucket.quotas[1] or {}
    if quotas.get("max_objects") is not None or quotas.get("max_size") is not None:
        existing = await lookup
        await check_quotas(ctx, meta.size, existing)
        ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)
        done = ObjectVersion(vid, ts, COMPLETE, kind=INLINE, meta=meta, inline=data)
        await g.object_table.insert(Object(ctx.bucket_id, key, [done]))
        return
    ts = next_timestamp(SYSTEM_CLOCK, None)
    done = ObjectVersion(vid, ts, COMPLETE, kind=INLINE, meta=meta, inline=data)
    await g.object_table.insert(Object(ctx.bucket_id, key, [done]))
    existing = await lookup
    newest = existing.newest_timestamp(other_than=vid) if existing else None
    if newest is not None and newest >= ts:
        again = ObjectVersion(vid, newest + 1, COMPLETE, kind=INLINE, meta=meta, inline=data)
        await g.object_table.insert(Object(ctx.bucket_id, key, [again]))


def _prepend(data: bytes, read: Reader) -> Reader:
    """`read`, giving back `data` (already read, at most one block) first."""
    pending = [data]

    async def reader(n: int) -> bytes:
        return pending.pop() if pending else await read(n)
    return reader


async def _put_one_block(ctx: ReqCtx, vid: bytes, ts: int, stored: list[tuple[str, str]],
                         summer: ck.Checksummer, data: bytes,
                         trailers: Callable[[], dict[str, str]],
                         declared: tuple[str, str] | None,
                         existing: Object | None) -> web.StreamResponse:
    """The whole body is one block, already read: checksums are verified before anything is
    written, and no Uploading object entry is needed, since nothing is visible before the
    Complete one. Block reference, block and version with its block, then the object; a
    failure before the object entry unreferences the block; a crash leaves at most a version
    that no object points to."""
    g = ctx.garage
    bm = g.block_manager
    if len(data) <= INLINE_MAX:
        summer.update(data)
        h, block = bm.pack(data)
    else:
        def sum_and_pack() -> tuple[bytes, DataBlock]:
            summer.update(data)
            return bm.pack(data)
        h, block = await offload(sum_and_pack)
    w = Written(len(data), summer.result(), h, None)
    checksum = verify_body_checksums(ctx, w, trailers(), declared)
    await check_quotas(ctx, w.size, existing)
    meta = ObjectMeta(w.size, _etag(w), stored, checksum)
    done = ObjectVersion(vid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=h)
    ref = BlockRef(h, vid)
    version = Version(vid, blocks={(0, 0): VersionBlock(h, len(data))},
                      backlink=("object", ctx.bucket_id, ctx.key))
    obj = Object(ctx.bucket_id, ctx.key, [done])
    if owns_all(g, ref, version, obj):
        # This node alone owns the three entries: the block file first, then all three
        # in one transaction (nothing is referenced if the block write fails). Shielded: a
        # client leaving now must not leave a stored block that nothing references.
        await _shielded(_store_then_write(g, h, block, ref, version, obj))
        return _put_response(vid, meta)
    # Block, reference and version at once (one round trip): none is visible before the
    # object entry, and a failure of any unreferences the block.
    try:
        results = await asyncio.gather(
            store_and_reference(g, vid, h, block),
            g.version_table.insert(version),
            return_exceptions=True)
    except BaseException:  # cancelled (the client went away)
        await _unreference(g, vid, h)
        raise
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        await _unreference(g, vid, h)
        err = failed[0]
        raise err.error if isinstance(err, Referenced) else err
    await g.object_table.insert(obj)
    return _put_response(vid, meta)


async def _store_then_write(g: Garage, h: bytes, block: DataBlock, ref: BlockRef,
                            version: Version, obj: Object) -> None:
    await g.block_manager.put_block(h, block)
    await write_one_block_put(g, ref, version, obj)


async def _shielded(coro: Awaitable[None]) -> None:
    """Run coro to its end even if the caller is cancelled (its error then only logged)."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_log_orphan_error)
    await asyncio.shield(task)


def _log_orphan_error(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("single-block put finished with an error: %s", task.exception())


async def _unreference(g: Garage, vid: bytes, h: bytes) -> None:
    """Free the block of a single-block upload that failed before its object entry."""
    try:
        await asyncio.shield(g.version_table.insert(Version(vid, deleted=True)))
        await asyncio.shield(g.block_ref_table.insert(BlockRef(h, vid, deleted=True)))
    except Exception as e:  # the original error matters more
        log.warning("could not unreference failed upload %s: %s", vid.hex(), e)


def _etag(w: Written) -> str:
    assert w.checksums.md5 is not None
    return w.checksums.md5.hex()


def _put_response(vid: bytes, meta: ObjectMeta) -> web.Response:
    headers = {"ETag": f'"{meta.etag}"', "x-amz-version-id": vid.hex()}
    if meta.checksum:
        headers[f"x-amz-checksum-{meta.checksum[0]}"] = meta.checksum[1]
    return web.Response(status=200, headers=headers)


async def _abort(g: Garage, bucket_id: bytes, key: str, v: ObjectVersion) -> None:
    """Mark an interrupted upload Aborted so its blocks get freed; never visible."""
    try:
        aborted = ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=v.multipart)
        await asyncio.shield(g.object_table.insert(Object(bucket_id, key, [aborted])))
    except Exception as e:  # the original error matters more
        log.warning("could not mark aborted upload %s: %s", v.uuid.hex(), e)
